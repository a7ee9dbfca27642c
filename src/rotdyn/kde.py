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
"""
from __future__ import annotations

import logging
import time

import numpy as np
import xarray as xr
from scipy.special import i0e

from .store import provenance
from .store import provenance, write_netcdf

log = logging.getLogger(__name__)

RULES = ("scott", "silverman")
CIRCULAR = ("angle",)
MARGIN = 3.0  # linear grids extend this many bandwidths beyond the data
FALLBACK_BANDWIDTH = 0.1  # units of the variable, when a rule is undefined (no spread)
TAIL = 1e-6  # kernels are cut where they fall below this fraction of their peak
_CHUNK_ELEMENTS = 1 << 16  # kernel values evaluated per step (small enough to stay in cache)


# ----------------------------------------------------------------- variables
def latent_names(latents: xr.Dataset) -> list[str]:
    """Names of the latent variables of ``latents``: ``angle, dx, dy, z1 .. zk``."""
    names = [name for name in ("angle", "dx", "dy") if name in latents]
    if "z" in latents:
        names += [f"z{label}" for label in _z_labels(latents)]
    return names


def _z_labels(latents):
    k = latents["z"].shape[1] if latents["z"].ndim == 2 else 0
    if "latent" in latents.coords:
        return [int(v) for v in latents["latent"].values]
    return list(range(1, k + 1))


def latent_values(latents: xr.Dataset, name: str) -> np.ndarray:
    """Values (one per particle, float64) of latent variable ``name`` (see :func:`latent_names`)."""
    if name in ("angle", "dx", "dy") and name in latents:
        return np.asarray(latents[name].values, np.float64)
    if name.startswith("z") and "z" in latents:
        labels = _z_labels(latents)
        try:
            column = labels.index(int(name[1:]))
        except ValueError:
            raise ValueError(f"no latent {name!r}; latents has {latent_names(latents)}") from None
        return np.asarray(latents["z"].values[:, column], np.float64)
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
    """The circular grid: ``grid_points`` angles from -pi, spacing 2 pi / grid_points (pi excluded)."""
    return -np.pi + 2 * np.pi * np.arange(grid_points) / grid_points


def linear_grid(values, h: float, grid_points: int) -> np.ndarray:
    """Grid from min - 3 h to max + 3 h of the finite ``values`` (-1..1 when there are none)."""
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


def _integral(density: np.ndarray, grid: np.ndarray, circular: bool) -> np.ndarray:
    """Integral over the grid along the last axis (periodic rectangle rule on the circle)."""
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
    mass = _integral(out, grid, circular)
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
        Latent variables to estimate (default: all, see :func:`latent_names`).

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
        latents' ``frame_interval_s`` and ``pixel_size_nm`` are carried over.
        Particles with a non-finite value of a variable are left out of that
        variable's density only.
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
    particle_frame = np.asarray(latents["frame"].values, np.int64) if latents.sizes.get("particle", 0) else \
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
        data[f"density_{name}"] = (("frame", f"{name}_grid"), dens,
                                   {"long_name": f"kernel density of {name} per frame",
                                    "units": f"1/{units}" if units else "1"})
        attrs[f"bandwidth_{name}"] = float(h)
    if isinstance(bandwidth, dict):
        rule = "per-variable"
    else:
        rule = bandwidth if isinstance(bandwidth, str) else "fixed"
    attrs.update(bandwidth_rule=rule, kernel_angle="von_mises", kernel_linear="gaussian",
                 variables=" ".join(names), grid_points=grid_points, grid_margin_bandwidths=MARGIN)
    for key in ("frame_interval_s", "pixel_size_nm"):
        if key in latents.attrs:
            attrs[key] = latents.attrs[key]
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
        Latent variables (see :func:`latent_names`).
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
        mass = _integral(_integral(dens, gx, cx), gy, cy)
        dens /= mass
    return xr.DataArray(
        dens, dims=(f"{y}_grid", f"{x}_grid"), coords={f"{y}_grid": gy, f"{x}_grid": gx},
        name=f"density_{x}_{y}",
        attrs={f"bandwidth_{x}": float(hx), f"bandwidth_{y}": float(hy), "count": int(vx.size)})


# ----------------------------------------------------------------- benchmark
def synthetic_latents(n_frames: int = 300, per_frame: int = 200, k: int = 2, seed: int = 0) -> xr.Dataset:
    """A ``latents.nc``-like dataset of ``n_frames * per_frame`` random particles (benchmarks, tests)."""
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
    """Wall time of :func:`kde_maps` on :func:`synthetic_latents` (best of ``repeat``).

    Returns
    -------
    dict
        ``seconds`` (best), ``n_frames``, ``per_frame``, ``particles``,
        ``variables``, ``grid_points``.
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


def run(job) -> None:
    """Entry of rule ``kde``: per-frame densities of every latent of ``job.input.latents``.

    ``job.params.kde`` is the ``kde`` config section; the frames come from ``job.input.movie``.
    """
    p = job.params.kde
    with xr.open_dataset(job.input.latents) as latents, xr.open_dataset(job.input.movie) as movie:
        latents = latents.load()
        bandwidth = {name: p["bandwidth"] for name in latent_names(latents)}
        if p["angle_bandwidth"]:
            bandwidth["angle"] = p["angle_bandwidth"]
        kde = kde_maps(latents, movie["frame"].values, grid_points=p["grid_points"], bandwidth=bandwidth)
    log.info("densities of %s over %d frames", kde.attrs.get("variables"), kde.sizes["frame"])
    write_netcdf(kde, job.output[0])
