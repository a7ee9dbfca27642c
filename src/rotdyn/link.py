"""Trajectories: linking particles frame to frame, per-track summaries, scoring against truth.

Particles are linked by trackpy's nearest-neighbour linking (paper 000, Fig. 6:
search radius 21 px = 8.2 nm). The track id is trackpy's ``particle`` column,
so anyone who knows trackpy can read the tables; note that in ``latents.nc``
the *dimension* ``particle`` numbers detections, not tracks (use
:func:`latents_table` to get one row per detection with the latents as
columns, ready for :func:`link`).

Drift (``drift=True``): trackpy links once (radius ``drift_search_range``, no
memory), :func:`trackpy.compute_drift` averages the frame-to-frame
displacements of those links into a cumulative drift per frame, and the
particles are linked again on drift-corrected positions ``x - drift_x``,
``y - drift_y`` with ``search_range``. The output keeps the original ``x, y``
and adds ``drift_x, drift_y`` (px, relative to the first frame), so the
corrected positions are one subtraction away and nothing measured is changed.
"""
from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import pandas as pd
import trackpy
import xarray as xr

from .contracts import latent_columns
from .locate import match
from .store import atomic_path, write_netcdf

log = logging.getLogger(__name__)

POS = ["x", "y"]


def search_range_px(search_range_nm: float, pixel_size_nm: float) -> float:
    """A search radius given in nm, in px (the paper's 8.2 nm at 0.39 nm/px is 21 px)."""
    nm, px = float(search_range_nm), float(pixel_size_nm)
    if not (np.isfinite(nm) and nm > 0):
        raise ValueError(f"search_range_nm must be a positive number, got {search_range_nm!r}")
    if not (np.isfinite(px) and px > 0):
        raise ValueError(f"pixel_size_nm must be a positive number, got {pixel_size_nm!r}")
    return nm / px


def latents_table(latents: xr.Dataset) -> pd.DataFrame:
    """``latents.nc`` as one row per detection: ``frame, x, y, angle, dx, dy, z1..zk``, their ``_sd`` ...

    ``z(particle, latent)`` becomes columns ``z<l>`` (``z<l>_sd``) named by the
    ``latent`` coordinate; every other 1-D variable is copied. The index
    (named ``detection``) is the ``particle`` coordinate of ``latents``.
    """
    n = latents.sizes.get("particle", 0)
    columns = {}
    for name, var in latents.data_vars.items():
        if var.dims == ("particle",):
            columns[name] = var.values
        elif name in ("z", "z_sd") and var.ndim == 2:
            labels = latents["latent"].values if "latent" in latents.coords else np.arange(1, var.shape[1] + 1)
            suffix = "_sd" if name == "z_sd" else ""
            for j, label in enumerate(labels):
                columns[f"z{int(label)}{suffix}"] = var.values[:, j]
    index = latents["particle"].values if "particle" in latents.coords else np.arange(n)
    return pd.DataFrame(columns, index=pd.Index(index, name="detection"))


def _check(particles: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("frame", *POS) if c not in particles.columns]
    if missing:
        raise ValueError(f"particles lack column(s) {missing}")
    f = particles.copy()
    if "particle" in f.columns:
        log.warning("particles already have a 'particle' column; it is replaced by the track ids")
        f = f.drop(columns="particle")
    if "particle" in (f.index.names or []):
        f = f.rename_axis(index=[None if n == "particle" else n for n in f.index.names])
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


def _link(f, search_range, memory, adaptive_stop, adaptive_step):
    with _quiet():
        return trackpy.link_df(f, search_range, pos_columns=POS, t_column="frame", memory=memory,
                               adaptive_stop=adaptive_stop, adaptive_step=adaptive_step)


def link(particles: pd.DataFrame, *, search_range: float = 21.0, memory: int = 3, adaptive_stop=None,
         adaptive_step: float = 0.95, drift: bool = False, drift_search_range=None,
         drift_smoothing: int = 0) -> pd.DataFrame:
    """Link particles into trajectories with trackpy.

    Parameters
    ----------
    particles : DataFrame
        One row per detection: ``frame`` (int), ``x`` (column), ``y`` (row),
        px, and any other columns (latents...), which are carried along.
    search_range : float
        Largest displacement between linked positions, px (see
        :func:`search_range_px` for a radius in nm).
    memory : int
        Frames a particle may vanish and still keep its id.
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
        allowed; a pre-existing ``particle`` column is replaced) plus ``particle`` (int track id,
        trackpy's convention) and, with ``drift``, ``drift_x, drift_y`` (px).
    """
    f = _check(particles)
    if f.empty:
        out = f.assign(particle=pd.Series(dtype=np.int64))
        return out.assign(drift_x=pd.Series(dtype=float), drift_y=pd.Series(dtype=float)) if drift else out
    index = f.index
    f = f.reset_index(drop=True)  # unique labels for trackpy; the caller's index is restored below
    if drift:
        d = estimate_drift(f, drift_search_range or search_range, smoothing=drift_smoothing,
                           adaptive_stop=adaptive_stop, adaptive_step=adaptive_step)
        shift = d.reindex(f["frame"].to_numpy()).to_numpy()
        linked = _link(f.assign(x=f["x"] - shift[:, 0], y=f["y"] - shift[:, 1]), search_range, memory,
                       adaptive_stop, adaptive_step)
        out = f.loc[linked.index].assign(particle=linked["particle"],  # original positions, trackpy's order
                                         drift_x=shift[linked.index, 0], drift_y=shift[linked.index, 1])
    else:
        out = _link(f, search_range, memory, adaptive_stop, adaptive_step)
    out = out.astype({"particle": np.int64})
    out.index = index[out.index.to_numpy()]
    return out


def estimate_drift(particles: pd.DataFrame, search_range: float, *, smoothing: int = 0, adaptive_stop=None,
                   adaptive_step: float = 0.95) -> pd.DataFrame:
    """Cumulative drift per frame from a first linking (trackpy.compute_drift).

    Returns
    -------
    DataFrame
        Index every frame from the first to the last of ``particles``;
        columns ``x, y`` (px): the mean displacement of linked particles summed
        from the first frame (0 there). Frames without links to the previous
        one add no drift.
    """
    f = _check(particles)
    frames = pd.RangeIndex(int(f["frame"].min()), int(f["frame"].max()) + 1, name="frame")
    first = _link(f, search_range, 0, adaptive_stop, adaptive_step)
    linked = first["particle"].duplicated(keep=False).mean()
    if linked < 0.5:
        log.warning("drift: only %.0f %% of the particles were linked at %g px; raise drift_search_range",
                    100 * linked, search_range)
    with _quiet():
        drift = trackpy.compute_drift(first, smoothing, pos_columns=POS)  # indexed by frames with links
    return drift.reindex(frames).ffill().fillna(0.0)[POS]


# ----------------------------------------------------------------- summaries
def track_summary(tracks: pd.DataFrame, latent_columns=("angle",), frame_interval_s=None, *,
                  angle_column: str = "angle") -> pd.DataFrame:
    """One row per track: extent, mean position, latent statistics and angular velocity.

    Parameters
    ----------
    tracks : DataFrame
        :func:`link` output: ``particle, frame, x, y`` and the latent columns.
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
        Columns ``particle, first_frame, last_frame, length`` (frames
        present), ``x_mean, y_mean``, ``<col>_mean``, ``<col>_var`` per latent
        column (sample variance; for ``angle_column`` the circular mean in
        [-pi, pi) and circular variance ``1 - R``), and ``angular_velocity``:
        the least-squares slope of the angle, unwrapped along the track (sorted
        by frame; each step taken as the shortest turn, so a gap must not hide
        more than half a turn), against time. NaN for tracks of one frame.
    """
    cols = list(latent_columns)
    if tracks.empty:
        names = ["particle", "first_frame", "last_frame", "length", "x_mean", "y_mean"]
        names += [f"{c}_{s}" for c in cols for s in ("mean", "var")] + ["angular_velocity"]
        out = pd.DataFrame({n: pd.Series(dtype=np.int64 if n in names[:4] else float) for n in names})
        out.attrs["angular_velocity_units"] = "rad/s" if frame_interval_s else "rad/frame"
        return out
    t = tracks.sort_values(["particle", "frame"], kind="stable").reset_index(drop=True)
    g = t.groupby("particle", sort=True)
    out = pd.DataFrame({"first_frame": g["frame"].min(), "last_frame": g["frame"].max(),
                        "length": g["frame"].nunique(), "x_mean": g["x"].mean(), "y_mean": g["y"].mean()})
    for c in cols:
        if c == angle_column:
            cs = pd.DataFrame({"c": np.cos(t[c]), "s": np.sin(t[c]), "particle": t["particle"]})
            m = cs.groupby("particle")[["c", "s"]].mean()
            out[f"{c}_mean"] = np.mod(np.arctan2(m["s"], m["c"]) + np.pi, 2 * np.pi) - np.pi
            out[f"{c}_var"] = 1 - np.hypot(m["s"], m["c"])
        else:
            out[f"{c}_mean"] = g[c].mean()
            out[f"{c}_var"] = g[c].var()
    if angle_column in t.columns:
        out["angular_velocity"] = _angular_velocity(t, angle_column, frame_interval_s)
    out = out.reset_index()
    out.attrs["angular_velocity_units"] = "rad/s" if frame_interval_s else "rad/frame"
    return out


def _angular_velocity(t: pd.DataFrame, angle_column: str, frame_interval_s) -> pd.Series:
    """Slope of the unwrapped angle against time per track; ``t`` sorted by (particle, frame)."""
    a = t[angle_column].to_numpy(np.float64)
    new_track = t["particle"].ne(t["particle"].shift()).to_numpy()
    step = np.mod(np.diff(a, prepend=a[0]) + np.pi, 2 * np.pi) - np.pi  # np.unwrap's rule, vectorised
    step[new_track] = 0.0
    unwrapped = a[new_track][np.cumsum(new_track) - 1] + pd.Series(step).groupby(t["particle"]).cumsum().to_numpy()
    time = t["frame"].to_numpy(np.float64) * (float(frame_interval_s) if frame_interval_s else 1.0)
    frame = pd.DataFrame({"particle": t["particle"].to_numpy(), "t": time, "a": unwrapped})
    g = frame.groupby("particle")
    dt = frame["t"] - g["t"].transform("mean")
    da = frame["a"] - g["a"].transform("mean")
    sums = pd.DataFrame({"particle": frame["particle"], "ta": dt * da, "tt": dt * dt}).groupby("particle").sum()
    return (sums["ta"] / sums["tt"]).where(sums["tt"] > 0)


# ----------------------------------------------------------------- scoring
def link_scores(tracks: pd.DataFrame, truth: pd.DataFrame, max_distance: float = 3.0) -> dict:
    """Link recall and precision of ``tracks`` against simulated truth.

    Detections are matched to truth one-to-one per frame (nearest within
    ``max_distance`` px, :func:`rotdyn.locate.match`). Only matched
    detections take part, so detection errors are not counted as linking
    errors:

    * a *true link* joins two consecutive matched appearances of one true
      ``id`` (sorted by frame: (t, t+1), or across frames where its detection
      is missing);
    * a *predicted link* joins two consecutive matched detections of one track
      ``particle``;
    * a link is *correct* when it is both: the same two detections are
      consecutive in one true id and in one track.

    ``recall = correct / true links``, ``precision = correct / predicted
    links``. An id switch costs a true and a predicted link; a broken track
    costs a true link only.

    Parameters
    ----------
    tracks : DataFrame
        ``frame, x, y, particle`` (as from :func:`link`).
    truth : DataFrame
        ``frame, id, x, y`` (``Simulation.truth``).
    max_distance : float
        Largest detection-truth distance of a match, px.

    Returns
    -------
    dict
        ``recall, precision`` (NaN when their denominator is 0),
        ``correct_links, true_links, predicted_links, matched, detections,
        truth_points``.
    """
    det = tracks.reset_index(drop=True)
    tru = truth.reset_index(drop=True)
    pairs = match(det, tru, max_distance)
    pairs = pairs[(pairs["detected"] >= 0) & (pairs["truth"] >= 0)]
    m = pd.DataFrame({"frame": pairs["frame"].to_numpy(), "det": pairs["detected"].to_numpy(),
                      "track": det["particle"].to_numpy()[pairs["detected"].to_numpy()],
                      "id": tru["id"].to_numpy()[pairs["truth"].to_numpy()]})

    def links(key):
        s = m.sort_values([key, "frame"], kind="stable")
        same = s[key].to_numpy()[1:] == s[key].to_numpy()[:-1]
        d = s["det"].to_numpy()
        return set(zip(d[:-1][same].tolist(), d[1:][same].tolist()))

    true_links, predicted = links("id"), links("track")
    correct = len(true_links & predicted)
    nan = float("nan")
    return {"recall": correct / len(true_links) if true_links else nan,
            "precision": correct / len(predicted) if predicted else nan,
            "correct_links": correct, "true_links": len(true_links), "predicted_links": len(predicted),
            "matched": len(m), "detections": len(det), "truth_points": len(tru)}


def run(job) -> None:
    """Entry of rule ``link``: trajectories from ``latents.nc``, the latents along them, a summary per track.

    ``job.params.link`` is the ``link`` config section; ``job.output`` has
    ``csv`` (tracks.csv), ``nc`` (tracks.nc) and ``summary`` (track_summary.csv).
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
