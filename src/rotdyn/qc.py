"""The self-check stage ``qc``: does this movie's run deserve trust? (``results/<movie>/qc.json``).

A run can end without an error and still be wrong: an ensemble trained on bright
particles finds background texture in a movie of dark ones, most windows of a
small movie fall off its border, an rVAE keeps one angle while the particles
turn. Each check below is one small pure function returning
``{"name", "value", "threshold", "ok", "message"}`` (:data:`rotdyn.contracts.QC_CHECK`;
``message`` is empty when the check passes and otherwise names the likely cause
and the setting to change; a check that cannot be made passes with a ``note``).
:func:`run` reads the run's files, writes ``qc.json`` and logs every tripped
check as a WARNING (logger ``rotdyn.qc``).

Checks and thresholds (:data:`THRESHOLDS`)
-------------------------------------------
==================  ==========================================  ============  =========================================
check               value                                       trips when    why this threshold
==================  ==========================================  ============  =========================================
``particle_count``  frames whose particle count is an outlier   any frame,    robust z (median, 1.4826 MAD, at least
                    (robust z) among those ``frames`` does not  z > 4         the Poisson sd sqrt(median)): a frame
                    call bad, or no particles at all                          4 sd off is not counting noise
``frames``          frames that are blank, saturated or unlike  any frame     distance = root sum of squares of the
                    the others: distance from the movie's       > 8           robust z of :func:`frame_features` (scale
                    typical frame                                             floors keep alike frames from flagging
                                                                              noise); the real HS-AFM movie whose tip
                                                                              loses the surface: good frames <= 6.7,
                                                                              lost ones >= 10.3; eleven real and
                                                                              simulated good movies <= 3.1
``coverage``        mean share of the frame classified as       > 0.35        measured with the default ensemble
                    particle (above ``locate.threshold``)                     (3 members): demo rods 0.11 (noise 0.3:
                                                                              0.09); the same rods dark on bright 0.81,
                                                                              spheres through the rods ensemble 0.67
``size``            movie / training median area and major      outside       beyond a factor 2 the scale augmentation
                    axis (the ratio furthest from 1)            [0.5, 2]      (+-10 %) no longer covers the movie
``disagreement``    mean ensemble variance on particle pixels,  > 3           default ensemble, held-out variance
                    movie / held-out training frames (training                8.4e-4: rods like the training 0.86,
                    floored at 1e-4: below it members agree)                  noisier 1.37, shorter 0.82, cells 1.57,
                                                                              atoms 1.48; dark rods 12, rods twice as
                                                                              long and wide 13, spheres 49
``border``          share of windows dropped at the border      > 0.3         a third of the particles missing biases
                                                                              every population number
``reconstruction``  median reconstruction error of the rVAE     > 0.9         demo rods after 60 epochs 0.44 (noise
                    (:func:`rotdyn.encode.reconstruction_error`;              0.3: 0.81, the noise itself is not
                    0 perfect, 1 = each window's own mean)                    reconstructed); untrained 2.3-3.7; it
                                                                              trips where the rVAE explains under
                                                                              10 % of the windows' variance
``angle``           agreement R = abs(mean exp(i(2 angle - 2    < 0.5, with   demo rods after 60 epochs 0.99 (noise
                    orientation))) over elongated particles     orientations  0.3: 0.95), after 20 epochs 0.63;
                    (eccentricity >= 0.8)                       spread (circ. untrained 0.06-0.17, an rVAE that
                                                                var. >= 0.3)  learnt only the mean image 0.16-0.24;
                                                                and >= half   skipped for round kinds: real colloids
                                                                elongated     11 % elongated, low-dose atoms 3 %;
                                                                              checked: real HS-AFM rings 50.04 %
                                                                              (at the line), real bacteria 99 %
``held_out``        the rVAE's -ELBO on its held-out windows    > 0.5 nats    real and simulated runs of 140-85,000
                    minus on its training windows, per pixel    per pixel     training windows -0.07 to 0.09 (the
                    (the last epoch's; latents.nc attributes)                 real bacteria 0.02-0.09); small real
                                                                              movies: 61 windows 0.11, 50 windows
                                                                              0.92, 12 windows 1.98 (the held-out
                                                                              error a noise variance or more above
                                                                              the training error: memorised)
==================  ==========================================  ============  =========================================

Where a row names no real file or other generator, measured on simulated rods
(``rotdyn.simulate``, the demo's settings: 128 px, 16 x 5 px rods, windows of
24 px) on this project's 2-core CPU; the real-movie shares are from
``benchmarks/real_movies.py``'s full run. The thresholds can be overridden per
run (``job.params.qc``, keys of :data:`THRESHOLDS`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy import ndimage
from skimage.measure import regionprops_table

from .contracts import RECONSTRUCTION_ERROR
from .networks import num_threads
from .segment import ensemble_proba, load_ensemble
from .store import atomic_path, plain
from .train import split_indices
from .training_set import load_training_set

log = logging.getLogger(__name__)

THRESHOLDS = {
    "count_z": 4.0,            # particle_count: robust z of a frame's count
    "frame_distance": 8.0,     # frames: root sum of squares of the features' robust z
    "min_frames": 5,           # frames: fewer usable frames cannot define "the family"
    "coverage": 0.35,          # share of the frame classified as particle
    "size": (0.5, 2.0),        # movie / training median area and major axis
    "disagreement": 3.0,       # movie / held-out training ensemble variance on particle pixels
    "disagreement_floor": 1e-4,  # variance below this is agreement, whatever the ratio
    "border": 0.3,             # share of windows dropped at the border
    "reconstruction": 0.9,     # median reconstruction error (1 = the window's mean)
    "held_out": 0.5,           # held-out minus training -ELBO of the rVAE, nats per pixel
    "agreement": 0.5,          # angle: R between latent angle and ellipse orientation
    "eccentricity": 0.8,       # angle: particles at least this elongated take part
    "spread": 0.3,             # angle: circular variance of 2 * orientation that counts as spread
    "elongated_share": 0.5,    # angle: fewer elongated particles than this share: a round kind, nothing to check
    "min_particles": 10,       # angle, size: fewer particles tell nothing
}
# Floors on the robust scale of each frame feature (share, log interdecile range, six autocorrelations):
# without them a movie whose frames are all alike (a simulation) flags noise as out of family.
FEATURE_FLOORS = np.array([0.05, 0.1] + [0.05] * 6)
FEATURE_NAMES = ("commonest value share", "log interdecile range", "autocorrelation x1", "autocorrelation y1",
                 "autocorrelation x2", "autocorrelation y2", "autocorrelation x4", "autocorrelation y4")


def result(name: str, value, threshold, ok: bool, message: str = "", note: str | None = None) -> dict:
    """One check's outcome (:data:`rotdyn.contracts.QC_CHECK`), plain JSON types.

    Parameters
    ----------
    name : str
        The check's name (``"border"``, ``"coverage"``, ...).
    value : float, array_like or None
        What was measured; None when nothing could be.
    threshold : float, list or None
        The limit (or the pair of limits) the value was held against.
    ok : bool
        Whether the check passed.
    message : str
        What to do about it; kept only when the check failed.
    note : str or None
        Why the check could not tell (e.g. too few particles); left out when None or empty.

    Returns
    -------
    dict
        ``name, value, threshold, ok, message`` and ``note`` when given; numpy scalars made plain Python.

    Examples
    --------
    >>> result("border", np.float64(0.7), 0.3, False, "70 % dropped")
    {'name': 'border', 'value': 0.7, 'threshold': 0.3, 'ok': False, 'message': '70 % dropped'}
    """
    out = {"name": name, "value": plain(value), "threshold": plain(threshold), "ok": bool(ok),
           "message": "" if ok else message}
    if note:
        out["note"] = note
    return out


def _kind_setting(kind: str | None, key: str) -> str:
    """Where a per-kind setting lives in the config, e.g. ``particles.kinds.rods.contrast``."""
    return f"particles.kinds.{kind or '<kind>'}.{key}"


def _frame_list(frames) -> str:
    """Frame numbers as compact ranges: ``3, 22-31``."""
    frames = sorted(int(f) for f in frames)
    parts, start = [], None
    for i, f in enumerate(frames):
        start = f if start is None else start
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(str(start) if start == f else f"{start}-{f}")
            start = None
    return ", ".join(parts)


def robust_z(values, floor: float | np.ndarray = 0.0) -> np.ndarray:
    """``(values - median) / max(1.4826 MAD, floor)`` along the first axis, NaN-aware.

    Parameters
    ----------
    values : array_like
        ``(N,)`` or ``(N, F)``.
    floor : float or array
        The smallest scale (per column): deviations smaller than a few floors
        are never outliers, however alike the other values are.

    Returns
    -------
    ndarray
        Same shape as ``values``.

    Examples
    --------
    >>> robust_z([10, 11, 9, 10, 30], floor=1.0).round(1).tolist()
    [0.0, 0.7, -0.7, 0.0, 13.5]
    """
    v = np.asarray(values, np.float64)
    with np.errstate(all="ignore"):
        median = np.nanmedian(v, axis=0)
        scale = np.maximum(1.4826 * np.nanmedian(np.abs(v - median), axis=0), floor)
        return (v - median) / np.where(scale > 0, scale, np.inf)


# ------------------------------------------------------------------ frames and counts
def check_particle_counts(counts, frames=None, *, z_max: float = THRESHOLDS["count_z"]) -> tuple[dict, list]:
    """Particles per frame: frames whose count is an outlier, or no particles at all.

    Parameters
    ----------
    counts : array_like
        Particles in each frame (zeros included).
    frames : array_like or None
        The frame numbers (default ``0 .. N-1``).
    z_max : float
        A frame trips when its count's robust z (floor: the Poisson sd,
        ``sqrt(median)``, at least 1) exceeds this.

    Returns
    -------
    check : dict
        ``value``: the number of outlier frames.
    outliers : list of int
        Their frame numbers.

    Examples
    --------
    >>> check, outliers = check_particle_counts([24, 22, 25, 0, 23, 26, 24])
    >>> check["ok"], outliers, check["message"].split(":")[0]
    (False, [3], 'frame 3 has a particle count unlike the others (median 24 per frame)')
    """
    counts = np.asarray(counts, np.float64)
    frames = np.arange(len(counts)) if frames is None else np.asarray(frames)
    if counts.sum() == 0:
        return result("particle_count", 0, z_max, False,
                      "no particles found in any frame: is the contrast right (contrast: bright | dark), is "
                      "locate.threshold too high, or was the ensemble trained on other particles?"), []
    floor = max(np.sqrt(np.median(counts)), 1.0)
    z = robust_z(counts, floor)
    outliers = [int(f) for f in frames[np.abs(z) > z_max]]
    n = len(outliers)
    message = (f"frame{'s' if n > 1 else ''} {_frame_list(outliers)} {'have' if n > 1 else 'has'} a particle count "
               f"unlike the others (median {np.median(counts):g} per frame): look at "
               f"{'them' if n > 1 else 'it'} (focus, tip, illumination); leave {'them' if n > 1 else 'it'} out of "
               f"the dynamics or cut the movie with the sample sheet's first_frame/last_frame")
    return result("particle_count", n, z_max, n == 0, message), outliers


def frame_features(frame) -> np.ndarray:
    """What a frame looks like, in numbers that per-frame normalisation keeps.

    Parameters
    ----------
    frame : array_like
        One preprocessed frame ``(H, W)``.

    Returns
    -------
    ndarray
        :data:`FEATURE_NAMES`: the share of pixels holding the commonest value
        (a saturated or flat plateau), the log of the range between the 10th
        and 90th percentiles (contrast), and the autocorrelation at 1, 2 and
        4 px along x and y (texture: a lost AFM tip leaves streaks correlated
        along the scan lines but not across them). NaN for a frame without
        contrast.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise, streaks = rng.random((64, 64)), np.repeat(rng.random((64, 1)), 64, axis=1)
    >>> round(abs(float(frame_features(noise)[2])), 1), round(float(frame_features(streaks)[2]), 1)  # x, lag 1
    (0.0, 1.0)
    """
    x = np.asarray(frame, np.float64)
    finite = np.isfinite(x)
    if finite.sum() < 2 or np.ptp(x[finite]) == 0:
        return np.full(len(FEATURE_NAMES), np.nan)
    values = x[finite]
    share = np.unique(values, return_counts=True)[1].max() / values.size
    q10, q90 = np.percentile(values, [10, 90])  # not the IQR: 8-bit video leaves it a few grey levels
    c = np.where(finite, x - values.mean(), 0.0)
    variance = (c ** 2).mean()
    auto = []
    for lag in (1, 2, 4):
        auto += [(c[:, lag:] * c[:, :-lag]).mean() / variance, (c[lag:] * c[:-lag]).mean() / variance]
    return np.array([share, np.log(max(q90 - q10, 1e-6)), *auto])


def check_frames(features, usable=None, frames=None, *, limit: float = THRESHOLDS["frame_distance"],
                 min_frames: int = THRESHOLDS["min_frames"]) -> tuple[dict, list]:
    """Frames that are blank, saturated or out of family: the ``bad_frames`` the dynamics should leave out.

    Parameters
    ----------
    features : array_like
        ``(N, F)``, :func:`frame_features` of each frame.
    usable : array_like or None
        ``movie.nc``'s ``usable`` (0: no finite pixels, no contrast or saturated).
    frames : array_like or None
        The frame numbers (default ``0 .. N-1``).
    limit : float
        A frame is out of family when its distance from the movie's typical
        frame, the root sum of squares of its features' robust z (scale
        floors :data:`FEATURE_FLOORS`), exceeds this.
    min_frames : int
        With fewer usable frames only blank ones are flagged.

    Returns
    -------
    check : dict
        ``value``: the number of bad frames.
    bad : list of int
        Their frame numbers.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> movie = rng.random((12, 32, 32))
    >>> movie[9] = np.repeat(rng.random((32, 1)), 32, axis=1)  # streaks along the scan lines
    >>> movie[10] = 1.0  # saturated
    >>> check, bad = check_frames([frame_features(f) for f in movie])
    >>> bad, check["value"]
    ([9, 10], 2)
    """
    f = np.asarray(features, np.float64).reshape(len(features), -1)
    frames = np.arange(len(f)) if frames is None else np.asarray(frames)
    usable = np.ones(len(f), bool) if usable is None else np.asarray(usable).astype(bool)
    blank = ~usable | ~np.isfinite(f).all(axis=1)
    odd = np.zeros(len(f), bool)
    if (~blank).sum() >= min_frames:
        z = robust_z(np.where(blank[:, None], np.nan, f), FEATURE_FLOORS[:f.shape[1]])
        odd = ~blank & (np.sqrt(np.nansum(z ** 2, axis=1)) > limit)
    bad_mask = blank | odd
    bad = [int(b) for b in frames[bad_mask]]
    message = f"{len(bad)} of {len(f)} frames ({_frame_list(bad)}) are blank, saturated or unlike the others " \
              f"(e.g. the AFM tip lost the surface): they are listed as bad_frames for the dynamics to leave out"
    return result("frames", len(bad), limit, not bad, message + _cut(bad_mask, frames)), bad


def _cut(bad_mask: np.ndarray, frames: np.ndarray) -> str:
    """Where the sample sheet's first_frame/last_frame would cut off a run of bad frames at either end."""
    good = np.flatnonzero(~bad_mask)
    if not len(good) or (good[0] == 0 and good[-1] == len(frames) - 1):
        return ""
    cuts = [f"first_frame: {int(frames[good[0]])}"] if good[0] > 0 else []
    cuts += [f"last_frame: {int(frames[good[-1]])}"] if good[-1] < len(frames) - 1 else []
    return f"; to cut off those at the ends, set {' and '.join(cuts)} in the sample sheet"


# ------------------------------------------------------------------ segmentation
def particle_share(mean, threshold: float) -> float:
    """Share of a frame's pixels classified as a particle: the most probable class above ``threshold``.

    Parameters
    ----------
    mean : array_like
        ``(C, H, W)`` ensemble mean of each foreground class.
    threshold : float
        ``locate.threshold``.

    Returns
    -------
    float
        Share (0-1) of the frame's pixels whose most probable class exceeds ``threshold``.

    Examples
    --------
    >>> mean = np.zeros((1, 4, 4)); mean[0, :2] = 0.9
    >>> particle_share(mean, 0.5)
    0.5
    """
    return float((np.nan_to_num(np.asarray(mean)).max(axis=0) > threshold).mean())


def check_coverage(shares, *, contrast: str | None = None, kind: str | None = None,
                   limit: float = THRESHOLDS["coverage"]) -> dict:
    """Mean share of the frame classified as particle; high means background taken for particles.

    Parameters
    ----------
    shares : array_like
        :func:`particle_share` of each usable frame.
    contrast : {"bright", "dark"} or None
        The contrast the movie was read with (ingest's decision).
    kind : str or None
        The movie's particle kind, for the setting's name.
    limit : float
        Trips above this.

    Returns
    -------
    dict
        A :func:`result` named ``coverage``; ``value``: the mean share (0-1).

    Examples
    --------
    >>> check = check_coverage([0.6, 0.62], contrast="bright", kind="cells")
    >>> check["ok"], check["message"].split("?")[0]
    (False, 'particles cover 61 % of the frame: is the contrast inverted (it was read as contrast: bright)')
    >>> "set contrast: dark for this movie" in check["message"], check_coverage([0.1])["ok"]
    (True, True)
    """
    shares = np.asarray(shares, np.float64)
    value = float(shares.mean()) if len(shares) else 0.0
    other = {"bright": "dark", "dark": "bright"}.get(str(contrast), "dark (or bright)")
    read = f" (it was read as contrast: {contrast})" if contrast in ("bright", "dark") else ""
    message = (f"particles cover {100 * value:.0f} % of the frame: is the contrast inverted{read}? set contrast: "
               f"{other} for this movie (sample sheet column `contrast`) or for kind '{kind or '<kind>'}' "
               f"({_kind_setting(kind, 'contrast')}); if the particles really are this dense, raise "
               f"locate.threshold or ignore this warning")
    return result("coverage", value, limit, value <= limit, message)


def instance_sizes(masks, *, min_area: int = 1, classes=None) -> pd.DataFrame:
    """Area and ellipse axes of every particle instance in label masks (training sets).

    Instances are the 4-connected components of each class in each mask, as
    :mod:`rotdyn.locate` finds them; those touching the mask's border (cut
    by the tile) and those below ``min_area`` px are left out.

    Parameters
    ----------
    masks : array_like
        ``(N, H, W)`` integer class labels, 0 = background.
    min_area : int
        ``locate.min_area``.
    classes : sequence of int or None
        Classes to measure (default: all foreground labels present).

    Returns
    -------
    DataFrame
        ``class, area, major_axis, minor_axis`` (px).

    Examples
    --------
    >>> mask = np.zeros((1, 20, 20), np.uint8)
    >>> mask[0, 5:8, 4:14] = 1   # a 3 x 10 rod
    >>> mask[0, 0:3, 15:18] = 1  # cut by the border: left out
    >>> instance_sizes(mask)[["class", "area"]].values.tolist()
    [[1, 30]]
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    classes = [int(c) for c in np.unique(masks) if c > 0] if classes is None else list(classes)
    rows = []
    for mask in masks:
        for cls in classes:
            labels, n = ndimage.label(mask == cls)
            if not n:
                continue
            props = regionprops_table(labels, properties=("area", "bbox", "axis_major_length",
                                                          "axis_minor_length"))
            H, W = mask.shape
            inside = ((props["bbox-0"] > 0) & (props["bbox-1"] > 0) & (props["bbox-2"] < H)
                      & (props["bbox-3"] < W) & (props["area"] >= min_area))
            rows.append(pd.DataFrame({"class": cls, "area": props["area"][inside],
                                      "major_axis": props["axis_major_length"][inside],
                                      "minor_axis": props["axis_minor_length"][inside]}))
    columns = {"class": np.int64, "area": np.int64, "major_axis": np.float64, "minor_axis": np.float64}
    if not rows:
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in columns.items()})
    return pd.concat(rows, ignore_index=True).astype(columns)


def check_size(movie: pd.DataFrame, training: pd.DataFrame, *, kind: str | None = None,
               limits=THRESHOLDS["size"], min_particles: int = THRESHOLDS["min_particles"]) -> dict:
    """Median area and major axis of the movie's particles against the training particles', per class.

    Parameters
    ----------
    movie, training : DataFrame
        ``class, area, major_axis, minor_axis`` per particle (particles.nc
        without those touching the edge; :func:`instance_sizes` of the
        training masks).
    kind : str or None
        The particle kind, for the setting's name.
    limits : (float, float)
        Trips when a ratio (movie / training) is outside.
    min_particles : int
        Classes with fewer particles on either side are not compared.

    Returns
    -------
    dict
        ``value``: the ratio furthest from 1 (in log).

    Examples
    --------
    >>> train = pd.DataFrame({"class": 1, "area": [60] * 20, "major_axis": 16.0, "minor_axis": 5.0})
    >>> movie = pd.DataFrame({"class": 1, "area": [250] * 20, "major_axis": 33.0, "minor_axis": 10.0})
    >>> check = check_size(movie, train, kind="rods")
    >>> check["ok"], round(check["value"], 2), check["message"][:53]
    (False, 4.17, 'particles are 4.2x the area and 2.1x the length of th')
    >>> check_size(train, train)["ok"]
    True
    """
    worst, message = None, ""
    for cls in sorted(set(movie["class"]) & set(training["class"])):
        m, t = movie[movie["class"] == cls], training[training["class"] == cls]
        if min(len(m), len(t)) < min_particles:
            continue
        area = m["area"].median() / t["area"].median()
        length = m["major_axis"].median() / t["major_axis"].median()
        ratio = max((area, length), key=lambda r: abs(np.log(r)))
        if worst is None or abs(np.log(ratio)) > abs(np.log(worst)):
            worst = ratio
            message = (f"particles are {area:.2g}x the area and {length:.2g}x the length of the training particles "
                       f"(class {cls}: median ellipse {m['major_axis'].median():.0f} x {m['minor_axis'].median():.0f}"
                       f" px against {t['major_axis'].median():.0f} x {t['minor_axis'].median():.0f} px): set "
                       f"training_set.simulate.length/width of kind '{kind or '<kind>'}' "
                       f"({_kind_setting(kind, 'training_set.simulate.length')}, .width) to the movie's, or leave "
                       f"them unset so they are estimated from the movie; or label frames of this movie")
    if worst is None:
        return result("size", None, list(limits), True, note="too few particles to compare with the training set")
    return result("size", worst, list(limits), limits[0] <= worst <= limits[1], message)


def particle_variance(mean, variance, threshold: float) -> tuple[float, int]:
    """Sum and number of the ensemble variances on particle pixels (of the most probable class).

    Parameters
    ----------
    mean, variance : array_like
        ``(C, H, W)`` or ``(N, C, H, W)``: foreground classes only.
    threshold : float
        ``locate.threshold``: particle pixels are above it.

    Returns
    -------
    total : float
        Sum of the variance of the most probable class over the particle pixels.
    count : int
        Number of particle pixels (``total / count`` is their mean variance).

    Examples
    --------
    >>> mean = np.array([[[0.9, 0.1]]]); var = np.array([[[0.02, 0.2]]])
    >>> particle_variance(mean, var, 0.5)
    (0.02, 1)
    """
    mean = np.nan_to_num(np.asarray(mean, np.float64))
    variance = np.nan_to_num(np.asarray(variance, np.float64))
    axis = mean.ndim - 3  # the class axis
    best = mean.argmax(axis=axis)
    on = mean.max(axis=axis) > threshold
    picked = np.take_along_axis(variance, np.expand_dims(best, axis), axis=axis).squeeze(axis)
    return float(picked[on].sum()), int(on.sum())


def check_disagreement(movie_variance: float, training_variance: float, *, limit: float = THRESHOLDS["disagreement"],
                       floor: float = THRESHOLDS["disagreement_floor"], kind: str | None = None) -> dict:
    """Ensemble disagreement on the movie's particles against the held-out training frames'.

    Parameters
    ----------
    movie_variance, training_variance : float
        Mean ensemble variance on particle pixels (:func:`particle_variance`).
    limit : float
        Trips when the movie's exceeds ``limit`` times the training's.
    floor : float
        The training value is taken as at least this: variances below it
        are agreement, however small the training's.
    kind : str or None
        The particle kind, for the setting's name.

    Returns
    -------
    dict
        ``value``: the ratio.

    Examples
    --------
    >>> check_disagreement(0.02, 0.001, kind="rods")["message"][:55]
    'the movie looks unlike the training frames: the ensembl'
    >>> check_disagreement(0.0002, 0.00001)["ok"]  # both negligible
    True
    """
    if not np.isfinite(movie_variance) or not np.isfinite(training_variance):
        return result("disagreement", None, limit, True, note="no particle pixels to compare")
    ratio = movie_variance / max(training_variance, floor)
    message = (f"the movie looks unlike the training frames: the ensemble members disagree {ratio:.1f}x as much on "
               f"its particles as on held-out training frames: train on frames like this movie (label some, "
               f"resources/training/<set>/, or match {_kind_setting(kind, 'training_set.simulate')} to it), "
               f"and check its contrast ({_kind_setting(kind, 'contrast')})")
    return result("disagreement", ratio, limit, ratio <= limit, message)


# ------------------------------------------------------------------ windows and rVAE
def check_border(dropped: int, total: int, *, size: int | None = None, kind: str | None = None,
                 limit: float = THRESHOLDS["border"]) -> dict:
    """Share of the particles whose window was dropped because it crossed the frame border.

    Parameters
    ----------
    dropped, total : int
        Windows dropped, particles located (``patches.nc`` attrs ``n_dropped``,
        ``n_particles``).
    size : int or None
        ``patches.size``, for the message.
    kind : str or None
        The particle kind, for the setting's name.
    limit : float
        Trips above this share.

    Returns
    -------
    dict
        A :func:`result` named ``border``; ``value``: the share of windows dropped (0-1, 0 when none located).

    Examples
    --------
    >>> for part in check_border(70, 100, size=24, kind="rods")["message"].split(": ", 1):
    ...     print(part)
    70 % of windows dropped at the border
    set patches.edge: pad or a smaller patches.size (now 24 px), for kind 'rods' (particles.kinds.rods.patches)
    >>> check_border(0, 0)["ok"]
    True
    """
    share = dropped / total if total else 0.0
    now = f" (now {size} px)" if size else ""
    message = (f"{100 * share:.0f} % of windows dropped at the border: set patches.edge: pad or a smaller "
               f"patches.size{now}, for kind '{kind or '<kind>'}' ({_kind_setting(kind, 'patches')})")
    return result("border", share, limit, share <= limit, message)


def check_reconstruction(errors, *, limit: float = THRESHOLDS["reconstruction"]) -> dict:
    """Median rVAE reconstruction error (:func:`rotdyn.encode.reconstruction_error`; 1 = the window's mean).

    Parameters
    ----------
    errors : array_like
        ``reconstruction_error`` of each window (latents.nc); NaN left out.
    limit : float
        Trips when the median exceeds it.

    Returns
    -------
    dict
        A :func:`result` named ``reconstruction``; ``value``: the median error, None (with a note) when no
        window was encoded.

    Examples
    --------
    >>> check_reconstruction([0.9, 1.1, 1.0])["message"].split(" (")[0]
    "the rVAE reconstructs the windows hardly better than each window's mean"
    >>> check_reconstruction([0.1, 0.2])["ok"], check_reconstruction([])["note"]
    (True, 'no windows were encoded')
    """
    errors = np.asarray(errors, np.float64)
    errors = errors[np.isfinite(errors)]
    if not len(errors):
        return result("reconstruction", None, limit, True, note="no windows were encoded")
    value = float(np.median(errors))
    message = (f"the rVAE reconstructs the windows hardly better than each window's mean (median error "
               f"{value:.2f}; 0 = perfect, 1 = the mean): it is undertrained or cannot model these windows: more "
               f"rvae.epochs, check rvae.lr, a larger rvae.hidden, or a patches.size that holds one particle "
               f"(in a very noisy movie the noise alone comes near 1: then trust the angle check)")
    return result("reconstruction", value, limit, value <= limit, message)


def check_held_out(train_loss, test_loss, pixels: int, n_train: int, n_test: int, *,
                   limit: float = THRESHOLDS["held_out"]) -> dict:
    """Did the rVAE learn the particles or memorise its windows? Held-out against training -ELBO.

    With few windows (a small movie, one frame) the rVAE can fit every
    training window closely and none it has not seen: its content variables
    then describe those windows, not the particles. (The angle can survive:
    on 20 frames of the tethered-cell stand-in of tests/other_generator.py,
    30 training windows, the latent axis turned with the cell, slope 1.02,
    at a gap of 1.17.)

    The value is the final epoch's -ELBO on the held-out windows minus on
    the training windows, in nats per pixel; with a Gaussian likelihood,
    twice it is the extra squared error on held-out windows in units of the
    noise variance.

    Parameters
    ----------
    train_loss, test_loss : float or None
        The last epoch's -ELBO per window on the training and held-out windows
        (latents.nc attributes ``rvae_final_train_loss``, ``rvae_final_test_loss``).
    pixels : int
        Pixels per window.
    n_train, n_test : int
        Windows the rVAE trained on and held out, for the message.
    limit : float
        Trips above this many nats per pixel.

    Returns
    -------
    dict
        A :func:`result` named ``held_out``; passes with a ``note`` when no
        held-out loss was recorded.

    Examples
    --------
    The one-frame movie of 16 cells (12 windows to train on, 4 held out):

    >>> c = check_held_out(-1216.6, 813.5, 32 * 32, 12, 4)
    >>> round(c["value"], 2), c["ok"], c["message"][:62]
    (1.98, False, 'the rVAE fits its 12 training windows far better than the 4 it')
    >>> check_held_out(-878.6, -863.4, 32 * 32, 2530, 843)["ok"]  # the real bacteria, 214 frames
    True
    >>> check_held_out(-10.0, float("nan"), 64, 3, 0)["note"]
    'no held-out windows to compare with'
    """
    gap = (float(test_loss) - float(train_loss)) / pixels if None not in (train_loss, test_loss) else np.nan
    if not np.isfinite(gap):
        return result("held_out", None, limit, True, note="no held-out windows to compare with")
    message = (f"the rVAE fits its {n_train} training windows far better than the {n_test} it held out (-ELBO "
               f"{gap:.2f} nats per pixel higher on those): it memorised its windows, so its content variables "
               f"describe these windows rather than the particles (the angle may still follow them: see the "
               f"angle check): analyse more frames or movies of this kind together (rvae.scope: pooled)")
    return result("held_out", gap, limit, gap <= limit, message)


def _circular_r(angles) -> float:
    """Mean resultant length of ``exp(i angles)``: 1 all alike, 0 spread evenly."""
    return float(np.abs(np.exp(1j * np.asarray(angles, np.float64)).mean())) if len(angles) else 0.0


def check_angle(angle, orientation, eccentricity, *, limit: float = THRESHOLDS["agreement"],
                min_eccentricity: float = THRESHOLDS["eccentricity"], spread: float = THRESHOLDS["spread"],
                min_particles: int = THRESHOLDS["min_particles"],
                elongated_share: float = THRESHOLDS["elongated_share"]) -> dict:
    """Does the rVAE's latent angle follow the particles' ellipse orientation?

    For the elongated particles, R = ``abs(mean exp(i(2 angle - 2 orientation)))``
    is 1 when the latent angle follows the orientation axis up to one constant
    (the reference's own orientation; doubling makes head and tail alike).

    Parameters
    ----------
    angle : array_like
        The latent angle of each window (rad).
    orientation, eccentricity : array_like
        The particle's ellipse axis angle (rad, [0, pi)) and eccentricity
        (particles.nc), in the same order.
    limit : float
        Trips when R is below it (and the orientations spread).
    min_eccentricity : float
        Particles less elongated have no meaningful orientation.
    spread : float
        Orientations whose circular variance (of twice the angle) is below
        this are too alike to tell whether the angle follows them.
    min_particles : int
        Fewer elongated particles: the check is skipped.
    elongated_share : float
        When a smaller share of the particles is elongated, the kind is round
        (colloids, atoms: pixelation makes some of them look elongated) and
        the check is skipped.

    Returns
    -------
    dict
        ``value``: R; skipped (ok, with a ``note``) for round or aligned particles.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> theta = rng.uniform(0, np.pi, 200)
    >>> ecc = np.full(200, 0.95)
    >>> round(check_angle(theta + 0.3, theta, ecc)["value"], 2)
    1.0
    >>> check_angle(np.zeros(200), theta, ecc)["message"][:68]
    'latent angle nearly constant while particle orientations spread over'
    >>> check_angle(np.zeros(200), theta, np.full(200, 0.3))["note"]
    'round particles (eccentricity < 0.8): no orientation to compare'
    >>> check_angle(np.zeros(200), theta, np.where(np.arange(200) < 40, 0.9, 0.3))["note"]
    'mostly round particles (20 % elongated): no orientation to compare'
    """
    a, o, e = (np.asarray(v, np.float64) for v in (angle, orientation, eccentricity))
    finite = np.isfinite(a) & np.isfinite(o)
    keep = finite & (np.nan_to_num(e) >= min_eccentricity)
    if keep.sum() < min_particles:
        return result("angle", None, limit, True,
                      note=f"round particles (eccentricity < {min_eccentricity:g}): no orientation to compare")
    if keep.sum() < elongated_share * finite.sum():
        return result("angle", None, limit, True, note=f"mostly round particles ({100 * keep.sum() / finite.sum():.0f} "
                                                        "% elongated): no orientation to compare")
    a, o = a[keep], o[keep]
    orientation_variance = 1 - _circular_r(2 * o)
    if orientation_variance < spread:
        return result("angle", None, limit, True,
                      note="orientations too alike to tell whether the latent angle follows them")
    r = _circular_r(2 * a - 2 * o)
    span = np.degrees(np.pi * orientation_variance)  # 180 deg when spread evenly
    if 1 - _circular_r(2 * a) < 0.1:
        what = f"latent angle nearly constant while particle orientations spread over {span:.0f} degrees"
    else:
        what = f"latent angle does not follow the particle orientations (agreement {r:.2f}, 1 = follows)"
    message = (f"{what}: the rVAE did not learn rotation: more rvae.epochs, check rvae.lr and "
               f"rvae.rotation_prior (uniform for free rotation), a patches.size just larger than the particles")
    return result("angle", r, limit, r >= limit, message)


# ------------------------------------------------------------------ the stage
def _per_frame(movie_path, probability_path, threshold: float) -> tuple[pd.DataFrame, np.ndarray]:
    """What the frame checks need, one frame at a time (a movie never sits in memory whole).

    Returns
    -------
    table : DataFrame
        Indexed by frame number: ``usable``; ``share`` (:func:`particle_share`;
        NaN where segment left the frame blank); ``var_sum``, ``var_n``
        (:func:`particle_variance`).
    features : ndarray
        ``(frames, features)``: :func:`frame_features` of each movie frame.
    """
    with xr.open_dataset(movie_path) as movie, xr.open_dataset(probability_path) as prob:
        frames = movie["frame"].values
        usable = movie["usable"].values if "usable" in movie else np.ones(len(frames), np.uint8)
        features = np.array([frame_features(movie["frames"].isel(frame=i).values) for i in range(len(frames))])
        table = pd.DataFrame({"usable": usable, "share": np.nan, "var_sum": 0.0, "var_n": 0},
                             index=pd.Index(frames, name="frame"))
        for i, frame in enumerate(prob["frame"].values):
            one = prob.isel(frame=i)
            mean = one["mean"].transpose("class", "y", "x").values
            if frame not in table.index or not np.nan_to_num(mean).any():  # blank: segment gave it zeros
                continue
            variance = one["variance"].transpose("class", "y", "x").values
            table.loc[frame, ["share", "var_sum", "var_n"]] = (particle_share(mean, threshold),
                                                               *particle_variance(mean, variance, threshold))
    return table, features


def training_variance(training_path, members: list, train: dict, threshold: float, batch_size: int = 8,
                      threads: int | None = None) -> float:
    """Mean ensemble variance on particle pixels of the ensemble's held-out training frames.

    The held-out split is the ensemble's own (:func:`rotdyn.train.split_indices`
    with ``train["val_fraction"]`` and ``train["seed"]``), so no member trained
    on these frames.

    Parameters
    ----------
    training_path : path
        The kind's training set (:mod:`rotdyn.training_set`).
    members : list of path
        The ensemble's weights.
    train : dict
        The kind's ``train`` settings (``val_fraction``, ``seed``).
    threshold : float
        ``locate.threshold``: particle pixels are above it.
    batch_size, threads : int
        Frames per pass; CPU threads (None: unchanged).

    Returns
    -------
    float
        NaN for fewer than two members or no particle pixels.

    Examples
    --------
    Two members that are one network agree everywhere:

    >>> import os, tempfile
    >>> from rotdyn.networks import build_network, save_model
    >>> from rotdyn.store import write_netcdf
    >>> from rotdyn.training_set import from_simulation
    >>> folder = tempfile.mkdtemp()
    >>> write_netcdf(from_simulation("rods", frames=4, size=32, tile=32, count=2), os.path.join(folder, "t.nc"))
    >>> net = build_network("dilnet", 2, width=4).eval()
    >>> with torch.no_grad():
    ...     _ = net.head.bias.fill_(5.0)  # every pixel a particle
    >>> save_model(net, os.path.join(folder, "m.pt"), {"class_names": ["background", "rod"]})
    >>> training_variance(os.path.join(folder, "t.nc"), [os.path.join(folder, "m.pt")] * 2,
    ...                   {"val_fraction": 0.25, "seed": 0}, 0.5)
    0.0
    """
    if len(members) < 2:
        return np.nan
    data = load_training_set(training_path)
    _, held_out = split_indices(len(data["images"]), train.get("val_fraction", 0.2), train.get("seed", 0))
    models, _ = load_ensemble(list(members))
    total, count = 0.0, 0
    with torch.inference_mode(), num_threads(threads):
        for start in range(0, len(held_out), batch_size):
            x = torch.from_numpy(data["images"][held_out[start:start + batch_size]])[:, None]
            mean, variance = ensemble_proba(models, x)
            s, n = particle_variance(mean[:, 1:].numpy(), variance[:, 1:].numpy(), threshold)
            total, count = total + s, count + n
    return total / count if count else np.nan


def read_particles(path) -> pd.DataFrame:
    """``particles.nc`` as a table indexed by its ``particle`` coordinate (what ``particle_index`` points to).

    Parameters
    ----------
    path : path
        A ``particles.nc`` (:mod:`rotdyn.locate`).

    Returns
    -------
    DataFrame
        Its one-dimensional variables as columns (at least ``frame``).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.store import write_netcdf
    >>> path = os.path.join(tempfile.mkdtemp(), "particles.nc")
    >>> write_netcdf(xr.Dataset({"frame": ("particle", [0, 2]), "area": ("particle", [30, 41])},
    ...                         coords={"particle": [0, 1]}), path)
    >>> read_particles(path)["area"].to_dict()
    {0: 30, 1: 41}
    """
    with xr.open_dataset(path) as ds:
        index = ds["particle"].values if "particle" in ds.coords else np.arange(ds.sizes.get("particle", 0))
        columns = {name: ds[name].values for name in ds.data_vars if ds[name].dims == ("particle",)}
    table = pd.DataFrame(columns, index=pd.Index(index, name="particle"))
    return table if "frame" in table else table.assign(frame=pd.Series(dtype=np.int64))


def _training_sizes(training_path, min_area: int) -> pd.DataFrame:
    with xr.open_dataset(training_path) as ds:
        return instance_sizes(ds["masks"].values, min_area=min_area)


def _window_counts(patches_path, n_particles: int) -> tuple[int, int, int | None]:
    """(dropped, particles, window size) from patches.nc attrs, else from the counts (older files)."""
    with xr.open_dataset(patches_path) as patches:
        attrs, n_windows = patches.attrs, patches.sizes.get("particle", 0)
    dropped = int(attrs.get("n_dropped", max(n_particles - n_windows, 0)))
    total = int(attrs.get("n_particles", n_particles))
    return dropped, total, int(attrs["size"]) if "size" in attrs else None


def _angle_inputs(latents_path, particles: pd.DataFrame):
    """Latent angle, ellipse orientation and eccentricity, reconstruction error of the windows of ``particles``."""
    with xr.open_dataset(latents_path) as lat:
        angle = lat["angle"].values
        errors = lat[RECONSTRUCTION_ERROR].values if RECONSTRUCTION_ERROR in lat else np.full(len(angle), np.nan)
        index = lat["particle_index"].values if "particle_index" in lat else np.arange(len(angle))
    keep = np.isin(index, particles.index)
    rows = particles.reindex(index[keep])
    return angle[keep], rows["orientation"].values, rows["eccentricity"].values, errors[keep]


def _fit_losses(latents_path) -> dict:
    """The rVAE's last -ELBO on training and held-out windows, window pixels and counts (latents.nc attributes)."""
    with xr.open_dataset(latents_path) as lat:
        attrs = dict(lat.attrs)
    size = int(_number(attrs, "rvae_size") or 0)
    return {"train_loss": _number(attrs, "rvae_final_train_loss"), "test_loss": _number(attrs, "rvae_final_test_loss"),
            "pixels": max(size * size, 1), "n_train": int(_number(attrs, "rvae_n_train") or 0),
            "n_test": int(_number(attrs, "rvae_n_test") or 0)}


def _number(attrs: dict, key: str) -> float | None:
    """A numeric attribute; None where older files lack it or it was written as "none"."""
    try:
        return float(attrs[key])
    except (KeyError, TypeError, ValueError):
        return None


def count_and_frame_checks(counts, features, usable, frames,
                           limits: dict = THRESHOLDS) -> tuple[dict, dict, list, list]:
    """The bad-frame check, then the particle-count check on the frames that are not bad.

    A frame already bad (the tip lost the surface, a blank) is not counted
    again as a particle-count outlier: one problem, one warning, and the
    median count is that of the frames the dynamics keep (all frames when
    every one is bad).

    Returns
    -------
    count_check, frame_check : dict
        :func:`check_particle_counts` and :func:`check_frames`.
    bad, outliers : list
        The bad frames and the count outliers among the others.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> images = rng.random((8, 32, 32))
    >>> usable = np.ones(8, np.uint8); usable[3] = 0  # a blank frame, where no particle is found
    >>> counts = np.array([20, 21, 19, 0, 22, 20, 21, 20])
    >>> count, frame, bad, outliers = count_and_frame_checks(counts, [frame_features(f) for f in images], usable,
    ...                                                      np.arange(8))
    >>> bad, outliers, count["ok"], frame["ok"]
    ([3], [], True, False)
    """
    counts, frames = np.asarray(counts), np.asarray(frames)
    frame_check, bad = check_frames(features, usable, frames, limit=limits["frame_distance"],
                                    min_frames=limits["min_frames"])
    counted = ~np.isin(frames, bad)
    counted = counted if counted.any() else ~counted
    count_check, outliers = check_particle_counts(counts[counted], frames[counted], z_max=limits["count_z"])
    return count_check, frame_check, bad, outliers


def _frame_checks(job, threshold: float, limits: dict):
    """The particle-count and bad-frame checks, and the per-frame table of the frames that are not bad."""
    table, features = _per_frame(job.input.movie, job.input.probability, threshold)
    frames = table.index.to_numpy()
    particles = read_particles(job.input.particles)
    counts = particles["frame"].value_counts().reindex(frames, fill_value=0).to_numpy()
    count_check, frame_check, bad, outliers = count_and_frame_checks(counts, features, table["usable"], frames, limits)
    good = table.drop(index=bad)
    series = {"bad_frames": bad, "count_outliers": outliers, "frames": frames, "particles_per_frame": counts}
    return [count_check, frame_check], good[good["share"].notna()], particles, series


def _report(job) -> dict:
    """Every check of one movie's run, as ``qc.json`` holds it (:data:`rotdyn.contracts.QC`).

    Bad frames are left out of the other checks: their particles would blame
    the ensemble or the rVAE for the microscope.
    """
    p = job.params
    kind, contrast = getattr(p, "kind", None), getattr(p, "contrast", None)
    if contrast is None:  # what ingest decided, from the movie
        with xr.open_dataset(job.input.movie) as movie:
            contrast = movie.attrs.get("contrast")
    locate = dict(getattr(p, "locate", {}) or {})
    threshold, min_area = float(locate.get("threshold", 0.5)), int(locate.get("min_area", 10))
    limits = {**THRESHOLDS, **dict(getattr(p, "qc", {}) or {})}
    members = list(job.input.members)

    checks, good, all_particles, series = _frame_checks(job, threshold, limits)
    particles = all_particles[~all_particles["frame"].isin(series["bad_frames"])]
    whole = particles[particles["touches_edge"] == 0] if "touches_edge" in particles else particles
    movie_var = good["var_sum"].sum() / good["var_n"].sum() if good["var_n"].sum() else np.nan
    train_var = training_variance(job.input.training, members, dict(getattr(p, "train", {})), threshold,
                                  threads=job.threads)
    dropped, total, size = _window_counts(job.input.patches, len(all_particles))
    angle, orientation, eccentricity, errors = _angle_inputs(job.input.latents, particles)
    checks += [
        check_coverage(good["share"], contrast=contrast, kind=kind, limit=limits["coverage"]),
        check_size(whole, _training_sizes(job.input.training, min_area), kind=kind, limits=limits["size"],
                   min_particles=limits["min_particles"]),
        check_disagreement(movie_var, train_var, limit=limits["disagreement"],
                           floor=limits["disagreement_floor"], kind=kind),
        check_border(dropped, total, size=size, kind=kind, limit=limits["border"]),
        check_reconstruction(errors, limit=limits["reconstruction"]),
        check_angle(angle, orientation, eccentricity, limit=limits["agreement"],
                    min_eccentricity=limits["eccentricity"], spread=limits["spread"],
                    min_particles=limits["min_particles"], elongated_share=limits["elongated_share"]),
        check_held_out(**_fit_losses(job.input.latents), limit=limits["held_out"]),
    ]
    if len(members) < 2:
        checks[4]["note"] = f"{len(members)} ensemble member(s): no disagreement to measure"
    movie = getattr(job.wildcards, "movie", None) or Path(job.output[0]).parent.name
    return plain({"movie": movie, "kind": kind, "checks": checks,
                  "warnings": [c["message"] for c in checks if not c["ok"]], **series})


def run(job) -> None:
    """Entry of rule ``qc``: the self-checks of one movie's run -> ``qc.json``; each tripped check a WARNING.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input``: ``movie``, ``probability``, ``particles``, ``patches``,
        ``latents`` (the run's files), ``training`` (the kind's training set)
        and ``members`` (its ensemble's weights, a list); ``params``:
        ``train`` (the kind's train settings: ``val_fraction``, ``seed``),
        ``locate`` (``threshold``, ``min_area``), ``kind`` (its name),
        ``contrast`` (what ingest decided) and, optionally, ``qc`` (overrides
        of :data:`THRESHOLDS`); ``output[0]``: ``qc.json``.

    Examples
    --------
    A run of one blurred bar per frame, windows from an untrained rVAE, an
    ensemble of two untrained networks:

    >>> import os, tempfile
    >>> from rotdyn.encode import encode_windows, latents_dataset
    >>> from rotdyn.jobs import job
    >>> from rotdyn.locate import locate
    >>> from rotdyn.networks import build_network, save_model
    >>> from rotdyn.patches import extract_patches, from_frames
    >>> from rotdyn.rvae import RVAE
    >>> from rotdyn.store import write_netcdf
    >>> from rotdyn.training_set import from_simulation
    >>> f = {n: os.path.join(tempfile.mkdtemp(), n) for n in ("movie.nc", "probability.nc", "particles.nc",
    ...                                                   "patches.nc", "latents.nc", "training.nc", "qc.json")}
    >>> bars = np.zeros((6, 1, 32, 32), np.float32)
    >>> bars[:, 0, 14:18, 8:24] = 1.0
    >>> frames = bars[:, 0] + np.random.default_rng(0).normal(0, 0.1, (6, 32, 32)).astype(np.float32)
    >>> write_netcdf(xr.Dataset({"frames": (("frame", "y", "x"), frames)}, coords={"frame": np.arange(6)}),
    ...              f["movie.nc"])
    >>> prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), bars), "variance": (("frame", "class", "y", "x"),
    ...                    np.zeros_like(bars))}, coords={"frame": np.arange(6), "class": [1]})
    >>> write_netcdf(prob, f["probability.nc"])
    >>> particles = locate(prob)
    >>> write_netcdf(particles, f["particles.nc"])
    >>> with xr.open_dataset(f["movie.nc"]) as movie:
    ...     patches = extract_patches(from_frames(movie), particles, size=12, source="frames")
    >>> write_netcdf(patches, f["patches.nc"])
    >>> rvae = RVAE(12, hidden=8)
    >>> write_netcdf(latents_dataset(encode_windows(rvae, patches["patches"].values), patches, rvae), f["latents.nc"])
    >>> write_netcdf(from_simulation("rods", frames=4, size=32, tile=32, count=2), f["training.nc"])
    >>> members = [os.path.join(os.path.dirname(f["qc.json"]), f"member_{i}.pt") for i in (1, 2)]
    >>> for path in members:
    ...     save_model(build_network("dilnet", 2, width=4), path, {"class_names": ["background", "rod"]})
    >>> run(job("qc", input={**{n.split(".")[0]: p for n, p in f.items() if n.endswith(".nc")}, "members": members},
    ...         output=[f["qc.json"]], params={"train": {"val_fraction": 0.25, "seed": 0},
    ...                                        "locate": {"threshold": 0.5}, "kind": "rods", "contrast": "bright"}))
    >>> with open(f["qc.json"]) as file:
    ...     report = json.load(file)
    >>> report["particles_per_frame"], [c["name"] for c in report["checks"] if not c["ok"]]
    ([1, 1, 1, 1, 1, 1], ['reconstruction'])
    """
    report = _report(job)
    for message in report["warnings"]:
        log.warning("%s: %s", report["movie"], message)
    log.info("%s: %d of %d checks passed", report["movie"],
             sum(c["ok"] for c in report["checks"]), len(report["checks"]))
    with atomic_path(job.output[0]) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
