"""rVAE training speed against its peers, AtomAI and pyroVED, on one CPU (issue 14).

The reference case (paper 000's settings, one size up): 2,000 windows of
48 x 48 (seeded rotated rods with a brighter head, shifted, with noise),
batches of 200, encoder 2304-128-128 (tanh), latent angle + 2 offsets + 2
content, spatial decoder (coordinates, z)-128-128-1, Gaussian likelihood,
Adam lr 1e-4, 2 threads. Every run is a fresh subprocess that trains one
untimed warm-up epoch and then ``--epochs`` timed ones; the runs of all
settings take turns (``--repeats`` rounds, the order rotated each round) so
that load from other users of a shared machine falls on all of them alike.
Printed: the median seconds per epoch over all timed epochs, its ratio to
AtomAI (as installed and with the malloc setting), and -ELBO per window
after ``--fit-epochs`` epochs of each (same data, same number of Adam steps).

Settings compared, each as installed and with ``GLIBC_TUNABLES`` raising
glibc's mmap/trim thresholds (large blocks then come from the reused heap,
not from freshly mapped, kernel-zeroed pages):

* rotdyn float32, tiled decoder (the CPU default of ``rotdyn.rvae.RVAE``);
* rotdyn float32, plain layer-by-layer decoder (``tiled=False``);
* rotdyn with the tiled decoder in bfloat16 (``precision="bfloat16"``:
  bfloat16 operands, float32 accumulation, float32 weights and Adam), what
  ``fit``'s ``precision="auto"`` picks for these windows on a CPU with
  native bfloat16 (AMX or AVX512-BF16; slower than float32 elsewhere);
* rotdyn's naive spatial-VAE decoder (per-pixel concatenation of
  coordinates and z; same weights and loss);
* AtomAI ``atomai.models.rVAE`` trained by its own ``train_epoch()``;
* pyroVED ``pyroved.models.iVAE(invariances=["r", "t"])`` with its
  ``SVItrainer`` (Pyro's ``Trace_ELBO``).

The peers run in their own virtual environment (``--venv``, made on first
use with ``pip install torch==<rotdyn's torch> atomai pyroved six``); a peer
that cannot be installed or imported is reported with the reason and left
out. One likelihood for all: Gaussian with pixel sd 1 (AtomAI's "mse",
pyroVED's ``decoder_sig=1``, rotdyn's ``noise_sd=1``), offsets scaled by 0.1
grid units per latent unit with a N(0, 1) prior, the angle's KL as AtomAI's
(rotdyn "uniform", ``rotation_sd=0.1``; pyroVED: a N(0, 1) prior on the
angle, the one it has). -ELBO is printed in nats per window with every
constant (AtomAI's loss leaves out ``P/2 log(2 pi)``: added back).

    python benchmarks/peers.py              # the reference case (about 30 min on 2 cores)
    python benchmarks/peers.py --quick      # 400 windows, 5 fit epochs (a few minutes)
    python benchmarks/peers.py --quick --no-peers   # rotdyn only, no virtual environment
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=8589934592"
MARK = "PEERS-RESULT "
ROTDYN = ("rotdyn-tiled", "rotdyn-plain", "rotdyn-bf16", "rotdyn-naive")
PEERS = ("atomai", "pyroved")
LABELS = {"rotdyn-tiled": "rotdyn float32, tiled decoder", "rotdyn-plain": "rotdyn float32, plain decoder",
          "rotdyn-bf16": "rotdyn bfloat16, tiled decoder", "rotdyn-naive": "rotdyn naive decoder",
          "atomai": "AtomAI rVAE", "pyroved": "pyroVED iVAE"}
SAME_FUNCTION = ("rotdyn-plain", "rotdyn-naive")  # the tiled decoder's function: fitted with --fit-all only
PIP_PEERS = ["atomai", "pyroved", "six"]  # six: AtomAI's dependency mendeleev imports it undeclared
BATCH, HIDDEN, LATENT, LR = 200, 128, 2, 1e-4
EVAL_DRAWS = 4  # one-sample -ELBO estimates averaged over this many noise draws per window


# ---------------------------------------------------------------- the data
def make_windows(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """``(n, size, size)`` float32 windows of rotated rods with a brighter head, shifted, with noise.

    Rods of length 10-18 px and width 2-3.5 px at uniform angles, centres
    shifted by N(0, 1) px, a head blob at one end, pixel noise sd 0.05.

    Examples
    --------
    >>> w = make_windows(3, 48, seed=1)
    >>> w.shape, w.dtype
    ((3, 48, 48), dtype('float32'))
    >>> bool((w[:, 24, 24] > 0.8).all() and (np.median(w, axis=(1, 2)) < 0.05).all())  # rod on the centre
    True
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi, np.pi, (n, 1, 1))
    shift = rng.normal(0.0, 1.0, (n, 2, 1, 1))
    half = rng.uniform(5.0, 9.0, (n, 1, 1))
    width = rng.uniform(2.0, 3.5, (n, 1, 1))
    rows, cols = np.mgrid[:size, :size] - size // 2
    x, y = cols[None] - shift[:, 0], -(rows[None] - shift[:, 1])  # y up
    u = x * np.cos(angle) + y * np.sin(angle)  # along the rod
    v = -x * np.sin(angle) + y * np.cos(angle)
    body = np.exp(-0.5 * (v / width) ** 2) / (1 + np.exp(np.abs(u) - half))
    head = 0.6 * np.exp(-0.5 * ((u - half) ** 2 + v**2) / width**2)
    return (body + head + rng.normal(0.0, 0.05, body.shape)).astype(np.float32)


# ---------------------------------------------------------------- one run (child process)
def _rotdyn(impl: str, x: np.ndarray, seed: int):
    """An epoch function, a -ELBO function and notes for one rotdyn setting."""
    import torch
    from rotdyn.rvae import RVAE
    try:
        from rotdyn.evaluate.rvae import naive_decoder_forward
    except ImportError:
        from rotdyn.rvae import naive_decoder_forward

    torch.manual_seed(seed)
    model = RVAE(x.shape[1], latent_dim=LATENT, hidden=HIDDEN, likelihood="gaussian", noise_sd=1.0,
                 rotation_prior="uniform", rotation_sd=0.1, translation_sd=1.0, dx_scale=0.1,
                 polarity=False, tiled=impl != "rotdyn-plain",
                 precision="bfloat16" if impl == "rotdyn-bf16" else "float32")
    if impl == "rotdyn-naive":  # negative_elbo calls self.decoder_raw: the instance attribute wins
        model.decoder_raw = lambda latent: naive_decoder_forward(model, latent)
    xt, gen = torch.from_numpy(x), torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def epoch():
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for b in range(0, len(xt) - BATCH + 1, BATCH):  # whole batches only, as AtomAI's loader
            optimizer.zero_grad(set_to_none=True)
            loss = model.negative_elbo(xt[order[b:b + BATCH]], generator=gen)["loss"].mean()
            loss.backward()
            optimizer.step()

    def terms(b):
        out = model.negative_elbo(b, generator=gen)
        return out["loss"], out["nll"]

    def neg_elbo():  # in float32, whatever the training ran in: the fits are compared, not the arithmetic
        model.eval()
        trained, model.precision = model.precision, "float32"
        try:
            with torch.no_grad():
                return _mean_over(terms, xt)
        finally:
            model.precision = trained

    return epoch, neg_elbo, {"decoder": str(model.decoder_dtype()).replace("torch.", "")}


def _mean_over(per_window, xt, batch: int = 500) -> list[float]:
    """Means of ``per_window(batch)`` (``(B,)`` tensors: -ELBO, its -log p(x|z)) over all windows and draws."""
    totals = np.zeros(2)
    for _ in range(EVAL_DRAWS):
        for b in xt.split(batch):
            totals += [float(t.double().sum()) for t in per_window(b)]
    return list(totals / (EVAL_DRAWS * len(xt)))


def _torchvision_shim() -> bool:
    """Import torchvision, registering its operator schemas first if its compiled ops do not load.

    The torchvision wheel pip picks next to a CPU-only torch is built for
    CUDA; its ``_C`` extension then fails to load and its import stops at
    ``operator torchvision::nms does not exist``. Defining the two schemas
    that ``torchvision._meta_registrations`` needs lets the Python part
    import (AtomAI and pyroVED never call those operators). Returns whether it was needed.
    """
    import torch
    try:
        import torchvision  # noqa: F401
        return False
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    global _TV_LIB  # the library object must outlive the import
    _TV_LIB = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _TV_LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision  # noqa: F401,F811
    return True


def _atomai(x: np.ndarray, seed: int):
    shim = _torchvision_shim()
    import atomai
    import torch
    from atomai.losses_metrics.vi_losses import kld_normal, kld_rot
    from atomai.models import rVAE

    model = rVAE(x.shape[1:], latent_dim=LATENT, translation=True, seed=seed, numlayers_encoder=2,
                 numhidden_encoder=HIDDEN, numlayers_decoder=1, numhidden_decoder=HIDDEN)
    # what rVAE.fit does before its epoch loop (default optimizer: Adam, lr 1e-4)
    model.compile_trainer((x, None), (None, None), batch_size=BATCH, training_cycles=1)
    model.dx_prior, model.kdict_["phi_prior"], model.loss = 0.1, 0.1, "mse"
    P = x.shape[1] * x.shape[2]

    def terms(b):  # AtomAI's ELBO: a batch mean without the Gaussian's P/2 log(2 pi); its KL is analytic
        loss = 0.5 * P * math.log(2 * math.pi) - model.forward_compute_elbo(b, mode="eval")
        z_mean, z_logsd = model.encoder_net(b)
        kl = kld_normal([z_mean[:, 1:], z_logsd[:, 1:]]) + kld_rot(model.kdict_["phi_prior"], z_logsd[:, 0])
        return loss.expand(len(b)), (loss - kl.mean()).expand(len(b))

    def neg_elbo():
        with torch.no_grad():
            return _mean_over(terms, torch.from_numpy(x))

    return model.train_epoch, neg_elbo, {"version": atomai.__version__, "torchvision_shim": shim}


def _pyroved(x: np.ndarray, seed: int):
    shim = _torchvision_shim()  # pyroved.utils imports torchvision too
    import pyroved
    import torch
    from pyro import poutine
    from pyroved.models import iVAE
    from pyroved.trainers import SVItrainer
    from pyroved.utils import init_dataloader

    model = iVAE(x.shape[1:], latent_dim=LATENT, invariances=["r", "t"], hidden_dim_e=[HIDDEN, HIDDEN],
                 hidden_dim_d=[HIDDEN], activation="tanh", sampler_d="gaussian", sigmoid_d=False,
                 decoder_sig=1.0, dx_prior=0.1, seed=seed, device="cpu")
    trainer = SVItrainer(model, lr=LR, seed=seed, device="cpu")
    xt = torch.from_numpy(x)
    loader = init_dataloader(xt, batch_size=BATCH)

    def terms(b):  # Trace_ELBO's terms per window: the guide's sample replayed through the model
        guide = poutine.trace(model.guide).get_trace(b)
        joint = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(b)
        log_p = {name: joint.nodes[name]["fn"].log_prob(joint.nodes[name]["value"]) for name in ("obs", "latent")}
        log_q = guide.nodes["latent"]["fn"].log_prob(guide.nodes["latent"]["value"])
        return log_q - log_p["latent"] - log_p["obs"], -log_p["obs"]

    def neg_elbo():
        with torch.no_grad():
            return _mean_over(terms, xt)

    return lambda: trainer.step(loader), neg_elbo, {"version": pyroved.__version__, "torchvision_shim": shim}


def child(args) -> dict:
    """Train one setting: a warm-up epoch, ``args.epochs`` timed ones, then up to ``args.fit_epochs``."""
    x = np.load(args.data)
    try:
        if args.impl in ROTDYN:
            epoch, neg_elbo, notes = _rotdyn(args.impl, x, args.seed)
        else:
            epoch, neg_elbo, notes = {"atomai": _atomai, "pyroved": _pyroved}[args.impl](x, args.seed)
    except Exception as exc:  # reported by the parent, which goes on with the others
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    import torch
    torch.set_num_threads(args.threads)
    seconds = []
    for e in range(max(1 + args.epochs, args.fit_epochs)):
        t0 = time.perf_counter()
        epoch()
        if 1 <= e <= args.epochs:
            seconds.append(time.perf_counter() - t0)
    out = {"ok": True, "seconds": seconds, "threads": torch.get_num_threads(), "torch": torch.__version__,
           **notes}
    if args.fit_epochs:
        out["neg_elbo"] = neg_elbo()
    return out


# ---------------------------------------------------------------- the parent
def machine() -> dict:
    """CPU model, cores, bf16/AMX flags (from ``lscpu``), torch version."""
    import torch
    from rotdyn.networks import cpu_has_fast_bf16
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
    except (OSError, subprocess.CalledProcessError):
        info = {}
    flags = set(info.get("Flags", "").split())
    return {"cpu": info.get("Model name", platform.processor() or "unknown"), "cores": os.cpu_count(),
            "amx": sorted(f for f in flags if f.startswith("amx")), "avx512_bf16": "avx512_bf16" in flags,
            "avx512f": "avx512f" in flags, "torch": torch.__version__, "fast_bf16": cpu_has_fast_bf16()}


def ensure_venv(venv: Path) -> tuple[str | None, str]:
    """The peers' python (made with pip on first use), or None and why not."""
    import torch
    python = venv / "bin" / "python"
    probe = "import importlib.metadata as m; [m.version(p) for p in ('torch', 'atomai', 'pyroved', 'six')]"
    if python.exists() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        return str(python), "present"
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    print(f"peers: making {venv} (pip install {torch_pin} {' '.join(PIP_PEERS)}; a minute or more)", flush=True)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", torch_pin, *PIP_PEERS]]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(cmd[:4])}: {exc}"
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return None, f"{' '.join(cmd[:4])} failed: {tail[0][:300]}"
    return str(python), "made"


def run_child(python: str, impl: str, tunables: bool, fit: bool, args, data: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = TUNABLES
    cmd = [python, __file__, "--child", impl, "--data", str(data), "--epochs", str(args.epochs),
           "--fit-epochs", str(args.fit_epochs if fit else 0), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    results = [line[len(MARK):] for line in done.stdout.splitlines() if line.startswith(MARK)]
    if not results:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"ok": False, "error": tail[0][:300]}
    return json.loads(results[-1])


def table(times: dict, fits: dict, impls: list) -> list[str]:
    """Markdown rows: median s/epoch per setting, ratios to AtomAI, -ELBO after the fit."""
    med = {key: statistics.median(v) for key, v in times.items() if v}
    ref = {t: med.get(("atomai", t)) for t in (False, True)}
    lines = ["| setting | GLIBC_TUNABLES | s/epoch (median) | epochs timed | AtomAI as installed / this "
             "| AtomAI with malloc setting / this | -ELBO/window after fit (nats) | of which -log p(x|z) |",
             "|---|---|---|---|---|---|---|---|"]
    for impl in impls:
        for t in (False, True):
            if (impl, t) not in med:
                continue
            s = med[(impl, t)]
            ratios = [f"{r / s:.2f}x" if r else "-" for r in (ref[False], ref[True])]
            fit = " | " if t else "{:.2f} | {:.2f}".format(*fits[impl]) if impl in fits else \
                "= tiled | = tiled" if impl in SAME_FUNCTION else " | "
            lines.append(f"| {LABELS[impl]} | {'set' if t else 'unset'} | {s:.2f} | {len(times[(impl, t)])} | "
                         f"{ratios[0]} | {ratios[1]} | {fit} |")
    return lines


def fastest(times: dict, m: dict) -> str:
    """One line: rotdyn's fastest float32/bf16 setting here, against AtomAI as installed."""
    med = {key: statistics.median(v) for key, v in times.items() if v}
    own = {key: s for key, s in med.items() if key[0] in ROTDYN[:3]}
    if not own:
        return "fastest rotdyn setting: none measured"
    (impl, t), s = min(own.items(), key=lambda kv: kv[1])
    ref = med.get(("atomai", False))
    vs = f", {ref / s:.2f}x AtomAI as installed" if ref else ""
    return (f"fastest rotdyn setting here: {LABELS[impl]}, GLIBC_TUNABLES {'set' if t else 'unset'}: "
            f"{s:.2f} s/epoch{vs} (cpu_has_fast_bf16() = {m['fast_bf16']})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="400 windows, 1 round of 2 timed epochs, 5 fit epochs")
    parser.add_argument("--no-peers", action="store_true", help="rotdyn only (no virtual environment)")
    parser.add_argument("--windows", type=int, help="default 2000 (--quick: 400)")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, help="timed epochs per run, after a warm-up one (default 3, --quick: 2)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds of runs (default 3, --quick: 1)")
    parser.add_argument("--fit-epochs", type=int, help="epochs before the -ELBO (default 20, --quick: 5; 0: none)")
    parser.add_argument("--fit-all", action="store_true", help="fit the plain and naive decoders too")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tunables", action="store_true", help="only as installed (no GLIBC_TUNABLES runs)")
    parser.add_argument("--settings", help=f"comma-separated subset of {','.join(ROTDYN + PEERS)}")
    parser.add_argument("--venv", type=Path, default=HERE / ".peers-venv", help="the peers' virtual environment")
    parser.add_argument("--child", choices=ROTDYN + PEERS, dest="impl", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.impl:
        print(MARK + json.dumps(child(args)), flush=True)
        return
    args.windows = args.windows or (400 if args.quick else 2000)
    args.epochs = args.epochs or (2 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.fit_epochs = (5 if args.quick else 20) if args.fit_epochs is None else args.fit_epochs
    if min(args.windows, args.size, args.epochs, args.repeats, args.threads) < 1 or args.windows < BATCH:
        parser.error(f"need --windows >= {BATCH} and --size, --epochs, --repeats, --threads >= 1")
    unknown = set(args.settings.split(",")) - set(ROTDYN + PEERS) if args.settings else set()
    if unknown:
        parser.error(f"unknown --settings {sorted(unknown)}; choose from {', '.join(ROTDYN + PEERS)}")
    report(args)


def report(args) -> None:
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores; AMX: {', '.join(m['amx']) or 'no'}; "
          f"AVX512-BF16: {'yes' if m['avx512_bf16'] else 'no'}; AVX512F: {'yes' if m['avx512f'] else 'no'}; "
          f"rotdyn.networks.cpu_has_fast_bf16(): {m['fast_bf16']}")
    print(f"rotdyn: torch {m['torch']}, {args.threads} threads; {args.windows} windows of {args.size} x "
          f"{args.size}, batch {BATCH}, Adam lr {LR}, encoder {args.size**2}-{HIDDEN}-{HIDDEN} tanh, "
          f"decoder (2+{LATENT})-{HIDDEN}-{HIDDEN}-1; {args.repeats} round(s) of 1 warm-up + {args.epochs} "
          f"timed epochs per setting", flush=True)
    pythons = {impl: sys.executable for impl in ROTDYN}
    if args.no_peers:
        print("peers: skipped (--no-peers)")
    else:
        python, how = ensure_venv(args.venv)
        if python is None:
            print(f"peers: not run, their environment could not be made: {how}")
        else:
            print(f"peers: {args.venv} ({how})")
            pythons.update({impl: python for impl in PEERS})
    impls = [impl for impl in pythons if args.settings is None or impl in args.settings.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "windows.npy"
        np.save(data, make_windows(args.windows, args.size, args.seed))
        for r, (times, fits, notes, errors) in enumerate(run_all(args, pythons, impls, data), 1):
            done = [impl for impl in impls if impl not in errors]
            print(f"\nafter round {r} of {args.repeats}:" if r < args.repeats else "")
            print("\n".join(table(times, fits, done)), flush=True)
    print()
    for impl, why in errors.items():
        print(f"{LABELS[impl]}: not run: {why}")
    for impl in done:
        print(f"{LABELS[impl]}: " + ", ".join(f"{k} {v}" for k, v in notes.get(impl, {}).items()))
    print(fastest(times, m))
    print(f"GLIBC_TUNABLES set = {TUNABLES}")
    if args.fit_epochs:
        print(f"-ELBO: after {args.fit_epochs} epochs on all {args.windows} windows (as installed), one-sample "
              f"estimate averaged over {EVAL_DRAWS} draws, float32; Gaussian sd 1 with its constants for all "
              f"(AtomAI's own loss + P/2 log(2 pi)); pyroVED's prior on the angle is N(0, 1), the others' "
              f"AtomAI's term. The plain and naive decoders compute the tiled one's function (same weights): "
              f"not refitted unless --fit-all")


def run_all(args, pythons: dict, impls: list, data: Path):
    """Every (setting, tunables) run, interleaved; yields the results so far after each round.

    The fits run in round 1, as installed (their epochs 2.. are timed too).
    """
    runs = [(impl, t) for impl in impls for t in ((False,) if args.no_tunables else (False, True))]
    times, fits, notes, errors = {run: [] for run in runs}, {}, {}, {}
    for r in range(args.repeats):
        shift = r % len(runs)
        for impl, t in runs[shift:] + runs[:shift]:
            if impl in errors:
                continue
            fit = r == 0 and not t and args.fit_epochs > 0 and (args.fit_all or impl not in SAME_FUNCTION)
            t0 = time.perf_counter()
            res = run_child(pythons[impl], impl, t, fit, args, data)
            if not res["ok"]:
                errors[impl] = res["error"]
                print(f"round {r + 1}/{args.repeats}: {LABELS[impl]}: failed: {res['error']}", flush=True)
                continue
            times[(impl, t)] += res["seconds"]
            if "neg_elbo" in res:
                fits[impl] = res["neg_elbo"]
            notes[impl] = {k: v for k, v in res.items() if k not in ("ok", "seconds", "neg_elbo")}
            fitted = ", -ELBO {:.2f}, -log p(x|z) {:.2f} nats".format(*res["neg_elbo"]) if "neg_elbo" in res else ""
            print(f"round {r + 1}/{args.repeats}: {LABELS[impl]}, GLIBC_TUNABLES {'set' if t else 'unset'}: "
                  f"{statistics.median(res['seconds']):.2f} s/epoch ({time.perf_counter() - t0:.0f} s run){fitted}",
                  flush=True)
        yield times, fits, notes, errors


if __name__ == "__main__":
    main()
