"""What every result file holds: variable names, the latents, particles and tracks, conventions.

One home for the names the stages pass between them, so that a stage never
decides on its own which variables are latents or what a column means.

Files (under ``results/<movie>/``)
----------------------------------
=================  ================================================================
``movie.nc``       :data:`MOVIE`: preprocessed ``frames(frame, y, x)`` and per-frame drift
``probability.nc`` :data:`PROBABILITY`: ensemble ``mean``/``variance(frame, class, y, x)``
``particles.nc``   :data:`PARTICLES`: one row per *detection* on dimension ``particle``
``patches.nc``     :data:`PATCHES`: ``patches(particle, py, px)``, one window per detection
``latents.nc``     :data:`LATENTS`: angle, offsets, content latents ``z(particle, latent)``
``kde.nc``         per latent: ``density_<name>(frame, <name>_grid)``, one density per frame
``nmf.nc``         per latent: components and ``transition_frame_<name>``
``tracks.csv``     :data:`TRACKS`: one row per detection in a track (``track`` column)
``qc.json``        :data:`QC`: the self-checks of the run (:data:`QC_CHECK` each), bad frames
=================  ================================================================

Detections and tracks
---------------------
``particle`` is the dimension that numbers *detections* (one particle in one
frame) in ``particles.nc``, ``patches.nc`` and ``latents.nc``; ``particle_index``
points from a window or latent back to its row of ``particles.nc``. A *track*
is one particle followed over frames: ``tracks.csv`` names it ``track``, and
keeps trackpy's own name ``particle`` as an alias column with the same values
so that trackpy's functions (``trackpy.msd``, ``trackpy.compute_drift``) read
the table unchanged.

Conventions
-----------
* ``x`` is the column and ``y`` the row, in pixels, of the frame as stored
  (``y`` grows downwards, as an image is displayed).
* Angles are in radians, counter-clockwise *as displayed* (with ``y`` down,
  that is ``atan2(-dy, dx)``), from the +x axis. ``orientation`` in
  ``particles.nc`` is an axis (modulo pi); the rVAE ``angle`` is a direction
  (modulo 2 pi) when the model kept a head-tail polarity, else an axis, and
  is defined up to a constant per model.
* Latent variable names are ``angle``, ``dx``, ``dy`` and ``z1 .. zk``, where
  ``z<l>`` is column ``l`` of ``z(particle, latent)``, numbered by the
  ``latent`` coordinate from 1 (the papers' L_1, L_2).
"""
from __future__ import annotations

import re

# ---------------------------------------------------------------- variables
MOVIE = ("frames", "shift_y", "shift_x", "usable", "intensity_scale")
PROBABILITY = ("mean", "variance", "class_name")
# The class of particle centres (training_set.centres): locate seeds one particle per centre, never counts one.
CENTRE_CLASS = "centre"
PARTICLES = ("frame", "x", "y", "area", "major_axis", "minor_axis", "orientation", "eccentricity", "class",
             "mean_probability", "mean_variance", "touches_edge")
PATCHES = ("patches", "particle_index", "padded", "frame", "x", "y", "class")
LATENTS = ("angle", "angle_sd", "dx", "dy", "dx_sd", "dy_sd", "z", "z_sd", "particle_index",
           "frame", "x", "y", "class", "reconstruction_error")
# patches.nc attrs: how many particles there were and how many windows the border cost
PATCHES_BORDER = ("n_particles", "n_border", "n_dropped", "dropped_fraction")
# latents.nc: mean squared error of the reconstruction from the posterior mean / the window's
# variance (1 = no better than the window's mean); a quality number, not a latent
RECONSTRUCTION_ERROR = "reconstruction_error"

# qc.json: the run's self-checks. ``frames`` numbers the movie's frames, ``particles_per_frame``
# counts detections in each; ``bad_frames`` (blank, saturated, out of family) are frames the
# dynamics should leave out; ``count_outliers`` frames whose particle count is an outlier;
# ``warnings`` the messages of the checks that tripped.
QC = ("movie", "kind", "checks", "warnings", "bad_frames", "count_outliers", "frames", "particles_per_frame")
QC_CHECK = ("name", "value", "threshold", "ok", "message")  # one entry of ``checks``

# movie.nc attrs that name the movie's file and its calibration: every result made
# from the movie carries them (stages that write their own attrs copy these).
MOVIE_ATTRS = ("source", "source_path", "original_name", "pixel_size_nm", "frame_interval_s")

DETECTION = "particle"  # the dimension numbering detections in particles/patches/latents.nc
TRACK = "track"  # the track id column of tracks.csv
TRACKPY_TRACK = "particle"  # trackpy's name for the same column, kept as an alias
TRACKS = ("frame", "x", "y", TRACK, TRACKPY_TRACK)

# ------------------------------------------------------------------ latents
POSE = ("angle", "dx", "dy")  # the latents every rVAE has, in this order
CIRCULAR = ("angle",)  # latents that live on a circle
_Z_NAME = re.compile(r"z(\d+)")
DENSITY = "density_"
TRANSITION = "transition_frame_"
TRANSITION_UNCERTAINTY = "transition_uncertainty_"
TRANSITION_SCORE = "transition_score_"


def movie_attrs(attrs: dict) -> dict:
    """The :data:`MOVIE_ATTRS` among ``attrs``: what a result passes on about its movie.

    Parameters
    ----------
    attrs : dict
        A dataset's attributes.

    Returns
    -------
    dict
        The movie attributes present, in the order of :data:`MOVIE_ATTRS`.

    Examples
    --------
    >>> movie_attrs({"original_name": "Pos 2.tif", "grid_points": 181, "pixel_size_nm": 0.5})
    {'original_name': 'Pos 2.tif', 'pixel_size_nm': 0.5}
    """
    return {key: attrs[key] for key in MOVIE_ATTRS if key in attrs}


def z_names(labels) -> list[str]:
    """Names of the content latents: ``z1 .. zk`` for the ``latent`` coordinate ``labels``.

    Parameters
    ----------
    labels : iterable of int
        The ``latent`` coordinate's labels (1-based).

    Returns
    -------
    list of str
        ``z<label>`` for each label.

    Examples
    --------
    >>> z_names([1, 2])
    ['z1', 'z2']
    """
    return [f"z{int(label)}" for label in labels]


def z_labels(ds) -> list[int]:
    """The ``latent`` labels of ``ds["z"]`` (1-based; its ``latent`` coordinate when it has one).

    Parameters
    ----------
    ds : Dataset
        A ``latents.nc`` dataset (or any with a ``z`` variable of dims ``(particle, latent)``).

    Returns
    -------
    list of int
        The labels; empty when ``ds`` has no 2-D ``z``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> z_labels(xr.Dataset({"z": (("particle", "latent"), np.zeros((3, 2)))}))
    [1, 2]
    """
    if "z" not in ds or ds["z"].ndim != 2:
        return []
    if "latent" in ds.coords:
        return [int(v) for v in ds["latent"].values]
    return list(range(1, ds["z"].shape[1] + 1))


def latent_names(ds) -> list[str]:
    """The latent variables of a ``latents.nc`` dataset: ``angle, dx, dy, z1 .. zk`` (those present).

    Parameters
    ----------
    ds : Dataset
        A ``latents.nc`` dataset.

    Returns
    -------
    list of str
        The pose latents present (:data:`POSE` order), then ``z1 .. zk``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"angle": ("particle", [0.1]), "z": (("particle", "latent"), np.zeros((1, 2)))})
    >>> latent_names(ds)
    ['angle', 'z1', 'z2']
    """
    return [name for name in POSE if name in ds] + z_names(z_labels(ds))


def is_latent(name: str) -> bool:
    """Whether a column or variable name is a latent (``angle``, ``dx``, ``dy`` or ``z<l>``).

    Parameters
    ----------
    name : str
        A column or variable name.

    Returns
    -------
    bool

    Examples
    --------
    >>> [is_latent(n) for n in ("angle", "z3", "z", "z1_sd", "x")]
    [True, True, False, False, False]
    """
    return name in POSE or bool(_Z_NAME.fullmatch(name))


def latent_columns(columns) -> list[str]:
    """The latent columns of a table (``tracks.csv``), in the table's order.

    Parameters
    ----------
    columns : iterable
        The table's column names.

    Returns
    -------
    list of str
        The latent columns (:func:`is_latent`).

    Examples
    --------
    >>> latent_columns(["frame", "x", "angle", "z1", "z1_sd", "track"])
    ['angle', 'z1']
    """
    return [str(c) for c in columns if is_latent(str(c))]


def transition_names(nmf) -> list[str]:
    """The latents that ``nmf.nc`` has a transition frame for.

    Parameters
    ----------
    nmf : Dataset
        An ``nmf.nc`` dataset (variables ``transition_frame_<latent>``).

    Returns
    -------
    list of str
        The latent names, in the dataset's order.

    Examples
    --------
    >>> import xarray as xr
    >>> transition_names(xr.Dataset({"transition_frame_angle": 3.0, "weights_angle": ("frame", [1.0])}))
    ['angle']
    """
    return [str(n)[len(TRANSITION):] for n in nmf.data_vars if str(n).startswith(TRANSITION)]


def track_column(columns) -> str:
    """The track id column of a table: :data:`TRACK`, or trackpy's :data:`TRACKPY_TRACK` in older tables.

    Parameters
    ----------
    columns : iterable
        The table's column names.

    Returns
    -------
    str
        ``"track"`` when present, else ``"particle"``; KeyError when the table has neither.

    Examples
    --------
    >>> track_column(["frame", "x", "y", "track", "particle"]), track_column(["frame", "particle"])
    ('track', 'particle')
    """
    columns = [str(c) for c in columns]
    for name in (TRACK, TRACKPY_TRACK):
        if name in columns:
            return name
    raise KeyError(f"no track id column ({TRACK!r} or {TRACKPY_TRACK!r}) in {columns}")


def density_names(kde) -> list[str]:
    """The latents that ``kde.nc`` holds a density map of.

    Parameters
    ----------
    kde : Dataset
        A ``kde.nc`` dataset (variables ``density_<latent>``).

    Returns
    -------
    list of str
        The latent names, in the dataset's order.

    Examples
    --------
    >>> import xarray as xr
    >>> density_names(xr.Dataset({"density_angle": (("frame", "angle_grid"), [[1.0]])}))
    ['angle']
    """
    return [str(n)[len(DENSITY):] for n in kde.data_vars if str(n).startswith(DENSITY)]
