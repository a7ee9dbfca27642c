"""A movie of paper size through the whole workflow: peak memory and wall time of every stage.

Writes a 2,000-frame movie of 512 x 512 px with about 50 rods per frame (the
demo's rods, drawn 100 frames at a time with a new seed each, so ~100,000
windows) as a plain float32 TIFF stack in a fresh copy of the workflow, runs
`snakemake --cores 2` on it, and prints for every rule its jobs, wall time and
peak resident memory (Snakemake's benchmark files, `max_rss`: the job and its
children), marking any over the 4 GB budget. The rVAE is fitted for a few
epochs with the papers' batch (200) and learning rate; its seconds per epoch
on the movie's windows (history.csv) give the projected time of the papers'
3,000 epochs on this machine.

    python benchmarks/paper_size.py [--frames 2000] [--size 512] [--count 56] [--epochs 2] [--keep DIR]

A quick check of the script itself: --frames 200 --size 256.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from rule_times import rule_times  # noqa: E402
from rvae_speed import machine  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from workflow_helpers import copy_workflow  # noqa: E402

BUDGET_MB = 4000  # issue 14: at most 4 GB per stage
CHUNK = 100  # frames drawn per simulation (one seed each)
PAPER_EPOCHS = 3000


def write_movie(path: Path, frames: int, size: int, count: int) -> int:
    """The demo's rods, ``CHUNK`` frames per seed, appended to one contiguous TIFF series; returns rods drawn."""
    import tifffile

    from rotdyn.simulate import simulate

    rods = 0
    with tifffile.TiffWriter(path) as tif:
        for start in range(0, frames, CHUNK):
            n = min(CHUNK, frames - start)
            sim = simulate("rods", size=size, frames=n, count=count, seed=1000 + start, length=16.0, width=5.0,
                           noise=0.15, transition_frame=n + 1)
            rods += len(sim.truth)
            for frame in sim.frames:
                tif.write(frame.astype(np.float32), contiguous=True)
    return rods


def run(workflow: Path, epochs: int) -> tuple[float, subprocess.CompletedProcess]:
    """``snakemake --cores 2`` with the papers' rVAE batch and learning rate for ``epochs`` epochs."""
    extra = workflow / "paper_size.yaml"
    extra.write_text(f"rvae:\n  epochs: {epochs}\n  min_steps: 0\n  batch_size: 200\n  lr: 0.0001\n  checkpoint_every: 1\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(extra)],
                          cwd=workflow, capture_output=True, text=True)
    return time.perf_counter() - start, done


def report(workflow: Path, wall: float, rods: int) -> None:
    """Per-rule wall time and peak memory; the rVAE's epoch time and the papers' projected fit."""
    results = workflow / "results"
    jobs = rule_times(results)
    per_rule = jobs.groupby("rule").agg(jobs=("seconds", "size"), seconds=("seconds", "sum"),
                                        max_rss_mb=("max_rss_mb", "max")).sort_values("seconds", ascending=False)
    print(f"\nwall {wall:.0f} s for the whole run; {rods} rods drawn")
    print(f"{'rule':18} {'jobs':>5} {'seconds':>9} {'peak MB':>9}")
    for rule, row in per_rule.iterrows():
        flag = "  OVER 4 GB" if row["max_rss_mb"] > BUDGET_MB else ""
        print(f"{rule:18} {int(row['jobs']):5d} {row['seconds']:9.1f} {row['max_rss_mb']:9.0f}{flag}")
    worst = per_rule["max_rss_mb"].max()
    print(f"largest peak: {worst:.0f} MB ({per_rule['max_rss_mb'].idxmax()}); budget {BUDGET_MB} MB: "
          f"{'met' if worst <= BUDGET_MB else 'NOT met'}")
    for history in sorted(results.glob("rvae/*/*/history.csv")):
        seconds = pd.read_csv(history)["seconds"].to_numpy()
        windows = _windows(results)
        epoch = float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
        print(f"rVAE ({history.parent.relative_to(results / 'rvae')}): {windows} windows, {epoch:.1f} s per epoch "
              f"(batch 200; epochs {np.round(seconds, 1).tolist()}); {PAPER_EPOCHS} epochs: "
              f"{epoch * PAPER_EPOCHS / 3600:.1f} h on this machine")


def _windows(results: Path) -> int:
    import xarray as xr

    total = 0
    for path in results.glob("*/patches.nc"):
        with xr.open_dataset(path) as patches:
            total += patches.sizes.get("particle", 0)
    return total


def main() -> None:
    """Command line: write the movie, run the workflow, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--count", type=int, default=56, help="rods per frame drawn (births and deaths: ~50 seen)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", help="run in this folder and keep it")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rotdyn-paper-size-"))
    try:
        workflow = copy_workflow(base / "workflow")
        start = time.perf_counter()
        movie = workflow / "resources" / "movies" / "paper_size.tif"
        rods = write_movie(movie, args.frames, args.size, args.count)
        print(f"movie: {args.frames} frames of {args.size} x {args.size} px, {movie.stat().st_size / 1e9:.2f} GB, "
              f"drawn in {time.perf_counter() - start:.0f} s")
        wall, done = run(workflow, args.epochs)
        if done.returncode:
            print(done.stdout[-4000:], done.stderr[-4000:])
            sys.exit(f"the workflow failed (exit {done.returncode}); its log is above")
        report(workflow, wall, rods)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
