"""The numbers a user wants first about one analysed movie (``summary.json``)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from . import __version__
from .contracts import transition_names
from .store import atomic_path


def _number(value):
    """JSON-friendly: NaN becomes None, numpy scalars plain Python."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def movie_summary(movie: xr.Dataset, latents: xr.Dataset, nmf: xr.Dataset, tracks: pd.DataFrame,
                  settings: dict) -> dict:
    """Frames, particles per frame, tracks, transition frame per latent, settings.

    Parameters
    ----------
    movie, latents, nmf : the ``movie.nc``, ``latents.nc`` and ``nmf.nc`` datasets.
    tracks : ``track_summary.csv`` (one row per track, with ``length``).
    settings : the model settings to record (config sections).
    """
    frames = movie["frame"].values
    per_frame = pd.Series(latents["frame"].values).value_counts().reindex(frames, fill_value=0)
    names = transition_names(nmf)
    return {
        "movie": movie.attrs.get("source"),
        "frames": int(len(frames)),
        "pixel_size_nm": _number(movie.attrs.get("pixel_size_nm")),
        "frame_interval_s": _number(movie.attrs.get("frame_interval_s")),
        "particles": int(latents.sizes.get("particle", 0)),
        "particles_per_frame": {"mean": _number(float(per_frame.mean())) if len(per_frame) else 0,
                                "min": int(per_frame.min()) if len(per_frame) else 0,
                                "max": int(per_frame.max()) if len(per_frame) else 0},
        "tracks": int(len(tracks)),
        "median_track_length": _number(float(tracks["length"].median())) if len(tracks) else None,
        "transition_frame": {n: _number(float(nmf[f"transition_frame_{n}"])) for n in names},
        "transition_uncertainty": {n: _number(float(nmf[f"transition_uncertainty_{n}"])) for n in names},
        "settings": settings,
        "rotdyn_version": __version__,
    }


def run(job) -> None:
    """Entry of rule ``summary``: ``summary.json`` from movie, latents, NMF and track summary.

    ``job.params.settings`` are the settings that ran ("auto" resolved), recorded as they are.
    """
    with xr.open_dataset(job.input.movie) as movie, xr.open_dataset(job.input.latents) as latents, \
            xr.open_dataset(job.input.nmf) as nmf:
        summary = movie_summary(movie, latents, nmf, pd.read_csv(job.input.tracks), dict(job.params.settings))
    with atomic_path(job.output[0]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
