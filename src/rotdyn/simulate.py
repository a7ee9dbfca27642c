"""Synthetic microscopy movies with known ground truth.

Two kinds, each a stand-in for one of the method's data sets, so that every
stage of the workflow can be checked against the truth:

* ``rods`` -- high-speed AFM of protein nanorods on mica: head-tail asymmetric
  capsules aligned with a three-fold substrate lattice (six orientation
  variants), diffusing, flipping, born and dying, some in touching pairs, with
  a symmetry-lowering transition that empties one lattice direction; AFM noise
  (white noise, scan-line offsets, a slowly drifting tilt).
* ``atoms`` -- STEM of Si dopants in graphene: a honeycomb lattice of Gaussian
  atoms with brighter dopants, vacancies and a slowly growing hole; Poisson
  counting noise plus Gaussian read noise.

Conventions (project-wide): ``x`` is the column and ``y`` the row, in pixels,
with the origin at the centre of the top-left pixel. Angles are in radians,
counter-clockwise from +x *as displayed* (y up on screen), so direction ``a``
has array components ``(dx_col, dy_row) = (cos a, -sin a)``; stored angles are
wrapped to [-pi, pi).
"""
from __future__ import annotations

import inspect
import logging
import math
import warnings
from dataclasses import KW_ONLY, asdict, dataclass, field, fields

import numpy as np
import pandas as pd
import xarray as xr

from .store import attr_value
from .store import atomic_path, write_netcdf

log = logging.getLogger(__name__)

TRUTH_COLUMNS = ["frame", "id", "x", "y", "angle", "class"]
MODALITY = {"rods": "AFM (simulated)", "atoms": "STEM (simulated)"}


@dataclass
class Simulation:
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    frames : ndarray, (T, H, W) float32
        The noisy movie.
    labels : ndarray, (T, H, W) uint8
        Semantic class per pixel: 0 background, 1.. the classes of ``class_names``.
    instances : ndarray, (T, H, W) int32
        0 background, else the truth ``id`` of the particle covering the pixel.
    truth : DataFrame
        One row per particle per frame: ``frame, id, x, y, angle, class`` plus
        kind-specific extra columns.
    params : dict
        Every parameter used, after defaults were resolved (JSON-serialisable),
        plus ``kind``; ``simulate(**params)`` reproduces the movie.
    class_names : list of str
        Name of each label value, starting with ``"background"``.


    Examples
    --------
    >>> sim = simulate("rods", size=32, frames=2, count=1, pair_fraction=0, seed=0)
    >>> sim.frames.shape, sim.labels.dtype, sim.class_names, sim.truth["id"].tolist()
    ((2, 32, 32), dtype('uint8'), ['background', 'rod'], [1, 1])
    """

    frames: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    truth: pd.DataFrame
    params: dict
    class_names: list[str]


# ----------------------------------------------------------------- validation
def _number(name, value, minimum=-math.inf, maximum=math.inf, strict=False):
    """``value`` as a finite float in range, else ValueError naming ``name``."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    low_bad = v <= minimum if strict else v < minimum
    if not math.isfinite(v) or low_bad or v > maximum:
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum} and <= {maximum}, got {value!r}")
    return v


def _integer(name, value, minimum=-math.inf, maximum=math.inf):
    """``value`` as an int in range (integral floats such as 128.0 accepted)."""
    v = _number(name, value, minimum, maximum)
    if not v.is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(v)


def _wrap(angle):
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle, dtype=float) + np.pi) % (2 * np.pi) - np.pi


# ------------------------------------------------------------------ geometry
def _point_segment_distance(p, a, b):
    """Distance from points ``p`` to segments ``a``-``b`` (arrays ``(..., 2)``, broadcast)."""
    ab, ap = b - a, p - a
    len2 = np.sum(ab * ab, -1)
    t = np.clip(np.sum(ap * ab, -1) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1)


def _orientation(a, b, c):
    """z of (b - a) x (c - a): the side of line a-b on which c lies."""
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def _segment_distance(p1, q1, p2, q2):
    """Minimum distance between 2-D segments ``p1-q1`` and ``p2-q2`` (broadcast).

    In 2-D two segments that do not cross are closest at an endpoint of one of
    them, so four point-to-segment distances plus a crossing test suffice.
    """
    d = np.minimum.reduce([
        _point_segment_distance(p1, p2, q2), _point_segment_distance(q1, p2, q2),
        _point_segment_distance(p2, p1, q1), _point_segment_distance(q2, p1, q1),
    ])
    cross = ((_orientation(p1, q1, p2) * _orientation(p1, q1, q2) < 0)
             & (_orientation(p2, q2, p1) * _orientation(p2, q2, q1) < 0))
    return np.where(cross, 0.0, d)


def _axes(centres, angles, half_core):
    """End points of the capsules' core segments (the capsule is this segment dilated by width/2)."""
    u = np.stack([np.cos(angles), -np.sin(angles)], -1)
    return centres - half_core * u, centres + half_core * u


# ---------------------------------------------------------------------- rods
def _param(default, low=-math.inf, high=math.inf, *, strict=False, integer=False, unset=None):
    """A field of :class:`RodParams`: its default and the range it must lie in.

    ``low`` / ``high`` may name another parameter; ``strict`` excludes ``low``
    itself; ``unset`` computes the value of a None default from the checked
    other parameters.
    """
    spec = dict(low=low, high=high, strict=strict, integer=integer, unset=unset)
    return field(default=default, metadata=spec)


@dataclass
class RodParams:
    """The parameters of :func:`simulate_rods`, checked: the one place they are defined.

    Each field's default and allowed range drive the signature of
    :func:`simulate_rods`, the checks made here, and the ``params`` recorded
    in the :class:`Simulation`. The meaning of each field is documented in
    :func:`simulate_rods`. Creating an instance checks and converts every
    value (ints for counts, floats otherwise) and fills the None defaults
    (``birth_rate = death_rate * count``, ``line_noise = 0.5 * noise``).

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

    size: int = _param(128, 1, integer=True)
    frames: int = _param(60, 1, integer=True)
    count: int = _param(24, 0, integer=True)
    length: float = _param(16.0, "width")
    width: float = _param(5.0, 0, strict=True)
    noise: float = _param(0.15, 0)
    transition_frame: int = _param(30, 0, integer=True)
    seed: int = _param(0, 0, integer=True)
    _: KW_ONLY
    lattice_angle: float = _param(0.25)
    angle_jitter: float = _param(0.05, 0)
    angle_memory: float = _param(0.9, 0, 1)
    empty_direction: int = _param(0, 0, 2, integer=True)
    diffusion: float = _param(0.3, 0)
    flip_rate: float = _param(0.01, 0, 1)
    birth_rate: float | None = _param(None, 0, unset=lambda p: p["death_rate"] * p["count"])
    death_rate: float = _param(0.01, 0, 1)
    pair_fraction: float = _param(0.3, 0, 1)
    pair_gap: float = _param(0.75, "min_gap")
    min_gap: float = _param(0.5, 0)
    touch_gap: float = _param(2.0, 0)
    asymmetry: float = _param(0.3, 0, 1)
    line_noise: float | None = _param(None, 0, unset=lambda p: 0.5 * p["noise"])
    tilt: float = _param(0.3, 0)
    tilt_drift: float = _param(0.05, 0)

    def __post_init__(self):
        specs = fields(self)
        checked = {}
        # Fields bounded by another field go last, so that field is checked first.
        for f in sorted(specs, key=lambda f: isinstance(f.metadata["low"], str) or isinstance(f.metadata["high"], str)):
            value = getattr(self, f.name)
            if not (value is None and f.metadata["unset"]):
                checked[f.name] = _check_param(f.name, value, f.metadata, checked)
        for f in specs:
            if f.name not in checked:
                checked[f.name] = f.metadata["unset"](checked)
        for name, value in checked.items():
            setattr(self, name, value)
        if self.size - 1 - 2 * self.margin <= 0:
            raise ValueError(f"size={self.size} leaves no room for rods of length {self.length} "
                             "(need size > length + 5)")

    @property
    def half_core(self):
        return (self.length - self.width) / 2

    @property
    def margin(self):
        # Centres this far from every edge keep the whole rod in the frame at any angle.
        return self.length / 2 + 2

    @property
    def pair_prob(self):
        # A birth is a pair with probability q, so that pairs hold a fraction
        # 2q / (1 + q) = pair_fraction of the rods.
        return self.pair_fraction / (2 - self.pair_fraction)

    def allowed(self, after_transition):
        """Variants (0..5) that may hold rods."""
        if not after_transition:
            return list(range(6))
        return [k for k in range(6) if k % 3 != self.empty_direction]


def _check_param(name, value, spec, checked):
    """``value`` of parameter ``name`` checked against its :func:`_param` spec."""
    low, high = (checked[b] if isinstance(b, str) else b for b in (spec["low"], spec["high"]))
    if spec["integer"]:
        return _integer(name, value, low, high)
    return _number(name, value, low, high, strict=spec["strict"])


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
        """True if group ``g`` lies inside the margins and ``min_gap`` clear of the other rods."""
        cfg = self.cfg
        c, a = self.geometry(g)
        if c.min() < cfg.margin or c.max() > cfg.size - 1 - cfg.margin:
            return False
        # Capsules whose centres are >= length + min_gap apart cannot collide: skip them.
        dist = np.hypot(*(others_c[None] - c[:, None]).transpose(2, 0, 1)).min(0)
        near = dist < cfg.length + cfg.min_gap
        if not near.any():
            return True
        p, q = _axes(c, np.full(len(c), a), cfg.half_core)
        P, Q = _axes(others_c[near], others_a[near], cfg.half_core)
        d = _segment_distance(p[:, None], q[:, None], P[None], Q[None])
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
        p, q = _axes(cen, ang, cfg.half_core)
        d = _segment_distance(p[:, None], q[:, None], p[None], q[None])
        np.fill_diagonal(d, np.inf)
        touching = (d < cfg.width + cfg.touch_gap).any(1) if len(d) else np.zeros(0, bool)
        return pd.DataFrame({
            "frame": np.full(len(ids), frame, dtype=np.int64), "id": ids,
            "x": cen[:, 0], "y": cen[:, 1], "angle": _wrap(ang),
            "class": np.ones(len(ids), dtype=np.int64), "variant": variant,
            "touching": touching, "length": cfg.length, "width": cfg.width,
        })


def _render_rod(clean, labels, instances, row, length, width, asymmetry):
    """Draw one rod into the frame's arrays, only inside its bounding box.

    The capsule edge is a 1-px linear ramp (approximate area coverage), so
    sub-pixel positions change the image. Height rises from ``1 - asymmetry``
    at the tail toward the head, where a Gaussian knob tops it near 1: the
    head-tail asymmetry that makes the full [-pi, pi) angle identifiable.
    """
    H, W = clean.shape
    x, y, a = row.x, row.y, row.angle
    reach = length / 2 + 1.5
    r0, r1 = max(int(np.floor(y - reach)), 0), min(int(np.ceil(y + reach)) + 1, H)
    c0, c1 = max(int(np.floor(x - reach)), 0), min(int(np.ceil(x + reach)) + 1, W)
    yy, xx = np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :]
    ux, uy = np.cos(a), -np.sin(a)
    s = (xx - x) * ux + (yy - y) * uy   # along the axis, + toward the head
    t = -(xx - x) * uy + (yy - y) * ux  # across the axis
    half, radius = (length - width) / 2, width / 2
    d = np.hypot(np.clip(np.abs(s) - half, 0, None), t)  # distance to the core segment
    cover = np.clip(radius - d + 0.5, 0.0, 1.0)
    ramp = np.clip(s / length + 0.5, 0.0, 1.0)
    knob = np.exp(-((s - half) ** 2 + t ** 2) / (2 * (radius / 2) ** 2))
    height = 1 - asymmetry + 0.5 * asymmetry * (ramp + knob)
    box = clean[r0:r1, c0:c1]
    np.maximum(box, cover * height, out=box)
    inside = d <= radius
    labels[r0:r1, c0:c1][inside] = 1
    instances[r0:r1, c0:c1][inside] = row.id


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
    where that collides, die and are replaced by births. Rods never overlap
    and every rod stays whole in the frame: centres keep ``length/2 + 2`` px
    from the edges.

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

    Returns
    -------
    Simulation
        ``class_names = ["background", "rod"]``. Truth ``x, y`` is the
        capsule centre, i.e. the centroid of the symmetric body (the mask);
        the head knob moves the *intensity* centroid toward the head. Extra
        truth columns: ``variant, touching, length, width``.


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
    cfg = RodParams(*args, **kwargs)
    params = {"kind": "rods", **asdict(cfg)}
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
        for row in table.itertuples(index=False):
            _render_rod(clean[t], labels[t], instances[t], row, length, width, cfg.asymmetry)
        tables.append(table)
    movie = clean + _afm_noise(rng, clean.shape, cfg.noise, cfg.line_noise, cfg.tilt, cfg.tilt_drift)
    truth = pd.concat(tables, ignore_index=True)
    return Simulation(movie.astype(np.float32), labels, instances, truth, params, ["background", "rod"])



# The signature is RodParams' own, so help() and the keyword checks show every parameter and default.
simulate_rods.__signature__ = inspect.signature(RodParams).replace(return_annotation="Simulation")

# --------------------------------------------------------------------- atoms
def _honeycomb(size, spacing, angle, pad):
    """Honeycomb sites ``(S, 2)`` (x, y) covering the frame plus ``pad``, in a fixed order.

    Nearest-neighbour distance ``spacing``; lattice vector a1 points along
    ``angle`` (display convention), the second basis atom along ``angle + 90 deg``.
    """
    def vec(phi, r):
        return r * np.array([np.cos(phi), -np.sin(phi)])

    a1, a2 = vec(angle, np.sqrt(3) * spacing), vec(angle + np.pi / 3, np.sqrt(3) * spacing)
    basis = np.stack([np.zeros(2), vec(angle + np.pi / 2, spacing)])
    n = int(np.ceil(2 * size / (np.sqrt(3) * spacing))) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = (size - 1) / 2 + i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    sites = (cells[:, None, :] + basis[None]).reshape(-1, 2)
    keep = np.all((sites >= -pad) & (sites <= size - 1 + pad), axis=1)
    return sites[keep]


def _patches(shape, x, y, half):
    """Row/column indices ``(N, K, K)`` of the square patches around each point, and their validity."""
    off = np.arange(-half, half + 1)
    rows = (np.rint(y).astype(int)[:, None] + off)[:, :, None]
    cols = (np.rint(x).astype(int)[:, None] + off)[:, None, :]
    ok = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    return rows, cols, ok


def _render_atoms(shape, x, y, amplitude, sigma):
    """Sum of Gaussians, all atoms at once: separable patches scattered with bincount."""
    rows, cols, ok = _patches(shape, x, y, int(np.ceil(4 * sigma)))
    gy = np.exp(-(rows - y[:, None, None]) ** 2 / (2 * sigma ** 2))
    gx = np.exp(-(cols - x[:, None, None]) ** 2 / (2 * sigma ** 2))
    w = amplitude[:, None, None] * gy * gx
    flat = np.broadcast_to(rows * shape[1] + cols, w.shape)[ok]
    return np.bincount(flat, weights=w[ok], minlength=shape[0] * shape[1]).reshape(shape)


def _label_discs(labels, instances, x, y, cls, ids, radius):
    """Write discs of ``radius`` around each atom into one frame's masks."""
    rows, cols, ok = _patches(labels.shape, x, y, int(np.ceil(radius)))
    inside = ok & ((rows - y[:, None, None]) ** 2 + (cols - x[:, None, None]) ** 2 <= radius ** 2)
    n, k = len(x), rows.shape[1]
    r = np.broadcast_to(rows, (n, k, k))[inside]
    c = np.broadcast_to(cols, (n, k, k))[inside]
    labels[r, c] = np.broadcast_to(cls[:, None, None], (n, k, k))[inside]
    instances[r, c] = np.broadcast_to(ids[:, None, None], (n, k, k))[inside]


def simulate_atoms(size=128, frames=40, spacing=6.0, dopants=6, vacancies=8, hole_start_radius=4.0,
                   hole_growth=0.5, dose=200.0, gaussian_noise=0.05, seed=0, *, lattice_angle=0.2,
                   atom_sigma=1.2, dopant_contrast=2.0, jitter=0.15, label_radius=None,
                   hole_x=None, hole_y=None) -> Simulation:
    """STEM-like movie of a graphene lattice with Si dopants, vacancies and a growing hole.

    Atoms are Gaussians of peak 1 (carbon, class 1) or ``dopant_contrast``
    (dopant, class 2). Atoms whose lattice site lies within
    ``hole_start_radius + hole_growth * t`` of the hole centre are gone at
    frame ``t``. Dopants and vacancies are placed at sites that stay in the
    truth region and outside the hole for the whole movie, so every frame
    shows exactly ``dopants`` dopants and ``vacancies`` vacancies. The
    observed image is ``Poisson(dose * clean) / dose + N(0, gaussian_noise)``.

    Parameters
    ----------
    size : int
        Frame height and width, px.
    frames : int
        Number of frames.
    spacing : float
        Nearest-neighbour (C-C) distance, px.
    dopants, vacancies : int
        Number of dopant atoms and of missing atoms.
    hole_start_radius : float
        Hole radius at frame 0, px (0 = no hole yet).
    hole_growth : float
        Hole radius growth, px per frame.
    dose : float
        Expected counts per unit clean intensity (higher = less shot noise).
    gaussian_noise : float
        Sd of the read noise, in units of the carbon peak.
    seed : int
        Seed of ``numpy.random.default_rng``.
    lattice_angle : float
        Lattice orientation (first lattice vector), rad.
    atom_sigma : float
        Sd of each atom's Gaussian, px.
    dopant_contrast : float
        Dopant peak over carbon peak.
    jitter : float
        Sd of each atom's thermal displacement per frame and axis, px.
    label_radius : float or None
        Radius of each atom's label disc, px (< spacing/2); None = ``1.5 * atom_sigma``.
    hole_x, hole_y : float or None
        Hole centre, px; None = frame centre.

    Returns
    -------
    Simulation
        ``class_names = ["background", "carbon", "dopant"]``. Truth ``id`` is
        the lattice site index + 1 (stable), ``angle`` the lattice angle;
        only atoms at least ``label_radius`` from every edge are in the truth
        and the masks (atoms beyond are still drawn, for natural edges).


    References
    ----------
    A stand-in for the STEM movies of Si dopants in graphene of paper 002:
    S. V. Kalinin, O. Dyck, S. Jesse, M. Ziatdinov, "Exploring order parameters
    and dynamic processes in disordered systems via variational autoencoders",
    Science Advances 7, eabd5084 (2021). doi:10.1126/sciadv.abd5084

    Examples
    --------
    >>> sim = simulate_atoms(size=48, frames=2, dopants=2, vacancies=1, seed=0)
    >>> sim.class_names, [int((f["class"] == 2).sum()) for _, f in sim.truth.groupby("frame")]
    (['background', 'carbon', 'dopant'], [2, 2])
    """
    size = _integer("size", size, 1)
    frames = _integer("frames", frames, 1)
    spacing = _number("spacing", spacing, 0, strict=True)
    atom_sigma = _number("atom_sigma", atom_sigma, 0, strict=True)
    label_radius = 1.5 * atom_sigma if label_radius is None else label_radius
    centre = (size - 1) / 2
    p = dict(
        kind="atoms", size=size, frames=frames, spacing=spacing,
        dopants=_integer("dopants", dopants, 0), vacancies=_integer("vacancies", vacancies, 0),
        hole_start_radius=_number("hole_start_radius", hole_start_radius, 0),
        hole_growth=_number("hole_growth", hole_growth, 0),
        dose=_number("dose", dose, 0, strict=True),
        gaussian_noise=_number("gaussian_noise", gaussian_noise, 0),
        seed=_integer("seed", seed, 0), lattice_angle=_number("lattice_angle", lattice_angle),
        atom_sigma=atom_sigma, dopant_contrast=_number("dopant_contrast", dopant_contrast, 0),
        jitter=_number("jitter", jitter, 0),
        label_radius=_number("label_radius", label_radius, 0, spacing / 2, strict=True),
        hole_x=centre if hole_x is None else _number("hole_x", hole_x),
        hole_y=centre if hole_y is None else _number("hole_y", hole_y),
    )
    if 2 * p["label_radius"] >= size:
        raise ValueError(f"label_radius={p['label_radius']} leaves no truth region in size={size}")
    rng = np.random.default_rng(p["seed"])
    sites = _honeycomb(size, spacing, p["lattice_angle"], pad=4 * atom_sigma + 1)
    ids = np.arange(1, len(sites) + 1, dtype=np.int64)
    hole_dist = np.hypot(sites[:, 0] - p["hole_x"], sites[:, 1] - p["hole_y"])
    cls, present = _decorate(rng, sites, hole_dist, p)
    amplitude = np.where(cls == 2, p["dopant_contrast"], 1.0)
    clean = np.zeros((frames, size, size))
    labels = np.zeros(clean.shape, np.uint8)
    instances = np.zeros(clean.shape, np.int32)
    tables = []
    lo, hi = p["label_radius"], size - 1 - p["label_radius"]
    for t in range(frames):
        alive = present & (hole_dist >= p["hole_start_radius"] + p["hole_growth"] * t)
        xy = sites[alive] + rng.normal(0, p["jitter"], (int(alive.sum()), 2))
        clean[t] = _render_atoms((size, size), xy[:, 0], xy[:, 1], amplitude[alive], atom_sigma)
        seen = np.all((xy >= lo) & (xy <= hi), axis=1)
        x, y, c, i = xy[seen, 0], xy[seen, 1], cls[alive][seen], ids[alive][seen]
        _label_discs(labels[t], instances[t], x, y, c, i, p["label_radius"])
        tables.append(pd.DataFrame({
            "frame": np.full(len(i), t, dtype=np.int64), "id": i, "x": x, "y": y,
            "angle": float(_wrap(p["lattice_angle"])), "class": c.astype(np.int64)}))
    movie = rng.poisson(p["dose"] * clean) / p["dose"] + rng.normal(0, p["gaussian_noise"], clean.shape)
    truth = pd.concat(tables, ignore_index=True)
    return Simulation(movie.astype(np.float32), labels, instances, truth, p, ["background", "carbon", "dopant"])


def _decorate(rng, sites, hole_dist, p):
    """Classes (1 carbon, 2 dopant) and presence (False = vacancy) of every site.

    Both are drawn from sites that stay in the truth region (allowing 5 sd of
    jitter) and outside the hole's final radius, so their numbers in view
    are exact in every frame.
    """
    margin = p["label_radius"] + 5 * p["jitter"] + 0.5
    final = p["hole_start_radius"] + p["hole_growth"] * (p["frames"] - 1)
    ok = np.all((sites >= margin) & (sites <= p["size"] - 1 - margin), axis=1) & (hole_dist > final + 1)
    candidates = np.flatnonzero(ok)
    need = p["dopants"] + p["vacancies"]
    if need > len(candidates):
        raise ValueError(f"dopants + vacancies = {need} exceeds the {len(candidates)} sites available")
    chosen = rng.choice(candidates, need, replace=False)
    cls = np.ones(len(sites), np.int64)
    cls[chosen[:p["dopants"]]] = 2
    present = np.ones(len(sites), bool)
    present[chosen[p["dopants"]:]] = False
    return cls, present


# ------------------------------------------------------------------ dispatch
_KINDS = {"rods": simulate_rods, "atoms": simulate_atoms}


def simulate(kind: str, **params) -> Simulation:
    """Run the simulation ``kind`` ("rods" or "atoms") with keyword ``params``.

    Parameters
    ----------
    kind : "rods" (:func:`simulate_rods`) or "atoms" (:func:`simulate_atoms`).
    **params : that simulator's keyword arguments.

    Returns
    -------
    Simulation; ``simulate(**sim.params)`` reproduces it (``kind`` is among the params).

    Raises
    ------
    ValueError for an unknown kind or a bad parameter value; TypeError for an unknown parameter.

    Examples
    --------
    >>> sim = simulate("atoms", size=32, frames=1, dopants=1, vacancies=0)
    >>> again = simulate(**sim.params)
    >>> bool(np.array_equal(sim.frames, again.frames)), sim.params["kind"]
    (True, 'atoms')
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got unknown kind {kind!r}")
    return _KINDS[kind](**params)


def to_dataset(sim: Simulation, pixel_size_nm: float, frame_interval_s: float) -> xr.Dataset:
    """The movie and its masks as an xarray Dataset, with calibration and parameters as attrs.

    Variables ``frames`` (float32), ``labels`` (uint8) and ``instances``
    (int32) on dims ``(frame, y, x)`` with integer index coordinates; attrs
    ``pixel_size_nm, frame_interval_s, modality, kind, class_names`` (comma
    joined) and ``sim_<name>`` for every simulation parameter (bools as ints).


    Parameters
    ----------
    sim : the simulation.
    pixel_size_nm, frame_interval_s : calibration (> 0).

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> sim = simulate("rods", size=32, frames=2, count=1, seed=0)
    >>> ds = to_dataset(sim, pixel_size_nm=0.5, frame_interval_s=2.0)
    >>> ds.frames.dims, ds.attrs["modality"], ds.attrs["class_names"], ds.attrs["sim_size"]
    (('frame', 'y', 'x'), 'AFM (simulated)', 'background,rod', 32)
    """
    pixel_size_nm = _number("pixel_size_nm", pixel_size_nm, 0, strict=True)
    frame_interval_s = _number("frame_interval_s", frame_interval_s, 0, strict=True)
    kind = sim.params.get("kind", "")
    dims = ("frame", "y", "x")
    T, H, W = sim.frames.shape
    ds = xr.Dataset(
        {"frames": (dims, np.asarray(sim.frames, np.float32)),
         "labels": (dims, np.asarray(sim.labels, np.uint8)),
         "instances": (dims, np.asarray(sim.instances, np.int32))},
        coords={"frame": np.arange(T), "y": np.arange(H), "x": np.arange(W)},
    )
    attrs = {"pixel_size_nm": pixel_size_nm, "frame_interval_s": frame_interval_s,
             "modality": MODALITY.get(kind, "simulated"), "kind": kind,
             "class_names": ",".join(sim.class_names)}
    attrs.update({f"sim_{name}": attr_value(value) for name, value in sim.params.items()
                  if name != "kind" and value is not None})
    ds.attrs.update(attrs)
    return ds


def run(job) -> None:
    """Entry of rule ``simulate``: a synthetic movie of ``job.wildcards.kind`` and its truth table.

    ``job.params.sim`` holds the simulator's keyword arguments plus
    ``pixel_size_nm`` and ``frame_interval_s``; ``job.output`` has ``movie``
    (movie.nc) and ``truth`` (truth.csv).


    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from rotdyn.jobs import job
    >>> d = Path(tempfile.mkdtemp())
    >>> sim = {"size": 32, "frames": 2, "count": 1, "seed": 0, "pixel_size_nm": 0.5, "frame_interval_s": 2.0}
    >>> run(job("simulate", output={"movie": str(d / "movie.nc"), "truth": str(d / "truth.csv")},
    ...         params={"sim": sim}, wildcards={"kind": "rods"}))
    >>> pd.read_csv(d / "truth.csv").columns.tolist()[:6] == TRUTH_COLUMNS
    True
    >>> with xr.open_dataset(d / "movie.nc") as ds:
    ...     ds.frames.shape, float(ds.attrs["pixel_size_nm"])
    ((2, 32, 32), 0.5)
    """
    params = dict(job.params.sim)
    pixel, interval = params.pop("pixel_size_nm"), params.pop("frame_interval_s")
    sim = simulate(job.wildcards.kind, **params)
    log.info("simulated %s: %d frames, %d truth rows", job.wildcards.kind, len(sim.frames), len(sim.truth))
    with atomic_path(job.output.truth) as tmp:
        sim.truth.to_csv(tmp, index=False)
    write_netcdf(to_dataset(sim, pixel_size_nm=pixel, frame_interval_s=interval), job.output.movie)
