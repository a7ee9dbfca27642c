"""Bright-field movies of colloidal spheres in Brownian motion (kind ``spheres``).

Hard discs that diffuse, each a little out of focus by its own amount,
imaged dark on a grey, unevenly lit, textured background. The defaults match
the real example ``bulk_water`` (trackpy-examples: 1 um latex spheres at
2.85 px per um, 24 frames per second): about 35 spheres per 128 x 128 px,
many of them out of focus, the focused ones dark spots 3-4 px across about
20 % below the background, on a blotchy, slightly uneven background.
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import KW_ONLY, dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from .base import Params, Simulation, param
from .imaging import film, imaging


@dataclass
class SphereParams(Params):
    """The parameters of :func:`simulate_spheres`, checked: the one place they are defined.

    Each field's default and allowed range drive the signature of
    :func:`simulate_spheres`, its checks and the recorded ``params``; the
    meaning of each is documented in :func:`simulate_spheres`.

    Parameters
    ----------
    **params
        Those of :func:`simulate_spheres`: the same names, defaults and ranges.

    Raises
    ------
    ValueError
        Naming the parameter whose value is out of range.

    Examples
    --------
    >>> p = SphereParams(diameter=5)
    >>> p.diameter, p.contrast, p.level
    (5.0, 'dark', 3.4)
    >>> SphereParams(diameter=0.5)
    Traceback (most recent call last):
    ...
    ValueError: diameter must be >= 1.0 and <= inf, got 0.5
    """

    size: int = param(128, 1, integer=True)
    frames: int = param(60, 1, integer=True)
    count: int = param(35, 0, integer=True)
    diameter: float = param(2.85, 1.0)
    diffusion: float = param(0.55, 0)
    noise: float = param(0.02, 0)
    seed: int = param(0, 0, integer=True)
    _: KW_ONLY
    defocus: float = param(2.0, 0)
    focus_depth: float | None = param(None, 0, optional=True)
    min_gap: float = param(0.0, 0)
    line_noise: float = param(0.0, 0)
    line_jitter: float = imaging("line_jitter")
    blur: float = imaging("blur", 0.8)
    psf: str = imaging("psf")
    halo: float = imaging("halo", 0.0)
    halo_width: float = imaging("halo_width", 1.0)
    illumination: float = imaging("illumination", 0.03)
    texture: float = imaging("texture", 0.04)
    texture_length: float = imaging("texture_length", 3.0)
    contrast: str = imaging("contrast", "dark")
    level: float = imaging("level", 3.4)

    def validate(self):
        """A frame wider than a sphere and 3 px.

        Examples
        --------
        >>> SphereParams(size=5, diameter=2.5)
        Traceback (most recent call last):
        ...
        ValueError: size=5 leaves no room for spheres of diameter 2.5
        """
        if self.size <= self.diameter + 3:
            raise ValueError(f"size={self.size} leaves no room for spheres of diameter {self.diameter}")

    @property
    def low(self):
        """The lowest centre coordinate, px: centres stay this far inside every edge, so each sphere is whole.

        Returns
        -------
        float
            ``diameter / 2 + 1``.

        Examples
        --------
        >>> SphereParams(diameter=4).low
        3.0
        """
        return self.diameter / 2 + 1

    @property
    def high(self):
        """The highest centre coordinate, px: ``size - 1 - low``.

        Returns
        -------
        float

        Examples
        --------
        >>> SphereParams(size=64, diameter=4).high
        60.0
        """
        return self.size - 1 - self.low


def _depth(cfg) -> float:
    """The defocus (sd, px) beyond which a sphere is drawn but not labelled: ``focus_depth``, or none (inf)."""
    return math.inf if cfg.focus_depth is None else cfg.focus_depth


class _Spheres:
    """The spheres' positions and the Brownian moves that evolve them."""

    def __init__(self, cfg: SphereParams, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.xy = np.zeros((0, 2))
        for _ in range(cfg.count):
            for _ in range(500):
                xy = rng.uniform(cfg.low, cfg.high, 2)
                if self.clear(xy, self.xy):
                    self.xy = np.vstack([self.xy, xy])
                    break
        if len(self.xy) < cfg.count:
            warnings.warn(f"placed only {len(self.xy)} of count={cfg.count} spheres: the frame is too crowded")
        self.defocus = np.abs(rng.normal(0, cfg.defocus, len(self.xy)))

    def clear(self, xy, others):
        """True if a sphere at ``xy`` keeps ``min_gap`` from every sphere of ``others``."""
        if not len(others):
            return True
        return bool(np.hypot(*(others - xy).T).min() >= self.cfg.diameter + self.cfg.min_gap)

    def step(self):
        """One frame: a Gaussian step of sd ``diffusion`` per axis, reflected at the edges; overlaps refused."""
        cfg = self.cfg
        for i in self.rng.permutation(len(self.xy)):
            xy = self.xy[i] + self.rng.normal(0, cfg.diffusion, 2)
            xy = np.where(xy < cfg.low, 2 * cfg.low - xy, xy)
            xy = np.where(xy > cfg.high, 2 * cfg.high - xy, xy)
            others = np.delete(self.xy, i, axis=0)
            if np.all((xy >= cfg.low) & (xy <= cfg.high)) and self.clear(xy, others):
                self.xy[i] = xy

    def table(self, frame):
        n = len(self.xy)
        return pd.DataFrame({
            "frame": np.full(n, frame, dtype=np.int64), "id": np.arange(1, n + 1, dtype=np.int64),
            "x": self.xy[:, 0], "y": self.xy[:, 1], "angle": np.full(n, np.nan),
            "class": (self.defocus <= _depth(self.cfg)).astype(np.int64), "diameter": self.cfg.diameter,
            "defocus": self.defocus,
        })


def _render_sphere(clean, labels, instances, row, radius, focus_depth=math.inf):
    """Draw one sphere: an anti-aliased disc, blurred by its own defocus (sd px), and its mask (if in focus)."""
    reach = int(np.ceil(radius + 4 * row.defocus + 2))
    r0, c0 = int(round(row.y)) - reach, int(round(row.x)) - reach
    yy, xx = np.mgrid[r0:r0 + 2 * reach + 1, c0:c0 + 2 * reach + 1]
    r = np.hypot(xx - row.x, yy - row.y)
    disc = np.clip(radius - r + 0.5, 0.0, 1.0)
    if row.defocus > 0:
        disc = ndimage.gaussian_filter(disc, row.defocus, mode="constant")
    inside = (yy >= 0) & (yy < clean.shape[0]) & (xx >= 0) & (xx < clean.shape[1])
    rows, cols = yy[inside], xx[inside]
    clean[rows, cols] += disc[inside]
    if row.defocus > focus_depth:  # out of the focal plane: drawn, but background to the labels
        return
    mask = inside & (r <= radius)
    labels[yy[mask], xx[mask]] = 1
    instances[yy[mask], xx[mask]] = row.id


def simulate_spheres(*args, **kwargs) -> Simulation:
    """Bright-field-like movie of colloidal spheres diffusing in a liquid.

    ``count`` spheres of ``diameter`` take independent Gaussian steps of sd
    ``diffusion`` px per axis per frame (mean squared displacement
    ``2 n diffusion^2`` in 2-D after ``n`` frames, away from edges and
    neighbours), reflected at the frame's edges; a step that would bring two
    spheres closer than ``diameter + min_gap`` is refused (hard spheres).
    Each sphere lies out of focus by its own amount: its disc is blurred by
    a Gaussian of sd ``|N(0, defocus)|`` px, which spreads it and lowers its
    depth at the same integrated contrast. The picture then goes through
    the shared optics (:mod:`rotdyn.simulate.imaging`); by default the
    spheres are dark on a background ``level`` of 3.4 disc contrasts, so a
    focused sphere's spot (diameter 2.85 px, PSF sd 0.8 px) dips about 20 %
    below it, as in the real bright-field example. The parameters are defined
    once, by :class:`SphereParams`.

    Parameters
    ----------
    size : int
        Frame height and width, px.
    frames : int
        Number of frames.
    count : int
        Number of spheres (all present in every frame).
    diameter : float
        Sphere diameter, px (>= 1).
    diffusion : float
        Sd of each step per axis and frame, px (sqrt(2 D dt) for a diffusion
        coefficient D).
    noise : float
        Sd of white noise per pixel and frame, in units of a disc's contrast.
    seed : int
        Seed of ``numpy.random.default_rng`` (spheres); the imaging effects
        use streams derived from it.
    defocus : float
        Sd of the spheres' extra blur from lying out of focus, px.
    focus_depth : float or None
        Spheres blurred by more than this (px) are drawn but are background
        to the labels (truth ``class`` 0): out of the focal plane, not
        particles to find. None: every sphere is a particle.
    min_gap : float
        Smallest edge-to-edge distance between spheres, px.
    line_noise, line_jitter : float
        Scan noise (sd of a per-row offset; sd of a per-row shift, px), 0 for a camera.
    blur, psf : float, str
        Optical PSF: Gaussian sd (or Airy central lobe sd), px.
    halo, halo_width : float
        Rim around each sphere, signed, relative to the body (positive with
        dark contrast: a bright ring around a dark sphere), and its width, px.
    illumination : float
        Uneven illumination: the image is scaled by a smooth field within
        ``1 +- illumination``.
    texture, texture_length : float
        Static correlated background noise: sd and correlation length, px.
    contrast : "bright" or "dark"
        Dark spheres on the background (bright field), or bright ones.
    level : float
        Background intensity, in units of a disc's contrast.

    Returns
    -------
    Simulation
        ``class_names = ["background", "sphere"]``. Truth ``x, y`` is the
        sphere centre; ``angle`` is NaN (a sphere has no orientation);
        ``class`` 0 for spheres beyond ``focus_depth``; extra columns
        ``diameter`` and ``defocus`` (px).

    Examples
    --------
    >>> sim = simulate_spheres(size=48, frames=4, count=5, seed=1)
    >>> sim.frames.shape, sim.class_names, len(sim.truth)
    ((4, 48, 48), ['background', 'sphere'], 20)
    >>> f = sim.frames[0]
    >>> bool(f[sim.labels[0] == 1].mean() < f[sim.labels[0] == 0].mean() - 0.2)  # dark spheres
    True
    """
    return render_spheres(SphereParams(*args, **kwargs))


def render_spheres(cfg: SphereParams) -> Simulation:
    """The movie of :func:`simulate_spheres` for checked parameters ``cfg``.

    Parameters
    ----------
    cfg : SphereParams
        The checked table.

    Returns
    -------
    Simulation
        The movie, its masks and truth; ``params`` is ``cfg`` with ``kind``.

    Examples
    --------
    >>> cfg = SphereParams(size=24, frames=2, count=3)
    >>> sim = render_spheres(cfg)
    >>> sim.params == {"kind": "spheres", **cfg.as_dict()}
    True
    >>> bool(np.array_equal(sim.frames, simulate_spheres(size=24, frames=2, count=3).frames))
    True
    """
    world = _Spheres(cfg, np.random.default_rng(cfg.seed))
    return film(world, cfg, lambda clean, labels, instances, row: _render_sphere(clean, labels, instances, row,
                                                                                  cfg.diameter / 2, _depth(cfg)),
                "spheres", ["background", "sphere"])


# The signature is SphereParams' own, so help() and the keyword checks show every parameter and default.
simulate_spheres.__signature__ = inspect.signature(SphereParams).replace(return_annotation="Simulation")
