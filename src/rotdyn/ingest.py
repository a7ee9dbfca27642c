"""The ingest stage: one movie file in any supported format -> ``results/<movie>/movie.nc``.

The file is read by :mod:`rotdyn.formats`, preprocessed by
:mod:`rotdyn.preprocess` (AFM line flattening, normalisation, drift
correction, frame range) with the settings of :func:`rotdyn.movies.movie_settings`
(config defaults merged with the movie's sample-sheet row), and written as the
``movie.nc`` contract (:data:`rotdyn.contracts.MOVIE`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from .formats import read_movie
from .preprocess import invert, preprocess
from .store import provenance, write_netcdf
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
    ds = load_movie(job.input[0], job.params.settings)
    log.info("%s: %d frames of %d x %d px", job.input[0], ds.sizes["frame"], ds.sizes["y"], ds.sizes["x"])
    write_netcdf(ds, job.output[0])


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
    """Read and preprocess one movie into the ``movie.nc`` dataset.

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
    movie = read_movie(path, channel=settings.get("channel"))
    flatten = settings["flatten"]
    if flatten == "auto":
        flatten = movie.modality.upper().startswith("AFM")
    frames, shifts, bad = preprocess(
        movie.frames,
        flatten_afm=flatten,
        normalize_method=settings["normalize"],
        drift_correction=settings["drift_correction"],
        drift_reference=settings["drift_reference"],
        first_frame=settings["first_frame"],
        last_frame=settings["last_frame"],
    )
    if len(bad):
        log.warning("%s: frames %s have no finite pixels, no contrast or are saturated; passed through "
                    "unchanged and not segmented",
                    path, (bad + settings["first_frame"]).tolist())
    good = np.setdiff1d(np.arange(len(frames)), bad)
    good = good if len(good) else np.arange(len(frames))  # a saturated frame would skew contrast and sizes
    contrast, reason = decide_contrast(frames[good], settings, movie.modality)
    log.info("%s: particles %s (%s)", path, contrast, reason)
    if contrast == "dark":  # the ensembles are trained on bright particles
        frames = invert(frames, settings["normalize"])
    measured = measure(frames[good], **settings["measure"]) if settings.get("measure") else {}
    if measured:
        log.info("%s: measured %s", path, ", ".join(f"{k} {v:.3g}" for k, v in measured.items()))
    pixel = settings.get("pixel_size_nm") or movie.pixel_size_nm
    interval = settings.get("frame_interval_s") or movie.frame_interval_s
    numbers = np.arange(len(frames)) + settings["first_frame"]
    usable = np.ones(len(frames), dtype=np.uint8)
    usable[bad] = 0
    ds = xr.Dataset(
        {
            "frames": (("frame", "y", "x"), frames, {"long_name": "preprocessed signal",
                                                     "units": movie.metadata.get("units") or "arbitrary"}),
            "shift_y": ("frame", shifts[:, 0], {"units": "px", "long_name": "drift correction applied along y"}),
            "shift_x": ("frame", shifts[:, 1], {"units": "px", "long_name": "drift correction applied along x"}),
            "usable": ("frame", usable, {"long_name": "1 when the frame had finite pixels, contrast and was not saturated"}),
        },
        coords={"frame": numbers, "y": np.arange(frames.shape[1]), "x": np.arange(frames.shape[2])},
    )
    if interval:
        ds = ds.assign_coords(time=("frame", numbers * float(interval), {"units": "s"}))
    else:
        log.warning("%s: no frame interval in the file or the settings; times are in frames", path)
    if not pixel:
        log.warning("%s: no pixel size in the file or the settings; sizes stay in pixels", path)
    ds.attrs = provenance(
        source=str(path), source_path=str(Path(path).resolve()), original_name=Path(path).name,
        format=movie.format, modality=movie.modality,
        pixel_size_nm=float(pixel) if pixel else None,
        frame_interval_s=float(interval) if interval else None,
        flatten=int(bool(flatten)), normalize=settings["normalize"],
        contrast=contrast, contrast_setting=settings.get("contrast", "bright"), contrast_reason=reason,
        **{f"measured_{key}": value for key, value in measured.items()},
        drift_correction=int(settings["drift_correction"]), drift_reference=settings["drift_reference"],
        first_frame=settings["first_frame"], last_frame=settings["last_frame"],
        channel=settings.get("channel") or movie.metadata.get("channel"),
    )
    return ds
