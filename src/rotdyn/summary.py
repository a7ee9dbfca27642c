"""The numbers a user wants first about one analysed movie (``summary.json``)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .contracts import TRANSITION, TRANSITION_SCORE, TRANSITION_UNCERTAINTY, transition_names
from .store import atomic_path, plain

log = logging.getLogger(__name__)


def movie_summary(movie: xr.Dataset, latents: xr.Dataset, nmf: xr.Dataset, tracks: pd.DataFrame,
                  settings: dict, qc: dict | None = None) -> dict:
    """Frames, particles per frame, tracks, transition frame per latent, settings.

    Parameters
    ----------
    movie, latents, nmf : xr.Dataset
        The ``movie.nc``, ``latents.nc`` and ``nmf.nc`` datasets.
    tracks : DataFrame
        ``track_summary.csv`` (one row per track, with ``length``).
    settings : dict
        The model settings to record (config sections).
    qc : dict or None
        ``qc.json`` (:mod:`rotdyn.qc`): its warnings, bad frames and which
        checks passed go into the summary under ``qc``.

    Returns
    -------
    dict
        JSON-ready (:func:`rotdyn.store.plain`; NaN becomes None): ``movie``,
        ``frames``, ``pixel_size_nm``, ``frame_interval_s``, ``particles``,
        ``particles_per_frame`` (``mean``, ``min``, ``max``), ``tracks``,
        ``median_track_length``, ``transition_frame`` and
        ``transition_uncertainty`` per latent, ``transition_reason`` (why a
        latent has no transition frame: :func:`transition_reasons`), ``qc`` (``ok``, ``warnings``,
        ``bad_frames``, ``checks``: name -> passed), ``particle_kind`` (from the
        settings), ``contrast`` (what ingest decided: ``value``, ``setting``,
        ``reason``), ``settings``, ``rotdyn_version``.

    Examples
    --------
    >>> import numpy as np
    >>> movie = xr.Dataset(coords={"frame": [0, 1, 2]}, attrs={"pixel_size_nm": 0.39})
    >>> latents = xr.Dataset({"frame": ("particle", [0, 0, 2])})
    >>> nmf = xr.Dataset({"transition_frame_angle": 2.0, "transition_uncertainty_angle": 1.0,
    ...                   "transition_frame_z1": np.nan, "transition_uncertainty_z1": np.nan})
    >>> s = movie_summary(movie, latents, nmf, pd.DataFrame({"length": [2, 1]}), {})
    >>> s["particles_per_frame"], s["median_track_length"], s["transition_frame"], s["frame_interval_s"]
    ({'mean': 1.0, 'min': 0, 'max': 2}, 1.5, {'angle': 2.0, 'z1': None}, None)
    """
    frames = movie["frame"].values
    per_frame = pd.Series(latents["frame"].values).value_counts().reindex(frames, fill_value=0)
    names = transition_names(nmf)
    return {
        "movie": movie.attrs.get("source"),
        "original_name": movie.attrs.get("original_name"),
        "particle_kind": (settings.get("particles") or {}).get("kind"),
        "contrast": {"value": movie.attrs.get("contrast", "bright"), "setting": movie.attrs.get("contrast_setting"),
                     "reason": movie.attrs.get("contrast_reason")},
        "frames": int(len(frames)),
        "pixel_size_nm": plain(movie.attrs.get("pixel_size_nm")),
        "frame_interval_s": plain(movie.attrs.get("frame_interval_s")),
        "particles": int(latents.sizes.get("particle", 0)),
        "particles_per_frame": {"mean": plain(float(per_frame.mean())) if len(per_frame) else 0,
                                "min": int(per_frame.min()) if len(per_frame) else 0,
                                "max": int(per_frame.max()) if len(per_frame) else 0},
        "tracks": int(len(tracks)),
        "median_track_length": plain(float(tracks["length"].median())) if len(tracks) else None,
        "transition_frame": {n: plain(float(nmf[f"{TRANSITION}{n}"])) for n in names},
        "transition_uncertainty": {n: plain(float(nmf[f"{TRANSITION_UNCERTAINTY}{n}"])) for n in names},
        "transition_reason": transition_reasons(nmf, _dynamics_frames(per_frame, qc)),
        "qc": _qc_summary(qc),
        "settings": settings,
        "rotdyn_version": __version__,
    }


def transition_reasons(nmf: xr.Dataset, frames_with_particles: int) -> dict:
    """Per latent, why it has no transition frame (None where it has one), from ``nmf.nc``.

    Parameters
    ----------
    nmf : xr.Dataset
        ``nmf.nc`` (:func:`rotdyn.nmf.nmf_maps`): ``transition_frame_<latent>``,
        ``transition_score_<latent>`` and the attributes ``min_score`` and
        ``min_segment``.
    frames_with_particles : int
        Frames the dynamics saw particles in (bad frames left out).

    Returns
    -------
    dict of str to str or None

    Examples
    --------
    >>> nmf = xr.Dataset({"transition_frame_angle": 30.0, "transition_score_angle": 0.9,
    ...                   "transition_frame_z1": np.nan, "transition_score_z1": 0.2,
    ...                   "transition_frame_z2": np.nan, "transition_score_z2": np.nan},
    ...                  attrs={"min_score": 0.5, "min_segment": 3})
    >>> for name, why in transition_reasons(nmf, 4).items():
    ...     print(name, why)
    angle None
    z1 no single step explains the change of its distribution (score 0.20 < min_score 0.5)
    z2 4 frames with particles: a step needs 3 on either side, 6 in all
    """
    out = {}
    for name in transition_names(nmf):
        score = float(nmf[f"{TRANSITION_SCORE}{name}"]) if f"{TRANSITION_SCORE}{name}" in nmf else np.nan
        if np.isfinite(float(nmf[f"{TRANSITION}{name}"])):
            out[name] = None
        elif np.isfinite(score):
            out[name] = (f"no single step explains the change of its distribution (score {score:.2f} < "
                         f"min_score {nmf.attrs.get('min_score')})")
        else:
            segment = int(nmf.attrs.get("min_segment", 1))
            out[name] = (f"{frames_with_particles} frames with particles: a step needs {segment} on either side, "
                         f"{2 * segment} in all")
    return out


def _dynamics_frames(per_frame: pd.Series, qc: dict | None) -> int:
    """Frames with particles that the dynamics use (qc's bad frames left out)."""
    bad = set((qc or {}).get("bad_frames", []))
    return int(sum(count > 0 and frame not in bad for frame, count in per_frame.items()))


def _qc_summary(qc: dict | None) -> dict | None:
    """The part of ``qc.json`` a user wants first: whether to trust the run, and why not."""
    if qc is None:
        return None
    return {"ok": not qc["warnings"], "warnings": qc["warnings"], "bad_frames": qc.get("bad_frames", []),
            "checks": {check["name"]: bool(check["ok"]) for check in qc["checks"]}}


def run(job) -> None:
    """Entry of rule ``summary``: ``summary.json`` from movie, latents, NMF and track summary.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.movie``, ``input.latents``, ``input.nmf`` (NetCDF),
        ``input.tracks`` (``track_summary.csv``), ``output[0]``
        (``summary.json``, see :func:`movie_summary`); ``params.settings``:
        the settings that ran ("auto" resolved), recorded as they are.

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> files = {name: os.path.join(folder, name) for name in ("movie.nc", "latents.nc", "nmf.nc", "tracks.csv")}
    >>> write_netcdf(xr.Dataset(coords={"frame": [0, 1]}), files["movie.nc"])
    >>> write_netcdf(xr.Dataset({"frame": ("particle", [0, 1, 1])}), files["latents.nc"])
    >>> write_netcdf(xr.Dataset({"transition_frame_angle": 1.0, "transition_uncertainty_angle": 0.0}),
    ...              files["nmf.nc"])
    >>> pd.DataFrame({"track": [0], "length": [2]}).to_csv(files["tracks.csv"], index=False)
    >>> run(job("summary", input={"movie": files["movie.nc"], "latents": files["latents.nc"], "nmf": files["nmf.nc"],
    ...                           "tracks": files["tracks.csv"]}, output=[os.path.join(folder, "summary.json")],
    ...         params={"settings": {"kde": {"grid_points": 181}}}))
    >>> with open(os.path.join(folder, "summary.json")) as f:
    ...     s = json.load(f)
    >>> s["particles"], s["tracks"], s["transition_frame"], s["settings"]
    (3, 1, {'angle': 1.0}, {'kde': {'grid_points': 181}})
    """
    with xr.open_dataset(job.input.movie) as movie, xr.open_dataset(job.input.latents) as latents, \
            xr.open_dataset(job.input.nmf) as nmf:
        qc = None
        if getattr(job.input, "qc", None):
            with open(job.input.qc) as f:
                qc = json.load(f)
        summary = movie_summary(movie, latents, nmf, pd.read_csv(job.input.tracks), dict(job.params.settings), qc)
    if qc and qc["warnings"]:
        log.warning("%s: %d self-check warning(s), the results may not be trustworthy:\n  %s",
                    job.output[0], len(qc["warnings"]), "\n  ".join(qc["warnings"]))
    with atomic_path(job.output[0]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
