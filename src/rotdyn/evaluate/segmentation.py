"""Accuracy of the whole segmentation chain on a simulated movie with ground truth.

Runs what the workflow runs (ingest-style preprocessing, a simulated training
set with another seed, the baseline and its fine-tuned members, ensemble
segmentation, particle finding) and scores the particles against the truth.
Use it to check settings on particles like yours before trusting a real movie;
the acceptance benchmark and test call it too.
"""
from __future__ import annotations

import time
from pathlib import Path

import xarray as xr

from ..locate import detection_scores, locate
from ..ingest import load_movie
from ..networks import save_model
from ..segment import segment_movie
from ..simulate import simulate, to_dataset
from ..store import write_netcdf
from ..train import fit_baseline, fit_member
from ..training_set import from_simulation

MOVIE_SETTINGS = {"flatten": "auto", "normalize": "percentile", "drift_correction": False,
                  "drift_reference": "previous", "first_frame": 0, "last_frame": -1}


def train_ensemble(data: xr.Dataset, folder: Path, *, members: int, member_epochs: int,
                   threads: int | None = None, **train) -> tuple[list[Path], float]:
    """Baseline plus ``members`` fine-tuned members on ``data``; returns (paths, seconds)."""
    images, masks = data["images"].values, data["masks"].values
    names = data.attrs["class_names"].split(",")
    common = {key: train[key] for key in ("batch_size", "lr") if key in train}
    start = time.perf_counter()
    model, _ = fit_baseline(images, masks, n_classes=len(names), class_names=names, threads=threads, **train)
    save_model(model, folder / "baseline.pt")
    paths = []
    for member in range(members):
        model, _ = fit_member(folder / "baseline.pt", images, masks, epochs=member_epochs, seed=member,
                              augment_params=train.get("augment_params"), threads=threads, **common)
        paths.append(folder / f"member_{member}.pt")
        save_model(model, paths[-1])
    return paths, time.perf_counter() - start


def evaluate_segmentation(kind: str, folder, *, movie: dict, training: dict, train: dict,
                          locate_params: dict, members: int = 3, member_epochs: int = 4,
                          threads: int | None = None, max_distance: float = 3.0, border: float = 3.0) -> dict:
    """Simulate, train, segment, locate and score; returns the scores and timings.

    Parameters
    ----------
    kind : "rods" or "atoms".
    folder : where the intermediate files go.
    movie : simulation parameters of the test movie (its ``seed`` must differ from the training one).
    training : :func:`rotdyn.training_set.from_simulation` parameters (frames, size, seed, ...).
    train : :func:`rotdyn.train.fit_baseline` parameters (arch, width, max_epochs, ...).
    locate_params : :func:`rotdyn.locate.locate` parameters.
    border : detections and truth whose centre is closer than this (px) to the
        frame border are left out of the scores: the simulator's truth lists
        only particles whose labels lie wholly inside, while the image shows
        the cut ones too.

    Returns
    -------
    dict of :func:`rotdyn.locate.detection_scores` plus ``train_seconds`` and ``segment_seconds``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if movie.get("seed", 0) == training.get("seed", 0):
        raise ValueError("the test movie and the training set need different seeds")
    sim = simulate(kind, **movie)
    write_netcdf(to_dataset(sim, pixel_size_nm=1.0, frame_interval_s=1.0), folder / "raw.nc")
    write_netcdf(load_movie(folder / "raw.nc", MOVIE_SETTINGS), folder / "movie.nc")

    data = from_simulation(kind, **training)
    paths, train_seconds = train_ensemble(data, folder, members=members, member_epochs=member_epochs,
                                          threads=threads, **train)
    start = time.perf_counter()
    segment_movie(folder / "movie.nc", paths, folder / "probability.nc", threads=threads, device="cpu")
    segment_seconds = time.perf_counter() - start
    with xr.open_dataset(folder / "probability.nc") as prob:
        particles = locate(prob, **locate_params).to_dataframe()
    size = sim.frames.shape[1:]
    particles, truth = _inside(particles, size, border), _inside(sim.truth, size, border)
    length = movie.get("length")
    scores = detection_scores(particles, truth, max_distance=max_distance,
                              neighbour_distance=1.2 * length if length else None)
    return {**scores, "train_seconds": train_seconds, "segment_seconds": segment_seconds,
            "frames": len(sim.frames)}


def _inside(table, shape, border: float):
    """Rows whose (x, y) lies at least ``border`` px inside a frame of ``shape``."""
    ny, nx = shape
    keep = table.x.between(border, nx - 1 - border) & table.y.between(border, ny - 1 - border)
    return table[keep]
