"""Accuracy and speed of the segmentation chain, against simulated ground truth.

Scoring (:func:`match`, :func:`close_neighbours`, :func:`detection_scores`)
and timing (:func:`time_train_step`, :func:`time_inference`) of the
segmentation ensemble and the particle finding, and :func:`evaluate_segmentation`,
which runs what the workflow runs (ingest-style preprocessing, a simulated
training set with another seed, the baseline and its fine-tuned members,
ensemble segmentation, particle finding) and scores the particles against the
truth. Use it to check settings on particles like yours before trusting a
real movie; the acceptance benchmark and test call it too. Never run by the
workflow.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from torch import nn

from ..ingest import load_movie
from ..locate import locate
from ..networks import autocast, autocast_dtype, build_network, model_device, num_threads, pick_device, save_model
from ..segment import ensemble_proba, segment_movie
from ..simulate import MODALITY, simulate
from ..store import write_netcdf
from ..train import fit_baseline, fit_member, segmentation_loss
from ..training_set import from_simulation, training_arrays

NN_BINS = (0.0, 11.0, 20.0, 30.0, np.inf)  # px: crossing, touching, near, alone (22 px rods)
MOVIE_SETTINGS = {"flatten": "auto", "normalize": "percentile", "drift_correction": False,
                  "drift_reference": "previous", "first_frame": 0, "last_frame": -1}


def train_ensemble(data: xr.Dataset, folder: Path, *, members: int, member_epochs: int,
                   threads: int | None = None, **train) -> tuple[list[Path], float]:
    """Baseline plus ``members`` fine-tuned members on ``data``, as the workflow trains them.

    Parameters
    ----------
    data : Dataset
        A training set (:mod:`rotdyn.training_set`): ``images``, ``masks``, attr ``class_names``.
    folder : path
        Where ``baseline.pt`` and ``member_<i>.pt`` go.
    members, member_epochs : int
        Ensemble size; fine-tuning epochs of each member (seed ``i`` for member ``i``).
    threads : int or None
        CPU threads.
    **train
        :func:`rotdyn.train.fit_baseline` parameters; ``batch_size``, ``lr``
        and ``augment_params`` also go to the members.

    Returns
    -------
    paths : list of Path
        The members' checkpoints.
    seconds : float
        Training time of the baseline and all members.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from rotdyn.training_set import from_simulation
    >>> data = from_simulation("rods", frames=4, size=32, count=1, tile=32, seed=1)
    >>> paths, seconds = train_ensemble(data, Path(tempfile.mkdtemp()), members=2, member_epochs=1,
    ...                                 threads=1, width=4, max_epochs=2, batch_size=2, device="cpu")
    >>> [p.name for p in paths], seconds > 0
    (['member_0.pt', 'member_1.pt'], True)
    """
    arrays = training_arrays(data)
    images, masks, names = arrays["images"], arrays["masks"], arrays["class_names"]
    common = {key: train[key] for key in ("batch_size", "lr", "device") if key in train}
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
    kind : {"rods", "atoms"}
        What to simulate.
    folder : path
        Where the intermediate files go.
    movie : dict
        Simulation parameters of the test movie (its ``seed`` must differ from the training one).
    training : dict
        :func:`rotdyn.training_set.from_simulation` parameters (frames, size, seed, ...).
    train : dict
        :func:`rotdyn.train.fit_baseline` parameters (arch, width, max_epochs, ...).
    locate_params : dict
        :func:`rotdyn.locate.locate` parameters.
    members, member_epochs, threads
        See :func:`train_ensemble`.
    max_distance : float
        Matching radius, px (:func:`match`).
    border : float
        Detections and truth whose centre is closer than this (px) to the
        frame border are left out of the scores: the simulator's truth lists
        only particles whose labels lie wholly inside, while the image shows
        the cut ones too.

    Returns
    -------
    dict
        :func:`detection_scores` plus ``train_seconds``, ``segment_seconds`` and ``frames``.

    Examples
    --------
    A run far too small to find anything well, but every stage runs:

    >>> import tempfile
    >>> s = evaluate_segmentation(
    ...     "rods", tempfile.mkdtemp(), movie={"size": 48, "count": 2, "frames": 2, "transition_frame": 1, "seed": 0},
    ...     training={"size": 32, "count": 1, "frames": 4, "tile": 32, "seed": 1},
    ...     train={"width": 4, "max_epochs": 2, "batch_size": 2}, locate_params={}, members=1, member_epochs=1,
    ...     threads=1)
    >>> s["frames"], s["n_truth"], 0 <= s["recall"] <= 1
    (2, 4, True)
    """
    if movie.get("seed", 0) == training.get("seed", 0):
        raise ValueError("the test movie and the training set need different seeds")
    sim = simulate(kind, **movie)
    length = movie.get("length")
    return evaluate_movie(sim.frames, sim.truth, folder, kind=kind, training=training, train=train,
                          locate_params=locate_params, members=members, member_epochs=member_epochs,
                          threads=threads, max_distance=max_distance, border=border,
                          modality=MODALITY.get(kind, "simulated"),
                          neighbour_distance=1.2 * length if length else None)


def evaluate_movie(frames, truth: pd.DataFrame, folder, *, kind: str, training: dict, train: dict,
                   locate_params: dict, members: int = 3, member_epochs: int = 4, threads: int | None = None,
                   max_distance: float = 3.0, border: float = 3.0, modality: str = "AFM (simulated)",
                   neighbour_distance=None, bins=NN_BINS) -> dict:
    """Train on simulated ``kind`` frames, then segment, locate and score a movie given with its truth.

    The movie may come from any generator (e.g. one that shares no code with
    :mod:`rotdyn.simulate`, so the score is accuracy off the training
    generator). It is ingested as a file of that ``modality`` would be (AFM
    movies are flattened), the ensemble trains on
    :func:`rotdyn.training_set.from_simulation` frames, and the particles are
    scored by :func:`detection_scores` and :func:`recall_by_neighbour`.

    Parameters
    ----------
    frames : ndarray, (T, H, W)
        The raw movie, particles bright.
    truth : DataFrame
        ``frame, x, y`` per true particle (and what :func:`detection_scores` reads).
    folder : path
        Where the intermediate files go.
    kind : str
        The simulator of the training frames.
    training, train, locate_params, members, member_epochs, threads, max_distance, border
        As for :func:`evaluate_segmentation`.
    modality : str
        The movie's modality attribute (``"AFM ..."`` is flattened at ingest).
    neighbour_distance : float or None
        See :func:`detection_scores`.
    bins : sequence of float
        Edges of the nearest-neighbour distance bins, px (:func:`recall_by_neighbour`).

    Returns
    -------
    dict
        :func:`detection_scores` plus ``recall_by_neighbour`` (its table),
        ``train_seconds``, ``segment_seconds`` and ``frames``.

    Examples
    --------
    >>> import tempfile
    >>> from rotdyn.simulate import simulate
    >>> sim = simulate("rods", size=48, count=2, frames=2, transition_frame=1, seed=0)
    >>> s = evaluate_movie(sim.frames, sim.truth, tempfile.mkdtemp(), kind="rods",
    ...                    training={"size": 32, "count": 1, "frames": 4, "tile": 32, "seed": 1},
    ...                    train={"width": 4, "max_epochs": 2, "batch_size": 2}, locate_params={},
    ...                    members=1, member_epochs=1, threads=1)
    >>> s["n_truth"], int(s["recall_by_neighbour"]["n"].sum())
    (4, 4)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, np.float32)
    raw = xr.Dataset({"frames": (("frame", "y", "x"), frames)},
                     attrs={"modality": modality, "pixel_size_nm": 1.0, "frame_interval_s": 1.0})
    write_netcdf(raw, folder / "raw.nc")
    write_netcdf(load_movie(folder / "raw.nc", MOVIE_SETTINGS), folder / "movie.nc")

    data = from_simulation(kind, **training)
    paths, train_seconds = train_ensemble(data, folder, members=members, member_epochs=member_epochs,
                                          threads=threads, **train)
    start = time.perf_counter()
    segment_movie(folder / "movie.nc", paths, folder / "probability.nc", threads=threads, device="cpu")
    segment_seconds = time.perf_counter() - start
    with xr.open_dataset(folder / "probability.nc") as prob:
        particles = locate(prob, **locate_params).to_dataframe()
    size = frames.shape[1:]
    particles, truth = _inside(particles, size, border), _inside(truth, size, border)
    scores = detection_scores(particles, truth, max_distance=max_distance, neighbour_distance=neighbour_distance)
    scores["recall_by_neighbour"] = recall_by_neighbour(particles, truth, bins, max_distance)
    return {**scores, "train_seconds": train_seconds, "segment_seconds": segment_seconds,
            "frames": len(frames)}


def _inside(table, shape, border: float):
    """Rows whose (x, y) lies at least ``border`` px inside a frame of ``shape``."""
    ny, nx = shape
    keep = table.x.between(border, nx - 1 - border) & table.y.between(border, ny - 1 - border)
    return table[keep]


# ------------------------------------------------------------------ scoring
def match(detected: pd.DataFrame, truth: pd.DataFrame, max_distance: float = 3.0) -> pd.DataFrame:
    """Optimal one-to-one matching of detections to truth, frame by frame.

    Pairs are chosen to minimise the summed centre distance
    (``linear_sum_assignment``); pairs farther apart than ``max_distance`` px
    stay unmatched.

    Parameters
    ----------
    detected, truth : DataFrame
        Columns ``frame, x, y`` (px).
    max_distance : float
        Largest centre distance of a pair, px.

    Returns
    -------
    DataFrame
        Columns ``frame, detected, truth, distance``: one row per matched pair,
        per unmatched detection (``truth = -1``) and per unmatched truth row
        (``detected = -1``); ``detected`` and ``truth`` are index labels of the
        inputs; ``distance`` is NaN when unmatched.

    Examples
    --------
    >>> import pandas as pd
    >>> truth = pd.DataFrame({"frame": [0, 0], "x": [0.0, 10.0], "y": [0.0, 0.0]})
    >>> detected = pd.DataFrame({"frame": [0, 0], "x": [9.0, 30.0], "y": [0.0, 0.0]}, index=[5, 6])
    >>> match(detected, truth).values.tolist()
    [[0.0, 5.0, 1.0, 1.0], [0.0, 6.0, -1.0, nan], [0.0, -1.0, 0.0, nan]]
    """
    rows = []
    for frame in np.union1d(detected["frame"].unique(), truth["frame"].unique()):
        d = detected[detected["frame"] == frame]
        t = truth[truth["frame"] == frame]
        dist = np.hypot(d["x"].to_numpy()[:, None] - t["x"].to_numpy()[None],
                        d["y"].to_numpy()[:, None] - t["y"].to_numpy()[None])
        # Costs beyond max_distance are capped so they never pull a valid pair apart.
        r, c = linear_sum_assignment(np.minimum(dist, 2 * max_distance + 1))
        ok = dist[r, c] <= max_distance
        r, c = r[ok], c[ok]
        rows.append(pd.DataFrame({"frame": frame, "detected": d.index[r], "truth": t.index[c],
                                  "distance": dist[r, c]}))
        lone_d = np.setdiff1d(np.arange(len(d)), r)
        lone_t = np.setdiff1d(np.arange(len(t)), c)
        rows.append(pd.DataFrame({"frame": frame, "detected": d.index[lone_d], "truth": -1,
                                  "distance": np.nan}))
        rows.append(pd.DataFrame({"frame": frame, "detected": -1, "truth": t.index[lone_t],
                                  "distance": np.nan}))
    columns = {"frame": np.int64, "detected": np.int64, "truth": np.int64, "distance": np.float64}
    rows = [r for r in rows if len(r)]
    if not rows:
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in columns.items()})
    return pd.concat(rows, ignore_index=True).astype(columns)


def nearest_distance(truth: pd.DataFrame) -> np.ndarray:
    """Distance from each truth row's centre to the nearest other centre of its frame, px (inf when alone).

    Parameters
    ----------
    truth : DataFrame
        Columns ``frame, x, y``.

    Returns
    -------
    ndarray of float
        One per row.

    Examples
    --------
    >>> import pandas as pd
    >>> truth = pd.DataFrame({"frame": [0, 0, 0, 1], "x": [0.0, 5.0, 30.0, 0.0], "y": 0.0})
    >>> nearest_distance(truth).tolist()
    [5.0, 5.0, 25.0, inf]
    """
    xy = truth[["x", "y"]].to_numpy(float)
    nearest = np.full(len(truth), np.inf)
    for rows in truth.groupby("frame").indices.values():  # positions of each frame's rows
        if len(rows) > 1:
            nearest[rows] = cKDTree(xy[rows]).query(xy[rows], k=2)[0][:, 1]
    return nearest


def close_neighbours(truth: pd.DataFrame, neighbour_distance=None) -> np.ndarray:
    """Boolean per truth row: another true particle of its frame lies closer than ``neighbour_distance``.

    Parameters
    ----------
    truth : DataFrame
        Columns ``frame, x, y`` and, for ``neighbour_distance=None``, ``length``.
    neighbour_distance : float or None
        px; ``None``: 1.2 times the row's ``length`` (particles near enough to touch).

    Returns
    -------
    ndarray of bool
        One per row of ``truth``.

    Examples
    --------
    >>> import pandas as pd
    >>> truth = pd.DataFrame({"frame": [0, 0, 0, 1], "x": [0.0, 5.0, 30.0, 0.0], "y": 0.0, "length": 8.0})
    >>> close_neighbours(truth).tolist(), close_neighbours(truth, 4).tolist()
    ([True, True, False, False], [False, False, False, False])
    """
    if neighbour_distance is None:
        if "length" not in truth:
            raise ValueError("truth has no 'length' column: give neighbour_distance")
        limit = 1.2 * truth["length"].to_numpy(float)
    else:
        limit = np.full(len(truth), float(neighbour_distance))
    return nearest_distance(truth) < limit


def recall_by_neighbour(detected: pd.DataFrame, truth: pd.DataFrame, bins=NN_BINS,
                        max_distance: float = 3.0) -> pd.DataFrame:
    """Recall of the true particles binned by the distance to their nearest neighbour.

    Parameters
    ----------
    detected, truth : DataFrame
        Columns ``frame, x, y``; the truth's ``nn_distance`` (px) is used
        when present, else computed from the centres (:func:`nearest_distance`).
    bins : sequence of float
        Bin edges, px; a particle falls in ``[lo, hi)``.
    max_distance : float
        Matching radius, px (:func:`match`).

    Returns
    -------
    DataFrame
        One row per bin: ``low, high, n`` (true particles) and ``recall`` (NaN for an empty bin).

    Examples
    --------
    Two crossing rods 4 px apart, one found, and a lone rod, found:

    >>> import pandas as pd
    >>> truth = pd.DataFrame({"frame": 0, "x": [10.0, 14.0, 60.0], "y": 10.0})
    >>> detected = pd.DataFrame({"frame": 0, "x": [10.5, 60.0], "y": 10.0})
    >>> recall_by_neighbour(detected, truth, bins=(0, 11, 30, float("inf"))).values.tolist()
    [[0.0, 11.0, 2.0, 0.5], [11.0, 30.0, 0.0, nan], [30.0, inf, 1.0, 1.0]]
    """
    detected, truth = detected.reset_index(drop=True), truth.reset_index(drop=True)
    nearest = truth["nn_distance"].to_numpy(float) if "nn_distance" in truth else nearest_distance(truth)
    pairs = match(detected, truth, max_distance)
    found = np.zeros(len(truth), bool)
    found[pairs.loc[(pairs["detected"] >= 0) & (pairs["truth"] >= 0), "truth"].to_numpy()] = True
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        inside = (nearest >= lo) & (nearest < hi)
        rows.append((float(lo), float(hi), int(inside.sum()), _ratio(found[inside].sum(), inside.sum())))
    return pd.DataFrame(rows, columns=["low", "high", "n", "recall"])


def _axis_error_deg(a, b):
    """Smallest angle between two axes (angles modulo pi), degrees."""
    diff = np.mod(np.asarray(a) - np.asarray(b) + np.pi / 2, np.pi) - np.pi / 2
    return np.degrees(np.abs(diff))


def _ratio(n, d):
    """``n / d`` as a float, NaN when ``d`` is 0 (a score of nothing is undefined, not 0)."""
    return float(n / d) if d else float("nan")


def detection_scores(detected: pd.DataFrame, truth: pd.DataFrame, max_distance: float = 3.0,
                     neighbour_distance=None) -> dict:
    """Precision, recall and accuracy of detections against the truth.

    Parameters
    ----------
    detected, truth : DataFrame
        Columns ``frame, x, y``; optionally ``orientation`` (detected axis
        angle), ``angle`` or ``orientation`` (truth; a direction angle is
        reduced to its axis modulo pi), ``class`` (both), ``touching`` and
        ``length`` (truth).
    max_distance : float
        Matching radius, px (see :func:`match`).
    neighbour_distance : float or None
        A truth row is a close neighbour when another true centre of its frame
        is nearer than this; None: 1.2 x its ``length`` (if there is one).

    Returns
    -------
    dict
        ``n_detected, n_truth, n_matched, precision, recall, rmse`` (px, over
        matched pairs), ``orientation_error_deg`` (median, modulo 180 deg),
        ``close_recall, n_close``, ``touching_recall`` (when truth has
        ``touching``) and ``precision_class_<c>, recall_class_<c>`` per class
        (when both have ``class``; a match counts only with the right class).
        Undefined values are NaN.

    Examples
    --------
    Two of three true rods found, one 1 px off and turned by 2 deg (a
    direction of 180 deg is the same axis as 0), plus one false detection:

    >>> import numpy as np, pandas as pd
    >>> truth = pd.DataFrame({"frame": 0, "x": [10.0, 30.0, 50.0], "y": 10.0, "angle": [0.0, np.pi, 1.0]})
    >>> detected = pd.DataFrame({"frame": 0, "x": [10.0, 31.0, 80.0], "y": 10.0,
    ...                          "orientation": [0.0, np.radians(2), 0.0]})
    >>> s = detection_scores(detected, truth)
    >>> s["precision"], s["recall"], round(s["rmse"], 3), round(s["orientation_error_deg"], 3)
    (0.666..., 0.666..., 0.707, 1.0)
    """
    detected = detected.reset_index(drop=True)
    truth = truth.reset_index(drop=True)
    pairs = match(detected, truth, max_distance)
    pairs = pairs[(pairs["detected"] >= 0) & (pairs["truth"] >= 0)]
    di, ti = pairs["detected"].to_numpy(), pairs["truth"].to_numpy()
    found = np.zeros(len(truth), bool)
    found[ti] = True
    scores = {"n_detected": len(detected), "n_truth": len(truth), "n_matched": len(pairs),
              "precision": _ratio(len(pairs), len(detected)), "recall": _ratio(len(pairs), len(truth)),
              "rmse": float(np.sqrt(np.mean(pairs["distance"] ** 2))) if len(pairs) else float("nan")}
    truth_axis = truth["orientation"] if "orientation" in truth else truth.get("angle")
    if "orientation" in detected and truth_axis is not None and len(pairs):
        err = _axis_error_deg(detected["orientation"].to_numpy()[di], truth_axis.to_numpy()[ti])
        scores["orientation_error_deg"] = float(np.median(err))
    else:
        scores["orientation_error_deg"] = float("nan")
    if neighbour_distance is not None or "length" in truth:
        close = close_neighbours(truth, neighbour_distance)
        scores["n_close"] = int(close.sum())
        scores["close_recall"] = _ratio(found[close].sum(), close.sum())
    if "touching" in truth:
        touching = truth["touching"].to_numpy(bool)
        scores["touching_recall"] = _ratio(found[touching].sum(), touching.sum())
    if "class" in detected and "class" in truth:
        dc, tc = detected["class"].to_numpy(), truth["class"].to_numpy()
        right = dc[di] == tc[ti]
        for c in np.union1d(dc, tc):
            hits = (right & (tc[ti] == c)).sum()
            scores[f"precision_class_{int(c)}"] = _ratio(hits, (dc == c).sum())
            scores[f"recall_class_{int(c)}"] = _ratio(hits, (tc == c).sum())
    return scores


# ------------------------------------------------------------------ timing
def time_train_step(arch: str = "dilnet", width: int = 16, shape=(128, 128), batch_size: int = 8,
                    n_steps: int = 5, device: str = "auto", bf16: bool | str = False,
                    threads: int | None = None) -> float:
    """Median seconds of one training step (forward, backward, Adam) on random data.

    Parameters
    ----------
    arch, width : str, int
        The network (:func:`rotdyn.networks.build_network`, two classes).
    shape : (int, int)
        Image size, px.
    batch_size, n_steps : int
        Images per step; steps timed, after two untimed warm-up steps.
    device, bf16, threads
        See :func:`rotdyn.networks.pick_device`, :func:`rotdyn.networks.autocast_dtype`; CPU threads.

    Returns
    -------
    float
        Seconds.

    Examples
    --------
    >>> 0 < time_train_step(width=4, shape=(16, 16), batch_size=2, n_steps=1, device="cpu", threads=1) < 1
    True
    """
    device = pick_device(device)
    amp_dtype = autocast_dtype(device, bf16)
    with num_threads(threads):
        model = build_network(arch, 2, width).to(device).train()
        optimizer = torch.optim.Adam(model.parameters())
        x = torch.randn(batch_size, 1, *shape, device=device).contiguous(memory_format=torch.channels_last)
        y = (torch.rand(batch_size, *shape, device=device) > 0.5).long()
        times = []
        for _ in range(n_steps + 2):
            start = time.perf_counter()
            optimizer.zero_grad()
            with autocast(device, amp_dtype):
                logits = model(x)
            segmentation_loss(logits, y, 2).backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def time_inference(models: list[nn.Module], shape=(512, 512), n_frames: int = 16, batch_size: int = 4,
                   bf16: bool | str = "auto", threads: int | None = None) -> float:
    """Frames per second of :func:`rotdyn.segment.ensemble_proba` on random frames, after one warm-up batch.

    Parameters
    ----------
    models : list of Module
        The ensemble, on one device.
    shape : (int, int)
        Frame size, px.
    n_frames, batch_size : int
        Frames timed (rounded down to whole batches, at least one); frames per forward pass.
    bf16 : bool or "auto"
        See :func:`rotdyn.networks.autocast_dtype`.
    threads : int or None
        CPU threads (None: as set).

    Returns
    -------
    float
        Frames per second, including the copy of the results back to the CPU.

    Examples
    --------
    >>> from rotdyn.networks import build_network
    >>> models = [build_network("dilnet", 2, width=4) for _ in range(2)]
    >>> time_inference(models, shape=(16, 16), n_frames=2, batch_size=2, bf16=False, threads=1) > 0
    True
    """
    device = model_device(models[0])
    amp_dtype = autocast_dtype(device, bf16)
    x = torch.randn(batch_size, 1, *shape)
    n_batches = max(1, n_frames // batch_size)
    with num_threads(threads):
        ensemble_proba(models, x, amp_dtype)
        start = time.perf_counter()
        for _ in range(n_batches):
            mean, var = ensemble_proba(models, x, amp_dtype)
            mean.cpu(), var.cpu()  # include the copy back, as segment_movie does
        seconds = time.perf_counter() - start
    return n_batches * batch_size / seconds
