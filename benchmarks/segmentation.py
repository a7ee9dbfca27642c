"""Acceptance figures of the segmentation chain (issue: movie to particles).

Prints, for simulated movies with ground truth, the detection precision and
recall (matching within 3 px), centroid RMSE, median orientation error (axis,
modulo 180 deg), recall of touching rods, per-class scores on atoms, and the
ensemble training time. Settings are the workflow's defaults (config/config.yaml).

Then the inference speed on 512 x 512 frames of a simulated rods movie, with
the rods ensemble: the baseline (members one by one under autocast, as
segment ran before :class:`rotdyn.segment.FastEnsemble`) and the fast path,
interleaved round by round on this shared machine, with their frames per
second, CPU seconds per frame, ratios, the difference of their probability
maps from float32 and the particles :func:`rotdyn.locate.locate` finds in each.

    python benchmarks/segmentation.py            # demo-sized movies, then speed
    python benchmarks/segmentation.py --quick    # smaller, for a quick look
    python benchmarks/segmentation.py --speed    # speed only (trains the rods ensemble)
    python benchmarks/segmentation.py --speed --explore   # and the alternatives measured
    python benchmarks/segmentation.py --speed --members results/ensemble/member_*.pt
    python benchmarks/segmentation.py --train-precision 12   # float32 vs bfloat16 training
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from math import nan
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml

from rotdyn.evaluate.segmentation import MOVIE_SETTINGS, evaluate_segmentation, match, train_ensemble
from rotdyn.ingest import load_movie
from rotdyn.locate import locate
from rotdyn.networks import autocast_dtype, cpu_has_fast_bf16, num_threads
from rotdyn.segment import FastEnsemble, ensemble_proba, load_ensemble
from rotdyn.simulate import simulate, to_dataset
from rotdyn.store import write_netcdf
from rotdyn.train import fit_baseline
from rotdyn.training_set import from_simulation

ROOT = Path(__file__).resolve().parents[1]
ATOMS_LOCATE = {"split": "distance", "min_area": 4, "min_distance": 3}
# rods at the demo's density (24 per 128 x 128), a seed no training set uses
SPEED_MOVIE = {"size": 512, "count": 384, "transition_frame": 4, "seed": 5}


def settings(config: dict) -> tuple[dict, dict, int, int]:
    """fit_baseline parameters, locate parameters, members, member epochs from the config."""
    t = config["train"]
    train = {key: t[key] for key in ("arch", "width", "max_epochs", "patience", "batch_size", "lr",
                                      "val_fraction", "seed")}
    train["augment_params"] = t["augment"]
    return train, dict(config["locate"]), t["members"], t["member_epochs"]


def cases(config: dict, quick: bool) -> dict:
    """The movies to score: rods at the demo's noise and noisier, and atoms."""
    rods = {k: v for k, v in config["simulate"]["rods"].items() if k not in ("pixel_size_nm", "frame_interval_s")}
    training = dict(config["training_set"]["simulate"])
    training.pop("kind")
    training["tile"] = config["training_set"]["tile"]
    frames = 12 if quick else rods["frames"]
    out = {
        f"rods, noise {rods['noise']}": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2}, training),
        "rods, noise 0.25": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2, "noise": 0.25},
                             {**training, "noise": 0.25}),
        "atoms": ("atoms", {"size": 128, "frames": 6 if quick else 20, "seed": 0},
                  {"frames": 12, "size": 128, "seed": 1, "tile": training["tile"]}),
    }
    return out


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


def _timed(predict, frames: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Frames per second and CPU seconds (all threads) per frame of ``predict`` over ``frames``."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    _maps(predict, frames, batch_size)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return len(frames) / wall, cpu / len(frames)


def speed(paths: list, config: dict, folder: Path, threads: int, rounds: int, frames: int,
          explore: bool) -> None:
    """Print the baseline's and the fast path's speed, interleaved, and how their maps and particles differ."""
    batch_size = config["segment"]["batch_size"]
    locate_params = dict(config["locate"])
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
        fps = {name: [] for name in variants}
        cpu = {name: [] for name in variants}
        for _ in range(rounds):  # interleaved: a busy spell on this shared machine hits all alike
            for name, predict in variants.items():
                f, c = _timed(predict, movie, batch_size)
                fps[name].append(f)
                cpu[name].append(c)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; medians over {rounds} interleaved rounds:")
    for name in variants:
        ratio = statistics.median(np.divide(fps[name], fps["baseline"]))
        cpu_ratio = statistics.median(cpu["baseline"]) / statistics.median(cpu[name])
        print(f"  {name:36} {statistics.median(fps[name]):6.2f} frames/s (ratio {ratio:4.2f}), "
              f"{statistics.median(cpu[name]):6.3f} CPU s/frame (baseline / this {cpu_ratio:4.2f})")
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
    train, _, _, _ = settings(config)
    kind, _, training = next(iter(cases(config, False).values()))
    data = from_simulation(kind, **training)
    names = data.attrs["class_names"].split(",")
    print(f"\n{machine()}")
    print(f"training precision: {train['arch']} width {train['width']} baseline, {data.sizes['sample']} tiles, "
          f"{epochs} epochs, {threads} threads")
    for seed in seeds:
        losses = {}
        for bf16 in (False, True):
            _, history = fit_baseline(data["images"].values, data["masks"].values, n_classes=len(names),
                                      class_names=names, threads=threads, bf16=bf16,
                                      **{**train, "max_epochs": epochs, "patience": epochs, "seed": seed})
            losses[bf16] = history.val_loss.iloc[-1]
            print(f"  seed {seed}, {'bfloat16' if bf16 else 'float32 '}: held-out loss after {epochs} epochs "
                  f"{losses[bf16]:.4f}, {history.seconds.median():.1f} s per epoch")
        print(f"  seed {seed}: bfloat16 / float32 held-out loss {losses[True] / losses[False]:.3f}")


def rods_ensemble(config: dict, folder: Path, threads: int) -> list:
    """Train the default ensemble on the default (rods) training set into ``folder``."""
    train, _, members, member_epochs = settings(config)
    kind, _, training = next(iter(cases(config, False).values()))
    paths, seconds = train_ensemble(from_simulation(kind, **training), folder, members=members,
                                    member_epochs=member_epochs, threads=threads, **train)
    print(f"trained the rods ensemble in {seconds:.0f} s")
    return paths


def main() -> None:
    """Command line: score every case, then time inference on 512 x 512 frames."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--speed", action="store_true", help="only the speed comparison")
    parser.add_argument("--explore", action="store_true", help="also time the alternatives to the fast path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 5; quick 2)")
    parser.add_argument("--members", nargs="+", help="with --speed: these checkpoints instead of training")
    parser.add_argument("--train-precision", type=int, metavar="EPOCHS",
                        help="only compare float32 and bfloat16 training over EPOCHS epochs")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train, locate_params, members, member_epochs = settings(config)
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
        print(f"ensemble: {train['arch']} width {train['width']}, {members} members x {member_epochs} epochs")
        print(f"{'case':18} {'prec':>6} {'recall':>6} {'rmse px':>7} {'orient':>7} {'touch':>6} "
              f"{'train s':>8} {'seg s':>6}")
        folders = []
        for name, (kind, movie, training) in cases(config, args.quick).items():
            loc = {**locate_params, **(ATOMS_LOCATE if kind == "atoms" else {})}
            folders.append(Path(tmp) / name.replace(" ", "_"))
            s = evaluate_segmentation(kind, folders[-1], movie=movie, training=training,
                                      train=train, locate_params=loc, members=members,
                                      member_epochs=member_epochs, threads=args.threads)
            if kind == "atoms":
                s["orientation_error_deg"] = nan  # round: no orientation to score
            print(f"{name:18} {s['precision']:6.3f} {s['recall']:6.3f} {s['rmse']:7.3f} "
                  f"{s.get('orientation_error_deg', nan):7.2f} {s.get('touching_recall', nan):6.3f} "
                  f"{s['train_seconds']:8.1f} {s['segment_seconds']:6.1f}")
            for key in sorted(k for k in s if k.startswith(("precision_class", "recall_class"))):
                print(f"    {key}: {s[key]:.3f}")
        paths = sorted(folders[0].glob("member_*.pt"))  # the rods at the demo's noise
        speed(paths, config, Path(tmp), args.threads, rounds, frames, args.explore)


if __name__ == "__main__":
    main()
