"""Acceptance figures of the segmentation chain, and its inference speed (issues 13 and 14).

Accuracy: for simulated movies with ground truth, the detection precision and
recall (matching within 3 px), centroid RMSE, median orientation error (axis,
modulo 180 deg), recall of touching rods, per-class scores on atoms; and on
crowded rods from an independent generator (``tests/other_generator.py``,
rods 22 x 6.5 px with a raised disc head that overlap and cross), the recall
by nearest-neighbour distance. Settings are the workflow's (config/config.yaml,
the ``rods``, ``atoms`` and ``crowded_rods`` kinds); the crowded case sets only
the rods' length and width in the kind's training simulation, as a user would.

Speed: inference on 512 x 512 frames of a simulated rods movie with the rods
ensemble: the baseline (members one by one under autocast, as segment ran
before :class:`rotdyn.segment.FastEnsemble`) and the fast path, interleaved
round by round on this shared machine, with their frames per second, CPU
seconds per frame, ratios, the difference of their probability maps from
float32 and the particles :func:`rotdyn.locate.locate` finds in each.

    python benchmarks/segmentation.py                   # demo-sized movies, then speed
    python benchmarks/segmentation.py --quick           # smaller, for a quick look
    python benchmarks/segmentation.py --case crowded    # one accuracy case (name starts with it)
    python benchmarks/segmentation.py --speed           # speed only (trains the rods ensemble)
    python benchmarks/segmentation.py --speed --explore # and the alternatives measured
    python benchmarks/segmentation.py --speed --members results/ensemble/rods/member_*.pt
    python benchmarks/segmentation.py --train-precision 12   # float32 vs bfloat16 training
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from math import nan
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml

from rotdyn.evaluate.segmentation import (
    MOVIE_SETTINGS,
    NN_BINS,
    evaluate_movie,
    evaluate_segmentation,
    match,
    train_ensemble,
)
from rotdyn.ingest import load_movie
from rotdyn.kinds import CALIBRATION_KEYS, kind_settings
from rotdyn.locate import locate
from rotdyn.networks import autocast_dtype, cpu_has_fast_bf16, num_threads
from rotdyn.segment import FastEnsemble, ensemble_proba, load_ensemble
from rotdyn.simulate import simulate, to_dataset
from rotdyn.store import write_netcdf
from rotdyn.train import fit_baseline
from rotdyn.training_set import from_simulation, training_arrays

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the independent generator of crowded rods lives with the tests
from other_generator import crowded_rods  # noqa: E402

# ------------------------------------------------------------------ accuracy
#: The crowded movie: rods 22 x 6.5 px, 50 in 256 x 256 px; every frame an independent
#: draw (large steps and turns), so the close pairs of different frames are different pairs.
CROWDED = {"count": 50, "size": 256, "length": 22.0, "width": 6.5, "step": 40.0, "turn": 3.0, "seed": 11}


def settings(kind: dict) -> tuple[dict, dict, int, int]:
    """fit_baseline parameters, locate parameters, members, member epochs of a kind's settings."""
    t = kind["train"]
    train = {key: t[key] for key in ("arch", "width", "max_epochs", "patience", "batch_size", "lr",
                                      "val_fraction", "seed")}
    train["augment_params"] = t["augment"]
    return train, dict(kind["locate"]), t["members"], t["member_epochs"]


def training_params(kind: dict, **simulate) -> dict:
    """:func:`rotdyn.training_set.from_simulation` parameters of a kind's training set, ``simulate`` keys over."""
    ts = kind["training_set"]
    sim = {k: v for k, v in {**ts["simulate"], **simulate}.items() if k not in (*CALIBRATION_KEYS, "kind")}
    keys = ("tile", "flatten", "normalize", "separate_touching", "centres")
    return {**{k: ts[k] for k in keys if k in ts}, **sim}


def cases(config: dict, quick: bool) -> dict:
    """The simulated movies to score: rods at the demo's noise and noisier, and atoms."""
    rods_kind, atoms_kind = kind_settings(config, "rods"), kind_settings(config, "atoms")
    rods = {k: v for k, v in config["simulate"]["rods"].items() if k not in CALIBRATION_KEYS}
    frames = 12 if quick else rods["frames"]
    training = training_params(rods_kind)
    return {
        f"rods, noise {rods['noise']}": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2},
                                         training, rods_kind),
        "rods, noise 0.25": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2, "noise": 0.25},
                             {**training, "noise": 0.25}, rods_kind),
        "atoms": ("atoms", {"size": 128, "frames": 6 if quick else 20, "seed": 0},
                  training_params(atoms_kind, frames=12), atoms_kind),
    }


def score_simulated(config: dict, quick: bool, threads: int, folder: Path, only: str = "") -> Path | None:
    """Score every simulated case; returns the folder of the first ensemble trained (for the speed part)."""
    print(f"{'case':18} {'prec':>6} {'recall':>6} {'rmse px':>7} {'orient':>7} {'touch':>6} "
          f"{'train s':>8} {'seg s':>6}")
    first = None
    for name, (kind, movie, training, kind_cfg) in cases(config, quick).items():
        if not name.startswith(only):
            continue
        train, locate_params, members, member_epochs = settings(kind_cfg)
        here = folder / name.replace(" ", "_").replace(",", "")
        first = first or here
        s = evaluate_segmentation(kind, here, movie=movie, training=training, train=train,
                                  locate_params=locate_params, members=members, member_epochs=member_epochs,
                                  threads=threads)
        if kind == "atoms":
            s["orientation_error_deg"] = nan  # round: no orientation to score
        print(f"{name:18} {s['precision']:6.3f} {s['recall']:6.3f} {s['rmse']:7.3f} "
              f"{s.get('orientation_error_deg', nan):7.2f} {s.get('touching_recall', nan):6.3f} "
              f"{s['train_seconds']:8.1f} {s['segment_seconds']:6.1f}")
        for key in sorted(k for k in s if k.startswith(("precision_class", "recall_class"))):
            print(f"    {key}: {s[key]:.3f}")
    return first


def score_crowded(config: dict, quick: bool, threads: int, folder: Path, kind_name: str = "crowded_rods") -> dict:
    """Crowded, crossing rods of the independent generator; precision, recall and recall by neighbour distance.

    ``kind_name``: the configured kind whose training set, ensemble and locate
    settings run (``crowded_rods``: centre class and centre split; ``rods``: the
    valley split, for comparison).
    """
    kind = kind_settings(config, kind_name)
    train, locate_params, members, member_epochs = settings(kind)
    frames, truth = crowded_rods(frames=4 if quick else 12, **CROWDED)
    training = training_params(kind, length=CROWDED["length"], width=CROWDED["width"])
    s = evaluate_movie(frames, truth, folder, kind="rods", training=training, train=train,
                       locate_params=locate_params, members=members, member_epochs=member_epochs,
                       threads=threads, neighbour_distance=CROWDED["length"] / 2, bins=NN_BINS)
    print(f"\ncrowded rods, kind {kind_name} (tests/other_generator.py: {CROWDED['count']} rods {CROWDED['length']:g} x "
          f"{CROWDED['width']:g} px in {CROWDED['size']} px frames, {s['frames']} frames), training: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(training.items()))}; locate split {locate_params['split']}")
    print(f"precision {s['precision']:.3f}, recall {s['recall']:.3f}, centroid RMSE {s['rmse']:.2f} px, "
          f"orientation {s['orientation_error_deg']:.2f} deg; training {s['train_seconds']:.0f} s")
    print("recall by nearest-neighbour distance:")
    for row in s["recall_by_neighbour"].itertuples():
        print(f"    {row.low:4.0f} - {row.high:<4.0f} px  {row.recall:6.3f}  ({row.n} rods)")
    return s


# ------------------------------------------------------------------ speed
# rods at the demo's density (24 per 128 x 128), a seed no training set uses
SPEED_MOVIE = {"size": 512, "count": 384, "transition_frame": 4, "seed": 5}


def machine() -> str:
    """CPU model, its bfloat16 flags and what rotdyn concludes from them."""
    flags, model = set(), platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    amx = sorted(f for f in flags if f.startswith("amx"))
    checks = {name: getattr(torch.cpu, name, lambda: False)()
              for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")}
    return (f"machine: {model}, {os.cpu_count()} CPUs; AMX: {', '.join(amx) or 'no'}; "
            f"AVX512-BF16: {'yes' if 'avx512_bf16' in flags else 'no'}; torch {torch.__version__} "
            f"({torch.backends.cpu.get_cpu_capability()}): {checks} -> cpu_has_fast_bf16() = {cpu_has_fast_bf16()}")


def speed_movie(config: dict, folder: Path, frames: int) -> np.ndarray:
    """A simulated 512 x 512 rods movie, preprocessed as the workflow does: ``(frames, 512, 512)``."""
    rods = {k: v for k, v in config["simulate"]["rods"].items()
            if k not in ("pixel_size_nm", "frame_interval_s", "size", "count", "transition_frame", "seed")}
    sim = simulate("rods", **{**rods, **SPEED_MOVIE, "frames": frames})
    write_netcdf(to_dataset(sim, pixel_size_nm=1.0, frame_interval_s=1.0), folder / "speed_raw.nc")
    return load_movie(folder / "speed_raw.nc", MOVIE_SETTINGS)["frames"].values.astype(np.float32)


def _maps(predict, frames: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance ``(N, C, H, W)`` of ``predict`` over all frames, ``batch_size`` at a time."""
    parts = [predict(torch.from_numpy(frames[i:i + batch_size])[:, None]) for i in range(0, len(frames), batch_size)]
    return (torch.cat([m for m, _ in parts]).numpy(), torch.cat([v for _, v in parts]).numpy())


def _particles(mean: np.ndarray, variance: np.ndarray, locate_params: dict):
    """:func:`rotdyn.locate.locate` on maps ``(N, C, H, W)``; one row per particle."""
    prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean[:, 1:]),
                       "variance": (("frame", "class", "y", "x"), variance[:, 1:])},
                      coords={"frame": np.arange(len(mean)), "class": np.arange(1, mean.shape[1])})
    return locate(prob, **locate_params).to_dataframe()


def compare_particles(a, b, max_distance: float = 1.0) -> str:
    """How many particles of ``a`` and ``b`` pair up within ``max_distance`` px, of the same class."""
    pairs = match(a, b, max_distance=max_distance)
    both = pairs[(pairs.detected >= 0) & (pairs.truth >= 0)]
    same_class = (a.loc[both.detected, "class"].to_numpy() == b.loc[both.truth, "class"].to_numpy()).sum()
    shift = both.distance.max() if len(both) else nan
    return (f"{len(a)} vs {len(b)} particles, {len(both)} paired within {max_distance} px "
            f"({same_class} of the same class), largest shift {shift:.3f} px")


def _timed(predict, frames: np.ndarray, batch_size: int) -> tuple[float, float, float]:
    """Frames per second, CPU seconds (all threads) and minor page faults per frame of ``predict``."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    _maps(predict, frames, batch_size)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return len(frames) / wall, cpu / len(frames), (after.ru_minflt - before.ru_minflt) / len(frames)


def speed(paths: list, config: dict, folder: Path, threads: int, rounds: int, frames: int,
          explore: bool) -> None:
    """Print the baseline's and the fast path's speed, interleaved, and how their maps and particles differ."""
    batch_size = config["segment"]["batch_size"]
    locate_params = dict(kind_settings(config, "rods")["locate"])
    movie = speed_movie(config, folder, frames)
    models, _ = load_ensemble(paths)
    amp = autocast_dtype("cpu", "auto")
    variants = {"baseline": lambda x: ensemble_proba(models, x, amp),
                "fast": FastEnsemble(models, "auto", threads=threads)}
    if explore:
        variants.update({
            f"fast, 1 worker x {threads} threads": FastEnsemble(models, "auto", threads=threads, workers=1),
            f"fast, {batch_size} frames per pass": FastEnsemble(models, "auto", threads=threads,
                                                                frames_per_pass=batch_size),
            "fast, grouped members": FastEnsemble(models, "auto", grouped=True, threads=threads),
            "fast, float32": FastEnsemble(models, False, threads=threads),
            "baseline, float32": lambda x: ensemble_proba(models, x, None),
        })
    print(f"\n{machine()}")
    print(f"inference: {len(models)} x {models[0].arch} width {models[0].width}, {frames} frames of 512 x 512, "
          f"batches of {batch_size}, {threads} threads; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"fast path: {variants['fast'].describe()}")
    with num_threads(threads):
        reference = _maps(lambda x: ensemble_proba(models, x, None), movie, batch_size)
        maps = {name: _maps(variants[name], movie, batch_size) for name in ("baseline", "fast")}
        fps, cpu, faults = ({name: [] for name in variants} for _ in range(3))
        for _ in range(rounds):  # interleaved: a busy spell on this shared machine hits all alike
            for name, predict in variants.items():
                for table, value in zip((fps, cpu, faults), _timed(predict, movie, batch_size)):
                    table[name].append(value)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; medians over {rounds} interleaved rounds:")
    for name in variants:
        ratio = statistics.median(np.divide(fps[name], fps["baseline"]))
        cpu_ratio = statistics.median(cpu["baseline"]) / statistics.median(cpu[name])
        print(f"  {name:36} {statistics.median(fps[name]):6.2f} frames/s (ratio {ratio:4.2f}), "
              f"{statistics.median(cpu[name]):6.3f} CPU s/frame (baseline / this {cpu_ratio:4.2f}), "
              f"{statistics.median(faults[name]) * 4 / 1024:5.0f} MB page faults/frame")
    for name, (mean, variance) in maps.items():
        print(f"  {name}: max abs difference from float32, mean {np.abs(mean - reference[0]).max():.4f}, "
              f"variance {np.abs(variance - reference[1]).max():.4f}")
    gap = np.abs(maps["fast"][0] - maps["baseline"][0]).max()
    print(f"  fast vs baseline: max abs difference of the mean {gap:.4f}")
    found = {name: _particles(*m, locate_params) for name, m in {**maps, "float32": reference}.items()}
    print(f"  particles, fast vs baseline: {compare_particles(found['fast'], found['baseline'])}")
    print(f"  particles, fast vs float32: {compare_particles(found['fast'], found['float32'])}")


def train_precision(config: dict, threads: int, epochs: int, seeds=(0, 1)) -> None:
    """Print the baseline's held-out loss after the same epochs, float32 vs bfloat16 autocast, and epoch times."""
    train, _, _, _ = settings(kind_settings(config, "rods"))
    kind, _, training, _ = next(iter(cases(config, False).values()))
    data = training_arrays(from_simulation(kind, **training))
    names = data["class_names"]
    print(f"\n{machine()}")
    print(f"training precision: {train['arch']} width {train['width']} baseline, {data.sizes['sample']} tiles, "
          f"{epochs} epochs, {threads} threads")
    for seed in seeds:
        losses = {}
        for bf16 in (False, True):
            _, history = fit_baseline(data["images"], data["masks"], n_classes=len(names),
                                      class_names=names, threads=threads, bf16=bf16,
                                      **{**train, "max_epochs": epochs, "patience": epochs, "seed": seed})
            losses[bf16] = history.val_loss.iloc[-1]
            print(f"  seed {seed}, {'bfloat16' if bf16 else 'float32 '}: held-out loss after {epochs} epochs "
                  f"{losses[bf16]:.4f}, {history.seconds.median():.1f} s per epoch")
        print(f"  seed {seed}: bfloat16 / float32 held-out loss {losses[True] / losses[False]:.3f}")


def rods_ensemble(config: dict, folder: Path, threads: int) -> list:
    """Train the default ensemble on the default (rods) training set into ``folder``."""
    train, _, members, member_epochs = settings(kind_settings(config, "rods"))
    kind, _, training, _ = next(iter(cases(config, False).values()))
    paths, seconds = train_ensemble(from_simulation(kind, **training), folder, members=members,
                                    member_epochs=member_epochs, threads=threads, **train)
    print(f"trained the rods ensemble in {seconds:.0f} s")
    return paths


def main() -> None:
    """Command line: score every case, then time inference on 512 x 512 frames."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", default="", help="score only the accuracy cases whose name starts with this")
    parser.add_argument("--speed", action="store_true", help="only the speed comparison")
    parser.add_argument("--explore", action="store_true", help="also time the alternatives to the fast path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 5; quick 2)")
    parser.add_argument("--members", nargs="+", help="with --speed: these checkpoints instead of training")
    parser.add_argument("--train-precision", type=int, metavar="EPOCHS",
                        help="only compare float32 and bfloat16 training over EPOCHS epochs")
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    rounds = args.rounds or (2 if args.quick else 5)
    frames = 4 if args.quick else 8
    if args.train_precision:
        train_precision(config, args.threads, args.train_precision)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.speed:
            paths = args.members or rods_ensemble(config, Path(tmp), args.threads)
            speed(paths, config, Path(tmp), args.threads, rounds, frames, args.explore)
            return
        train, _, members, member_epochs = settings(kind_settings(config, "rods"))
        print(f"ensemble: {train['arch']} width {train['width']}, {members} members x {member_epochs} epochs")
        first = score_simulated(config, args.quick, args.threads, Path(tmp), args.case)
        if "crowded".startswith(args.case) or args.case.startswith("crowded"):
            for kind in ("crowded_rods", "rods"):  # the centre split, then the valley split it replaces
                score_crowded(config, args.quick, args.threads, Path(tmp) / kind, kind)
        if first is not None:  # the rods at the demo's noise
            speed(sorted(first.glob("member_*.pt")), config, Path(tmp), args.threads, rounds, frames, args.explore)


if __name__ == "__main__":
    main()
