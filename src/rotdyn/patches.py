"""Square windows cut around located particles, for the rotationally invariant VAE.

Centring: the window of ``size`` px holds rows ``r - size // 2 .. r - size // 2 + size - 1``
(columns likewise), where ``r`` is the particle's ``y`` rounded half-up
(``floor(y + 0.5)``; ``x`` likewise). The particle's pixel is thus at index
``size // 2`` of the window: the exact centre for odd sizes, the pixel just
below and right of the centre for even sizes. The sub-pixel remainder
(|x - round(x)| <= 0.5) is left for the VAE's translation latents.

At the frame border, ``edge="drop"`` leaves out windows that would cross it
(their index back into ``particles.nc`` shows which), ``edge="pad"`` fills the
missing part with zeros. Zeros, not a reflection: zero is background in a
probability map, and a mirrored half-particle would add structure the VAE
would try to explain; the ``padded`` variable marks such windows.
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
    """
    position = {int(c): i for i, c in enumerate(prob["class"].values)}
    frame_of = _one_frame_cache(
        lambda f: prob["mean"].sel(frame=f).transpose("class", "y", "x").values.astype(np.float32))
    return lambda frame, cls: frame_of(frame)[position[int(cls)]]


def from_frames(movie: xr.Dataset, variable: str = "frames") -> ImageSource:
    """``(frame, class) -> 2-D array``: the movie frame (the class is ignored)."""
    frame_of = _one_frame_cache(
        lambda f: movie[variable].sel(frame=f).transpose("y", "x").values.astype(np.float32))
    return lambda frame, cls: frame_of(frame)


def window(image: np.ndarray, row: int, col: int, size: int) -> tuple[np.ndarray, bool]:
    """The ``size`` x ``size`` window with (row, col) at index ``size // 2``, zero outside the image.

    Returns the window and whether it lies entirely inside the image.
    """
    H, W = image.shape
    r0, c0 = row - size // 2, col - size // 2
    out = np.zeros((size, size), np.float32)
    top, left = max(r0, 0), max(c0, 0)
    bottom, right = min(r0 + size, H), min(c0 + size, W)
    if top < bottom and left < right:
        out[top - r0:bottom - r0, left - c0:right - c0] = image[top:bottom, left:right]
    inside = r0 >= 0 and c0 >= 0 and r0 + size <= H and c0 + size <= W
    return out, inside


def _dataset(patches, index, copied, padded, size, attrs):
    offset = np.arange(size) - size // 2  # py = px = 0 at the particle's pixel
    data = {"patches": (("particle", "py", "px"), patches),
            "particle_index": ("particle", index),
            "padded": ("particle", padded, {"long_name": "1 where the window was zero-padded"})}
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
        Windows crossing the frame border are left out, or zero-padded.
    source : str
        What ``images`` returns ("probability" or "frames"); recorded as the
        ``patch_source`` attribute (``source`` already names the movie file).

    Returns
    -------
    Dataset
        ``patches(particle, py, px)`` float32, with ``particle`` (and
        ``particle_index``) the index of the particle in ``particles``;
        ``frame, x, y, class`` copied; ``padded`` (int8);
        attrs: those of ``particles`` plus ``size, edge, patch_source``.
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
    for i in np.argsort(frames, kind="stable"):  # frame by frame: each frame is read once
        cut[i], inside[i] = window(images(frames[i], classes[i]), rows[i], cols[i], size)
    keep = inside if edge == "drop" else np.ones(n, bool)
    index = particles["particle"].values if "particle" in particles.coords else np.arange(n)
    copied = {name: particles[name].values[keep] for name in ("frame", "x", "y", "class")}
    return _dataset(cut[keep], np.asarray(index, np.int64)[keep], copied,
                    (~inside[keep]).astype(np.int8), size, attrs)


def run(job) -> None:
    """Entry of rule ``patches``: one window per particle, from the probability maps or the frames.

    ``job.input`` has ``particles`` and ``images`` (probability.nc or movie.nc,
    as ``job.params.patches["source"]`` says).
    """
    p = job.params.patches
    adapter = from_probability if p["source"] == "probability" else from_frames
    with xr.open_dataset(job.input.particles) as particles, xr.open_dataset(job.input.images) as images:
        patches = extract_patches(adapter(images), particles, size=p["size"], edge=p["edge"], source=p["source"])
    log.info("%d windows of %d px", patches.sizes["particle"], p["size"])
    write_netcdf(patches, job.output[0])
