"""Square windows cut around located particles, for the rotationally invariant VAE.

Centring: the window of ``size`` px holds rows ``r - size // 2 .. r - size // 2 + size - 1``
(columns likewise), where ``r`` is the particle's ``y`` rounded half-up
(``floor(y + 0.5)``; ``x`` likewise). The particle's pixel is thus at index
``size // 2`` of the window: the exact centre for odd sizes, the pixel just
below and right of the centre for even sizes. The sub-pixel remainder
(|x - round(x)| <= 0.5) is left for the VAE's translation latents.

At the frame border, ``edge="drop"`` leaves out windows that would cross it
(their index back into ``particles.nc`` shows which), ``edge="pad"`` fills the
missing part with background: zero in a probability map, the frame's median
in a frame (the background while particles cover less than half of it; a
zero there would be a dark band the VAE would try to explain). Background,
not a reflection: a mirrored half-particle would add structure too; the
``padded`` variable marks such windows.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import xarray as xr

from .store import write_netcdf

log = logging.getLogger(__name__)

EDGE_MODES = ("drop", "pad")
ImageSource = Callable[[int, int], np.ndarray]


def _one_frame_cache(read_frame):
    """Wrap ``read_frame(frame) -> array`` so that repeated calls for the same frame read once."""
    cache = {}

    def get(frame):
        if cache.get("frame") != frame:
            cache.clear()  # keep one frame only: the movie may not fit in memory
            cache.update(frame=frame, data=read_frame(frame))
        return cache["data"]

    return get


def from_probability(prob: xr.Dataset) -> ImageSource:
    """``(frame, class) -> 2-D array``: the ensemble mean probability of ``class`` in ``frame``.

    All classes of a frame are read together, once, and kept until another
    frame is asked for.

    Parameters
    ----------
    prob : Dataset
        ``probability.nc``: ``mean`` on ``(frame, class, y, x)``.

    Returns
    -------
    callable

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> mean = np.zeros((2, 1, 16, 16), np.float32)
    >>> mean[1, 0, 5, 9] = 1.0
    >>> prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean)}, coords={"frame": [0, 1], "class": [1]})
    >>> image = from_probability(prob)(1, 1)
    >>> image.shape, float(image[5, 9])
    ((16, 16), 1.0)
    """
    position = {int(c): i for i, c in enumerate(prob["class"].values)}
    frame_of = _one_frame_cache(
        lambda f: prob["mean"].sel(frame=f).transpose("class", "y", "x").values.astype(np.float32))
    return lambda frame, cls: frame_of(frame)[position[int(cls)]]


def from_frames(movie: xr.Dataset, variable: str = "frames") -> ImageSource:
    """``(frame, class) -> 2-D array``: the movie frame (the class is ignored).

    Parameters
    ----------
    movie : Dataset
        ``movie.nc``: ``frames`` on ``(frame, y, x)``.
    variable : str
        The variable holding the frames.

    Returns
    -------
    callable

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> movie = xr.Dataset({"frames": (("frame", "y", "x"), np.arange(8.0).reshape(2, 2, 2))},
    ...                    coords={"frame": [3, 4]})
    >>> from_frames(movie)(4, 1).tolist()
    [[4.0, 5.0], [6.0, 7.0]]
    """
    frame_of = _one_frame_cache(
        lambda f: movie[variable].sel(frame=f).transpose("y", "x").values.astype(np.float32))
    return lambda frame, cls: frame_of(frame)


def window(image: np.ndarray, row: int, col: int, size: int, fill: float = 0.0) -> tuple[np.ndarray, bool]:
    """The ``size`` x ``size`` window with (row, col) at index ``size // 2``, ``fill`` outside the image.

    Parameters
    ----------
    image : ndarray
        ``(H, W)``.
    row, col : int
        The pixel to centre on.
    size : int
        Window side, px.
    fill : float
        The value of pixels outside the image.

    Returns
    -------
    window : ndarray
        ``(size, size)`` float32.
    inside : bool
        Whether the window lies entirely inside the image.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> out, inside = window(image, 0, 1, 3)
    >>> out.tolist(), inside
    ([[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [4.0, 5.0, 6.0]], False)
    >>> window(image, 3, 3, 3, fill=-1.0)[0].tolist()
    [[10.0, 11.0, -1.0], [14.0, 15.0, -1.0], [-1.0, -1.0, -1.0]]
    """
    H, W = image.shape
    r0, c0 = row - size // 2, col - size // 2
    out = np.full((size, size), fill, np.float32)
    top, left = max(r0, 0), max(c0, 0)
    bottom, right = min(r0 + size, H), min(c0 + size, W)
    if top < bottom and left < right:
        out[top - r0:bottom - r0, left - c0:right - c0] = image[top:bottom, left:right]
    inside = r0 >= 0 and c0 >= 0 and r0 + size <= H and c0 + size <= W
    return out, inside


def _background(source: str):
    """``(frame, image) -> float``: the pad value, 0 for probability maps, else the frame's median (cached)."""
    cache = {}

    def value(frame, image):
        if source == "probability":
            return 0.0
        if cache.get("frame") != frame:
            cache.update(frame=frame, value=float(np.median(image)))
        return cache["value"]

    return value


def _dataset(patches, index, copied, padded, size, attrs):
    offset = np.arange(size) - size // 2  # py = px = 0 at the particle's pixel
    data = {"patches": (("particle", "py", "px"), patches),
            "particle_index": ("particle", index),
            "padded": ("particle", padded, {"long_name": "1 where the window was padded with background"})}
    data.update({name: ("particle", values) for name, values in copied.items()})
    return xr.Dataset(data, coords={"particle": index, "py": offset, "px": offset}, attrs=attrs)


def extract_patches(images: ImageSource, particles: xr.Dataset, *, size: int = 24, edge: str = "drop",
                    source: str = "probability") -> xr.Dataset:
    """Cut a ``size`` x ``size`` window around every particle.

    Parameters
    ----------
    images : callable
        ``(frame, class) -> 2-D array``, e.g. :func:`from_probability` or
        :func:`from_frames`.
    particles : Dataset
        ``particles.nc``: ``frame, x, y, class`` on dimension ``particle``.
    size : int
        Window side, px (centring: see the module docstring).
    edge : {"drop", "pad"}
        Windows crossing the frame border are left out, or padded with
        background (0 for "probability", the frame's median for "frames").
    source : str
        What ``images`` returns ("probability" or "frames"); recorded as the
        ``patch_source`` attribute (``source`` already names the movie file).

    Returns
    -------
    Dataset
        ``patches(particle, py, px)`` float32, with ``particle`` (and
        ``particle_index``) the index of the particle in ``particles``;
        ``frame, x, y, class`` copied; ``padded`` (int8);
        attrs: those of ``particles`` plus ``size, edge, patch_source`` and
        the border counts (:data:`rotdyn.contracts.PATCHES_BORDER`):
        ``n_particles`` (rows of ``particles``), ``n_border`` (windows that
        crossed the border), ``n_dropped`` (left out: ``n_border`` with
        ``edge="drop"``, else 0) and ``dropped_fraction``
        (``n_dropped / n_particles``; 0 for no particles).

    Raises
    ------
    ValueError
        For a size below 1 or an unknown ``edge``.

    Notes
    -----
    As in paper 000 [1]_, the windows are cut from the probability maps
    (``source="probability"``) or from the frames.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
       System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
       Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914

    Examples
    --------
    Two particles, the second too near the border for a whole window:

    >>> import numpy as np, xarray as xr
    >>> mean = np.zeros((2, 1, 16, 16), np.float32)
    >>> mean[1, 0, 5, 9] = 1.0
    >>> prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean)}, coords={"frame": [0, 1], "class": [1]})
    >>> particles = xr.Dataset({"frame": ("particle", [1, 1]), "x": ("particle", [8.6, 1.0]),
    ...                         "y": ("particle", [5.2, 1.0]), "class": ("particle", [1, 1])})
    >>> cut = extract_patches(from_probability(prob), particles, size=5)
    >>> cut["particle_index"].values.tolist(), float(cut["patches"][0].sel(py=0, px=0))
    ([0], 1.0)
    >>> cut.attrs["n_particles"], cut.attrs["n_dropped"], cut.attrs["dropped_fraction"]
    (2, 1, 0.5)
    >>> extract_patches(from_probability(prob), particles, size=5, edge="pad")["padded"].values.tolist()
    [0, 1]

    Cut from a frame, the pad is the frame's background (its median), not a dark band:

    >>> movie = xr.Dataset({"frames": (("frame", "y", "x"), np.full((2, 16, 16), 0.4, np.float32))},
    ...                    coords={"frame": [0, 1]})
    >>> pad = extract_patches(from_frames(movie), particles, size=5, edge="pad", source="frames")
    >>> float(pad["patches"][1].min())
    0.4
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    if edge not in EDGE_MODES:
        raise ValueError(f"edge must be one of {EDGE_MODES}, got {edge!r}")
    attrs = {**particles.attrs, "size": size, "edge": edge, "patch_source": str(source)}
    n = particles.sizes["particle"]
    frames = particles["frame"].values
    classes = particles["class"].values
    rows = np.floor(particles["y"].values + 0.5).astype(np.int64)
    cols = np.floor(particles["x"].values + 0.5).astype(np.int64)
    cut = np.zeros((n, size, size), np.float32)
    inside = np.zeros(n, bool)
    background = _background(source)
    for i in np.argsort(frames, kind="stable"):  # frame by frame: each frame is read once
        image = images(frames[i], classes[i])
        fill = background(frames[i], image) if edge == "pad" else 0.0
        cut[i], inside[i] = window(image, rows[i], cols[i], size, fill)
    keep = inside if edge == "drop" else np.ones(n, bool)
    n_dropped = int(n - keep.sum())
    attrs.update(n_particles=int(n), n_border=int(n - inside.sum()), n_dropped=n_dropped,
                 dropped_fraction=n_dropped / n if n else 0.0)  # read by the qc stage
    if n_dropped:
        log.info("%d of %d windows (%.0f %%) crossed the border and were dropped", n_dropped, n, 100 * n_dropped / n)
    index = particles["particle"].values if "particle" in particles.coords else np.arange(n)
    copied = {name: particles[name].values[keep] for name in ("frame", "x", "y", "class")}
    return _dataset(cut[keep], np.asarray(index, np.int64)[keep], copied,
                    (~inside[keep]).astype(np.int8), size, attrs)


def run(job) -> None:
    """Entry of rule ``patches``: one window per particle, from the probability maps or the frames.

    ``job.input`` has ``particles`` and ``images`` (probability.nc or movie.nc,
    as ``job.params.patches["source"]`` says).

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``params.patches``: the ``patches`` config section (size, source, edge);
        ``output[0]``: the windows.

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> import numpy as np, xarray as xr
    >>> mean = np.zeros((2, 1, 16, 16), np.float32)
    >>> mean[1, 0, 5, 9] = 1.0
    >>> prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean)}, coords={"frame": [0, 1], "class": [1]})
    >>> write_netcdf(prob, os.path.join(folder, "probability.nc"))
    >>> write_netcdf(xr.Dataset({"frame": ("particle", [1]), "x": ("particle", [9.0]), "y": ("particle", [5.0]),
    ...                          "class": ("particle", [1])}), os.path.join(folder, "particles.nc"))
    >>> run(job("patches", input={"particles": os.path.join(folder, "particles.nc"),
    ...                           "images": os.path.join(folder, "probability.nc")},
    ...         output=[os.path.join(folder, "patches.nc")],
    ...         params={"patches": {"size": 5, "source": "probability", "edge": "drop"}}))
    >>> with xr.open_dataset(os.path.join(folder, "patches.nc")) as cut:
    ...     cut["patches"].shape, float(cut["patches"].sum()), cut.attrs["patch_source"]
    ((1, 5, 5), 1.0, 'probability')
    """
    p = job.params.patches
    adapter = from_probability if p["source"] == "probability" else from_frames
    with xr.open_dataset(job.input.particles) as particles, xr.open_dataset(job.input.images) as images:
        patches = extract_patches(adapter(images), particles, size=p["size"], edge=p["edge"], source=p["source"])
    log.info("%d windows of %d px", patches.sizes["particle"], p["size"])
    write_netcdf(patches, job.output[0])
