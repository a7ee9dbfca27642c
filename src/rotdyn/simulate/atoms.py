"""STEM-like movies of Si dopants in graphene (kind ``atoms``).

A honeycomb lattice of Gaussian atoms with brighter dopants, vacancies and a
slowly growing hole; Poisson counting noise plus Gaussian read noise, on a
dark (annular dark field) or bright (bright field) background, optionally
with scan noise (line offsets and jitter) and the other shared imaging effects.
"""
from __future__ import annotations

import inspect
from dataclasses import KW_ONLY, dataclass

import numpy as np
import pandas as pd

from .base import Params, Simulation, param, wrap
from .imaging import imaging, optics, scan


@dataclass
class AtomParams(Params):
    """The parameters of :func:`simulate_atoms`, checked: the one place they are defined.

    Each field's default and allowed range drive the signature of
    :func:`simulate_atoms`, its checks and the recorded ``params``; the
    meaning of each is documented in :func:`simulate_atoms`. None defaults
    are filled: ``label_radius = 1.5 * atom_sigma``, ``hole_x``, ``hole_y``
    at the frame centre.

    Parameters
    ----------
    **params
        Those of :func:`simulate_atoms`: the same names, defaults and ranges.

    Raises
    ------
    ValueError
        Naming the parameter whose value is out of range.

    Examples
    --------
    >>> p = AtomParams(size=64, atom_sigma=1.0)
    >>> p.label_radius, p.hole_x, p.background, p.level
    (1.5, 31.5, 'dark', 0.0)
    >>> AtomParams(spacing=4.0, atom_sigma=1.5).label_radius
    Traceback (most recent call last):
    ...
    ValueError: label_radius must be > 0 and <= 2.0, got 2.25
    """

    size: int = param(128, 1, integer=True)
    frames: int = param(40, 1, integer=True)
    spacing: float = param(6.0, 0, strict=True)
    dopants: int = param(6, 0, integer=True)
    vacancies: int = param(8, 0, integer=True)
    hole_start_radius: float = param(4.0, 0)
    hole_growth: float = param(0.5, 0)
    dose: float = param(200.0, 0, strict=True)
    gaussian_noise: float = param(0.05, 0)
    seed: int = param(0, 0, integer=True)
    _: KW_ONLY
    lattice_angle: float = param(0.2)
    atom_sigma: float = param(1.2, 0, strict=True)
    dopant_contrast: float = param(2.0, 0)
    jitter: float = param(0.15, 0)
    label_radius: float | None = param(None, 0, lambda p: p["spacing"] / 2, strict=True,
                                       unset=lambda p: 1.5 * p["atom_sigma"])
    hole_x: float | None = param(None, unset=lambda p: (p["size"] - 1) / 2)
    hole_y: float | None = param(None, unset=lambda p: (p["size"] - 1) / 2)
    background: str = param("dark", choices=("dark", "bright"))
    line_noise: float = param(0.0, 0)
    line_jitter: float = imaging("line_jitter")
    blur: float = imaging("blur")
    psf: str = imaging("psf")
    halo: float = imaging("halo")
    halo_width: float = imaging("halo_width")
    illumination: float = imaging("illumination")
    texture: float = imaging("texture")
    texture_length: float = imaging("texture_length")

    def validate(self):
        """A frame wider than two label radii, so the truth region is not empty.

        Examples
        --------
        >>> AtomParams(size=3)
        Traceback (most recent call last):
        ...
        ValueError: label_radius=1.8 leaves no truth region in size=3
        """
        if 2 * self.label_radius >= self.size:
            raise ValueError(f"label_radius={self.label_radius} leaves no truth region in size={self.size}")

    @property
    def contrast(self):
        """The shared imaging's contrast: a bright background shows the atoms as dips, i.e. ``"dark"``.

        Returns
        -------
        str

        Examples
        --------
        >>> AtomParams(background="bright").contrast, AtomParams(background="dark").contrast
        ('dark', 'bright')
        """
        return "dark" if self.background == "bright" else "bright"

    @property
    def level(self):
        """The background level: above the brightest atom's peak on a bright background, else 0.

        Returns
        -------
        float
            ``1 + max(1, dopant_contrast)`` for ``background="bright"``, else 0.

        Examples
        --------
        >>> AtomParams(background="bright", dopant_contrast=2.0).level, AtomParams().level
        (3.0, 0.0)
        """
        return 1.0 + max(1.0, self.dopant_contrast) if self.background == "bright" else 0.0


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


def simulate_atoms(*args, **kwargs) -> Simulation:
    """STEM-like movie of a graphene lattice with Si dopants, vacancies and a growing hole.

    Atoms are Gaussians of peak 1 (carbon, class 1) or ``dopant_contrast``
    (dopant, class 2). Atoms whose lattice site lies within
    ``hole_start_radius + hole_growth * t`` of the hole centre are gone at
    frame ``t``. Dopants and vacancies are placed at sites that stay in the
    truth region and outside the hole for the whole movie, so every frame
    shows exactly ``dopants`` dopants and ``vacancies`` vacancies. The
    observed image is ``Poisson(dose * clean) / dose + N(0, gaussian_noise)``,
    where ``clean`` is the atoms (dark background) or ``level`` minus the
    atoms (bright background), after the optional imaging effects; scan
    noise comes last. The parameters are defined once, by :class:`AtomParams`.

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
        Expected counts per unit clean intensity, i.e. at a carbon atom's
        peak (higher = less shot noise); an atom collects about
        ``2 pi atom_sigma^2 dose`` counts (9 dose at the default sigma), so
        ``dose=1`` is about 10 counts per atom. The image is counts / dose.
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
        Radius of each atom's label disc, px (<= spacing/2); None = ``1.5 * atom_sigma``.
    hole_x, hole_y : float or None
        Hole centre, px; None = frame centre.
    background : "dark" or "bright"
        ``dark``: bright atoms on a dark background (annular dark field);
        ``bright``: atoms as dips in a background of ``1 + max(1,
        dopant_contrast)`` (bright field), which then carries shot noise too.
    line_noise : float
        Sd of a random offset added to each scan line (row), carbon-peak units.
    line_jitter : float
        Sd of each scan line's sideways shift, px.
    blur, psf, halo, halo_width, illumination, texture, texture_length
        The shared imaging effects (:mod:`rotdyn.simulate.imaging`), off by
        default; they act before the counting noise (the intensity is then
        clipped at 0).

    Returns
    -------
    Simulation
        ``class_names = ["background", "carbon", "dopant"]``. Truth ``id`` is
        the lattice site index + 1 (stable), ``angle`` the lattice angle;
        only atoms at least ``label_radius`` from every edge are in the truth
        and the masks (atoms beyond are still drawn, for natural edges).
        Scan jitter moves the image, not the truth or the masks.

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
    >>> low = simulate_atoms(size=32, frames=1, dopants=1, vacancies=1, dose=1.0, gaussian_noise=0.0,
    ...                      background="bright")
    >>> bool(np.allclose(low.frames, np.round(low.frames)))  # whole counts at dose 1
    True
    """
    return render_atoms(AtomParams(*args, **kwargs))


def render_atoms(p: AtomParams) -> Simulation:
    """The movie of :func:`simulate_atoms` for checked parameters ``p``.

    Parameters
    ----------
    p : AtomParams
        The checked table.

    Returns
    -------
    Simulation
        The movie, its masks and truth; ``params`` is ``p`` with ``kind``.

    Examples
    --------
    >>> p = AtomParams(size=32, frames=1, dopants=1, vacancies=0)
    >>> sim = render_atoms(p)
    >>> sim.params == {"kind": "atoms", **p.as_dict()}
    True
    >>> bool(np.array_equal(sim.frames, simulate_atoms(size=32, frames=1, dopants=1, vacancies=0).frames))
    True
    """
    params = {"kind": "atoms", **p.as_dict()}
    size, frames, atom_sigma = p.size, p.frames, p.atom_sigma
    rng = np.random.default_rng(p.seed)
    sites = _honeycomb(size, p.spacing, p.lattice_angle, pad=4 * atom_sigma + 1)
    ids = np.arange(1, len(sites) + 1, dtype=np.int64)
    hole_dist = np.hypot(sites[:, 0] - p.hole_x, sites[:, 1] - p.hole_y)
    cls, present = _decorate(rng, sites, hole_dist, p)
    amplitude = np.where(cls == 2, p.dopant_contrast, 1.0)
    clean = np.zeros((frames, size, size))
    labels = np.zeros(clean.shape, np.uint8)
    instances = np.zeros(clean.shape, np.int32)
    tables = []
    lo, hi = p.label_radius, size - 1 - p.label_radius
    for t in range(frames):
        alive = present & (hole_dist >= p.hole_start_radius + p.hole_growth * t)
        xy = sites[alive] + rng.normal(0, p.jitter, (int(alive.sum()), 2))
        clean[t] = _render_atoms((size, size), xy[:, 0], xy[:, 1], amplitude[alive], atom_sigma)
        seen = np.all((xy >= lo) & (xy <= hi), axis=1)
        x, y, c, i = xy[seen, 0], xy[seen, 1], cls[alive][seen], ids[alive][seen]
        _label_discs(labels[t], instances[t], x, y, c, i, p.label_radius)
        tables.append(pd.DataFrame({
            "frame": np.full(len(i), t, dtype=np.int64), "id": i, "x": x, "y": y,
            "angle": float(wrap(p.lattice_angle)), "class": c.astype(np.int64)}))
    clean = np.maximum(optics(clean, p, p.seed), 0.0)
    movie = rng.poisson(p.dose * clean) / p.dose + rng.normal(0, p.gaussian_noise, clean.shape)
    movie = scan(movie, p, p.seed, line_noise=p.line_noise)
    truth = pd.concat(tables, ignore_index=True)
    return Simulation(movie.astype(np.float32), labels, instances, truth, params, ["background", "carbon", "dopant"])


# The signature is AtomParams' own, so help() and the keyword checks show every parameter and default.
simulate_atoms.__signature__ = inspect.signature(AtomParams).replace(return_annotation="Simulation")


def _decorate(rng, sites, hole_dist, p):
    """Classes (1 carbon, 2 dopant) and presence (False = vacancy) of every site.

    Both are drawn from sites that stay in the truth region (allowing 5 sd of
    jitter) and outside the hole's final radius, so their numbers in view
    are exact in every frame.
    """
    margin = p.label_radius + 5 * p.jitter + 0.5
    final = p.hole_start_radius + p.hole_growth * (p.frames - 1)
    ok = np.all((sites >= margin) & (sites <= p.size - 1 - margin), axis=1) & (hole_dist > final + 1)
    candidates = np.flatnonzero(ok)
    need = p.dopants + p.vacancies
    if need > len(candidates):
        raise ValueError(f"dopants + vacancies = {need} exceeds the {len(candidates)} sites available")
    chosen = rng.choice(candidates, need, replace=False)
    cls = np.ones(len(sites), np.int64)
    cls[chosen[:p.dopants]] = 2
    present = np.ones(len(sites), bool)
    present[chosen[p.dopants:]] = False
    return cls, present
