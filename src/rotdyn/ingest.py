"""The ingest stage: one movie file in any supported format -> ``results/<movie>/movie.nc``.

The file is read by :mod:`rotdyn.formats`, preprocessed by
:mod:`rotdyn.preprocess` (AFM line flattening, normalisation, drift
correction, running mean over ``average_frames``, frame range) with the settings of :func:`rotdyn.movies.movie_settings`
(config defaults merged with the movie's sample-sheet row), and written as the
``movie.nc`` contract (:data:`rotdyn.contracts.MOVIE`).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from .formats import read_movie
from .preprocess import invert, preprocess_chunks, select_frames
from .store import atomic_path, attr_value, provenance
from .survey import SHAPES, detect_contrast, measure, particle_template, shape_name

log = logging.getLogger(__name__)


def run(job) -> None:
    """Entry of rule ``ingest``: ``job.input[0]`` (a movie file) -> ``job.output[0]`` (movie.nc).

    ``job.params.settings`` are the movie's preprocessing settings
    (:func:`rotdyn.movies.movie_settings`).

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input[0]``: the movie file; ``output[0]``: movie.nc; ``params.settings``: see above.

    Examples
    --------
    >>> import tempfile, numpy as np, xarray as xr
    >>> from pathlib import Path
    >>> from rotdyn.jobs import job
    >>> from rotdyn.movies import movie_settings
    >>> tmp = Path(tempfile.mkdtemp())
    >>> np.save(tmp / "m.npy", np.random.default_rng(0).random((3, 16, 20)).astype("float32"))
    >>> settings = movie_settings({"flatten": "auto", "normalize": "minmax", "drift_correction": False,
    ...                            "drift_reference": "previous", "first_frame": 0, "last_frame": None})
    >>> run(job("ingest", input=[str(tmp / "m.npy")], output=[str(tmp / "movie.nc")],
    ...         params={"settings": settings}))
    >>> with xr.open_dataset(tmp / "movie.nc") as ds:
    ...     ds["frames"].shape, float(ds["frames"].max())
    ((3, 16, 20), 1.0)
    """
    write_movie(job.input[0], job.params.settings, job.output[0])


def decide_contrast(frames: np.ndarray, settings: dict, modality: str = "") -> tuple[str, str]:
    """Whether the movie's particles are ``"bright"`` or ``"dark"``, and why (one line for the log).

    ``settings["contrast"]`` ``bright``/``dark`` (default bright) is taken as
    given; ``auto`` decides from the frames with a matched filter of the
    kind's particle (``settings["particle"]``: its simulator and sizes,
    :func:`rotdyn.kinds.particle_size`; :func:`rotdyn.survey.detect_contrast`).

    Parameters
    ----------
    frames : ndarray
        ``(T, H, W)`` normalised frames.
    settings : dict
        The movie's settings: ``contrast`` (``bright``, ``dark`` or ``auto``) and, for auto, ``particle``.
    modality : str
        The movie's imaging modality, passed to :func:`rotdyn.survey.detect_contrast`.

    Returns
    -------
    contrast : {"bright", "dark"}
        The decision (bright when auto cannot decide).
    reason : str
        Why, for the log.

    Examples
    --------
    >>> frames = np.zeros((2, 48, 48), np.float32)
    >>> frames[:, 20:26, 10:30] = -1.0  # a dark rod on a grey background
    >>> decide_contrast(frames, {"contrast": "auto", "particle": {"simulator": "rods", "length": 20,
    ...                                                       "width": 6}})[0]
    'dark'
    >>> decide_contrast(frames, {"contrast": "bright"})
    ('bright', 'set to bright')
    """
    setting = settings.get("contrast", "bright")
    if setting != "auto":
        return setting, f"set to {setting}"
    particle = dict(settings["particle"])
    shape = shape_name(particle.pop("simulator"))
    template = particle_template(shape, **{key: particle[key] for key in SHAPES[shape]})
    try:
        decision = detect_contrast(frames, template, modality=modality)
    except ValueError as exc:  # blank or constant frames: nothing to decide from
        log.warning("contrast: auto could not decide (%s); taking bright", exc)
        return "bright", f"auto: undecided ({exc}); bright"
    return decision.contrast, f"auto: {decision.reason}"


def load_movie(path: str | os.PathLike, settings: dict) -> "xr.Dataset":
    """Read and preprocess one movie into the ``movie.nc`` dataset, in memory.

    What :func:`write_movie` writes, loaded back (for small movies, tests
    and benchmarks; the workflow streams with :func:`write_movie`).

    Parameters
    ----------
    path : movie file or folder of frames (:func:`rotdyn.formats.read_movie`).
    settings : :func:`rotdyn.movies.movie_settings`' result. Pixel size and
        frame interval come from the file unless the settings give them;
        ``flatten: auto`` flattens AFM movies only.

    Returns
    -------
    xarray.Dataset with ``frames(frame, y, x)``, ``shift_y``, ``shift_x`` and
    ``usable`` per frame, coordinate ``time`` (s) when the interval is known,
    and the settings and calibration as attrs.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "m.npy"
    >>> np.save(path, np.arange(4 * 3 * 3, dtype=np.float32).reshape(4, 3, 3))
    >>> settings = {"flatten": "auto", "normalize": "none", "drift_correction": False,
    ...             "drift_reference": "previous", "first_frame": 1, "last_frame": 2,
    ...             "frame_interval_s": 0.5}
    >>> ds = load_movie(path, settings)
    >>> ds.frame.values.tolist(), ds.time.values.tolist(), float(ds.frames[0, 0, 0])
    ([1, 2], [0.5, 1.0], 9.0)
    """
    with tempfile.TemporaryDirectory() as folder:
        write_movie(path, settings, Path(folder) / "movie.nc")
        return xr.load_dataset(Path(folder) / "movie.nc")


def write_movie(path: str | os.PathLike, settings: dict, out_path: str | os.PathLike, chunk: int = 32) -> None:
    """Read and preprocess one movie into ``movie.nc``, ``chunk`` frames at a time.

    A movie of any length costs a few chunks of memory: where its format
    allows, the file's frames are read a chunk at a time
    (:func:`rotdyn.formats.read_movie`, ``mapped``; other formats are read
    whole), preprocessed chunk by chunk
    (:func:`rotdyn.preprocess.preprocess_chunks`) and each chunk written as it
    is done. Contrast (``auto``) and sizes are decided on up to
    :data:`SAMPLE_FRAMES` usable frames spread over the movie (a saturated
    frame would skew both); a dark movie's
    frames are then inverted in the file, chunk by chunk. The file appears
    under its name only when complete.

    Parameters
    ----------
    path : movie file or folder of frames.
    settings : see :func:`load_movie`.
    out_path : the ``movie.nc`` to write.
    chunk : frames read, preprocessed and written at a time.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.save(folder / "m.npy", np.random.default_rng(0).random((5, 16, 16)).astype(np.float32))
    >>> settings = {"flatten": False, "normalize": "minmax", "drift_correction": False,
    ...             "drift_reference": "previous", "first_frame": 0, "last_frame": None}
    >>> write_movie(folder / "m.npy", settings, folder / "movie.nc", chunk=2)
    >>> with xr.open_dataset(folder / "movie.nc") as ds:
    ...     ds["frames"].shape, float(ds["frames"].max()), ds["usable"].values.tolist()
    ((5, 16, 16), 1.0, [1, 1, 1, 1, 1])
    """
    movie = read_movie(path, channel=settings.get("channel"), mapped=True)
    flatten = settings["flatten"]
    if flatten == "auto":
        flatten = movie.modality.upper().startswith("AFM")
    kept = select_frames(movie.frames, settings["first_frame"], settings["last_frame"])
    n, ny, nx = len(kept), movie.frames.shape[1], movie.frames.shape[2]
    looks = settings.get("contrast") == "auto" or bool(settings.get("measure"))  # else no frame is looked at
    sample = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_FRAMES) if looks else 0).round().astype(int))
    numbers = np.arange(n) + settings["first_frame"]
    interval = settings.get("frame_interval_s") or movie.frame_interval_s
    if (average := _average(settings)) > 1:
        log.info("%s: each frame is the running mean of %d frames%s: dynamics faster than %d "
                 "frames%s are blurred", path, average,
                 " after drift correction" if settings["drift_correction"] else "", average,
                 f" ({average * float(interval):.3g} s)" if interval else "")
    with atomic_path(out_path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.set_auto_mask(False)  # NaN pixels read back as NaN, not masked
        frames = _create_movie(nc, numbers, ny, nx, interval, movie.metadata.get("units"))
        shifts, scales, bad, picked = _write_frames(frames, movie.frames, settings, flatten, chunk, sample)
        if len(bad):
            log.warning("%s: frames %s have no finite pixels, no contrast or are saturated; passed through "
                        "unchanged and not segmented", path, (bad + settings["first_frame"]).tolist())
        good = ~np.isin(sample, bad)
        picked = np.stack(picked)[good if good.any() else slice(None)] if picked else np.zeros((0, ny, nx))
        contrast, reason = decide_contrast(picked, settings, movie.modality)
        log.info("%s: particles %s (%s)", path, contrast, reason)
        if contrast == "dark":  # the ensembles are trained on bright particles
            picked = invert(picked, settings["normalize"])
            for offset in range(0, n, chunk):  # in the file, a chunk at a time
                frames[offset:offset + chunk] = invert(frames[offset:offset + chunk], settings["normalize"])
        measured = measure(picked, **settings["measure"]) if settings.get("measure") else {}
        if measured:
            log.info("%s: measured %s", path, ", ".join(f"{k} {v:.3g}" for k, v in measured.items()))
        usable = np.ones(n, dtype=np.uint8)
        usable[bad] = 0
        nc["shift_y"][:], nc["shift_x"][:], nc["usable"][:] = shifts[:, 0], shifts[:, 1], usable
        nc["intensity_scale"][:] = scales
        nc.setncatts({k: attr_value(v) for k, v in _movie_attrs(path, movie, settings, flatten, interval,
                                                                contrast, reason, measured).items()})
    log.info("%s: %d frames of %d x %d px", path, n, ny, nx)


def _average(settings: dict) -> int:
    """Frames in the running mean over time: the settings' ``average_frames`` (left out when 1)."""
    return int(settings.get("average_frames") or 1)


def _write_frames(out, frames, settings: dict, flatten: bool, chunk: int, sample) -> tuple:
    """Preprocess ``frames`` chunk by chunk into the NetCDF variable ``out``.

    Returns the drift shifts ``(T, 2)``, each frame's intensity scale
    (:func:`rotdyn.preprocess.intensity_scale`), the indices of unusable
    frames and copies of the frames at the indices ``sample`` (for contrast
    and sizes).
    """
    shifts, scales, bad, picked = np.zeros((len(out), 2)), np.ones(len(out)), [], []
    for offset, block, block_shifts, block_bad, block_scale in preprocess_chunks(
            frames, flatten_afm=flatten, normalize_method=settings["normalize"],
            drift_correction=settings["drift_correction"], drift_reference=settings["drift_reference"],
            first_frame=settings["first_frame"], last_frame=settings["last_frame"],
            average=_average(settings), chunk=chunk):
        out[offset:offset + len(block)] = block
        shifts[offset:offset + len(block)] = block_shifts
        scales[offset:offset + len(block)] = block_scale
        bad += (block_bad + offset).tolist()
        picked += [block[i - offset].copy() for i in sample if offset <= i < offset + len(block)]  # not views
    return shifts, scales, np.asarray(bad, dtype=int), picked


# Frames that auto contrast and the size measurement look at: spread over the movie, a few hundred at most
# (they pick fewer themselves), so deciding costs the same for a 100-frame movie and a 100,000-frame one
SAMPLE_FRAMES = 256


def _create_movie(nc, numbers, ny: int, nx: int, interval, units) -> "netCDF4.Variable":
    """Dimensions, coordinates and the (empty) per-frame variables of movie.nc; returns ``frames``."""
    for dim, size in (("frame", len(numbers)), ("y", ny), ("x", nx)):
        nc.createDimension(dim, size)
    for name, values in (("frame", numbers), ("y", np.arange(ny)), ("x", np.arange(nx))):
        nc.createVariable(name, "i8", (name,))[:] = values
    extra = ""
    if interval:
        time = nc.createVariable("time", "f8", ("frame",))
        time[:], time.units, extra = numbers * float(interval), "s", "time"
    frames = nc.createVariable("frames", "f4", ("frame", "y", "x"), zlib=True, complevel=1, chunksizes=(1, ny, nx),
                               fill_value=np.float32(np.nan))
    frames.setncatts({"long_name": "preprocessed signal", "units": units or "arbitrary"})
    described = {"shift_y": ("f8", {"units": "px", "long_name": "drift correction applied along y"}),
                 "shift_x": ("f8", {"units": "px", "long_name": "drift correction applied along x"}),
                 "usable": ("u1", {"long_name": "1 when the frame had finite pixels, contrast and was not "
                                                "saturated"}),
                 "intensity_scale": ("f8", {"units": units or "arbitrary", "long_name":
                                            "the movie's own units per unit of frames (normalisation undone)"})}
    for name, (dtype, attrs) in described.items():
        nc.createVariable(name, dtype, ("frame",)).setncatts(attrs)
    for name in ("frames", *described) if extra else ():
        nc[name].coordinates = extra  # so xarray reads time as their coordinate
    return frames


def _movie_attrs(path, movie, settings: dict, flatten: bool, interval, contrast: str, reason: str,
                 measured: dict) -> dict:
    """movie.nc's attributes: provenance, calibration, the settings used and what was decided."""
    pixel = settings.get("pixel_size_nm") or movie.pixel_size_nm
    if not interval:
        log.warning("%s: no frame interval in the file or the settings; times are in frames", path)
    if not pixel:
        log.warning("%s: no pixel size in the file or the settings; sizes stay in pixels", path)
    return provenance(
        source=str(path), source_path=str(Path(path).resolve()), original_name=Path(path).name,
        format=movie.format, modality=movie.modality,
        pixel_size_nm=float(pixel) if pixel else None,
        frame_interval_s=float(interval) if interval else None,
        flatten=int(bool(flatten)), normalize=settings["normalize"],
        contrast=contrast, contrast_setting=settings.get("contrast", "bright"), contrast_reason=reason,
        **{f"measured_{key}": value for key, value in measured.items()},
        drift_correction=int(settings["drift_correction"]), drift_reference=settings["drift_reference"],
        average_frames=_average(settings),
        first_frame=settings["first_frame"], last_frame=settings["last_frame"],
        channel=settings.get("channel") or movie.metadata.get("channel"),
    )
