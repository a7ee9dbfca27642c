"""HS-AFM-like movies of protein nanorods on a lattice (kind ``rods``).

Head-tail asymmetric capsules aligned with a three-fold substrate lattice (six
orientation variants), diffusing, flipping, born and dying, some in touching
pairs, with a symmetry-lowering transition that empties one lattice direction;
AFM noise (white noise, scan-line offsets, a slowly drifting tilt). With
``placement="independent"`` the rods ignore each other, so they overlap and cross.
"""
from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import KW_ONLY, dataclass

import numpy as np
import pandas as pd

from .base import Params, Simulation, param, wrap
from .geometry import axes, capsule_box, segment_distance
from .imaging import imaging, optics, scan

@dataclass
class RodParams(Params):
    """The parameters of :func:`simulate_rods`, checked: the one place they are defined.

    Each field's default and allowed range drive the signature of
    :func:`simulate_rods`, the checks made here, and the ``params`` recorded
    in the :class:`Simulation`. The meaning of each field is documented in
    :func:`simulate_rods`. Creating an instance checks and converts every
    value (ints for counts, floats otherwise) and fills the None defaults
    (``birth_rate = death_rate * count``, ``line_noise = 0.5 * noise``).

    Parameters
    ----------
    **params
        Those of :func:`simulate_rods`: the same names, defaults and ranges.

    Raises
    ------
    ValueError
        Naming the parameter and its value when a value is out of range;
        TypeError for an unknown parameter name.

    Examples
    --------
    >>> p = RodParams(count=10, death_rate=0.02, width=4)
    >>> p.count, p.width, p.birth_rate, p.line_noise
    (10, 4.0, 0.2, 0.075)
    >>> RodParams(length=3.0)
    Traceback (most recent call last):
    ...
    ValueError: length must be >= 5.0 and <= inf, got 3.0
    """

    size: int = param(128, 1, integer=True)
    frames: int = param(60, 1, integer=True)
    count: int = param(24, 0, integer=True)
    length: float = param(16.0, "width")
    width: float = param(5.0, 0, strict=True)
    noise: float = param(0.15, 0)
    transition_frame: int = param(30, 0, integer=True)
    seed: int = param(0, 0, integer=True)
    _: KW_ONLY
    lattice_angle: float = param(0.25)
    angle_jitter: float = param(0.05, 0)
    angle_memory: float = param(0.9, 0, 1)
    empty_direction: int = param(0, 0, 2, integer=True)
    diffusion: float = param(0.3, 0)
    flip_rate: float = param(0.01, 0, 1)
    birth_rate: float | None = param(None, 0, unset=lambda p: p["death_rate"] * p["count"])
    death_rate: float = param(0.01, 0, 1)
    pair_fraction: float = param(0.3, 0, 1)
    pair_gap: float = param(0.75, "min_gap")
    min_gap: float = param(0.5, 0)
    touch_gap: float = param(2.0, 0)
    asymmetry: float = param(0.3, 0, 1)
    line_noise: float | None = param(None, 0, unset=lambda p: 0.5 * p["noise"])
    tilt: float = param(0.3, 0)
    tilt_drift: float = param(0.05, 0)
    placement: str = param("lattice", choices=("lattice", "independent"))
    blur: float = imaging("blur")
    psf: str = imaging("psf")
    halo: float = imaging("halo")
    halo_width: float = imaging("halo_width")
    illumination: float = imaging("illumination")
    texture: float = imaging("texture")
    texture_length: float = imaging("texture_length")
    line_jitter: float = imaging("line_jitter")
    contrast: str = imaging("contrast")
    level: float = imaging("level")

    def validate(self):
        """A frame wide enough for a whole rod at any angle: ``size > length + 5``.

        Examples
        --------
        >>> RodParams(size=22).size
        22
        >>> RodParams(size=21)
        Traceback (most recent call last):
        ...
        ValueError: size=21 leaves no room for rods of length 16.0 (need size > length + 5)
        """
        if self.size - 1 - 2 * self.margin <= 0:
            raise ValueError(f"size={self.size} leaves no room for rods of length {self.length} "
                             "(need size > length + 5)")

    @property
    def half_core(self):
        """Half the length of the capsule's core segment, ``(length - width) / 2``, px.

        Returns
        -------
        float

        Examples
        --------
        >>> RodParams(length=16, width=5).half_core
        5.5
        """
        return (self.length - self.width) / 2

    @property
    def margin(self):
        """How far rod centres keep from every edge, px: the whole rod stays in the frame at any angle.

        Returns
        -------
        float
            ``length / 2 + 2``.

        Examples
        --------
        >>> RodParams(length=16).margin
        10.0
        """
        return self.length / 2 + 2

    @property
    def pair_prob(self):
        """Probability ``q`` that a birth is a pair, so that pairs hold ``2q / (1 + q) = pair_fraction`` of the rods.

        Returns
        -------
        float

        Examples
        --------
        >>> q = RodParams(pair_fraction=0.5).pair_prob
        >>> round(q, 4), round(2 * q / (1 + q), 6)
        (0.3333, 0.5)
        """
        return self.pair_fraction / (2 - self.pair_fraction)

    def allowed(self, after_transition):
        """Variants (0..5) that may hold rods.

        Parameters
        ----------
        after_transition : bool
            From ``transition_frame`` on, lattice direction
            ``empty_direction`` (variants k and k + 3) holds none.

        Returns
        -------
        list of int

        Examples
        --------
        >>> p = RodParams(empty_direction=1)
        >>> p.allowed(False), p.allowed(True)
        ([0, 1, 2, 3, 4, 5], [0, 2, 3, 5])
        """
        if not after_transition:
            return list(range(6))
        return [k for k in range(6) if k % 3 != self.empty_direction]


@dataclass
class _Group:
    """A single rod or a rigid side-by-side pair that moves as one."""

    ids: tuple
    x: float
    y: float
    variant: int
    offset: float  # current angle jitter around the variant angle


class _RodWorld:
    """The rods' state and the Monte Carlo moves that evolve it."""

    def __init__(self, cfg: RodParams, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.groups: list[_Group] = []
        self.next_id = 1

    def geometry(self, g: _Group):
        """Centres ``(n, 2)`` and common angle of the rods of group ``g``."""
        a = self.cfg.lattice_angle + g.variant * np.pi / 3 + g.offset
        if len(g.ids) == 1:
            return np.array([[g.x, g.y]]), a
        # Partners sit either side of the group centre along the normal (sin a, cos a).
        h = (self.cfg.width + self.cfg.pair_gap) / 2
        n = np.array([np.sin(a), np.cos(a)])
        return np.array([[g.x, g.y]]) + np.array([[-h], [h]]) * n, a

    def rods(self):
        """All rods: centres ``(N, 2)``, angles ``(N,)``, owning group index ``(N,)``."""
        cen, ang, own = [np.zeros((0, 2))], [np.zeros(0)], [np.zeros(0, int)]
        for i, g in enumerate(self.groups):
            c, a = self.geometry(g)
            cen.append(c), ang.append(np.full(len(c), a)), own.append(np.full(len(c), i))
        return np.concatenate(cen), np.concatenate(ang), np.concatenate(own)

    def fits(self, g, others_c, others_a):
        """True if group ``g`` lies inside the margins and (lattice placement) ``min_gap`` clear of the other rods."""
        cfg = self.cfg
        c, a = self.geometry(g)
        if c.min() < cfg.margin or c.max() > cfg.size - 1 - cfg.margin:
            return False
        if cfg.placement == "independent":
            return True
        # Capsules whose centres are >= length + min_gap apart cannot collide: skip them.
        dist = np.hypot(*(others_c[None] - c[:, None]).transpose(2, 0, 1)).min(0)
        near = dist < cfg.length + cfg.min_gap
        if not near.any():
            return True
        p, q = axes(c, np.full(len(c), a), cfg.half_core)
        P, Q = axes(others_c[near], others_a[near], cfg.half_core)
        d = segment_distance(p[:, None], q[:, None], P[None], Q[None])
        return bool(d.min() >= cfg.width + cfg.min_gap)

    def add(self, variants, pair, attempts=100):
        """Place a new single or pair at a random free spot; False if none found."""
        cfg, rng = self.cfg, self.rng
        cen, ang, _ = self.rods()
        for _ in range(attempts):
            x, y = rng.uniform(cfg.margin, cfg.size - 1 - cfg.margin, 2)
            g = _Group((0, 0) if pair else (0,), x, y, int(rng.choice(variants)),
                       rng.normal(0, cfg.angle_jitter))
            if self.fits(g, cen, ang):
                g.ids = tuple(range(self.next_id, self.next_id + len(g.ids)))
                self.next_id += len(g.ids)
                self.groups.append(g)
                return True
        return False

    def populate(self, count, variants):
        """Initial rods: pairs first (they need the most room), then singles."""
        pairs = int(round(self.cfg.pair_fraction * count / 2))
        sizes = [True] * pairs + [False] * (count - 2 * pairs)
        # Variants dealt out evenly, so every allowed variant is populated from the start.
        dealt = self.rng.permutation(np.resize(variants, len(sizes)))
        placed = sum((1 + pair) * self.add([v], pair, 500) for pair, v in zip(sizes, dealt))
        if placed < 0.9 * count:
            warnings.warn(f"placed only {placed} of count={count} rods: the frame is too crowded")

    def switch_direction(self, variants):
        """Transition: groups in the emptied direction turn in place to an allowed variant.

        A group with no room to turn dies and is replaced by a birth (same
        size) in an allowed variant. Returns the number of groups replaced.
        """
        lost = []
        for i, g in enumerate(self.groups):
            if g.variant in variants:
                continue
            cen, ang, own = self.rods()
            keep = own != i
            for v in self.rng.permutation(variants):
                if self.fits(_Group(g.ids, g.x, g.y, int(v), g.offset), cen[keep], ang[keep]):
                    g.variant = int(v)
                    break
            else:
                lost.append(g)
        self.groups = [g for g in self.groups if not any(g is x for x in lost)]
        for g in lost:
            self.add(variants, pair=len(g.ids) == 2)
        return len(lost)

    def step(self, variants):
        """One frame: deaths, births, diffusion and angle wobble, variant flips."""
        cfg, rng = self.cfg, self.rng
        self.groups = [g for g in self.groups if rng.random() >= cfg.death_rate]
        # The death_rate * (count - n) term pulls the number of rods n back toward count.
        n = sum(len(g.ids) for g in self.groups)
        rate = max(cfg.birth_rate + cfg.death_rate * (cfg.count - n), 0.0)
        q = cfg.pair_prob
        for _ in range(rng.poisson(rate / (1 + q))):
            self.add(variants, pair=bool(rng.random() < q))
        cen, ang, own = self.rods()
        for i in rng.permutation(len(self.groups)):
            g, mine = self.groups[i], own == i
            # AR(1) wobble keeps the jitter's stationary sd at angle_jitter.
            m = cfg.angle_memory
            offset = m * g.offset + math.sqrt(1 - m * m) * rng.normal(0, cfg.angle_jitter)
            dx, dy = rng.normal(0, cfg.diffusion, 2)
            self._try(i, _Group(g.ids, g.x + dx, g.y + dy, g.variant, offset), cen, ang, mine)
            if rng.random() < cfg.flip_rate and len(variants) > 1:
                g = self.groups[i]
                v = int(rng.choice([k for k in variants if k != g.variant]))
                self._try(i, _Group(g.ids, g.x, g.y, v, g.offset), cen, ang, mine)

    def _try(self, i, proposal, cen, ang, mine):
        """Accept ``proposal`` for group ``i`` if it fits; update the rod arrays in place."""
        if self.fits(proposal, cen[~mine], ang[~mine]):
            self.groups[i] = proposal
            cen[mine], ang[mine] = self.geometry(proposal)

    def table(self, frame):
        """Truth rows for the current state."""
        cfg = self.cfg
        cen, ang, own = self.rods()
        ids = np.array([i for g in self.groups for i in g.ids], dtype=np.int64)
        variant = np.array([g.variant for g in self.groups], dtype=np.int64)[own]
        p, q = axes(cen, ang, cfg.half_core)
        d = segment_distance(p[:, None], q[:, None], p[None], q[None])
        np.fill_diagonal(d, np.inf)
        touching = (d < cfg.width + cfg.touch_gap).any(1) if len(d) else np.zeros(0, bool)
        return pd.DataFrame({
            "frame": np.full(len(ids), frame, dtype=np.int64), "id": ids,
            "x": cen[:, 0], "y": cen[:, 1], "angle": wrap(ang),
            "class": np.ones(len(ids), dtype=np.int64), "variant": variant,
            "touching": touching, "length": cfg.length, "width": cfg.width,
        })


def _render_rod(clean, labels, instances, row, length, width, asymmetry):
    """Draw one rod into the frame's arrays, only inside its bounding box.

    The capsule edge is a 1-px linear ramp (approximate area coverage), so
    sub-pixel positions change the image. Height rises from ``1 - asymmetry``
    at the tail toward the head, where a Gaussian knob tops it near 1: the
    head-tail asymmetry that makes the full [-pi, pi) angle identifiable.
    Where rods overlap, the image keeps the higher one and the masks the rod
    drawn last (on top). Returns the rod's mask area, px.
    """
    box, s, t = capsule_box(clean.shape, row.x, row.y, row.angle, length)
    half, radius = (length - width) / 2, width / 2
    d = np.hypot(np.clip(np.abs(s) - half, 0, None), t)  # distance to the core segment
    cover = np.clip(radius - d + 0.5, 0.0, 1.0)
    ramp = np.clip(s / length + 0.5, 0.0, 1.0)
    knob = np.exp(-((s - half) ** 2 + t ** 2) / (2 * (radius / 2) ** 2))
    height = 1 - asymmetry + 0.5 * asymmetry * (ramp + knob)
    np.maximum(clean[box], cover * height, out=clean[box])
    inside = d <= radius
    labels[box][inside] = 1
    instances[box][inside] = row.id
    return int(inside.sum())


def _afm_noise(rng, shape, noise, line_noise, tilt, tilt_drift):
    """White noise + one random offset per scan line + a plane whose direction drifts slowly."""
    T, H, W = shape
    out = rng.standard_normal(shape, dtype=np.float32) * np.float32(noise)
    out += rng.standard_normal((T, H, 1), dtype=np.float32) * np.float32(line_noise)
    theta = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, tilt_drift, T))
    gx = np.linspace(-0.5, 0.5, W, dtype=np.float32)
    gy = np.linspace(-0.5, 0.5, H, dtype=np.float32)
    slope_x = (tilt * np.cos(theta)).astype(np.float32)[:, None, None]
    slope_y = (tilt * np.sin(theta)).astype(np.float32)[:, None, None]
    out += slope_x * gx[None, None, :] + slope_y * gy[None, :, None]
    return out


def simulate_rods(*args, **kwargs) -> Simulation:
    """HS-AFM-like movie of head-tail asymmetric nanorods on a three-fold lattice.

    Rods are capsules (``length`` end to end, ``width`` across) whose head
    directions follow six variants ``lattice_angle + k*pi/3`` (k = 0..5) with
    jitter. From ``transition_frame`` on, lattice direction ``empty_direction``
    (variants k and k+3) holds no rod: its rods turn to an allowed variant or,
    where that collides, die and are replaced by births. With ``placement``
    ``"lattice"`` rods never overlap; with ``"independent"`` they are placed
    and moved ignoring each other, so they overlap and cross (pairs stay
    side by side). Every rod stays whole in the frame: centres keep
    ``length/2 + 2`` px from the edges. The imaging effects of
    :mod:`rotdyn.simulate.imaging` are off by default (the AFM look is the
    noise, scan lines and tilt below).

    The parameters, their defaults and allowed ranges are defined once, by
    :class:`RodParams`; a value out of range raises ValueError naming it, an
    unknown name TypeError.

    Parameters
    ----------
    size : int
        Frame height and width, px.
    frames : int
        Number of frames.
    count : int
        Rods placed at the start (variants dealt out evenly); births are
        Poisson with mean ``birth_rate + death_rate * (count - n)`` per frame
        for ``n`` rods present, which holds the mean count near ``count``
        (exactly, with the default ``birth_rate``).
    length, width : float
        Capsule length end to end and width, px (``length >= width``).
    noise : float
        Sd of white Gaussian noise, relative to the rod height (about 1).
    transition_frame : int
        First frame without rods in ``empty_direction``; ``>= frames`` means none.
    seed : int
        Seed of ``numpy.random.default_rng``.
    lattice_angle : float
        Angle of variant 0, rad.
    angle_jitter : float
        Sd of a rod's angle around its variant angle, rad.
    angle_memory : float
        Frame-to-frame correlation of the jitter (AR(1)): 0 independent
        each frame, 1 frozen at birth.
    empty_direction : int
        Lattice direction (0, 1 or 2) emptied at the transition.
    diffusion : float
        Sd of the translation per frame and axis, px.
    flip_rate : float
        Probability per rod (pair) per frame of jumping to another allowed variant.
    birth_rate : float or None
        Mean rods born per frame when ``count`` rods are present;
        None = ``death_rate * count`` (births balance deaths).
    death_rate : float
        Probability per rod (pair) per frame of dying.
    pair_fraction : float
        Fraction of rods in touching side-by-side pairs (pairs move rigidly).
    pair_gap : float
        Edge-to-edge gap between the partners of a pair, px
        (centre distance ``width + pair_gap``).
    min_gap : float
        Smallest edge-to-edge distance allowed between rods, px.
    touch_gap : float
        ``touching`` is True for a rod with another within this edge-to-edge distance, px.
    asymmetry : float
        Head-tail contrast: tail height ``1 - asymmetry``, head knob about 1.
    line_noise : float or None
        Sd of the per-scan-line offsets; None = ``0.5 * noise``.
    tilt : float
        Background plane: change across the frame along its slope direction.
    tilt_drift : float
        Sd per frame of the random walk of the plane's slope direction, rad.
    placement : "lattice" or "independent"
        ``lattice``: rods keep ``min_gap`` apart; ``independent``: positions
        ignore other rods, so rods overlap and cross (the masks give a pixel
        to the rod drawn last, the image shows the higher rod).
    blur, psf, halo, halo_width, illumination, texture, texture_length, line_jitter, contrast, level
        The shared imaging effects (:mod:`rotdyn.simulate.imaging`), all
        off by default; ``contrast="dark"`` gives ``level - height``.

    Returns
    -------
    Simulation
        ``class_names = ["background", "rod"]``. Truth ``x, y`` is the
        capsule centre, i.e. the centroid of the symmetric body (the mask);
        the head knob moves the *intensity* centroid toward the head. Extra
        truth columns: ``variant, touching, length, width`` and ``visible``
        (fraction of the rod's mask not covered by rods drawn on top; 1 with
        lattice placement).


    References
    ----------
    A stand-in for the nanorod movies of paper 000: S. V. Kalinin, S. Zhang,
    M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo, M. Ziatdinov,
    "Disentangling Rotational Dynamics and Ordering Transitions in a System of
    Self-Organizing Protein Nanorods via Rotationally Invariant Latent
    Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914

    Examples
    --------
    >>> sim = simulate_rods(size=48, frames=3, count=4, transition_frame=2, seed=1)
    >>> sim.frames.shape, sim.params["birth_rate"], sim.params["line_noise"]
    ((3, 48, 48), 0.04, 0.075)
    >>> post = sim.truth[sim.truth.frame == 2]  # from the transition on, direction 0 is empty
    >>> bool((post.variant % 3 != 0).all()), bool((sim.instances > 0).sum() == (sim.labels == 1).sum())
    (True, True)
    """
    return render_rods(RodParams(*args, **kwargs))


def render_rods(cfg: RodParams) -> Simulation:
    """The movie of :func:`simulate_rods` for checked parameters ``cfg``.

    Parameters
    ----------
    cfg : RodParams
        The checked table.

    Returns
    -------
    Simulation
        The movie, its masks and truth; ``params`` is ``cfg`` with ``kind``.

    Examples
    --------
    >>> cfg = RodParams(size=32, frames=2, count=1, seed=0)
    >>> sim = render_rods(cfg)
    >>> sim.params == {"kind": "rods", **cfg.as_dict()}
    True
    >>> bool(np.array_equal(sim.frames, simulate_rods(size=32, frames=2, count=1, seed=0).frames))
    True
    """
    params = {"kind": "rods", **cfg.as_dict()}
    size, frames, length, width = cfg.size, cfg.frames, cfg.length, cfg.width
    rng = np.random.default_rng(cfg.seed)
    world = _RodWorld(cfg, rng)
    world.populate(cfg.count, cfg.allowed(cfg.transition_frame == 0))
    clean = np.zeros((frames, size, size), np.float32)
    labels = np.zeros(clean.shape, np.uint8)
    instances = np.zeros(clean.shape, np.int32)
    tables = []
    for t in range(frames):
        after = t >= cfg.transition_frame
        if t > 0 and t == cfg.transition_frame:
            world.switch_direction(cfg.allowed(True))
        if t > 0:
            world.step(cfg.allowed(after))
        table = world.table(t)
        area = [_render_rod(clean[t], labels[t], instances[t], row, length, width, cfg.asymmetry)
                for row in table.itertuples(index=False)]
        shown = np.bincount(instances[t].ravel(), minlength=world.next_id)[table.id.to_numpy()]
        table["visible"] = shown / np.maximum(area, 1)
        tables.append(table)
    # Particles first, then the optics, then the AFM noise from the same generator as before.
    movie = optics(clean, cfg, cfg.seed)
    movie = movie + _afm_noise(rng, clean.shape, cfg.noise, cfg.line_noise, cfg.tilt, cfg.tilt_drift)
    movie = scan(movie, cfg, cfg.seed)
    truth = pd.concat(tables, ignore_index=True)
    return Simulation(movie.astype(np.float32), labels, instances, truth, params, ["background", "rod"])


# The signature is RodParams' own, so help() and the keyword checks show every parameter and default.
simulate_rods.__signature__ = inspect.signature(RodParams).replace(return_annotation="Simulation")
