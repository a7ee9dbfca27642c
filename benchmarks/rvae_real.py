"""Does the rVAE's latent angle follow real cells? Acceptance on the real bacteria movie (issue 13, item 4).

Uses ../shared/data/bacteria/bacteria.mp4 (rod-shaped bacteria in phase
contrast, MikeSmithLabTeam/particletracker test data, MIT) when present.

* Detections independent of the segmentation ensemble: each frame as ingest
  stores it (percentile-normalised, cells bright), its smooth background
  removed (:func:`rotdyn.survey.flatten_background`), pixels above
  ``threshold`` opened and labelled; per object the intensity-weighted
  centroid and the ellipse (regionprops) axis.
* A cell is *whole* when its object does not touch the frame border and its
  ellipse length and width are each within 0.6-1.4 times the median (two
  touching cells make one longer object end to end, a wider one side by side
  or in a V, whose ellipse axis is no cell's axis), and *isolated* when no
  pixel of another object lies within one cell length (its own ellipse
  length) of its centre.
* Tracks: :func:`rotdyn.link.link` (trackpy), search range 10 px.
* Windows: :func:`rotdyn.patches.extract_patches` from the frames, of the
  ``cells`` kind's size, centred as the workflow centres them; the rVAE is
  trained with the ``cells`` kind's settings of config/config.yaml (plus the
  fit's own defaults for keys the config leaves out) on the windows of every
  ``--every``-th frame, and all windows are encoded.

Figures (acceptance: the first <= 10 deg, the slope within 10 % of 1):

* median |latent axis - ellipse axis| (mod 180 deg, after the one global
  offset, sign +1: both counter-clockwise as displayed) over the isolated
  whole cells;
* the slope of the unwrapped latent axis against the unwrapped ellipse axis
  along tracks: every run of >= 20 consecutive frames in which a track is
  whole (and, for the second figure, isolated), both axes unwrapped and
  centred on the run's mean, pooled over runs, fitted by total least squares
  (the major axis of their joint covariance: both carry noise).

    python benchmarks/rvae_real.py            # train on every 4th frame (about 700 windows)
    python benchmarks/rvae_real.py --every 1  # all 214 frames
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from scipy import ndimage
from skimage.measure import regionprops_table

from rotdyn.encode import encode_windows
from rotdyn.evaluate.follow import axis_error, follow_slope, runs
from rotdyn.fit_rvae import fit
from rotdyn.ingest import load_movie
from rotdyn.kinds import kind_settings
from rotdyn.link import link
from rotdyn.locate import axis_angle_from_skimage
from rotdyn.movies import movie_settings
from rotdyn.patches import extract_patches, from_frames
from rotdyn.settings import rvae_fit_settings
from rotdyn.survey import flatten_background

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), None)
MOVIE = None if DATA is None else DATA / "bacteria" / "bacteria.mp4"


def config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def load(path=MOVIE, first: int = 0, last: int = -1) -> xr.Dataset:
    """The movie as ingest stores it (the config's preprocessing, cells bright)."""
    settings = movie_settings(config()["preprocess"], {"first_frame": first, "last_frame": last})
    return load_movie(path, {**settings, "contrast": "bright"})


def _reach(labels: np.ndarray, label: int, row: float, col: float, radius: float) -> float:
    """Distance from (row, col) to the nearest pixel of an object other than ``label`` (inf: none within reach)."""
    r0, c0 = max(int(row - radius), 0), max(int(col - radius), 0)
    crop = labels[r0:int(row + radius) + 2, c0:int(col + radius) + 2]
    rr, cc = np.nonzero((crop > 0) & (crop != label))
    return float(np.hypot(rr + r0 - row, cc + c0 - col).min()) if len(rr) else math.inf


def typical(table: pd.DataFrame, sizes) -> pd.Series:
    """Rows whose every size column is within 0.6-1.4 times its median: one cell, not two touching."""
    ok = pd.Series(True, index=table.index)
    for size in sizes:
        ok &= table[size].between(0.6 * table[size].median(), 1.4 * table[size].median())
    return ok


def detect(frames: np.ndarray, threshold: float = 0.25, min_area: int = 30) -> pd.DataFrame:
    """Classical detection of bright cells: one row per object and frame (see the module docstring)."""
    rows = []
    H, W = frames.shape[1:]
    for f, frame in enumerate(frames):
        flat = flatten_background(frame)
        labels, _ = ndimage.label(ndimage.binary_opening(flat > threshold))
        props = pd.DataFrame(regionprops_table(
            labels, intensity_image=np.clip(flat, 0, None),
            properties=("label", "area", "centroid_weighted", "axis_major_length", "axis_minor_length",
                        "orientation", "bbox")))
        props = props[props["area"] >= min_area]
        props["clear"] = [_reach(labels, lab, r, c, L + 1) for lab, r, c, L in zip(
            props["label"], props["centroid_weighted-0"], props["centroid_weighted-1"], props["axis_major_length"])]
        props["frame"] = f
        rows.append(props)
    det = pd.concat(rows, ignore_index=True).rename(columns={
        "centroid_weighted-0": "y", "centroid_weighted-1": "x", "axis_major_length": "length",
        "axis_minor_length": "width"})
    det["orientation"] = axis_angle_from_skimage(det["orientation"])
    det["inside"] = (det["bbox-0"] > 0) & (det["bbox-1"] > 0) & (det["bbox-2"] < H) & (det["bbox-3"] < W)
    det["whole"] = det["inside"] & typical(det, ("length", "width"))
    det["isolated"] = det["whole"] & (det["clear"] > det["length"])
    return det.drop(columns=[c for c in det.columns if c.startswith("bbox")])


def tracks(det: pd.DataFrame, search_range: float = 10.0) -> pd.DataFrame:
    return link(det, search_range=search_range, memory=2)


def windows(movie: xr.Dataset, det: pd.DataFrame, size: int, **options) -> xr.Dataset:
    """Windows cut as the workflow's patches stage cuts them (from the frames), indexed by ``det``'s rows."""
    particles = xr.Dataset({name: ("particle", det[name].to_numpy()) for name in ("x", "y")},
                           coords={"particle": det.index.to_numpy()})
    particles["frame"] = ("particle", movie["frame"].values[det["frame"].to_numpy()])
    particles["class"] = ("particle", np.ones(len(det), np.int64))
    return extract_patches(from_frames(movie), particles, size=size, source="frames", **options)


def score(df: pd.DataFrame, angle) -> dict:
    """The acceptance figures of latent ``angle`` (one per row of ``df``, NaN where no window)."""
    df = df.assign(latent=angle)
    df = df[np.isfinite(df["latent"])]
    iso = df[df["isolated"]]
    return {"n_isolated": len(iso), "cells_isolated": int(iso["track"].nunique()),
            "axis_error_isolated_deg": axis_error(iso["latent"], iso["orientation"]),
            "axis_error_whole_deg": axis_error(df.loc[df["whole"], "latent"], df.loc[df["whole"], "orientation"]),
            "whole": follow_slope(runs(df, "whole")), "isolated": follow_slope(runs(df, "isolated"))}


def run(movie: xr.Dataset, every: int = 4, **fit_options) -> dict:
    """Detect, link, cut, train on every ``every``-th frame, encode all windows, score."""
    cfg = config()
    kind = kind_settings(cfg, "cells")
    det = tracks(detect(movie["frames"].values))
    cut = windows(movie, det, kind["patches"]["size"], edge=kind["patches"]["edge"])
    frame_of = det.loc[cut["particle"].values, "frame"].to_numpy()
    train = cut["patches"].values[frame_of % every == 0]
    settings = {**rvae_fit_settings(kind["rvae"], "frames"), **fit_options}
    start = time.perf_counter()
    model, history = fit(train, device="cpu", threads=1, **settings)
    seconds = time.perf_counter() - start
    angle = pd.Series(encode_windows(model, cut["patches"].values)["angle"], index=cut["particle"].values)
    result = score(det, angle.reindex(det.index).to_numpy())
    return dict(result, n_windows=int(cut.sizes["particle"]), n_train=len(train), fit_s=seconds,
                steps=len(history) * math.ceil(model.training_info["n_train"] / settings["batch_size"]),
                epochs=len(history), settings=settings)


def report(r: dict) -> None:
    print(f"trained on {r['n_train']} of {r['n_windows']} windows: {r['epochs']} epochs, {r['steps']} steps, "
          f"{r['fit_s']:.0f} s")
    print(f"isolated whole cells ({r['n_isolated']} windows of {r['cells_isolated']} cells): latent axis vs "
          f"ellipse axis median {r['axis_error_isolated_deg']:.1f} deg (acceptance <= 10); all whole cells "
          f"{r['axis_error_whole_deg']:.1f} deg")
    for name in ("isolated", "whole"):
        s = r[name]
        print(f"along tracks, runs of >= 20 frames {name}: slope {s['slope']:.3f} (acceptance 0.9-1.1) over "
              f"{s['segments']} runs, {s['frames']} frames, ellipse axis sd {s['spread_deg']:.1f} deg within runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movie", type=Path, default=MOVIE)
    parser.add_argument("--every", type=int, default=4, help="train on every n-th frame's windows")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="fit options over the config's (YAML values), e.g. epochs=200 lr=0.0005")
    args = parser.parse_args()
    if args.movie is None or not Path(args.movie).exists():
        raise SystemExit("the real bacteria movie is needed: ../shared/data/bacteria/bacteria.mp4")
    extra = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    movie = load(args.movie)
    report(run(movie, every=args.every, **extra))


if __name__ == "__main__":
    main()
