"""The whole demo, timed and scored against its ground truth.

Runs `snakemake --cores 2` on a fresh copy of the workflow (the built-in
simulated rods movie, default settings, CPU), then prints:

* wall time of the whole run and each rule's time (from the `benchmark:` files);
* segmentation: precision, recall, centroid RMSE against the truth;
* rVAE: median error of the latent angle against the true rod angle after the
  best global offset and sign (full circle and axis), offsets' spread (px),
  peaks of the angle histogram before and after the transition;
* dynamics: transition frame of the angle (truth: the simulation's
  transition_frame), link recall and precision against the true ids.

    python benchmarks/demo.py [--keep DIR] [--configfile extra.yaml]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import xarray as xr

from rotdyn.evaluate.tracks import link_scores
from rotdyn.evaluate.rvae import angle_accuracy, angle_peaks
from rotdyn.evaluate.segmentation import detection_scores, match

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from rule_times import rule_times  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from workflow_helpers import copy_workflow  # noqa: E402  (one copy of the workflow for tests and benchmarks)


def matched_latents(results: Path, truth: pd.DataFrame) -> pd.DataFrame:
    """Latents of the detections matched to a true rod, with the rod's angle and id."""
    with xr.open_dataset(results / "particles.nc") as p, xr.open_dataset(results / "latents.nc") as lat:
        particles = p.to_dataframe()
        latents = pd.DataFrame({"angle": lat.angle.values, "dx": lat.dx.values, "dy": lat.dy.values,
                                "frame": lat.frame.values}, index=lat.particle_index.values)
    pairs = match(particles, truth)
    pairs = pairs[(pairs.detected >= 0) & (pairs.truth >= 0)]
    pairs = pairs[pairs.detected.isin(latents.index)]
    out = latents.loc[pairs.detected.to_numpy()].reset_index(drop=True)
    out["true_angle"] = truth.loc[pairs.truth.to_numpy(), "angle"].to_numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--configfile", type=Path)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rotdyn-demo-"))
    copy_workflow(work)
    command = [sys.executable, "-m", "snakemake", "--cores", "2"]
    if args.configfile:
        command += ["--configfile", str(args.configfile.resolve())]
    start = time.perf_counter()
    run = subprocess.run(command, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode:
        sys.exit(f"the demo failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    results = work / "results"
    print(f"whole demo: {wall:.0f} s wall on 2 cores")
    jobs = rule_times(results).groupby("rule")["seconds"].sum().sort_values(ascending=False)
    print("per rule (s): " + ", ".join(f"{rule} {s:.1f}" for rule, s in jobs.items()))

    truth = pd.read_csv(results / "simulated" / "rods" / "truth.csv")
    movie = results / "demo_rods"
    with xr.open_dataset(movie / "particles.nc") as p:
        seg = detection_scores(p.to_dataframe(), truth)
    print(f"segmentation: precision {seg['precision']:.3f}, recall {seg['recall']:.3f}, rmse {seg['rmse']:.2f} px")

    lat = matched_latents(movie, truth)
    acc = angle_accuracy(lat.angle, lat.true_angle)
    print(f"rVAE angle: median error {acc['median_error_deg']:.1f} deg (full circle, sign {acc['sign']:+d}), "
          f"{acc['median_axis_error_deg']:.1f} deg (axis); head-tail flipped {acc['flipped_fraction']:.1%}")
    print(f"rVAE offsets: sd dx {lat.dx.std():.2f} px, sd dy {lat.dy.std():.2f} px")
    with xr.open_dataset(results / "simulated" / "rods" / "movie.nc") as sim:
        transition = int(sim.attrs["sim_transition_frame"])
    with xr.open_dataset(movie / "latents.nc") as latents:
        before = latents.angle.values[latents.frame.values < transition]
        after = latents.angle.values[latents.frame.values >= transition]
    print(f"angle histogram peaks: {angle_peaks(before)} before the transition, {angle_peaks(after)} after")
    with xr.open_dataset(movie / "nmf.nc") as nmf:
        found = float(nmf["transition_frame_angle"])
        spread = float(nmf["transition_uncertainty_angle"])
    print(f"transition frame of the angle: {found:.0f} +- {spread:.0f} (truth {transition})")
    scores = link_scores(pd.read_csv(movie / "tracks.csv"), truth)
    print(f"linking: recall {scores['recall']:.3f}, precision {scores['precision']:.3f}")
    print(f"results kept in {work}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
