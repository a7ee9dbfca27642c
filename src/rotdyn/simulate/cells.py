"""Optical movies of swimming rod-shaped bacteria (kind ``cells``).

Spherocylinders (capsules) of varied length that swim along their axis,
turn, and bounce off the frame's edges and each other, imaged as phase
contrast shows them: bright bodies with a dark halo on a mid-grey,
unevenly lit, textured background. The defaults match the real example
``bacteria.mp4`` (particletracker test data): cells about 20 x 6 px whose
bodies rise 1.25 background levels above it, with a dark ring 0.6 body
contrasts below it.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import KW_ONLY, dataclass

import numpy as np
import pandas as pd

from .base import Params, Simulation, param, wrap
from .geometry import axes, capsule_box, segment_distance
from .imaging import film, imaging


@dataclass
class CellParams(Params):
    """The parameters of :func:`simulate_cells`, checked: the one place they are defined.

    Each field's default and allowed range drive the signature of
    :func:`simulate_cells`, its checks and the recorded ``params``; the
    meaning of each is documented in :func:`simulate_cells`.

    Parameters
    ----------
    **params
        Those of :func:`simulate_cells`: the same names, defaults and ranges.

    Raises
    ------
    ValueError
        Naming the parameter whose value is out of range.

    Examples
    --------
    >>> p = CellParams(count=3, length=12)
    >>> p.count, p.length, p.halo, p.contrast
    (3, 12.0, -2.5, 'bright')
    >>> CellParams(length=4.0)
    Traceback (most recent call last):
    ...
    ValueError: length must be > 6.2 and <= inf, got 4.0
    """

    size: int = param(128, 1, integer=True)
    frames: int = param(60, 1, integer=True)
    count: int = param(8, 0, integer=True)
    length: float = param(20.0, "width", strict=True)
    length_sd: float = param(4.0, 0)
    width: float = param(6.2, 0, strict=True)
    noise: float = param(0.02, 0)
    seed: int = param(0, 0, integer=True)
    _: KW_ONLY
    speed: float = param(0.2, 0)
    speed_sd: float = param(0.1, 0)
    turning: float = param(0.03, 0)
    rotation: float = param(0.0)
    diffusion: float = param(0.05, 0)
    min_gap: float = param(1.0, 0)
    line_noise: float = param(0.0, 0)
    line_jitter: float = imaging("line_jitter")
    blur: float = imaging("blur", 1.0)
    psf: str = imaging("psf")
    halo: float = imaging("halo", -2.5)
    halo_width: float = imaging("halo_width", 1.5)
    illumination: float = imaging("illumination", 0.06)
    texture: float = imaging("texture", 0.02)
    texture_length: float = imaging("texture_length", 2.0)
    contrast: str = imaging("contrast")
    level: float = imaging("level", 0.8)

    def validate(self):
        """A frame wide enough for the longest cells: ``size > length + 3 length_sd + 5``.

        Examples
        --------
        >>> CellParams(size=38).size  # cells up to 20 + 3 * 4 = 32 px long
        38
        >>> CellParams(size=37)
        Traceback (most recent call last):
        ...
        ValueError: size=37 leaves no room for cells up to 32 px long (length + 3 length_sd); need size > that + 5
        """
        longest = self.length + 3 * self.length_sd
        if self.size <= longest + 5:
            raise ValueError(f"size={self.size} leaves no room for cells up to {longest:g} px long "
                             "(length + 3 length_sd); need size > that + 5")


class _Cells:
    """The cells' state and the moves that evolve it."""

    def __init__(self, cfg: CellParams, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        n = cfg.count
        self.length = self._lengths(n)
        self.speed = np.abs(rng.normal(cfg.speed, cfg.speed_sd, n))
        self.heading = rng.uniform(-np.pi, np.pi, n)
        self.xy = np.zeros((n, 2))
        placed = np.zeros(n, bool)
        for i in range(n):
            for _ in range(500):
                lo, hi = self.margin(i), cfg.size - 1 - self.margin(i)
                self.xy[i] = rng.uniform(lo, hi, 2)
                if self.fits(i, self.xy[i], self.heading[i], placed):
                    placed[i] = True
                    break
        if not placed.all():
            warnings.warn(f"placed only {placed.sum()} of count={n} cells: the frame is too crowded")
        self.alive = placed

    def _lengths(self, n):
        """Lengths from the normal (length, length_sd), redrawn below width + 0.5 px (truncated)."""
        cfg = self.cfg
        out = self.rng.normal(cfg.length, cfg.length_sd, n)
        while np.any(bad := out < cfg.width + 0.5):
            out[bad] = self.rng.normal(cfg.length, cfg.length_sd, int(bad.sum()))
        return out

    def margin(self, i):
        # Centres this far from every edge keep the whole cell in the frame at any angle.
        return self.length[i] / 2 + 2

    def fits(self, i, xy, heading, others):
        """True if cell ``i`` at ``xy``, ``heading`` is inside the frame and ``min_gap`` clear of ``others``."""
        cfg = self.cfg
        m = self.margin(i)
        if xy.min() < m or xy.max() > cfg.size - 1 - m:
            return False
        others = others.copy()
        others[i] = False
        if not others.any():
            return True
        p, q = axes(xy, heading, (self.length[i] - cfg.width) / 2)
        P, Q = axes(self.xy[others], self.heading[others], (self.length[others] - cfg.width) / 2)
        return bool(segment_distance(p, q, P, Q).min() >= cfg.width + cfg.min_gap)

    def step(self):
        """One frame: every cell turns, then swims ``speed`` along its heading plus diffusion.

        A cell whose move would leave the frame or touch another stays put and
        turns round (heading + pi + a random 0.3 rad), as bacteria reverse.
        """
        cfg, rng = self.cfg, self.rng
        for i in rng.permutation(np.flatnonzero(self.alive)):
            self.heading[i] += cfg.rotation + rng.normal(0, cfg.turning)
            u = np.array([np.cos(self.heading[i]), -np.sin(self.heading[i])])
            proposal = self.xy[i] + self.speed[i] * u + rng.normal(0, cfg.diffusion, 2)
            if self.fits(i, proposal, self.heading[i], self.alive):
                self.xy[i] = proposal
            else:
                self.heading[i] += np.pi + rng.normal(0, 0.3)

    def table(self, frame):
        """Truth rows for the current state."""
        ids = np.flatnonzero(self.alive)
        return pd.DataFrame({
            "frame": np.full(len(ids), frame, dtype=np.int64), "id": ids + 1,
            "x": self.xy[ids, 0], "y": self.xy[ids, 1], "angle": wrap(self.heading[ids]),
            "class": np.ones(len(ids), dtype=np.int64), "length": self.length[ids],
            "width": self.cfg.width, "speed": self.speed[ids],
        })


def _render_cell(clean, labels, instances, row, width):
    """Draw one cell: a capsule with anti-aliased edges and a domed (thicker in the middle) profile."""
    box, s, t = capsule_box(clean.shape, row.x, row.y, row.angle, row.length)
    half, radius = (row.length - width) / 2, width / 2
    d = np.hypot(np.clip(np.abs(s) - half, 0, None), t)
    cover = np.clip(radius - d + 0.5, 0.0, 1.0)
    dome = 0.6 + 0.4 * np.sqrt(np.clip(1 - (d / radius) ** 2, 0.0, 1.0))
    np.maximum(clean[box], cover * dome, out=clean[box])
    inside = d <= radius
    labels[box][inside] = 1
    instances[box][inside] = row.id


def simulate_cells(*args, **kwargs) -> Simulation:
    """Phase-contrast-like movie of swimming rod-shaped bacteria.

    ``count`` cells, spherocylinders of ``width`` and lengths (end to end)
    drawn from a normal of mean ``length`` and sd ``length_sd`` (truncated at
    ``width + 0.5``), each with its own swimming speed. Every frame each cell
    turns by ``rotation`` plus a random angle of sd ``turning``, then moves
    ``speed`` px along its heading plus a random step of sd ``diffusion``;
    a move that would leave the frame or bring it within ``min_gap`` of
    another cell is refused and the cell turns round instead. The body is
    drawn domed (0.6 at the rim to 1 on the axis), then imaged with the
    shared optics (:mod:`rotdyn.simulate.imaging`): halo, PSF, contrast on a
    background ``level``, uneven illumination, texture, white noise. The
    parameters are defined once, by :class:`CellParams`.

    Parameters
    ----------
    size : int
        Frame height and width, px.
    frames : int
        Number of frames.
    count : int
        Number of cells (all present in every frame).
    length, length_sd : float
        Mean and sd of the cells' lengths end to end, px.
    width : float
        Cell width, px.
    noise : float
        Sd of white noise per pixel and frame, in units of the body contrast.
    seed : int
        Seed of ``numpy.random.default_rng`` (cells); the imaging effects use
        streams derived from it.
    speed, speed_sd : float
        Mean and sd of the cells' swimming speeds (each cell keeps its own), px per frame.
    turning : float
        Sd of the random change of heading per frame, rad.
    rotation : float
        Steady change of heading per frame, rad (counter-clockwise > 0;
        circular swimming near a surface).
    diffusion : float
        Sd of the random translation per frame and axis, px.
    min_gap : float
        Smallest edge-to-edge distance between cells, px.
    line_noise, line_jitter : float
        Scan noise (sd of a per-row offset; sd of a per-row shift, px), 0 for a camera.
    blur, psf : float, str
        Optical PSF: Gaussian sd (or Airy central lobe sd), px.
    halo, halo_width : float
        Phase-contrast rim, signed, relative to the body (negative: a dark
        rim), and its width, px; the default -2.5 leaves, after the PSF, a
        dark ring about 0.6 body contrasts below the background, as in the
        real example.
    illumination : float
        Uneven illumination: the image is scaled by a smooth field within
        ``1 +- illumination``.
    texture, texture_length : float
        Static correlated background noise: sd (body units) and correlation length, px.
    contrast : "bright" or "dark"
        Bright bodies on the background, or dark ones (the image reflected
        about the background).
    level : float
        Background intensity, in units of the body contrast.

    Returns
    -------
    Simulation
        ``class_names = ["background", "cell"]``. Truth ``x, y`` is the
        capsule centre (the centroid of the mask), ``angle`` the swimming
        direction (the body itself is head-tail symmetric); extra columns
        ``length, width, speed``.

    Examples
    --------
    >>> sim = simulate_cells(size=64, frames=3, count=3, length=14, length_sd=2, seed=0)
    >>> sim.frames.shape, sim.class_names, sorted(sim.truth.id.unique().tolist())
    ((3, 64, 64), ['background', 'cell'], [1, 2, 3])
    >>> bg = sim.frames[0][sim.labels[0] == 0]
    >>> bool(abs(np.median(bg) - 0.8) < 0.1), bool(sim.frames[0][sim.labels[0] == 1].mean() > 1.3)
    (True, True)
    """
    return render_cells(CellParams(*args, **kwargs))


def render_cells(cfg: CellParams) -> Simulation:
    """The movie of :func:`simulate_cells` for checked parameters ``cfg``.

    Parameters
    ----------
    cfg : CellParams
        The checked table.

    Returns
    -------
    Simulation
        The movie, its masks and truth; ``params`` is ``cfg`` with ``kind``.

    Examples
    --------
    >>> cfg = CellParams(size=48, frames=2, count=2, length=14, length_sd=2)
    >>> sim = render_cells(cfg)
    >>> sim.params == {"kind": "cells", **cfg.as_dict()}
    True
    >>> bool(np.array_equal(sim.frames, simulate_cells(size=48, frames=2, count=2, length=14, length_sd=2).frames))
    True
    """
    world = _Cells(cfg, np.random.default_rng(cfg.seed))
    return film(world, cfg, lambda clean, labels, instances, row: _render_cell(clean, labels, instances, row,
                                                                                cfg.width),
                "cells", ["background", "cell"])


# The signature is CellParams' own, so help() and the keyword checks show every parameter and default.
simulate_cells.__signature__ = inspect.signature(CellParams).replace(return_annotation="Simulation")
