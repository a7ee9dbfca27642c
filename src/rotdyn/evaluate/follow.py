"""Does a latent angle follow a reference orientation? Axis errors and slopes along tracks (tests and benchmarks only).

The reference is an axis (modulo pi): an ellipse fitted to the particle, or
a simulation's true angle. The latent angle is compared as an axis too, so
head and tail do not matter, after one global offset (the rVAE's template
has its own orientation) and with the sign +1 (both counter-clockwise as
displayed).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def wrap_axis(angle):
    """Angles modulo pi, in [-pi/2, pi/2).

    Parameters
    ----------
    angle : array_like
        Angles (rad).

    Returns
    -------
    ndarray
        The same axes (rad, float64), wrapped into [-pi/2, pi/2).

    Examples
    --------
    >>> np.degrees(wrap_axis(np.radians([100.0, -100.0, 45.0]))).round(6).tolist()
    [-80.0, 80.0, 45.0]
    """
    return (np.asarray(angle, np.float64) + np.pi / 2) % np.pi - np.pi / 2


def axis_error(latent, reference) -> float:
    """Median ``|latent - reference - c|`` modulo pi for the best global offset ``c``, in degrees.

    Parameters
    ----------
    latent : array_like
        Latent angles (rad); compared as axes (modulo pi).
    reference : array_like
        Reference axes (rad), same length: ellipse orientation or true angle. Pairs with NaN are left out.

    Returns
    -------
    float
        The median axis error (degrees, 0-90) after the best global offset; NaN when no pair is finite.

    Examples
    --------
    >>> ref = np.radians(np.arange(0.0, 180.0, 10.0))
    >>> round(axis_error(ref + 1.0 + np.pi, ref), 6)   # offset 1 rad, head and tail swapped: no error
    0.0
    """
    d = wrap_axis(np.asarray(latent, np.float64) - np.asarray(reference, np.float64))
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan
    start = np.angle(np.mean(np.exp(2j * d))) / 2  # circular mean of the axes, then the median's optimum near it
    candidates = start + np.radians(np.linspace(-30, 30, 601))
    return math.degrees(min(float(np.median(np.abs(wrap_axis(d - c)))) for c in candidates))


def runs(table: pd.DataFrame, flag: str, min_frames: int = 20, track: str = "track") -> list[pd.DataFrame]:
    """Stretches of consecutive frames of one track where column ``flag`` holds, at least ``min_frames`` long.

    Parameters
    ----------
    table : DataFrame
        One row per particle and frame: ``frame``, the track id column and ``flag``.
    flag : str
        Boolean column: the frames that count.
    min_frames : int
        Shortest stretch kept (frames).
    track : str
        The track id column.

    Returns
    -------
    list of DataFrame
        The rows of each stretch, sorted by frame, track by track.

    Examples
    --------
    >>> t = pd.DataFrame({"track": [1] * 6 + [2] * 3, "frame": [0, 1, 2, 3, 5, 6, 0, 1, 2],
    ...                   "ok": [True, True, False, True, True, True, True, True, True]})
    >>> [run["frame"].tolist() for run in runs(t, "ok", min_frames=2)]
    [[0, 1], [5, 6], [0, 1, 2]]
    """
    out = []
    for _, rows in table.sort_values("frame").groupby(track):
        ok = rows[flag].to_numpy(bool)
        new = np.r_[True, np.diff(rows["frame"].to_numpy()) != 1] | np.r_[True, ~ok[:-1]]
        run_id = np.cumsum(new)
        out += [run for _, run in rows[ok].groupby(run_id[ok]) if len(run) >= min_frames]
    return out


def follow_slope(segments, latent: str = "latent", reference: str = "orientation") -> dict:
    """Slope of the unwrapped latent axis against the unwrapped reference axis, pooled over segments.

    In each segment (one particle over consecutive frames) both axes are
    unwrapped (steps below 90 deg) and centred on their mean; the pooled
    pairs are fitted by total least squares (the major axis of their
    covariance), since both carry noise. 1 means the latent turns exactly
    as the particle does; 0, that it does not turn.

    Parameters
    ----------
    segments : iterable of DataFrame
        Stretches of one particle over consecutive frames (e.g. from :func:`runs`).
    latent : str
        Column of the latent angle (rad, an axis modulo pi after unwrapping twice the angle).
    reference : str
        Column of the reference axis (rad, modulo pi).

    Returns
    -------
    dict
        ``slope``, ``segments``, ``frames`` and ``spread_deg`` (sd of the
        centred reference: how much the particles turned).

    Examples
    --------
    >>> turn = np.radians(np.arange(30) * 18.0)          # a cell turning 18 deg per frame
    >>> seg = pd.DataFrame({"orientation": turn % np.pi, "latent": (0.3 + turn) % (2 * np.pi)})
    >>> round(follow_slope([seg])["slope"], 6)
    1.0
    """
    a, b = [], []
    for seg in segments:
        x, y = (np.unwrap(2 * seg[col].to_numpy(np.float64)) / 2 for col in (reference, latent))
        a.append(x - x.mean())
        b.append(y - y.mean())
    if not a:
        return {"slope": math.nan, "segments": 0, "frames": 0, "spread_deg": math.nan}
    a, b = np.concatenate(a), np.concatenate(b)
    major = np.linalg.eigh(np.cov(a, b))[1][:, -1]
    return {"slope": float(major[1] / major[0]), "segments": len(segments), "frames": len(a),
            "spread_deg": math.degrees(float(a.std()))}
