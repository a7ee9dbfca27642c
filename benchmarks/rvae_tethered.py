"""Does the rVAE's latent angle turn with a fast-spinning tethered cell? (issue 13, item 4)

Issue 13 reported a real phase-contrast movie (300 frames of 64 x 64 px) of a
tethered cell turning about 18 deg per frame whose rVAE angle did not turn at
all. That movie is not in ../shared/data; this is its stand-in, drawn by
``tests/other_generator.py:tethered_cell`` (a generator that shares no code
with ``rotdyn.simulate``): a bright cell with a dark halo spinning about a
dark tether spot near one pole, past a still neighbour it almost touches once
a turn, seen through a PSF with noise and a drifting background.

The chain is ``benchmarks/rvae_real.py``'s: the frames normalised as ingest
does, classical detections of the bright bodies (so windows are centred on
the body, not the dark spot), tracks by trackpy, windows of the ``cells``
kind's size, the rVAE with the kind's settings (``min_steps`` included)
trained on all windows, every window encoded. Figures, for the spinning cell
in the frames where it is one object of a cell's size (not merged with the
neighbour):

* the median turn per frame of the latent axis, of the ellipse axis and of the truth (deg);
* the slope of the unwrapped latent axis against the unwrapped true axis along runs of >= 20
  such frames (total least squares, ``rotdyn.evaluate.follow.follow_slope``); the ellipse's too.

``--workflow`` runs the whole chain instead, as a user would: the movie as a
TIFF in ``resources/movies/``, the sample sheet giving it the ``cells`` kind,
``snakemake --cores 2`` with the shipped settings (the cells ensemble trained
on simulated cells of the sizes measured from the movie, segmentation,
locate, windows, rVAE); the same figures from ``latents.nc`` and
``particles.nc``.

    python benchmarks/rvae_tethered.py [--frames 300] [--set epochs=200 ...]
    python benchmarks/rvae_tethered.py --workflow [--keep DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import xarray as xr
import yaml
from scipy.spatial import cKDTree

from rotdyn.encode import encode_windows
from rotdyn.evaluate.follow import follow_slope, runs, wrap_axis
from rotdyn.fit_rvae import fit
from rotdyn.kinds import kind_settings
from rotdyn.preprocess import normalize
from rotdyn.settings import rvae_fit_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from other_generator import tethered_cell  # noqa: E402  (the independent generator)
from workflow_helpers import copy_workflow, load_benchmark  # noqa: E402


def as_movie(frames: np.ndarray) -> xr.Dataset:
    """The frames as ingest stores them: percentile-normalised, particles bright, on ``(frame, y, x)``."""
    return xr.Dataset({"frames": (("frame", "y", "x"), normalize(frames, "percentile"))},
                      coords={"frame": np.arange(len(frames))})


def spinning_rows(det: pd.DataFrame, truth: pd.DataFrame, max_distance: float = 4.0) -> pd.DataFrame:
    """The detections of the spinning cell (truth id 1) within ``max_distance`` px, with its true ``angle``."""
    spin = truth[truth["id"] == 1].set_index("frame")
    rows = []
    for frame, found in det.groupby("frame"):
        true = spin.loc[frame]
        d, i = cKDTree(found[["x", "y"]].to_numpy()).query([true["x"], true["y"]])
        if d <= max_distance:
            rows.append(found.iloc[[i]].assign(true_angle=true["angle"]))
    return pd.concat(rows) if rows else det.iloc[:0].assign(true_angle=np.nan)


def median_turn(rows: pd.DataFrame, column: str) -> float:
    """Median turn per frame (deg) of axis ``column`` over consecutive frames of ``rows``."""
    rows = rows.sort_values("frame")
    step = np.diff(rows["frame"].to_numpy()) == 1
    turn = wrap_axis(np.diff(rows[column].to_numpy(np.float64)))[step]
    return float(np.degrees(np.median(turn))) if len(turn) else float("nan")


def run(frames: int = 300, seed: int = 0, **fit_options) -> dict:
    """Simulate, detect, link, cut, train on all windows, encode, score the spinning cell."""
    rr = load_benchmark("rvae_real")
    movie_frames, truth = tethered_cell(frames=frames, seed=seed)
    movie = as_movie(movie_frames)
    kind = kind_settings(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), "cells")
    det = rr.tracks(rr.detect(movie["frames"].values))
    cut = rr.windows(movie, det, kind["patches"]["size"])
    settings = {**rvae_fit_settings(kind["rvae"], "frames"), **fit_options}
    start = time.perf_counter()
    model, history = fit(cut["patches"].values, device="cpu", threads=1, **settings)
    seconds = time.perf_counter() - start
    angle = pd.Series(encode_windows(model, cut["patches"].values)["angle"], index=cut["particle"].values)
    det = det.assign(latent=angle.reindex(det.index).to_numpy())
    spin = spinning_rows(det[np.isfinite(det["latent"])], truth)
    return _score(spin, {"frames": frames, "n_windows": int(cut.sizes["particle"]), "epochs": len(history),
                         "fit_s": seconds})


def _score(spin: pd.DataFrame, out: dict) -> dict:
    """The turn and slope figures of the spinning cell's rows (``latent``, ``orientation``, ``true_angle``)."""
    whole = spin[spin["whole"]]
    out.update(found=len(spin), whole=len(whole))
    for name in ("true_angle", "latent", "orientation"):
        out[f"turn_{name}"] = median_turn(whole, name)
    for name in ("latent", "orientation"):
        out[f"slope_{name}"] = follow_slope(runs(spin, "whole"), latent=name, reference="true_angle")
    return out


def run_workflow(work: Path, frames: int = 300, seed: int = 0) -> dict:
    """The whole chain with Snakemake on the tethered-cell movie (kind ``cells``), scored on its results."""
    movie_frames, truth = tethered_cell(frames=frames, seed=seed)
    workflow = copy_workflow(work)
    tifffile.imwrite(workflow / "resources" / "movies" / "tethered.tif", movie_frames)
    (workflow / "config" / "movies.tsv").write_text("movie\tparticles\ntethered\tcells\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=workflow,
                          capture_output=True, text=True)
    (workflow / "run.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"snakemake failed; see {workflow / 'run.log'}")
    results = workflow / "results" / "tethered"
    with xr.open_dataset(results / "latents.nc") as lat, xr.open_dataset(results / "particles.nc") as par:
        found = par[["frame", "x", "y", "orientation", "major_axis", "minor_axis"]].to_dataframe()
        angle = pd.Series(lat["angle"].values, index=lat["particle_index"].values)
    found = found.reset_index(drop=True).assign(latent=lambda d: angle.reindex(d.index).to_numpy())
    spin = spinning_rows(found[np.isfinite(found["latent"])], truth).assign(track=1)
    spin["whole"] = load_benchmark("rvae_real").typical(spin, ("major_axis", "minor_axis"))
    return _score(spin, {"frames": frames, "n_windows": len(angle), "wall_s": time.perf_counter() - start,
                         "workflow": str(workflow)})


def report(r: dict) -> None:
    how = (f"whole chain, {r['wall_s']:.0f} s ({r['workflow']})" if "workflow" in r
           else f"rVAE alone: {r['epochs']} epochs, {r['fit_s']:.0f} s")
    print(f"tethered cell ({r['frames']} frames, tests/other_generator.py): found in {r['found']} frames, "
          f"one whole cell in {r['whole']}; {r['n_windows']} windows; {how}")
    print(f"median turn per frame: truth {r['turn_true_angle']:.1f} deg, latent axis {r['turn_latent']:.1f} deg, "
          f"ellipse axis {r['turn_orientation']:.1f} deg")
    for name in ("latent", "orientation"):
        s = r[f"slope_{name}"]
        print(f"{name} axis against the true axis along runs of >= 20 whole frames: slope {s['slope']:.3f} over "
              f"{s['segments']} runs, {s['frames']} frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="fit options over the config's (YAML values), e.g. epochs=200 min_steps=0")
    parser.add_argument("--workflow", action="store_true", help="the whole chain with Snakemake")
    parser.add_argument("--keep", type=Path, help="--workflow: run in this folder and keep it")
    args = parser.parse_args()
    if args.workflow:
        report(run_workflow(args.keep or Path(tempfile.mkdtemp(prefix="rotdyn-tethered-")), args.frames, args.seed))
        return
    extra = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    report(run(args.frames, args.seed, **extra))


if __name__ == "__main__":
    main()
