"""Trajectories: linking detections frame to frame, and a summary per track.

Detections are linked by trackpy's nearest-neighbour linking (paper 000,
Fig. 6: search radius 21 px = 8.2 nm); :func:`latents_table` turns
``latents.nc`` into one row per detection with the latents as columns, ready
for :func:`link`.

Tracks and detections
---------------------
A *detection* is one particle in one frame; in ``latents.nc`` the dimension
``particle`` numbers detections (:data:`rotdyn.contracts.DETECTION`). A
*track* is one particle followed over frames. :func:`link` (and so
``tracks.csv``) names the track id ``track`` (:data:`rotdyn.contracts.TRACK`)
and keeps trackpy's own name ``particle`` as an alias column with the same
values (:data:`rotdyn.contracts.TRACKPY_TRACK`), so that trackpy's functions
(``trackpy.msd``, ``trackpy.compute_drift``...) read the table unchanged. Read
``track``; tables written before it existed have ``particle`` only, which
:func:`track_summary` also accepts (:func:`rotdyn.contracts.track_column`).

Drift (``drift=True``): trackpy links once (radius ``drift_search_range``, no
memory), :func:`trackpy.compute_drift` averages the frame-to-frame
displacements of those links into a cumulative drift per frame
(:func:`estimate_track_drift`: the drift of the whole field, measured from the
particles -- not the image registration of :mod:`rotdyn.preprocess`), and the
particles are linked again on drift-corrected positions ``x - drift_x``,
``y - drift_y`` with ``search_range``. The output keeps the original ``x, y``
and adds ``drift_x, drift_y`` (px, relative to the first frame), so the
corrected positions are one subtraction away and nothing measured is changed.

Scoring against simulated truth is :func:`rotdyn.evaluate.tracks.link_scores`.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
   a System of Self-Organizing Protein Nanorods via Rotationally Invariant
   Latent Representations", ACS Nano 15, 6471-6480 (2021).
   doi:10.1021/acsnano.0c08914 (paper 000)
.. [2] D. B. Allan et al., trackpy, doi:10.5281/zenodo.3492186
"""
from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import pandas as pd
import trackpy
import xarray as xr
from scipy.spatial import cKDTree
from trackpy.linking import SubnetOversizeException

from .contracts import DETECTION, TRACK, TRACKPY_TRACK, latent_columns, track_column, z_names
from .store import atomic_path, write_netcdf

log = logging.getLogger(__name__)

POS = ["x", "y"]


def search_range_px(search_range_nm: float, pixel_size_nm: float) -> float:
    """A search radius given in nm, in px (the paper's 8.2 nm at 0.39 nm/px is 21 px).

    Parameters
    ----------
    search_range_nm : float
        The radius, nm (positive).
    pixel_size_nm : float
        The movie's pixel size, nm (positive).

    Returns
    -------
    float
        The radius in px.

    Examples
    --------
    >>> round(search_range_px(8.2, 8.2 / 21), 6)
    21.0
    """
    nm, px = float(search_range_nm), float(pixel_size_nm)
    if not (np.isfinite(nm) and nm > 0):
        raise ValueError(f"search_range_nm must be a positive number, got {search_range_nm!r}")
    if not (np.isfinite(px) and px > 0):
        raise ValueError(f"pixel_size_nm must be a positive number, got {pixel_size_nm!r}")
    return nm / px


def latents_table(latents: xr.Dataset) -> pd.DataFrame:
    """``latents.nc`` as one row per detection: ``frame, x, y, angle, dx, dy, z1..zk``, their ``_sd`` ...

    Parameters
    ----------
    latents : xr.Dataset
        ``latents.nc`` (dimension ``particle``: detections).

    Returns
    -------
    DataFrame
        ``z(particle, latent)`` becomes columns ``z<l>`` (``z<l>_sd``) named
        by the ``latent`` coordinate (:func:`rotdyn.contracts.z_names`); every
        other 1-D variable is copied. The index (named ``detection``) is the
        ``particle`` coordinate of ``latents``.

    Examples
    --------
    >>> ds = xr.Dataset({"frame": ("particle", [0, 1]), "z": (("particle", "latent"), [[1.0, 2.0], [3.0, 4.0]])},
    ...                 coords={"particle": [10, 11], "latent": [1, 2]})
    >>> latents_table(ds)
               frame   z1   z2
    detection
    10             0  1.0  2.0
    11             1  3.0  4.0
    """
    n = latents.sizes.get(DETECTION, 0)
    columns = {}
    for name, var in latents.data_vars.items():
        if var.dims == (DETECTION,):
            columns[name] = var.values
        elif name in ("z", "z_sd") and var.ndim == 2:
            labels = latents["latent"].values if "latent" in latents.coords else np.arange(1, var.shape[1] + 1)
            suffix = "_sd" if name == "z_sd" else ""
            for j, column in enumerate(z_names(labels)):
                columns[f"{column}{suffix}"] = var.values[:, j]
    index = latents[DETECTION].values if DETECTION in latents.coords else np.arange(n)
    return pd.DataFrame(columns, index=pd.Index(index, name="detection"))


def _check(particles: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``particles`` ready for trackpy: old track ids dropped, positions checked, int frames."""
    missing = [c for c in ("frame", *POS) if c not in particles.columns]
    if missing:
        raise ValueError(f"particles lack column(s) {missing}")
    f = particles.copy()
    if old := [c for c in (TRACK, TRACKPY_TRACK) if c in f.columns]:
        log.warning("particles already have column(s) %s; they are replaced by the track ids", old)
        f = f.drop(columns=old)
    if {TRACK, TRACKPY_TRACK} & set(f.index.names or []):  # an index level named like a column is ambiguous
        f = f.rename_axis(index=[None if n in (TRACK, TRACKPY_TRACK) else n for n in f.index.names])
    if not np.isfinite(f[POS].to_numpy(np.float64)).all():
        raise ValueError("particles have non-finite x or y")
    f["frame"] = f["frame"].astype(np.int64)
    return f


@contextlib.contextmanager
def _quiet():
    """trackpy without its progress printing and its pandas deprecation warnings (not ours to fix)."""
    trackpy.quiet()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"trackpy(\.|$)")
        yield


# Without an adaptive_stop of the user's, a subnetwork too large for trackpy to solve (crowded particles
# within the search range of each other) is retried with the radius shrinking down to this share of it,
# or to half the particles' typical nearest-neighbour distance where that is less (a dense lattice).
ADAPTIVE_STOP_SHARE = 0.2


def _spacing(f: pd.DataFrame) -> float:
    """The median distance from a particle to its nearest neighbour in the same frame, px (inf if none)."""
    nearest = []
    for _, frame in f.groupby("frame"):
        if len(frame) > 1:
            xy = frame[POS].to_numpy(np.float64)
            nearest.append(cKDTree(xy).query(xy, k=2)[0][:, 1])  # k=2: the first is the particle itself
    return float(np.median(np.concatenate(nearest))) if nearest else np.inf


def _link(f, search_range, memory, adaptive_stop, adaptive_step):
    def run(stop):
        return trackpy.link_df(f, search_range, pos_columns=POS, t_column="frame", memory=memory,
                               adaptive_stop=stop, adaptive_step=adaptive_step)

    with _quiet():
        try:
            return run(adaptive_stop)
        except SubnetOversizeException as exc:
            if adaptive_stop is not None:
                raise
            stop = min(ADAPTIVE_STOP_SHARE * search_range, 0.5 * _spacing(f))
            log.warning("linking: %s within search_range %.3g px (particles crowded for that radius); "
                        "linking again with the radius shrinking down to %.3g px where that happens "
                        "(trackpy's adaptive search; a smaller link.search_range avoids it)", exc, search_range, stop)
            return run(stop)


def link(particles: pd.DataFrame, *, search_range: float = 21.0, memory: int = 3, adaptive_stop=None,
         adaptive_step: float = 0.95, drift: bool = False, drift_search_range=None,
         drift_smoothing: int = 0) -> pd.DataFrame:
    """Link detections into tracks with trackpy.

    Parameters
    ----------
    particles : DataFrame
        One row per detection: ``frame`` (int), ``x`` (column), ``y`` (row),
        px, and any other columns (latents...), which are carried along.
    search_range : float
        Largest displacement between linked positions, px (see
        :func:`search_range_px` for a radius in nm).
    memory : int
        Frames a particle may vanish and still keep its track.
    adaptive_stop, adaptive_step
        trackpy's adaptive search: shrink the radius by ``adaptive_step`` down
        to ``adaptive_stop`` where a subnetwork is too large to solve.
    drift : bool
        Link on drift-corrected positions (see the module docstring).
    drift_search_range : float, optional
        Radius of the first linking that estimates the drift (default
        ``search_range``); it must exceed the drift per frame plus the
        particles' own motion.
    drift_smoothing : int
        Frames of trackpy's rolling mean of the drift (0: none).

    Returns
    -------
    DataFrame
        The input rows sorted by frame (index labels kept, duplicates
        allowed; pre-existing ``track``/``particle`` columns are replaced)
        plus ``track`` (int track id) and ``particle`` (the same values, the
        alias trackpy reads) and, with ``drift``, ``drift_x, drift_y`` (px).

    Examples
    --------
    Two particles 30 px apart, moving 1 px per frame:

    >>> det = pd.DataFrame({"frame": [0, 0, 1, 1, 2, 2], "x": [0.0, 30, 1, 31, 2, 32], "y": 0.0})
    >>> tracks = link(det, search_range=5)
    >>> tracks.groupby("track")["x"].apply(list).tolist()
    [[0.0, 1.0, 2.0], [30.0, 31.0, 32.0]]
    >>> bool((tracks["track"] == tracks["particle"]).all())
    True
    """
    f = _check(particles)
    if f.empty:
        out = f.assign(**{TRACK: pd.Series(dtype=np.int64), TRACKPY_TRACK: pd.Series(dtype=np.int64)})
        return out.assign(drift_x=pd.Series(dtype=float), drift_y=pd.Series(dtype=float)) if drift else out
    index = f.index
    f = f.reset_index(drop=True)  # unique labels for trackpy; the caller's index is restored below
    if drift:
        d = estimate_track_drift(f, drift_search_range or search_range, smoothing=drift_smoothing,
                                 adaptive_stop=adaptive_stop, adaptive_step=adaptive_step)
        shift = d.reindex(f["frame"].to_numpy()).to_numpy()
        linked = _link(f.assign(x=f["x"] - shift[:, 0], y=f["y"] - shift[:, 1]), search_range, memory,
                       adaptive_stop, adaptive_step)
        ids = linked[TRACKPY_TRACK]
        out = f.loc[linked.index].assign(**{TRACK: ids, TRACKPY_TRACK: ids},
                                         drift_x=shift[linked.index, 0], drift_y=shift[linked.index, 1])
    else:
        out = _link(f, search_range, memory, adaptive_stop, adaptive_step)
        out.insert(out.columns.get_loc(TRACKPY_TRACK), TRACK, out[TRACKPY_TRACK])  # track, then trackpy's alias
    out = out.astype({TRACK: np.int64, TRACKPY_TRACK: np.int64})
    out.index = index[out.index.to_numpy()]
    return out


def estimate_track_drift(particles: pd.DataFrame, search_range: float, *, smoothing: int = 0,
                         adaptive_stop=None, adaptive_step: float = 0.95) -> pd.DataFrame:
    """Cumulative drift of the whole field per frame, from a first linking (trackpy.compute_drift).

    Parameters
    ----------
    particles : DataFrame
        ``frame, x, y`` per detection (as for :func:`link`).
    search_range : float
        Radius of the first linking (no memory), px.
    smoothing : int
        Frames of trackpy's rolling mean of the drift (0: none).
    adaptive_stop, adaptive_step
        As in :func:`link`.

    Returns
    -------
    DataFrame
        Index every frame from the first to the last of ``particles``;
        columns ``x, y`` (px): the mean displacement of linked particles summed
        from the first frame (0 there). Frames without links to the previous
        one add no drift.

    Examples
    --------
    Three particles moving together by 2 px per frame to the right:

    >>> det = pd.DataFrame({"frame": np.repeat([0, 1, 2], 3), "x": np.tile([0.0, 20, 40], 3) + np.repeat([0, 2, 4], 3),
    ...                     "y": np.tile([0.0, 10, 0], 3)})
    >>> estimate_track_drift(det, 5.0)["x"].tolist()
    [0.0, 2.0, 4.0]
    """
    f = _check(particles)
    frames = pd.RangeIndex(int(f["frame"].min()), int(f["frame"].max()) + 1, name="frame")
    first = _link(f, search_range, 0, adaptive_stop, adaptive_step)
    linked = first[TRACKPY_TRACK].duplicated(keep=False).mean()
    if linked < 0.5:
        log.warning("drift: only %.0f %% of the particles were linked at %g px; raise drift_search_range",
                    100 * linked, search_range)
    with _quiet():
        drift = trackpy.compute_drift(first, smoothing, pos_columns=POS)  # indexed by frames with links
    return drift.reindex(frames).ffill().fillna(0.0)[POS]


def estimate_drift(*args, **kwargs) -> pd.DataFrame:
    """Deprecated name of :func:`estimate_track_drift` (kept for one release).

    Returns
    -------
    DataFrame
        What :func:`estimate_track_drift` returns: the drift ``x, y`` (px) of each frame.

    Examples
    --------
    >>> import warnings
    >>> det = pd.DataFrame({"frame": [0, 1], "x": [0.0, 1.0], "y": 0.0})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     estimate_drift(det, 5.0)["x"].tolist(), caught[0].category.__name__
    ([0.0, 1.0], 'DeprecationWarning')
    """
    warnings.warn("rotdyn.link.estimate_drift is renamed estimate_track_drift", DeprecationWarning, stacklevel=2)
    return estimate_track_drift(*args, **kwargs)


# ----------------------------------------------------------------- summaries
def track_summary(tracks: pd.DataFrame, latent_columns=("angle",), frame_interval_s=None, *,
                  angle_column: str = "angle") -> pd.DataFrame:
    """One row per track: extent, mean position, latent statistics and angular velocity.

    Parameters
    ----------
    tracks : DataFrame
        :func:`link` output: ``track, frame, x, y`` and the latent columns (a
        table with trackpy's ``particle`` only is read the same way).
    latent_columns : sequence of str
        Columns to summarise (``mean`` and ``var``).
    frame_interval_s : float, optional
        Seconds per frame; the angular velocity is then in rad/s, else in
        rad/frame (``result.attrs["angular_velocity_units"]`` says which).
    angle_column : str
        The latent angle (rad): summarised on the circle and used for the
        angular velocity.

    Returns
    -------
    DataFrame
        Columns ``track, first_frame, last_frame, length`` (frames
        present), ``x_mean, y_mean``, ``<col>_mean``, ``<col>_var`` per latent
        column (sample variance; for ``angle_column`` the circular mean in
        [-pi, pi) and circular variance ``1 - R``), and ``angular_velocity``:
        the least-squares slope of the angle, unwrapped along the track (sorted
        by frame; each step taken as the shortest turn, so a gap must not hide
        more than half a turn), against time. NaN for tracks of one frame.

    Examples
    --------
    Track 3 turns by 0.5 rad per frame across +-pi; track 8 has one frame:

    >>> tracks = pd.DataFrame({"track": [3, 3, 3, 8], "frame": [0, 1, 2, 5], "x": [0.0, 1, 2, 9], "y": 0.0,
    ...                        "angle": [2.6, 3.1, -2.683, 0.0]})
    >>> s = track_summary(tracks, ["angle"], frame_interval_s=0.1)
    >>> s["track"].tolist(), s["length"].tolist(), s.attrs["angular_velocity_units"]
    ([3, 8], [3, 1], 'rad/s')
    >>> round(float(s["angular_velocity"][0]), 2)  # 0.5 rad per 0.1 s frame
    5.0
    """
    cols = list(latent_columns)
    units = "rad/s" if frame_interval_s else "rad/frame"
    if tracks.empty:
        names = [TRACK, "first_frame", "last_frame", "length", "x_mean", "y_mean"]
        names += [f"{c}_{s}" for c in cols for s in ("mean", "var")] + ["angular_velocity"]
        out = pd.DataFrame({n: pd.Series(dtype=np.int64 if n in names[:4] else float) for n in names})
        out.attrs["angular_velocity_units"] = units
        return out
    ids = tracks[track_column(tracks.columns)]
    t = tracks.drop(columns=[c for c in (TRACK, TRACKPY_TRACK) if c in tracks.columns]).assign(**{TRACK: ids})
    t = t.sort_values([TRACK, "frame"], kind="stable").reset_index(drop=True)
    g = t.groupby(TRACK, sort=True)
    out = pd.DataFrame({"first_frame": g["frame"].min(), "last_frame": g["frame"].max(),
                        "length": g["frame"].nunique(), "x_mean": g["x"].mean(), "y_mean": g["y"].mean()})
    for c in cols:
        if c == angle_column:
            cs = pd.DataFrame({"c": np.cos(t[c]), "s": np.sin(t[c]), TRACK: t[TRACK]})
            m = cs.groupby(TRACK)[["c", "s"]].mean()
            out[f"{c}_mean"] = np.mod(np.arctan2(m["s"], m["c"]) + np.pi, 2 * np.pi) - np.pi
            out[f"{c}_var"] = 1 - np.hypot(m["s"], m["c"])
        else:
            out[f"{c}_mean"] = g[c].mean()
            out[f"{c}_var"] = g[c].var()
    if angle_column in t.columns:
        out["angular_velocity"] = _angular_velocity(t, angle_column, frame_interval_s)
    out = out.reset_index()
    out.attrs["angular_velocity_units"] = units
    return out


def _angular_velocity(t: pd.DataFrame, angle_column: str, frame_interval_s) -> pd.Series:
    """Slope of the unwrapped angle against time per track; ``t`` sorted by (track, frame)."""
    a = t[angle_column].to_numpy(np.float64)
    track = t[TRACK]
    new_track = track.ne(track.shift()).to_numpy()
    step = np.mod(np.diff(a, prepend=a[0]) + np.pi, 2 * np.pi) - np.pi  # np.unwrap's rule, vectorised
    step[new_track] = 0.0
    unwrapped = a[new_track][np.cumsum(new_track) - 1] + pd.Series(step).groupby(track).cumsum().to_numpy()
    time = t["frame"].to_numpy(np.float64) * (float(frame_interval_s) if frame_interval_s else 1.0)
    frame = pd.DataFrame({TRACK: track.to_numpy(), "t": time, "a": unwrapped})
    g = frame.groupby(TRACK)
    dt = frame["t"] - g["t"].transform("mean")
    da = frame["a"] - g["a"].transform("mean")
    sums = pd.DataFrame({TRACK: frame[TRACK], "ta": dt * da, "tt": dt * dt}).groupby(TRACK).sum()
    return (sums["ta"] / sums["tt"]).where(sums["tt"] > 0)


def run(job) -> None:
    """Entry of rule ``link``: trajectories from ``latents.nc``, the latents along them, a summary per track.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input[0]`` (``latents.nc``); ``output.csv`` (``tracks.csv``: one row
        per detection, :func:`link`), ``output.nc`` (the same as NetCDF, dimension
        ``row``), ``output.summary`` (``track_summary.csv``, :func:`track_summary`);
        ``params.link`` (the ``link`` config section: ``search_range`` px or
        ``search_range_nm``, ``memory``, ``drift``).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> folder = tempfile.mkdtemp()
    >>> out = {k: os.path.join(folder, f) for k, f in
    ...        (("csv", "tracks.csv"), ("nc", "tracks.nc"), ("summary", "track_summary.csv"))}
    >>> latents = xr.Dataset({"frame": ("particle", [0, 0, 1, 1]), "x": ("particle", [0.0, 30, 1, 31]),
    ...                       "y": ("particle", [0.0, 0, 0, 0]), "angle": ("particle", [0.1, 1.0, 0.2, 1.0])})
    >>> write_netcdf(latents, os.path.join(folder, "latents.nc"))
    >>> settings = {"search_range": 5.0, "search_range_nm": None, "memory": 0, "drift": False}
    >>> run(job("link", input=[os.path.join(folder, "latents.nc")], output=out, params={"link": settings}))
    >>> tracks = pd.read_csv(out["csv"])
    >>> tracks[["frame", "x", "track", "particle"]].values.tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 30.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [1.0, 31.0, 1.0, 1.0]]
    >>> pd.read_csv(out["summary"])[["track", "length"]].values.tolist()
    [[0, 2], [1, 2]]
    """
    p = job.params.link
    with xr.open_dataset(job.input[0]) as latents:
        table = latents_table(latents.load())
        attrs = dict(latents.attrs)
    radius = p["search_range"]
    if p["search_range_nm"]:
        if not attrs.get("pixel_size_nm"):
            raise ValueError(f"{job.input[0]}: link.search_range_nm needs the movie's pixel size "
                             "(give pixel_size_nm in config/movies.tsv)")
        radius = search_range_px(p["search_range_nm"], attrs["pixel_size_nm"])
    tracks = link(table, search_range=radius, memory=p["memory"], drift=p["drift"])
    summary = track_summary(tracks, latent_columns(tracks.columns), frame_interval_s=attrs.get("frame_interval_s"))
    log.info("%d tracks (search range %.1f px), median length %s", len(summary), radius,
             summary["length"].median() if len(summary) else 0)
    with atomic_path(job.output.csv) as tmp:
        tracks.to_csv(tmp, index=False)
    with atomic_path(job.output.summary) as tmp:
        summary.to_csv(tmp, index=False)
    nc = xr.Dataset.from_dataframe(tracks.reset_index(drop=True).rename_axis("row"))
    nc.attrs = {**attrs, "search_range_px": radius, "memory": p["memory"], "drift": int(p["drift"])}
    write_netcdf(nc, job.output.nc)
