"""Reading any supported microscopy movie into one ``(frame, y, x)`` float32 array.

Each format has one opener that returns the data with a label per axis
(``Y``, ``X``, ``S`` for colour samples, anything else a frame axis), plus the
calibration the file carries. With ``lazy=True`` an opener reads headers only
and returns a shape stub, which is what :func:`probe_movie` uses to plan runs
over many large movies cheaply. The same axis labels then decide both the
probed shape and the layout of the full read, so the two always agree.

Every failure, whichever library raised it, becomes a :class:`MovieReadError`
that names the file and the reason, so one bad movie can be reported and left
out without stopping the others.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import tifffile
import xarray as xr

log = logging.getLogger(__name__)

_FORMATS = {
    ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".npz": "npz", ".nc": "netcdf",
    ".h5": "hdf5", ".hdf5": "hdf5", ".gif": "gif", ".mp4": "mp4", ".avi": "avi",
    ".asd": "asd", ".h5-jpk": "h5-jpk", ".dm3": "dm3", ".dm4": "dm4", ".emd": "emd",
    ".mrc": "mrc",
}
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_FORMATS)
FRAME_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
# Suffixes stripped whole by movie_stem, so "x.ome.tif" is the movie "x".
_STEM_SUFFIXES = sorted(SUPPORTED_SUFFIXES + (".ome.tif", ".ome.tiff"), key=len, reverse=True)
_RSCIIO = {"dm3": "digitalmicrograph", "dm4": "digitalmicrograph", "emd": "emd", "mrc": "mrc"}
_BT709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

_NM_PER_UNIT = {"nm": 1.0, "nanometer": 1.0, "nanometre": 1.0, "um": 1e3, "micron": 1e3,
                "microns": 1e3, "micrometer": 1e3, "micrometre": 1e3, "a": 0.1, "angstrom": 0.1,
                "pm": 1e-3, "mm": 1e6, "cm": 1e7, "m": 1e9}
_S_PER_UNIT = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
               "us": 1e-6, "ns": 1e-9, "min": 60.0}


class MovieReadError(Exception):
    """Raised with a message that names the file and the problem.

    Parameters
    ----------
    message : str
        The file and what is wrong with it.

    Examples
    --------
    >>> try:
    ...     read_movie("no/such/movie.tif")
    ... except MovieReadError as exc:
    ...     print(exc)
    no/such/movie.tif: no such file or folder
    """


@dataclass
class Movie:
    """A movie as one array plus the calibration its file carries.

    Attributes
    ----------
    frames : (T, Y, X) float32 array; a single 2-D image has T = 1. Read with
        ``mapped=True``: possibly a :class:`FrameFile` (frames read when sliced).
    pixel_size_nm : nanometres per pixel from the file, else None.
    frame_interval_s : seconds between frames from the file, else None.
    source : the path read.
    format : format name, e.g. ``"tiff"``, ``"asd"``, ``"frames-folder"``.
    modality : ``"AFM"``, ``"EM"`` or ``"unknown"`` (a file's ``modality`` attribute wins).
    metadata : small JSON-serialisable extras: channel, original dtype and shape, axes, units.

    Examples
    --------
    >>> movie = Movie(np.zeros((2, 4, 4), np.float32), 0.5, None, "m.npy", "npy", "unknown")
    >>> movie.frames.shape, movie.pixel_size_nm, movie.metadata
    ((2, 4, 4), 0.5, {})
    """

    frames: np.ndarray
    pixel_size_nm: float | None
    frame_interval_s: float | None
    source: str
    format: str
    modality: str
    metadata: dict = field(default_factory=dict)


@dataclass
class _Stub:
    """Shape and dtype of data not read (what a lazy opener returns)."""

    shape: tuple
    dtype: np.dtype


@dataclass
class _Raw:
    """What an opener found: data (array or stub), one label per axis, calibration."""

    data: object
    axes: str
    pixel_size_nm: float | None = None
    frame_interval_s: float | None = None
    modality: str | None = None
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- public API


def movie_stem(path: str | os.PathLike) -> str:
    """Movie name: the file name without its (possibly double) suffix; a folder's name.

    Parameters
    ----------
    path : file or folder.

    Returns
    -------
    str, e.g. ``"b"`` for ``"a/b.h5-jpk"`` or ``"a/b.ome.tif"``.

    Examples
    --------
    >>> movie_stem("a/b.h5-jpk"), movie_stem("a/b.ome.tif"), movie_stem("a/c.v2.npy")
    ('b', 'b', 'c.v2')
    """
    path = Path(path)
    if path.is_dir():
        return path.name
    lower = path.name.lower()
    for suffix in _STEM_SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def is_supported(path: str | os.PathLike) -> bool:
    """True for a file with a supported suffix or a folder holding image frames.

    A path that is not a folder is judged by its suffix alone, so this also
    answers for files that do not exist yet.

    Parameters
    ----------
    path : file or folder.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_supported("future/movie.asd"), is_supported("notes.docx")
    (True, False)
    """
    path = Path(path)
    if path.is_dir():
        return bool(_frame_files(path))
    return _suffix(path) in _FORMATS


def probe_movie(path: str | os.PathLike, channel: str | int | None = None) -> tuple[int, int, int]:
    """Shape ``(T, Y, X)`` of the movie :func:`read_movie` would return, from headers only.

    Parameters
    ----------
    path : movie file or folder of frames.
    channel : dataset, variable, AFM channel or TIFF channel index (see :func:`read_movie`).

    Returns
    -------
    (T, Y, X) ints. Video frame counts come from the container's duration x fps.

    Raises
    ------
    MovieReadError if the file cannot be read or holds no image stack.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.npy"
    >>> np.save(path, np.zeros((5, 6, 7), np.uint16))
    >>> probe_movie(path)
    (5, 6, 7)
    """
    fmt = _format(path)
    with _errors_named(path, fmt):
        raw = _OPENERS[fmt](Path(path), channel, True)
        return _layout(path, raw.data.shape, raw.axes, raw.data.dtype)


def read_movie(path: str | os.PathLike, channel: str | int | None = None, *, mapped: bool = False) -> Movie:
    """Read a whole movie into a :class:`Movie`.

    Parameters
    ----------
    path : movie file (any of :data:`SUPPORTED_SUFFIXES`) or folder of PNG/TIFF/JPEG frames.
    channel : which data to read from files with several: the dataset path (HDF5),
        array name (NPZ), variable name (NetCDF), AFM channel (``.asd``: default
        ``"TP"``; ``.h5-jpk``: default ``"height_trace"``), channel index of a
        multi-channel TIFF (default 0), or signal index/title of an EM file.
    mapped : leave the pixels on disk where the file allows it: a ``.npy``
        file or an uncompressed, contiguous single-series TIFF, whose frames
        are stored frame after frame. ``frames`` is then a :class:`FrameFile`
        in the file's own data type (a slice reads only those frames;
        ``np.asarray(frames[a:b], np.float32)`` gives what the whole read
        gives); other files are read whole.

    Returns
    -------
    Movie with ``frames`` of shape (T, Y, X), float32. Colour becomes BT.709
    luminance; integer values are kept, not rescaled.

    Raises
    ------
    MovieReadError naming the file and the problem, for any failure.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.tif"
    >>> stack = np.arange(2 * 6 * 5, dtype=np.uint16).reshape(2, 6, 5)
    >>> tifffile.imwrite(path, stack, imagej=True, photometric="minisblack", resolution=(2.0, 2.0),
    ...                  metadata={"axes": "TYX", "unit": "um", "finterval": 0.25})
    >>> movie = read_movie(path)
    >>> movie.frames.shape, movie.frames.dtype, float(movie.frames[1, 0, 0])
    ((2, 6, 5), dtype('float32'), 30.0)
    >>> movie.format, movie.pixel_size_nm, movie.frame_interval_s
    ('tiff', 500.0, 0.25)
    >>> frames = read_movie(path, mapped=True).frames
    >>> type(frames).__name__, frames.dtype, float(np.asarray(frames[1:])[0, 0, 0])
    ('FrameFile', dtype('uint16'), 30.0)
    """
    fmt = _format(path)
    with _errors_named(path, fmt):
        on_disk = _frame_file(Path(path), fmt, channel) if mapped else None
        raw = _OPENERS[fmt](Path(path), channel, on_disk is not None)  # header only when mapped
        _layout(path, raw.data.shape, raw.axes, raw.data.dtype)  # validates; same checks as the probe
        frames = on_disk if on_disk is not None else _standardise(raw.data, raw.axes)
    meta = {"axes": raw.axes, "original_dtype": str(np.dtype(raw.data.dtype)),
            "original_shape": [int(n) for n in raw.data.shape], **raw.meta}
    meta.setdefault("channel", None)
    meta.setdefault("units", None)
    return Movie(frames=frames, pixel_size_nm=raw.pixel_size_nm, frame_interval_s=raw.frame_interval_s,
                 source=str(path), format=fmt, modality=raw.modality or _modality(fmt), metadata=meta)


class FrameFile:
    """Frames stored one after another in a file, read only when asked for: a lazy (T, Y, X) array.

    Slicing frames (``frames[a:b]``) gives another :class:`FrameFile`;
    ``np.asarray`` reads its frames with plain file reads. Unlike a memory
    map, the pixels read are not kept mapped in the process, so reading a
    long movie chunk by chunk costs a chunk of resident memory, not the file.

    Parameters
    ----------
    path : str
        The file.
    offset : int
        Byte offset of the first frame.
    dtype : numpy dtype
        The pixels' type, with its byte order.
    shape : (T, Y, X)
        Frames in the file and their size.
    start, stop : int
        The frames this view covers.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m.npy"
    >>> np.save(path, np.arange(4 * 2 * 3, dtype=">i2").reshape(4, 2, 3))
    >>> mm = np.load(path, mmap_mode="r")
    >>> frames = FrameFile(mm.filename, mm.offset, mm.dtype, mm.shape)
    >>> part = frames[1:3]
    >>> part.shape, np.asarray(part, np.float32)[1].tolist()
    ((2, 2, 3), [[12.0, 13.0, 14.0], [15.0, 16.0, 17.0]])
    """

    def __init__(self, path, offset: int, dtype, shape, start: int = 0, stop: int | None = None):
        self.path, self.offset, self.dtype, self.file_shape = str(path), int(offset), np.dtype(dtype), tuple(shape)
        self.start, self.stop = start, self.file_shape[0] if stop is None else stop

    @property
    def shape(self) -> tuple:
        """(frames in this view, Y, X)."""
        return (self.stop - self.start, *self.file_shape[1:])

    ndim = 3

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(len(self))
            return FrameFile(self.path, self.offset, self.dtype, self.file_shape, self.start + a,
                             self.start + max(a, b))
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        frame_values = self.file_shape[1] * self.file_shape[2]
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + self.start * frame_values * self.dtype.itemsize)
            data = np.fromfile(fh, dtype=self.dtype, count=len(self) * frame_values).reshape(self.shape)
        return data if dtype is None else data.astype(dtype)


def _frame_file(path: Path, fmt: str, channel) -> FrameFile | None:
    """The file's pixels as a (T, Y, X) :class:`FrameFile`, or None where they are not stored that way.

    Only plain grey stacks qualify (frame axis first, no colour or channel
    axis to pick from), so the frames need no reordering.
    """
    if fmt == "npy":
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        axes = _default_axes(data.shape)
    elif fmt == "tiff" and channel is None:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(tif.series) > 1 or series.dataoffset is None or tif.is_imagej and series.kind != "imagej":
                return None  # several series, compressed or scattered pages, or a header that lies
            axes = series.axes
        try:
            data = tifffile.memmap(path, series=0, mode="r")
        except ValueError:  # not memory-mappable after all
            return None
    else:
        return None
    grey_stack = data.ndim in (2, 3) and len(axes) == data.ndim and axes[-2:] == "YX" and axes[0] not in "CS"
    if not grey_stack or np.dtype(data.dtype).kind not in "biuf":
        return None
    shape = data.shape if data.ndim == 3 else (1, *data.shape)
    return FrameFile(path, data.offset, data.dtype, shape)  # the map only told where the pixels are


# ----------------------------------------------------------------------------- shared layout


@contextlib.contextmanager
def _errors_named(path, fmt: str):
    """Turn any library exception into a MovieReadError naming ``path`` and ``fmt``."""
    try:
        yield
    except MovieReadError:
        raise
    except Exception as exc:
        lines = str(exc).strip().splitlines() or [""]  # ffmpeg errors carry its whole log: keep line 1
        raise MovieReadError(f"{path}: cannot read as {fmt} ({_size_hint(path, exc)}): "
                             f"{type(exc).__name__}: {lines[0][:300]}") from exc


# What a reader raises when it runs off the end of a file or meets nonsense where a header should be.
_DAMAGE = (IndexError, EOFError, struct.error, OverflowError)


def _size_hint(path, exc: Exception) -> str:
    """The file's size, and a word on damage when the reader tripped over its bytes.

    Examples
    --------
    >>> _size_hint(__file__, IndexError("list index out of range")).endswith("bytes; truncated or damaged?")
    True
    """
    try:
        size = f"{os.path.getsize(path):,} bytes"
    except OSError:
        size = "size unknown"
    return f"{size}; truncated or damaged?" if isinstance(exc, _DAMAGE) else size


def _suffix(path: Path) -> str:
    lower = path.name.lower()
    return ".h5-jpk" if lower.endswith(".h5-jpk") else path.suffix.lower()


def _format(path) -> str:
    """Format name from the suffix (a folder: frames); MovieReadError if none."""
    p = Path(path)
    if p.is_dir():
        return "frames-folder"
    if not p.exists():
        raise MovieReadError(f"{path}: no such file or folder")
    fmt = _FORMATS.get(_suffix(p))
    if fmt is None:
        raise MovieReadError(f"{path}: unsupported format {p.suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    return fmt


def _modality(fmt: str) -> str:
    if fmt in ("asd", "h5-jpk"):
        return "AFM"
    return "EM" if fmt in _RSCIIO else "unknown"


def _default_axes(shape) -> str:
    """Axis labels for an unlabelled array: (Y,X), (T,Y,X), or (T,Y,X,colour)."""
    if len(shape) == 4 and shape[-1] in (3, 4):
        return "TYXS"
    return "Q" * max(len(shape) - 3, 0) + "TYX"[max(3 - len(shape), 0) :]


def _check_dtype(path, dtype) -> None:
    kind = np.dtype(dtype).kind
    if kind == "c":
        raise MovieReadError(f"{path}: complex data ({dtype}) is not supported; store magnitude or phase")
    if kind not in "biuf":
        raise MovieReadError(f"{path}: data type {dtype} is not numeric image data")


def _layout(path, shape, axes: str, dtype) -> tuple[int, int, int]:
    """(T, Y, X) of data with these axis labels; MovieReadError if it is no image stack.

    All frame-like axes but one must have length 1; a colour axis must have
    1-4 samples (grey, grey+alpha, RGB, RGBA).
    """
    _check_dtype(path, dtype)
    shape = tuple(int(n) for n in shape)
    if "Y" not in axes or "X" not in axes:
        raise MovieReadError(f"{path}: {len(shape)}-D data of shape {shape}; expected 2-D or 3-D (frame, y, x)")
    if "S" in axes and not 1 <= shape[axes.index("S")] <= 4:
        raise MovieReadError(f"{path}: {shape[axes.index('S')]} colour samples per pixel; expected 1-4")
    frame_axes = [n for n, a in zip(shape, axes) if a not in "YXS"]
    long = [n for n in frame_axes if n != 1]
    if len(long) > 1:
        raise MovieReadError(f"{path}: data of shape {shape} (axes {axes}) has more than 3 dimensions "
                             "after channel/colour handling; expected (frame, y, x)")
    n_frames = long[0] if long else int(np.prod(frame_axes))
    ny, nx = shape[axes.index("Y")], shape[axes.index("X")]
    if n_frames == 0:
        raise MovieReadError(f"{path}: the movie has no frames")
    if ny == 0 or nx == 0:
        raise MovieReadError(f"{path}: the frames are empty ({ny} x {nx} pixels)")
    return n_frames, ny, nx


def _standardise(data, axes: str) -> np.ndarray:
    """Labelled data -> contiguous (T, Y, X) float32; colour becomes luminance."""
    colour = "S" in axes
    order = [i for i, a in enumerate(axes) if a not in "YXS"] + [axes.index("Y"), axes.index("X")]
    data = np.transpose(np.asarray(data), order + ([axes.index("S")] if colour else []))
    ny, nx = data.shape[-3:-1] if colour else data.shape[-2:]
    data = _luminance(data) if colour else data.astype(np.float32, copy=False)
    return np.ascontiguousarray(data.reshape(-1, ny, nx))


def _luminance(pixels: np.ndarray) -> np.ndarray:
    """ITU-R BT.709 luma of RGB(A) samples on the last axis; grey(+alpha) keeps sample 0."""
    if pixels.shape[-1] < 3:
        return pixels[..., 0].astype(np.float32)
    return pixels[..., :3].astype(np.float32) @ _BT709


def _pick(path, shapes: dict, channel, preferred: str | None = None) -> str:
    """Name of the array to read: ``channel``, else ``preferred``, else the first 3-D, else 2-D one."""
    if channel is not None:
        if str(channel) in shapes:
            return str(channel)
        raise MovieReadError(f"{path}: channel {channel!r} not found; available: {_listing(shapes)}")
    if preferred in shapes:
        return preferred
    for ndim in (3, 2):
        for name, shape in shapes.items():
            if len(shape) == ndim:
                return name
    raise MovieReadError(f"{path}: no 2-D or 3-D image data; found: {_listing(shapes) or 'nothing'}")


def _listing(shapes: dict) -> str:
    return ", ".join(f"{name} {tuple(int(n) for n in shape)}" for name, shape in shapes.items())


def _as_float(value) -> float | None:
    """Positive finite float from an attribute value (scalar or 1-element array), else None."""
    try:
        value = float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _as_text(value) -> str | None:
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode(errors="replace")
    return str(value) if value is not None else None


def _unit_key(unit) -> str:
    """Unit spelt many ways (µm, μm, \\u00B5m, Å) -> one lower-case key."""
    text = (_as_text(unit) or "").strip().lower()
    for micro in ("\\u00b5", "\u00b5", "\u03bc"):
        text = text.replace(micro, "u")
    return text.replace("\u00c5", "a").replace("\u212b", "a").replace("\u00e5", "a")


def _to_nm(value, unit) -> float | None:
    factor = _NM_PER_UNIT.get(_unit_key(unit))
    value = _as_float(value)
    return value * factor if factor and value else None


def _to_s(value, unit) -> float | None:
    factor = _S_PER_UNIT.get(_unit_key(unit))
    value = _as_float(value)
    return value * factor if factor and value else None


def _calibration_attrs(attrs: dict) -> dict:
    """pixel_size_nm, frame_interval_s and modality from NetCDF/HDF5 attributes."""
    modality = _as_text(attrs.get("modality"))
    return {"pixel_size_nm": _as_float(attrs.get("pixel_size_nm")),
            "frame_interval_s": _as_float(attrs.get("frame_interval_s")),
            "modality": modality.strip() if modality else None}


# ----------------------------------------------------------------------------- TIFF


def _tiff(path: Path, channel, lazy: bool) -> _Raw:
    """TIFF (ImageJ, OME or plain) via tifffile's first series and its axes."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        if tif.is_imagej and series.kind != "imagej":  # tifffile fell back: pages missing
            raise MovieReadError(f"{path}: the ImageJ header does not match the pages (truncated or corrupted file)")
        page = series.keyframe or tif.pages[0]
        axes, shape = series.axes, tuple(series.shape)
        # Frames appended one write at a time (tifffile append=True) come back as one series per page.
        appended = len(tif.series) > 1 and all(
            len(s.pages) == 1 and s.shape == series.shape and s.dtype == series.dtype for s in tif.series)
        if appended:
            axes, shape = "I" + axes, (len(tif.series),) + shape
        if "S" in axes and page.photometric not in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR):
            axes = axes.replace("S", "Q")  # samples that are not colour (e.g. planar stacks) are frames
        index, used = _tiff_channel(path, axes, shape, channel)
        if lazy:
            data = _Stub(tuple(n for n, a in zip(shape, axes) if a != "C"), series.dtype)
        else:
            data = (np.stack([s.asarray() for s in tif.series]) if appended else series.asarray())[index]
        pixel_nm, interval_s = _tiff_calibration(tif, page)
    return _Raw(data, axes.replace("C", ""), pixel_nm, interval_s, meta={"channel": used, "tiff_axes": series.axes})


def _tiff_channel(path, axes: str, shape, channel):
    """Index selecting one channel of a C axis, and the channel used."""
    if "C" not in axes:
        if channel not in (None, 0, "0"):
            raise MovieReadError(f"{path}: channel {channel!r} not found; available: 0 (no channel axis)")
        return (), None
    n = shape[axes.index("C")]
    try:
        index = 0 if channel is None else int(channel)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < n:
        raise MovieReadError(f"{path}: channel {channel!r} not found; available: {list(range(n))}")
    return (slice(None),) * axes.index("C") + (index,), index


def _tiff_calibration(tif: tifffile.TiffFile, page) -> tuple[float | None, float | None]:
    """nm/pixel and s/frame from ImageJ metadata + XResolution, else from OME-XML."""
    pixel_nm = interval_s = None
    imagej = tif.imagej_metadata or {}
    resolution = page.tags.valueof(282)  # XResolution: pixels per unit, as (numerator, denominator)
    if imagej.get("unit") and resolution and resolution[0] > 0:
        pixel_nm = _to_nm(resolution[1] / resolution[0], imagej["unit"])
    if imagej.get("finterval"):
        interval_s = _to_s(imagej["finterval"], imagej.get("tunit", "s"))
    if tif.is_ome and (pixel_nm is None or interval_s is None):
        ome_nm, ome_s = _ome_calibration(tif.ome_metadata)
        pixel_nm, interval_s = pixel_nm or ome_nm, interval_s or ome_s
    return pixel_nm, interval_s


def _ome_calibration(xml: str | None) -> tuple[float | None, float | None]:
    """PhysicalSizeX and TimeIncrement of the first OME Pixels element (OME default units: µm, s)."""
    try:
        root = ET.fromstring(xml or "")
    except ET.ParseError:
        return None, None
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None)
    if pixels is None:
        return None, None
    a = pixels.attrib
    return (_to_nm(a.get("PhysicalSizeX"), a.get("PhysicalSizeXUnit", "um")),
            _to_s(a.get("TimeIncrement"), a.get("TimeIncrementUnit", "s")))


# ----------------------------------------------------------------------------- NumPy


def _npy_header(fh) -> tuple[tuple, np.dtype]:
    """Shape and dtype from an open .npy stream without reading the data."""
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(fh)
    return shape, dtype


def _npy(path: Path, channel, lazy: bool) -> _Raw:
    if lazy:
        with open(path, "rb") as fh:
            data = _Stub(*_npy_header(fh))
    else:
        data = np.load(path, allow_pickle=False)
    return _Raw(data, _default_axes(data.shape))


def _npz(path: Path, channel, lazy: bool) -> _Raw:
    """The array named ``channel``, else "frames", else the first 3-D (then 2-D) one."""
    with zipfile.ZipFile(path) as zf:
        headers = {}
        for member in zf.namelist():
            if member.endswith(".npy"):
                with zf.open(member) as fh:
                    headers[member[:-4]] = _npy_header(fh)
    name = _pick(path, {k: v[0] for k, v in headers.items()}, channel, "frames")
    if lazy:
        data = _Stub(*headers[name])
    else:
        with np.load(path, allow_pickle=False) as npz:
            data = npz[name]
    return _Raw(data, _default_axes(data.shape), meta={"channel": name})


# ----------------------------------------------------------------------------- NetCDF / HDF5


def _netcdf(path: Path, channel, lazy: bool) -> _Raw:
    """Variable ``channel``, else "frames", else the first 3-D (then 2-D) one, with its attrs."""
    # Frames are plain numbers: keep any time-like units from turning them into datetimes.
    with xr.open_dataset(path, decode_times=False, decode_timedelta=False) as ds:
        name = _pick(path, {k: v.shape for k, v in ds.data_vars.items()}, channel, "frames")
        var = ds[name]
        data = _Stub(var.shape, var.dtype) if lazy else var.values
        axes = _netcdf_axes(var.dims)
        attrs = _calibration_attrs({**ds.attrs, **var.attrs})
        units = _as_text(var.attrs.get("units"))
    return _Raw(data, axes, attrs["pixel_size_nm"], attrs["frame_interval_s"], attrs["modality"],
                {"channel": name, "units": units})


def _netcdf_axes(dims) -> str:
    """Axis labels from dimension names when they say y and x, else by position."""
    names = [str(d).lower() for d in dims]
    if "y" in names and "x" in names:
        return "".join({"y": "Y", "x": "X"}.get(n, "S" if n in ("rgb", "rgba", "colour", "color") else "T")
                       for n in names)
    return _default_axes([0] * len(dims))


def _hdf5(path: Path, channel, lazy: bool) -> _Raw:
    """Dataset ``channel`` (a path in the file), else the first 3-D (then 2-D) one in visiting order."""
    with h5py.File(path, "r") as f:
        shapes = {}
        f.visititems(lambda name, obj: _collect_dataset(shapes, name, obj))
        wanted = None if channel is None else "/" + str(channel).lstrip("/")
        if wanted is not None and wanted not in shapes and wanted in f and isinstance(f[wanted], h5py.Dataset):
            shapes[wanted] = f[wanted].shape  # a 1-D or 4-D+ dataset asked for by name: let the layout judge it
        name = _pick(path, shapes, wanted)
        dset = f[name]
        data = _Stub(dset.shape, dset.dtype) if lazy else dset[()]
        attrs = _calibration_attrs({**f.attrs, **dset.attrs})
        units = _as_text(dset.attrs.get("units"))
    return _Raw(data, _default_axes(data.shape), attrs["pixel_size_nm"], attrs["frame_interval_s"],
                attrs["modality"], {"channel": name, "units": units})


def _collect_dataset(shapes: dict, name: str, obj) -> None:
    # Returns None on purpose: h5py stops visiting at the first non-None return.
    if isinstance(obj, h5py.Dataset) and len(obj.shape) in (2, 3, 4):
        shapes["/" + name] = obj.shape


# ----------------------------------------------------------------------------- image frames, GIF, video


def natural_key(name: str) -> list:
    """Sort key putting frame_2 before frame_10 (digits compare as numbers, letters ignore case).

    Parameters
    ----------
    name : str
        A file name.

    Returns
    -------
    list
        Alternating lower-cased text and ints, for ``sorted(key=...)``.

    Examples
    --------
    >>> sorted(["frame_10.png", "Frame_2.png", "frame_1.png"], key=natural_key)
    ['frame_1.png', 'Frame_2.png', 'frame_10.png']
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def _one_frame(path: Path, lazy: bool) -> _Raw:
    """One image file of a frames folder (TIFF via tifffile, others via imageio)."""
    with _errors_named(path, "frame"):  # name the bad frame, not only its folder
        if path.suffix.lower() in (".tif", ".tiff"):
            return _tiff(path, None, lazy)
        import imageio.v3 as iio

        if lazy:
            props = iio.improps(path, plugin="pillow")
            data = _Stub(props.shape, props.dtype)
        else:
            data = iio.imread(path, plugin="pillow")
        return _Raw(data, "YXS" if len(data.shape) == 3 else "YX")


def _frames_folder(path: Path, channel, lazy: bool) -> _Raw:
    """A folder of single-image files in natural order; all must have the same size."""
    files = _frame_files(path)
    if not files:
        raise MovieReadError(f"{path}: folder holds no {'/'.join(FRAME_SUFFIXES)} frames")
    first = _one_frame(files[0], lazy)
    _, ny, nx = _frame_layout(files[0], first)
    if lazy:  # headers of the first frame only: the full read checks the others
        return _Raw(_Stub((len(files), ny, nx), first.data.dtype), "TYX")
    frames = [_standardise(first.data, first.axes)]
    for file in files[1:]:
        raw = _one_frame(file, False)
        size = _frame_layout(file, raw)[1:]
        if size != (ny, nx):
            raise MovieReadError(f"{path}: frame {file.name} is {size} pixels (y, x) but {files[0].name} is {(ny, nx)}")
        frames.append(_standardise(raw.data, raw.axes))
    meta = {"original_dtype": str(np.dtype(first.data.dtype))}
    return _Raw(np.concatenate(frames), "TYX", first.pixel_size_nm, None, meta=meta)


def _frame_layout(file: Path, raw: _Raw) -> tuple[int, int, int]:
    shape = _layout(file, raw.data.shape, raw.axes, raw.data.dtype)
    if shape[0] != 1:
        raise MovieReadError(f"{file}: holds {shape[0]} images; a frames folder needs one image per file")
    return shape


def _imageio(path: Path, channel, lazy: bool) -> _Raw:
    """GIF/MP4/AVI via imageio.v3; interval from GIF duration (ms) or video fps."""
    import imageio.v3 as iio

    plugin = "pillow" if path.suffix.lower() == ".gif" else None  # video: whichever backend is installed
    meta = iio.immeta(path, plugin=plugin)
    if lazy:
        props = iio.improps(path, plugin=plugin)
        shape = tuple(props.shape)
        if not np.isfinite(shape[0]):  # ffmpeg reports inf frames: estimate from the container
            shape = (_video_frame_count(path, meta),) + shape[1:]
        data = _Stub(shape, props.dtype)
    else:
        data = iio.imread(path, index=None, plugin=plugin)
    fps = _as_float(meta.get("fps"))
    interval = 1.0 / fps if fps else _to_s(meta.get("duration"), "ms")
    return _Raw(data, "TYXS" if len(data.shape) == 4 else "TYX", None, interval)


def _video_frame_count(path: Path, meta: dict) -> int:
    fps, duration = _as_float(meta.get("fps")), _as_float(meta.get("duration"))
    if fps and duration:
        return int(round(fps * duration))
    import imageio_ffmpeg  # no header count: let ffmpeg count (it decodes, so slower)

    return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])


# ----------------------------------------------------------------------------- single images and masks


def _read_pixels(path: Path, mask: bool = False) -> np.ndarray:
    """Raw pixel array of one image file (.npy, .tif/.tiff, or any format Pillow reads).

    A palette PNG mask is read as its palette indices: label tools store
    class ``k`` as index ``k`` with a colour to show it, and the colour is not the label.
    """
    try:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            data = tifffile.imread(path)
        else:
            import imageio.v3 as iio
            from PIL import Image

            with Image.open(path) as im:
                palette = im.mode == "P"
            data = iio.imread(path, plugin="pillow", mode="P" if mask and palette else None)
    except Exception as exc:
        raise MovieReadError(f"{path}: cannot read: {type(exc).__name__}: {exc}") from exc
    data = np.asarray(data)
    _check_dtype(path, data.dtype)
    return data


def _is_colour(data: np.ndarray) -> bool:
    """A trailing axis of 2-4 samples on a 2-D image or a stack of them is colour."""
    if data.ndim == 4:
        return 1 <= data.shape[-1] <= 4
    return data.ndim == 3 and 2 <= data.shape[-1] <= 4 < min(data.shape[:2])


def _image_stack(data: np.ndarray, path: Path) -> np.ndarray:
    """``(frame, y, x[, colour])`` view of 2-D or 3-D data; MovieReadError otherwise."""
    spatial = data.ndim - _is_colour(data)
    if spatial not in (2, 3) or 0 in data.shape:
        raise MovieReadError(f"{path}: data of shape {data.shape}; expected (y, x), (y, x, colour) "
                             "or a stack (frame, y, x)")
    return data[None] if spatial == 2 else data


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file (or stack) as ``(frame, y, x)`` float32, e.g. a labelled training image.

    Unlike :func:`read_movie`, a trailing axis of 2-4 samples is read as
    colour whenever the image is larger than 4 px, whatever the format.

    Parameters
    ----------
    path : ``.npy``, ``.tif`` / ``.tiff`` or an image Pillow reads (PNG, JPEG, ...).

    Returns
    -------
    (T, Y, X) float32; colour becomes BT.709 luminance (grey + alpha: the grey).

    Raises
    ------
    MovieReadError naming the file.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rgb.npy"
    >>> np.save(path, np.full((8, 8, 3), [10, 20, 30], np.uint8))
    >>> image = read_image(path)
    >>> image.shape, image.dtype, round(float(image[0, 0, 0]), 3)
    ((1, 8, 8), dtype('float32'), 18.596)
    """
    path = Path(path)
    data = _image_stack(_read_pixels(path), path)
    return _luminance(data) if _is_colour(data) else data.astype(np.float32)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """One mask file as ``(frame, y, x)`` labels, values and dtype exactly as stored.

    Label values are never converted to floats (a float file stays float, for
    the caller to check). A palette PNG gives its palette indices; a colour
    mask is accepted only if its colour samples are equal (grey saved as RGB).

    Parameters
    ----------
    path : as for :func:`read_image`.

    Returns
    -------
    (T, Y, X) array of the file's dtype.

    Raises
    ------
    MovieReadError naming the file.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "m_mask.npy"
    >>> np.save(path, np.array([[0, 2], [300, 1]], np.uint16))
    >>> mask = read_mask(path)
    >>> mask.dtype, mask.tolist()
    (dtype('uint16'), [[[0, 2], [300, 1]]])
    """
    path = Path(path)
    data = _image_stack(_read_pixels(path, mask=True), path)
    if not _is_colour(data):
        return data
    grey = data[..., : min(data.shape[-1], 3)]
    if data.shape[-1] > 2 and np.any(grey != grey[..., :1]):
        raise MovieReadError(f"{path}: colour mask; save class labels as a single-channel image")
    return data[..., 0]


# ----------------------------------------------------------------------------- AFM (AFMReader)


def _afmreader(module: str):
    """Import an AFMReader module and silence its loguru output.

    AFMReader enables its loguru logger on import and logs every step to
    stderr; this module reports what matters itself through ``logging``.
    """
    mod = importlib.import_module(f"AFMReader.{module}")
    from loguru import logger

    logger.disable("AFMReader")
    return mod


def _asd(path: Path, channel, lazy: bool) -> _Raw:
    """High-speed AFM .asd (Ando lab) via AFMReader; heights in nm, frame_time in ms."""
    asd = _afmreader("asd")
    channel = "TP" if channel is None else str(channel)
    header, n_bytes_needed = _asd_header(asd, path, channel)
    n, ny, nx = header["num_frames"], header["y_pixels"], header["x_pixels"]
    size = path.stat().st_size
    if size < n_bytes_needed:  # checked here so the probe catches it without reading the frames
        raise MovieReadError(f"{path}: truncated: the header announces {n} frames of {ny} x {nx} "
                             f"({n_bytes_needed} bytes) but the file has {size}")
    pixel_nm = header["x_nm"] / nx
    if not np.isclose(pixel_nm, header["y_nm"] / ny):
        log.warning("%s: pixels are not square (x %.4g nm, y %.4g nm); using x", path, pixel_nm, header["y_nm"] / ny)
    data = _Stub((n, ny, nx), np.dtype(np.float64)) if lazy else asd.load_asd(path, channel)[0]
    units = "nm" if channel == "TP" else None
    return _Raw(data, "TYX", _as_float(pixel_nm), _to_s(header.get("frame_time"), "ms"), "AFM",
                {"channel": channel, "units": units})


def _asd_header(asd, path: Path, channel: str) -> tuple[dict, int]:
    """Header dict and the file size it implies for ``channel`` (data follow the header)."""
    readers = {0: asd.read_header_file_version_0, 1: asd.read_header_file_version_1,
               2: asd.read_header_file_version_2}
    with open(path, "rb") as fh:
        version = asd.read_file_version(fh)
        if version not in readers:
            raise MovieReadError(f"{path}: not an .asd file (file version {version}; known: 0, 1, 2)")
        header = readers[version](fh)
        data_start = fh.tell()
    names = [c for c in (header["channel1"], header["channel2"]) if c]
    if channel not in names:
        raise MovieReadError(f"{path}: channel {channel!r} not found; available: {names}")
    n, ny, nx = header["num_frames"], header["y_pixels"], header["x_pixels"]
    if min(n, ny, nx) <= 0:
        raise MovieReadError(f"{path}: header announces {n} frames of {ny} x {nx} pixels")
    frame_bytes = header["frame_header_length"] + 2 * nx * ny  # int16 samples
    return header, data_start + (names.index(channel) + 1) * n * frame_bytes


def _h5jpk(path: Path, channel, lazy: bool) -> _Raw:
    """JPK .h5-jpk via AFMReader; heights in nm, frame times from the scan line rate."""
    jpk = _afmreader("h5_jpk")
    channel = "height_trace" if channel is None else str(channel)
    with h5py.File(path, "r") as f:
        available = jpk._available_channels(f)
        if channel not in available:
            raise MovieReadError(f"{path}: channel {channel!r} not found; available: {list(available)}")
        if lazy:  # the same header values load_h5jpk uses, without reading the images
            group, measurement, name = jpk._get_channel_info(f, channel)
            size = int(measurement.attrs["position-pattern.grid.ilength"])
            n = int(group[name].shape[1])
            data = _Stub((n, size, size), np.dtype(np.float64))
            pixel_nm = jpk._jpk_pixel_to_nm_scaling_h5(measurement)
            stamps = jpk.generate_timestamps(n, jpk._get_line_rate(measurement), size)
    if not lazy:
        data, pixel_nm, stamps = jpk.load_h5jpk(path, channel)
    units = "nm" if channel.split("_")[0] in ("height", "measuredheight") else None
    return _Raw(data, "TYX", _as_float(pixel_nm), _median_interval(stamps), "AFM",
                {"channel": channel, "units": units})


def _median_interval(stamps: dict) -> float | None:
    times = np.sort(np.asarray(list(stamps.values()), dtype=float))
    return _as_float(np.median(np.diff(times))) if times.size > 1 else None


# ----------------------------------------------------------------------------- EM (RosettaSciIO)


def _rsciio(path: Path, channel, lazy: bool) -> _Raw:
    """DM3/DM4/EMD/MRC via RosettaSciIO: first 2-D/3-D signal, scales from its axes."""
    reader = importlib.import_module(f"rsciio.{_RSCIIO[_FORMATS[_suffix(path)]]}").file_reader
    kwargs = {"lazy": lazy}
    if "metadata_file" in inspect.signature(reader).parameters:
        kwargs["metadata_file"] = None  # else rsciio's MRC reader hunts for DE files when "movie" is in the path
    signals = reader(str(path), **kwargs)
    index = _pick_signal(path, signals, channel)
    signal = signals[index]
    data, axes = signal["data"], _ordered_axes(signal)
    pixel_nm = _to_nm(axes[-1].get("scale"), axes[-1].get("units"))
    interval = _to_s(axes[0].get("scale"), axes[0].get("units")) if data.ndim == 3 else None
    data = _Stub(data.shape, data.dtype) if lazy else np.asarray(data)
    return _Raw(data, _default_axes(data.shape), pixel_nm, interval, "EM",
                {"channel": index, "title": _title(signal)})


def _ordered_axes(signal: dict) -> list[dict]:
    """The signal's axis dicts in array order (an empty dict when it has none)."""
    axes = list(enumerate(signal.get("axes") or []))
    return [a for _, a in sorted(axes, key=lambda ia: ia[1].get("index_in_array", ia[0]))] or [{}]


def _title(signal: dict) -> str | None:
    return _as_text(signal.get("metadata", {}).get("General", {}).get("title"))


def _pick_signal(path, signals: list, channel) -> int:
    """Index of the signal named by ``channel`` (index or title), else the first 2-D/3-D one."""
    listing = ", ".join(f"{i}: {_title(s)!r} {tuple(s['data'].shape)}" for i, s in enumerate(signals))
    if channel is not None:
        for i, s in enumerate(signals):
            if str(channel) in (str(i), _title(s)):
                return i
        raise MovieReadError(f"{path}: channel {channel!r} not found; available: {listing}")
    for i, s in enumerate(signals):
        if s["data"].ndim in (2, 3):
            return i
    raise MovieReadError(f"{path}: no 2-D or 3-D image signal; found: {listing or 'nothing'}")


_OPENERS = {
    "tiff": _tiff, "npy": _npy, "npz": _npz, "netcdf": _netcdf, "hdf5": _hdf5,
    "frames-folder": _frames_folder, "gif": _imageio, "mp4": _imageio, "avi": _imageio,
    "asd": _asd, "h5-jpk": _h5jpk, "dm3": _rsciio, "dm4": _rsciio, "emd": _rsciio, "mrc": _rsciio,
}
