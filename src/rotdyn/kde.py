"""Per-frame kernel density estimates of the latent variables (paper 000, Figs. 4-5).

:func:`kde_maps` turns ``latents.nc`` (one row per particle) into the
``kde.nc`` contract: for every frame of the movie a 1-D density of each latent
variable on a fixed grid, i.e. one (time x latent value) map per variable --
the input of the NMF in :mod:`rotdyn.nmf`. :func:`joint_density` gives the 2-D
density of two latents over the whole movie (Fig. 4 d-f).

Variables are named ``angle``, ``dx``, ``dy`` and ``z1 .. zk`` (``z<l>`` is
latent ``l`` of ``z(particle, latent)``, numbered by the ``latent``
coordinate, 1-based as in the paper's L_1, L_2).

Kernels
-------
* ``angle`` lives on a circle: von Mises kernel
  ``exp(kappa cos(theta - a)) / (2 pi I0(kappa))`` with ``kappa = 1 / h**2``
  (the wrapped Gaussian of sd ``h`` for ``h`` below ~0.5 rad), on the grid
  ``-pi + 2 pi j / grid_points`` covering [-pi, pi). A peak at +-179 deg is
  one peak across the wrap, not two halves.
* every other variable: Gaussian kernel of sd ``h`` on one grid for the whole
  movie, from its minimum - 3 h to its maximum + 3 h, so that columns of
  different frames are comparable.

Bandwidth
---------
One bandwidth per variable for the whole movie, so the per-frame maps differ
only by their data. Either a number (the variable's units; rad for the angle)
or a normal-reference rule computed from all the movie's values, with
scipy.stats.gaussian_kde's conventions: ``"scott"`` ``h = sd * n**(-1/(d+4))``,
``"silverman"`` ``h = sd * (n (d+2) / 4)**(-1/(d+4))`` (d = 1 here, 2 in
:func:`joint_density`). For the angle, ``sd`` is that of the angles after
cutting the circle open in the middle of its widest empty arc (so it does not
depend on where +-pi falls). Normal-reference rules oversmooth multimodal
data: with six orientation variants and a few thousand particles ``"scott"``
gives ~0.3-0.4 rad; pass a number (e.g. 0.1 rad) to resolve sharp peaks.

Timing and synthetic latents for benchmarks live in :mod:`rotdyn.evaluate.kde`.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
   a System of Self-Organizing Protein Nanorods via Rotationally Invariant
   Latent Representations", ACS Nano 15, 6471-6480 (2021).
   doi:10.1021/acsnano.0c08914 (paper 000)
"""
from __future__ import annotations

import json
import logging

import numpy as np
import xarray as xr
from scipy.special import i0e

from .contracts import CIRCULAR, DENSITY, DETECTION, POSE, is_latent, latent_names, movie_attrs, z_labels
from .store import provenance, write_netcdf

log = logging.getLogger(__name__)

RULES = ("scott", "silverman")
MARGIN = 3.0  # linear grids extend this many bandwidths beyond the data
FALLBACK_BANDWIDTH = 0.1  # units of the variable, when a rule is undefined (no spread)
TAIL = 1e-6  # kernels are cut where they fall below this fraction of their peak
_CHUNK_ELEMENTS = 1 << 16  # kernel values evaluated per step (small enough to stay in cache)


# ----------------------------------------------------------------- variables
def latent_values(latents: xr.Dataset, name: str) -> np.ndarray:
    """Values (one per particle, float64) of latent variable ``name`` of ``latents.nc``.

    Parameters
    ----------
    latents : xr.Dataset
        ``latents.nc``: ``angle``, ``dx``, ``dy`` and ``z(particle, latent)``.
    name : str
        A latent name (:func:`rotdyn.contracts.latent_names`): ``angle``,
        ``dx``, ``dy`` or ``z<l>``, ``l`` a label of the ``latent`` coordinate.

    Returns
    -------
    numpy.ndarray
        One float64 value per particle.

    Raises
    ------
    ValueError
        When ``latents`` has no latent ``name``.

    Examples
    --------
    >>> ds = xr.Dataset({"angle": ("particle", [0.5, 1.0]), "z": (("particle", "latent"), [[1, 2], [3, 4]])},
    ...                 coords={"latent": [1, 2]})
    >>> latent_values(ds, "z2")
    array([2., 4.])
    >>> latent_values(ds, "angle").dtype
    dtype('float64')
    """
    if name in POSE and name in latents:
        return np.asarray(latents[name].values, np.float64)
    if is_latent(name) and name not in POSE and "z" in latents:
        labels = z_labels(latents)
        if int(name[1:]) in labels:
            return np.asarray(latents["z"].values[:, labels.index(int(name[1:]))], np.float64)
    raise ValueError(f"no latent {name!r}; latents has {latent_names(latents)}")


# ----------------------------------------------------------------- bandwidth
def _cut_open(angles: np.ndarray) -> np.ndarray:
    """Angles as linear values, the circle cut in the middle of its widest empty arc."""
    a = np.sort(np.mod(angles, 2 * np.pi))
    gaps = np.diff(np.append(a, a[0] + 2 * np.pi))
    i = int(np.argmax(gaps))
    cut = a[i] + gaps[i] / 2
    return np.mod(angles - cut, 2 * np.pi)


def rule_bandwidth(values, rule: str = "scott", circular: bool = False, dims: int = 1) -> float:
    """Normal-reference bandwidth (kernel sd) of ``values``, scipy.stats.gaussian_kde conventions.

    Parameters
    ----------
    values : array_like
        The sample (non-finite values are ignored).
    rule : {"scott", "silverman"}
        ``scott``: ``sd * n**(-1/(dims+4))``; ``silverman``: ``sd * (n (dims+2)/4)**(-1/(dims+4))``.
    circular : bool
        Angles in rad: ``sd`` after cutting the circle open at its widest empty arc.
    dims : int
        Dimension of the density the bandwidth is for (1 per-frame maps, 2 joint).

    Returns
    -------
    float
        The bandwidth; :data:`FALLBACK_BANDWIDTH` (with a warning) when the
        values have no spread, NaN when there are none.

    Examples
    --------
    >>> values = np.arange(32.0)  # sd 9.38, 32 ** (-1/5) = 0.5
    >>> round(rule_bandwidth(values), 3)
    4.69
    >>> rule_bandwidth([0.0, 0.0])  # no spread: the fallback
    0.1
    >>> round(rule_bandwidth([3.1, -3.1], circular=True), 3)  # 0.08 rad apart across the wrap, not 6.2
    0.051
    """
    if rule not in RULES:
        raise ValueError(f"bandwidth rule must be one of {RULES} or a number, got {rule!r}")
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    if circular:
        v = _cut_open(v)
    sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    n = v.size
    factor = n ** (-1 / (dims + 4)) if rule == "scott" else (n * (dims + 2) / 4) ** (-1 / (dims + 4))
    if not sd > 0:
        log.warning("bandwidth rule %r undefined for values without spread; using %g", rule, FALLBACK_BANDWIDTH)
        return FALLBACK_BANDWIDTH
    return sd * factor


def _bandwidth(values, bandwidth, circular, dims=1) -> float:
    if isinstance(bandwidth, str):
        return rule_bandwidth(values, bandwidth, circular, dims)
    h = float(bandwidth)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"bandwidth must be a positive number or one of {RULES}, got {bandwidth!r}")
    return h


# ----------------------------------------------------------------- kernels
def angle_grid(grid_points: int) -> np.ndarray:
    """The circular grid: ``grid_points`` angles from -pi, spacing 2 pi / grid_points (pi excluded).

    Parameters
    ----------
    grid_points : int
        Number of grid points.

    Returns
    -------
    ndarray
        ``(grid_points,)`` angles, rad, in [-pi, pi).

    Examples
    --------
    >>> np.degrees(angle_grid(4))
    array([-180.,  -90.,    0.,   90.])
    """
    return -np.pi + 2 * np.pi * np.arange(grid_points) / grid_points


def linear_grid(values, h: float, grid_points: int) -> np.ndarray:
    """Grid from min - 3 h to max + 3 h of the finite ``values`` (-1..1 when there are none).

    Parameters
    ----------
    values : array_like
        The latent's values; NaN and inf ignored.
    h : float
        Bandwidth, in the values' units; not finite: the -1..1 grid.
    grid_points : int
        Number of grid points.

    Returns
    -------
    ndarray
        ``(grid_points,)`` evenly spaced points.

    Examples
    --------
    >>> linear_grid([0.0, 1.0, np.nan], 0.5, 6)
    array([-1.5, -0.7,  0.1,  0.9,  1.7,  2.5])
    """
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or not np.isfinite(h):
        return np.linspace(-1.0, 1.0, grid_points)
    return np.linspace(v.min() - MARGIN * h, v.max() + MARGIN * h, grid_points)


def _kernel(values: np.ndarray, grid: np.ndarray, h: float, circular: bool) -> np.ndarray:
    """(len(values), len(grid)) kernel of every value evaluated on the grid (each a density)."""
    return _kernel_at(grid[None, :] - values[:, None], h, circular)


def _kernel_at(d: np.ndarray, h: float, circular: bool) -> np.ndarray:
    """Kernel density at displacements ``d`` from the particle."""
    if circular:
        kappa = 1.0 / h ** 2
        # exp(kappa (cos - 1)) / i0e(kappa) == exp(kappa cos) / I0(kappa) without overflow
        return np.exp(kappa * (np.cos(d) - 1.0)) / (2 * np.pi * i0e(kappa))
    return np.exp(-0.5 * (d / h) ** 2) / (h * np.sqrt(2 * np.pi))


def grid_integral(density: np.ndarray, grid: np.ndarray, circular: bool) -> np.ndarray:
    """Integral over the grid along the last axis (periodic rectangle rule on the circle).

    Parameters
    ----------
    density : numpy.ndarray
        Values on ``grid`` along the last axis.
    grid : numpy.ndarray
        The grid (:func:`angle_grid` when ``circular``, else increasing).
    circular : bool
        The grid covers the circle once: every point weighs ``2 pi / len(grid)``.

    Returns
    -------
    numpy.ndarray
        ``density`` integrated over its last axis.

    Examples
    --------
    >>> float(grid_integral(np.ones(8), angle_grid(8), True)) == 2 * np.pi
    True
    >>> float(grid_integral(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]), False))
    2.0
    """
    if circular:
        return density.sum(-1) * (2 * np.pi / grid.size)
    return np.trapezoid(density, grid, axis=-1)


def _half_width(h: float, circular: bool) -> float:
    """Distance beyond which the kernel is below :data:`TAIL` of its peak (inf: the whole circle)."""
    if circular:
        c = 1.0 + np.log(TAIL) * h ** 2  # exp(kappa (cos d - 1)) = TAIL
        return float(np.arccos(c)) if c > -1 else np.inf
    return float(np.sqrt(-2 * np.log(TAIL)) * h)


def _frame_densities(index, values, n_frames, grid, h, circular) -> np.ndarray:
    """(n_frames, grid) sum of the kernels of the particles of each frame, normalised per frame.

    Each particle's kernel is evaluated only on the grid points within
    :func:`_half_width` of it (values below ``TAIL`` of the peak are dropped,
    a few times faster than the full grid) and summed into its frame with
    ``np.bincount`` on flat (frame, grid point) indices.
    """
    g = grid.size
    step = grid[1] - grid[0]
    half = _half_width(h, circular) / step
    if circular and 2 * half + 1 >= g:
        offsets = np.arange(g) - g // 2  # every grid point once
    else:
        offsets = np.arange(-int(min(np.ceil(half), g)), int(min(np.ceil(half), g)) + 1)
    # accumulate on the grid padded by the kernel half-width (no per-element clipping), then
    # fold the padding back onto the circle or drop it
    pad = int(-offsets[0])
    width = g + 2 * pad
    ext = np.zeros(n_frames * width)
    order = np.argsort(index, kind="stable")  # chunks then cover a contiguous block of frames
    index, values = index[order], values[order]
    chunk = max(1, _CHUNK_ELEMENTS // offsets.size)
    for start in range(0, values.size, chunk):
        u = (values[start:start + chunk] - grid[0]) / step
        j0 = np.rint(u)
        k = _kernel_at((offsets[None, :] - (u - j0)[:, None]) * step, h, circular)
        j0 = j0.astype(np.int64)
        if circular:
            j0 %= g  # the nearest grid point of an angle near +pi is -pi's
        rows = index[start:start + chunk]
        first = rows[0] * width
        flat = ((rows * width + j0 + pad) - first)[:, None] + offsets[None, :]
        block = np.bincount(flat.ravel(), weights=k.ravel())
        ext[first:first + block.size] += block
    ext = ext.reshape(n_frames, width)
    if circular:
        out = np.zeros((n_frames, g))
        columns = (np.arange(width) - pad) % g
        for first in range(0, width, g):
            out[:, columns[first:first + g]] += ext[:, first:first + g]
    else:
        out = ext[:, pad:pad + g].copy()
    mass = grid_integral(out, grid, circular)
    nonzero = mass > 0
    out[nonzero] /= mass[nonzero, None]  # exactly 1 on the grid (kernel tails beyond it are dropped)
    return out


# ----------------------------------------------------------------- maps
def kde_maps(latents: xr.Dataset, frames, *, grid_points: int = 181, bandwidth="scott",
             variables=None) -> xr.Dataset:
    """Per-frame 1-D kernel density of each latent variable: the ``kde.nc`` contract.

    Parameters
    ----------
    latents : xr.Dataset
        ``latents.nc``: dimension ``particle`` with ``frame``, ``angle`` (rad),
        ``dx``, ``dy``, ``z(particle, latent)``.
    frames : array_like of int
        Every frame number of the movie (in the movie's numbering). Frames
        without particles get zero densities; particles in frames not listed
        are left out (logged).
    grid_points : int
        Points of every grid.
    bandwidth : {"scott", "silverman"} or float or dict
        Rule (computed on the whole movie's values of each variable) or fixed
        kernel sd in the variable's units (rad for the angle); a dict maps
        variable names to either, unlisted variables taking ``"scott"``.
    variables : list of str, optional
        Latent variables to estimate (default: all, see :func:`rotdyn.contracts.latent_names`).

    Returns
    -------
    xr.Dataset
        Coordinates ``frame`` and ``<var>_grid`` per variable (``angle_grid``
        in rad over [-pi, pi)). Variables ``density_<var>(frame, <var>_grid)``
        (each frame integrates to 1 over the grid; all zero for frames with no
        particle with a finite value), ``count(frame)`` (particles per frame).
        Attributes: ``bandwidth_<var>`` (the kernel sd used), ``bandwidth_rule``
        (``scott``, ``silverman``, ``fixed`` or ``per-variable``),
        ``kernel_angle`` = ``von_mises``, ``kernel_linear`` = ``gaussian``,
        ``variables``, ``grid_points``, ``grid_margin_bandwidths``; the
        latents' :data:`rotdyn.contracts.MOVIE_ATTRS` (the movie's file, its
        original name, ``frame_interval_s``, ``pixel_size_nm``) are carried over.
        Particles with a non-finite value of a variable are left out of that
        variable's density only.

    Examples
    --------
    Two frames of two particles each (frame 7 has none), fixed bandwidths:

    >>> latents = xr.Dataset({"frame": ("particle", [5, 5, 6, 6]), "angle": ("particle", [0.5, 0.5, -2.0, -2.0]),
    ...                       "z": (("particle", "latent"), [[0.0], [0.0], [1.0], [1.0]])}, coords={"latent": [1]})
    >>> kde = kde_maps(latents, [5, 6, 7], grid_points=72, bandwidth={"angle": 0.1, "z1": 0.2})
    >>> kde.attrs["variables"], kde["count"].values.tolist()
    ('angle z1', [2, 2, 0])
    >>> peak = kde["density_angle"].idxmax("angle_grid")  # the angle of each frame's peak
    >>> np.round(peak.values[:2], 2).tolist()
    [0.52, -2.01]
    >>> np.round(grid_integral(kde["density_z1"].values, kde["z1_grid"].values, False), 6).tolist()
    [1.0, 1.0, 0.0]
    """
    frames = np.asarray(frames, dtype=np.int64).ravel()
    if frames.size == 0:
        raise ValueError("frames is empty")
    if np.unique(frames).size != frames.size:
        raise ValueError("frames must be unique")
    grid_points = int(grid_points)
    if grid_points < 3:
        raise ValueError(f"grid_points must be >= 3, got {grid_points}")
    names = latent_names(latents) if variables is None else list(variables)
    particle_frame = np.asarray(latents["frame"].values, np.int64) if latents.sizes.get(DETECTION, 0) else \
        np.zeros(0, np.int64)
    order = np.argsort(frames)
    pos = np.searchsorted(frames[order], particle_frame)
    pos = np.clip(pos, 0, frames.size - 1)
    inside = frames[order][pos] == particle_frame if frames.size else np.zeros(0, bool)
    if (~inside).any():
        log.warning("%d particles in frames not listed are left out", int((~inside).sum()))
    index = order[pos][inside]  # row of each kept particle in the output

    data = {"count": ("frame", np.bincount(index, minlength=frames.size).astype(np.int64),
                      {"long_name": "particles in the frame"})}
    coords = {"frame": frames}
    attrs = {}
    for name in names:
        circular = name in CIRCULAR
        values = latent_values(latents, name)[inside]
        finite = np.isfinite(values)
        spec = bandwidth.get(name, "scott") if isinstance(bandwidth, dict) else bandwidth
        h = _bandwidth(values[finite], spec, circular)
        grid = angle_grid(grid_points) if circular else linear_grid(values, h, grid_points)
        if np.isfinite(h) and h < np.diff(grid[:2])[0]:
            log.warning("bandwidth of %s (%g) is below the grid spacing (%g): raise grid_points",
                        name, h, np.diff(grid[:2])[0])
        dens = _frame_densities(index[finite], values[finite], frames.size, grid, h, circular) \
            if np.isfinite(h) else np.zeros((frames.size, grid_points))
        units = "rad" if circular else latents[name].attrs.get("units", "") if name in latents else ""
        coords[f"{name}_grid"] = (f"{name}_grid", grid, {"units": units} if units else {})
        data[f"{DENSITY}{name}"] = (("frame", f"{name}_grid"), dens,
                                   {"long_name": f"kernel density of {name} per frame",
                                    "units": f"1/{units}" if units else "1"})
        attrs[f"bandwidth_{name}"] = float(h)
    if isinstance(bandwidth, dict):
        rule = "per-variable"
    else:
        rule = bandwidth if isinstance(bandwidth, str) else "fixed"
    attrs.update(bandwidth_rule=rule, kernel_angle="von_mises", kernel_linear="gaussian",
                 variables=" ".join(names), grid_points=grid_points, grid_margin_bandwidths=MARGIN)
    attrs.update(movie_attrs(latents.attrs))
    return xr.Dataset(data, coords=coords, attrs=provenance(**attrs))


def joint_density(latents: xr.Dataset, x: str = "angle", y: str = "z1", grid=(120, 80),
                  bandwidth="scott") -> xr.DataArray:
    """2-D kernel density of two latents over the whole movie (paper 000, Fig. 4 d-f).

    Product kernel: von Mises along ``angle`` (circular), Gaussian along any
    other variable; grids as in :func:`kde_maps`.

    Parameters
    ----------
    latents : xr.Dataset
        ``latents.nc``.
    x, y : str
        Latent variables (see :func:`rotdyn.contracts.latent_names`).
    grid : (int, int)
        Grid points along ``x`` and ``y``.
    bandwidth : rule, float or (x, y) pair of them
        As in :func:`kde_maps`; rules use the 2-D factor ``n**(-1/6)``.

    Returns
    -------
    xr.DataArray
        ``density_<x>_<y>`` with dims ``(<y>_grid, <x>_grid)`` (so ``.plot()``
        puts ``x`` on the horizontal axis), integrating to 1 over the grid;
        attrs ``bandwidth_<x>``, ``bandwidth_<y>``, ``count``.

    References
    ----------
    .. [1] Kalinin et al., ACS Nano 15, 6471-6480 (2021), doi:10.1021/acsnano.0c08914
       (paper 000; full reference in the module docstring).

    Examples
    --------
    >>> latents = xr.Dataset({"angle": ("particle", [1.0, 1.0, 1.0]), "z": (("particle", "latent"), [[2.0]] * 3)})
    >>> d = joint_density(latents, "angle", "z1", grid=(36, 21), bandwidth=0.2)
    >>> d.name, d.dims, d.attrs["count"]
    ('density_angle_z1', ('z1_grid', 'angle_grid'), 3)
    >>> iy, ix = np.unravel_index(int(np.argmax(d.values)), d.shape)  # the peak: angle 60 deg (nearest 1 rad), z1 2
    >>> round(float(np.degrees(d["angle_grid"][ix]))), round(float(d["z1_grid"][iy]), 6)
    (60, 2.0)
    """
    vx, vy = latent_values(latents, x), latent_values(latents, y)
    keep = np.isfinite(vx) & np.isfinite(vy)
    vx, vy = vx[keep], vy[keep]
    bx, by = bandwidth if isinstance(bandwidth, (tuple, list)) else (bandwidth, bandwidth)
    cx, cy = x in CIRCULAR, y in CIRCULAR
    hx, hy = _bandwidth(vx, bx, cx, dims=2), _bandwidth(vy, by, cy, dims=2)
    gx = angle_grid(grid[0]) if cx else linear_grid(vx, hx, grid[0])
    gy = angle_grid(grid[1]) if cy else linear_grid(vy, hy, grid[1])
    dens = np.zeros((gy.size, gx.size))
    if vx.size:
        chunk = max(1, _CHUNK_ELEMENTS // max(gx.size, gy.size))
        for start in range(0, vx.size, chunk):
            sl = slice(start, start + chunk)
            dens += _kernel(vy[sl], gy, hy, cy).T @ _kernel(vx[sl], gx, hx, cx)
        mass = grid_integral(grid_integral(dens, gx, cx), gy, cy)
        dens /= mass
    return xr.DataArray(
        dens, dims=(f"{y}_grid", f"{x}_grid"), coords={f"{y}_grid": gy, f"{x}_grid": gx},
        name=f"density_{x}_{y}",
        attrs={f"bandwidth_{x}": float(hx), f"bandwidth_{y}": float(hy), "count": int(vx.size)})


def _bad_frames(job) -> list[int]:
    """The frames the self-check found bad (``qc.json``), when the job has one."""
    path = getattr(job.input, "qc", None)
    if not path:
        return []
    with open(path) as f:
        return sorted(int(frame) for frame in json.load(f).get("bad_frames", []))


def run(job) -> None:
    """Entry of rule ``kde``: per-frame densities of every latent of ``job.input.latents``.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.latents`` (``latents.nc``), ``input.movie`` (``movie.nc``, for
        its frame numbers), optionally ``input.qc`` (``qc.json``: its
        ``bad_frames`` are left out of the dynamics), ``output[0]``
        (``kde.nc``, see :func:`kde_maps`),
        ``params.kde`` (the ``kde`` config section: ``grid_points``,
        ``bandwidth``, ``angle_bandwidth``).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> folder = tempfile.mkdtemp()
    >>> files = {name: os.path.join(folder, f"{name}.nc") for name in ("latents", "movie", "kde")}
    >>> write_netcdf(xr.Dataset({"frame": ("particle", [0, 0, 1]), "angle": ("particle", [0.0, 0.1, 2.0])}),
    ...              files["latents"])
    >>> write_netcdf(xr.Dataset(coords={"frame": [0, 1, 2]}), files["movie"])
    >>> settings = {"grid_points": 90, "bandwidth": "scott", "angle_bandwidth": 0.2}
    >>> run(job("kde", input={"latents": files["latents"], "movie": files["movie"]}, output=[files["kde"]],
    ...         params={"kde": settings}))
    >>> with xr.open_dataset(files["kde"]) as kde:
    ...     kde["count"].values.tolist(), float(kde.attrs["bandwidth_angle"])
    ([2, 1, 0], 0.2)
    """
    p = job.params.kde
    with xr.open_dataset(job.input.latents) as latents, xr.open_dataset(job.input.movie) as movie:
        latents = latents.load()
        bandwidth = {name: p["bandwidth"] for name in latent_names(latents)}
        if p["angle_bandwidth"]:
            bandwidth["angle"] = p["angle_bandwidth"]
        frames = movie["frame"].values
        bad = _bad_frames(job)
        if bad and np.isin(frames, bad).all():
            log.warning("the self-check found every frame bad (qc.json); the dynamics keep them all")
            bad = []
        elif bad:
            log.warning("frames %s left out of the dynamics: the self-check found them bad (qc.json)", bad)
            frames = frames[~np.isin(frames, bad)]
        kde = kde_maps(latents, frames, grid_points=p["grid_points"], bandwidth=bandwidth)
        kde.attrs["bad_frames"] = ",".join(map(str, bad))
    log.info("densities of %s over %d frames", kde.attrs.get("variables"), kde.sizes["frame"])
    write_netcdf(kde, job.output[0])
