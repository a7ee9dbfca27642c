"""Synthetic latents and timing of :func:`rotdyn.kde.kde_maps` (benchmarks and tests only)."""
from __future__ import annotations

import time

import numpy as np
import xarray as xr

from ..kde import kde_maps


def synthetic_latents(n_frames: int = 300, per_frame: int = 200, k: int = 2, seed: int = 0) -> xr.Dataset:
    """A ``latents.nc``-like dataset of ``n_frames * per_frame`` random particles.

    Angles cluster at six orientation variants 60 deg apart (sd 0.05 rad),
    ``dx``, ``dy`` and the ``k`` content latents are normal.

    Parameters
    ----------
    n_frames, per_frame : int
        Frames, and particles in each.
    k : int
        Content latents ``z(particle, latent)``, labelled 1..k.
    seed : int
        Of the random generator.

    Returns
    -------
    xr.Dataset
        ``angle``, ``dx``, ``dy``, ``z``, ``frame`` on dimension ``particle``.

    Examples
    --------
    >>> lat = synthetic_latents(3, 4, k=1)
    >>> lat.sizes["particle"], lat["frame"].values.tolist()
    (12, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    >>> bool(np.all(np.abs(lat["angle"]) <= np.pi))
    True
    """
    rng = np.random.default_rng(seed)
    n = n_frames * per_frame
    variants = -np.pi + np.pi / 3 * rng.integers(0, 6, n) + 0.25
    angle = np.mod(variants + rng.normal(0, 0.05, n) + np.pi, 2 * np.pi) - np.pi
    return xr.Dataset(
        {"angle": ("particle", angle), "dx": ("particle", rng.normal(0, 0.5, n)),
         "dy": ("particle", rng.normal(0, 0.5, n)), "z": (("particle", "latent"), rng.normal(0, 1, (n, k))),
         "frame": ("particle", np.repeat(np.arange(n_frames), per_frame))},
        coords={"particle": np.arange(n), "latent": np.arange(1, k + 1)})


def time_kde(n_frames: int = 300, per_frame: int = 200, repeat: int = 3, seed: int = 0, **kwargs) -> dict:
    """Wall time of :func:`rotdyn.kde.kde_maps` on :func:`synthetic_latents` (best of ``repeat``).

    Parameters
    ----------
    n_frames, per_frame, seed
        Of :func:`synthetic_latents`.
    repeat : int
        Runs timed; the best is reported.
    **kwargs
        Passed to :func:`rotdyn.kde.kde_maps` (``grid_points``, ``bandwidth``, ...).

    Returns
    -------
    dict
        ``seconds`` (best), ``n_frames``, ``per_frame``, ``particles``,
        ``variables``, ``grid_points``.

    Examples
    --------
    >>> t = time_kde(5, 10, repeat=1, grid_points=31)
    >>> t["particles"], t["variables"], t["grid_points"], t["seconds"] > 0
    (50, 'angle dx dy z1 z2', 31, True)
    """
    latents = synthetic_latents(n_frames, per_frame, seed=seed)
    frames = np.arange(n_frames)
    best = np.inf
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        out = kde_maps(latents, frames, **kwargs)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "n_frames": n_frames, "per_frame": per_frame, "particles": n_frames * per_frame,
            "variables": out.attrs["variables"], "grid_points": int(out.attrs["grid_points"])}
