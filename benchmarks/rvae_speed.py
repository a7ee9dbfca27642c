"""Speed of the rVAE on this CPU, float32 against bfloat16 inside the tiled decoder, and what bf16 costs in loss.

Prints (no asserts):

* the machine: CPU model, its bfloat16 flags (``avx512_bf16``, ``amx_bf16``,
  ``amx_tile``), what ``rotdyn.networks.cpu_has_fast_bf16()`` says, torch;
* matmul GFLOP/s, float32 and bfloat16: 2048 x 2048 @ 2048 x 2048 and one
  shaped like the decoder's hidden layer, ``(batch * pixels, 128) @ (128, 128)``;
* decoder forward + backward on one mini-batch: the tiled decoder in
  float32 and in bfloat16, the plain split-first-layer decoder (layer by
  layer through autograd) in float32 and under ``torch.autocast`` to
  bfloat16, the naive spatial-VAE decoder (per-pixel concatenation of
  coordinates and z). GFLOP/s count the decoder's matmul FLOPs, forward +
  backward = 3 x forward;
* training epochs of ``rotdyn.fit_rvae.fit`` (encoder, decoder, KL, Adam)
  per case and precision, each run a fresh process: one warm-up epoch, then
  ``--epochs`` timed ones; the runs take turns over ``--rounds`` rounds so
  that load from other users of a shared machine falls on all alike.
  Median seconds per epoch and the ratio float32 / bfloat16 (of the
  medians, and the median of each round's ratio);
* the loss: test -ELBO after ``--fit-epochs`` epochs in float32 and in
  bfloat16 (same seed), and in float32 with another seed, the yardstick of
  what a run-to-run difference is.

Cases:

* ``demo``: the demo's windows (the rods movie of ``config/config.yaml``
  ``simulate.rods``, 24 x 24 windows at the true positions) with the
  workflow's ``rvae`` settings (batch 32, lr 1e-3, learned noise, polarity);
* ``peers``: the reference case of the peers' comparison (issue 14): 2,000
  windows of 48 x 48 (rods with a brighter head, shifted, noise), batch 200,
  MLP encoder 2304-128-128 tanh, latent angle + 2 offsets + 2, decoder
  in-128-128-1, Gaussian likelihood, Adam lr 1e-4, polarity off. Timed
  epochs pass over all 2,000 windows (as AtomAI's); the loss runs hold out
  a quarter and learn the noise sd.

    python benchmarks/rvae_speed.py                      # all (about 40 min on 2 busy cores)
    python benchmarks/rvae_speed.py --quick              # 2 rounds, short fits (about 12 min)
    python benchmarks/rvae_speed.py --cases peers --no-loss

Timings move by 2x and more with other load on a shared machine; the ratios
of interleaved runs are the steadier figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rotdyn.evaluate.rvae import naive_decoder_forward
from rotdyn.networks import cpu_has_fast_bf16
from rotdyn.rvae import RVAE

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("float32", "bfloat16")
PEERS = dict(batch_size=200, lr=1e-4, latent_dim=2, hidden=128, encoder="mlp", likelihood="gaussian",
             polarity=False)


# ------------------------------------------------------------------ the machine
def machine() -> str:
    """CPU model, its bfloat16-relevant flags and what rotdyn concludes, one line."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    has = " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in wanted) if flags else "flags unknown"
    return (f"{model}; {torch.get_num_threads()} threads; {has}; cpu_has_fast_bf16()={cpu_has_fast_bf16()}; "
            f"torch {torch.__version__}")


# ------------------------------------------------------------------ kernels
def _median_times(fns: dict, repeat: int, warmup: int = 2) -> dict:
    """Median seconds of each function, the functions taking turns ``repeat`` times."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def decoder_flops(size: int, hidden: int, images: int) -> float:
    """Decoder matmul FLOPs of forward + backward (3 x forward) for ``images`` windows."""
    forward = 2 * size * size * (3 * hidden + hidden * hidden + hidden)  # first (coords + bias), second, output
    return 3.0 * forward * images


def matmul_gflops(size: int, hidden: int, batch: int, repeat: int) -> dict:
    """GFLOP/s of square and decoder-shaped matmuls, float32 and bfloat16."""
    fns, flops = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        x, w = torch.randn(batch * size * size, hidden, dtype=dtype), torch.randn(hidden, hidden, dtype=dtype)
        out = torch.empty(x.shape[0], hidden, dtype=dtype)  # preallocated: the arithmetic, not fresh pages
        fns[f"square {name}"], flops[f"square {name}"] = (lambda a=a, b=b: a @ b), 2 * 2048**3
        fns[f"shaped {name}"] = lambda x=x, w=w, out=out: torch.mm(x, w, out=out)
        flops[f"shaped {name}"] = 2 * x.shape[0] * hidden * hidden
    return {name: flops[name] / t / 1e9 for name, t in _median_times(fns, repeat).items()}


def decoder_gflops(size: int, hidden: int, batch: int, repeat: int) -> dict:
    """Decoder forward + backward GFLOP/s per implementation and precision."""
    torch.manual_seed(0)
    model = RVAE(size, hidden=hidden)
    latent = torch.randn(batch, model.n_latent)

    def step(tiled: bool, precision: str, naive: bool = False, autocast: bool = False):
        lat = latent.clone().requires_grad_(True)
        model.tiled, model.precision = tiled, precision
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = naive_decoder_forward(model, lat) if naive else model.decoder_raw(lat)
        out.float().square().mean().backward()

    fns = {"tiled float32": lambda: step(True, "float32"), "tiled bfloat16": lambda: step(True, "bfloat16"),
           "plain float32": lambda: step(False, "float32"),
           "plain bf16 autocast": lambda: step(False, "float32", autocast=True),
           "naive float32": lambda: step(False, "float32", naive=True)}
    flops = decoder_flops(size, hidden, batch)
    return {name: flops / t / 1e9 for name, t in _median_times(fns, repeat, warmup=1).items()}


# ------------------------------------------------------------------ data
def peer_windows(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """``(n, size, size)`` float32 rods with a brighter head at uniform angles, shifted, noise sd 0.05.

    Rods of half-length 5-9 px and width 2-3.5 px (Gaussian across, a soft
    step along), centres shifted by N(0, 1) px, a head blob at one end.
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi, np.pi, (n, 1, 1))
    shift = rng.normal(0.0, 1.0, (n, 2, 1, 1))
    half, width = rng.uniform(5.0, 9.0, (n, 1, 1)), rng.uniform(2.0, 3.5, (n, 1, 1))
    rows, cols = np.mgrid[:size, :size] - size // 2
    x, y = cols[None] - shift[:, 0], -(rows[None] - shift[:, 1])  # y up
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    body = np.exp(-0.5 * (v / width) ** 2) / (1 + np.exp(np.abs(u) - half))
    head = 0.6 * np.exp(-0.5 * ((u - half) ** 2 + v**2) / width**2)
    return (body + head + rng.normal(0.0, 0.05, body.shape)).astype(np.float32)


def demo_windows() -> tuple[np.ndarray, dict]:
    """The demo movie's windows at the true rod positions and the workflow's rVAE settings."""
    import yaml

    from rotdyn.evaluate.rvae import simulated_windows
    from rotdyn.settings import rvae_fit_settings
    from rotdyn.simulate import simulate

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rods = {k: v for k, v in config["simulate"]["rods"].items() if k not in ("pixel_size_nm", "frame_interval_s")}
    windows, _ = simulated_windows(simulate("rods", **rods), "frames", size=config["patches"]["size"])
    options = {k: v for k, v in rvae_fit_settings(config["rvae"], "frames").items()
               if k not in ("epochs", "seed", "checkpoint_every", "manifold_grid", "gpu", "threads", "scope")}
    return windows, options


def case_data(case: str, windows: int) -> tuple[np.ndarray, dict]:
    if case == "demo":
        return demo_windows()
    return peer_windows(windows), dict(PEERS)


# ------------------------------------------------------------------ one run (child process)
def child(args) -> None:
    """Fit one case in one precision; print the epoch times, the test loss and the precision used."""
    from rotdyn.fit_rvae import fit

    x, options = case_data(args.case, args.windows)
    if args.mode == "time" and args.case == "peers":
        options["test_fraction"] = 0.0  # every window trained on, as the peers' epochs
    epochs = args.epochs + 1 if args.mode == "time" else args.fit_epochs
    model, history = fit(x, epochs=epochs, seed=args.seed, device="cpu", threads=args.threads,
                         precision=args.precision, **options)
    print(json.dumps({"seconds": history["seconds"].tolist()[1:], "test_loss": float(history["test_loss"].iloc[-1]),
                      "first_test_loss": float(history["test_loss"].iloc[0]),
                      "precision": model.training_info["precision"], "windows": len(x)}))


def run_child(args, case: str, precision: str, mode: str, seed: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", "--case", case, "--precision", precision, "--mode", mode,
           "--seed", str(seed), "--epochs", str(args.epochs), "--fit-epochs", str(args.fit_epochs[case]),
           "--threads", str(args.threads), "--windows", str(args.windows)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ reports
def epoch_times(args) -> None:
    print(f"\ntraining epochs ({args.threads} threads; fresh process per run, 1 warm-up + {args.epochs} timed "
          f"epochs, {args.rounds} interleaved rounds):")
    for case in args.cases:
        times = {p: [] for p in PRECISIONS}
        paired = []
        for r in range(args.rounds):
            order = PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]
            got = {p: run_child(args, case, p, "time") for p in order}
            for p in PRECISIONS:
                assert got[p]["precision"] == p, got[p]
                times[p] += got[p]["seconds"]
            paired.append(statistics.median(got["float32"]["seconds"]) / statistics.median(got["bfloat16"]["seconds"]))
        med = {p: statistics.median(t) for p, t in times.items()}
        print(f"  {case:5s} ({got['float32']['windows']} windows): float32 {med['float32']:6.2f} s/epoch, "
              f"bfloat16 {med['bfloat16']:6.2f} s/epoch; float32/bfloat16 {med['float32'] / med['bfloat16']:.2f}x "
              f"(per round: {', '.join(f'{x:.2f}' for x in paired)})")


def losses(args) -> None:
    print("\ntest -ELBO (nats per window) after training; float32 seed 1 = the run-to-run yardstick:")
    for case in args.cases:
        runs = {(p, s): run_child(args, case, p, "loss", seed=s) for p, s in
                (("float32", 0), ("bfloat16", 0), ("float32", 1))}
        f32, bf16, other = (runs[k]["test_loss"] for k in (("float32", 0), ("bfloat16", 0), ("float32", 1)))
        drop = runs[("float32", 0)]["first_test_loss"] - f32
        print(f"  {case:5s} ({args.fit_epochs[case]} epochs): float32 {f32:.2f}, bfloat16 {bf16:.2f} "
              f"(difference {bf16 - f32:+.2f} = {100 * (bf16 - f32) / abs(f32):+.3f} % of the loss, "
              f"{100 * (bf16 - f32) / drop:+.2f} % of training's drop {drop:.1f}); "
              f"float32 seed 1 {other:.2f} ({other - f32:+.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds, shorter fits")
    parser.add_argument("--cases", nargs="+", default=["demo", "peers"], choices=["demo", "peers"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds of epoch timings (3)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run, after one warm-up")
    parser.add_argument("--fit-epochs", type=int, default=None, help="epochs of the loss runs (demo 60, peers 20)")
    parser.add_argument("--windows", type=int, default=2000, help="windows of the peers' case")
    parser.add_argument("--no-loss", action="store_true", help="skip the loss runs")
    parser.add_argument("--no-times", action="store_true", help="skip the epoch timings")
    parser.add_argument("--no-kernels", action="store_true", help="skip the matmul and decoder timings")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", default="demo", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.fit_epochs = int(args.fit_epochs)
        child(args)
        return
    args.rounds = args.rounds or (2 if args.quick else 3)
    fit_epochs = args.fit_epochs or (20 if args.quick else None)
    args.fit_epochs = {"demo": fit_epochs or 60, "peers": fit_epochs or 20}
    torch.set_num_threads(args.threads)
    print("machine:", machine())
    if not args.no_kernels:
        size, hidden, batch, repeat = 48, 128, 200, 3 if args.quick else 5
        mm = matmul_gflops(size, hidden, batch, repeat)
        print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in mm.items())
              + f" (bfloat16 / float32: square {mm['square bfloat16'] / mm['square float32']:.2f}x, "
              f"shaped {mm['shaped bfloat16'] / mm['shaped float32']:.2f}x)")
        for size, batch in ((24, 32), (48, 200)):
            dec = decoder_gflops(size, hidden, batch, repeat)
            print(f"decoder fwd+bwd, {size}x{size}, batch {batch}: " + ", ".join(f"{k} {v:.1f}" for k, v in dec.items())
                  + f" GFLOP/s; tiled bfloat16 / float32 {dec['tiled bfloat16'] / dec['tiled float32']:.2f}x, "
                  f"tiled float32 / naive {dec['tiled float32'] / dec['naive float32']:.2f}x")
    if not args.no_times:
        epoch_times(args)
    if not args.no_loss:
        losses(args)


if __name__ == "__main__":
    main()
