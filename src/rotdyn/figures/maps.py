"""The rule ``maps``: frames with particles coloured by their latents, an animation, latents along tracks (Fig. 6).

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
   a System of Self-Organizing Protein Nanorods via Rotationally Invariant
   Latent Representations", ACS Nano 15, 6471-6480 (2021).
   doi:10.1021/acsnano.0c08914 (paper 000)
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.animation import FuncAnimation, PillowWriter

from ..contracts import CIRCULAR, latent_columns, track_column
from ..store import atomic_path
from . import in_units, latent_cmap, save

MAP_LATENTS = ("angle", "z1", "z2")  # latents drawn on frames (Fig. 6a-c), those present
TRACK_LATENTS = ("angle", "z1")  # latents drawn along tracks (Fig. 6d-e), those present
ANIMATED = "angle"  # the latent of the animation


def _shown(columns, wanted) -> list[str]:
    """The latent columns of a table among ``wanted``, in the table's order."""
    return [name for name in latent_columns(columns) if name in wanted]


def _limits(name, values):
    """Colour limits: the whole circle for the angle (deg), else the values' range."""
    if name in CIRCULAR:
        return -180, 180
    return np.nanmin(values, initial=0), np.nanmax(values, initial=1)


def latent_map(image: np.ndarray, table, name: str, title: str = ""):
    """One frame with each particle drawn at its position, coloured by a latent (Fig. 6a-c).

    Parameters
    ----------
    image : numpy.ndarray
        The frame (y, x).
    table : DataFrame
        The frame's particles: ``x``, ``y`` and the column ``name``.
    name : str
        The latent (the angle is drawn in degrees on a cyclic colour map).
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> rows = pd.DataFrame({"x": [2.0, 5.0], "y": [3.0, 1.0], "angle": [np.pi / 2, -np.pi]})
    >>> fig = latent_map(np.zeros((8, 8)), rows, "angle", "frame 0")
    >>> fig.axes[0].collections[0].get_array().tolist()  # colours in degrees
    [90.0, -180.0]
    >>> plt.close(fig)
    """
    fig, ax = plt.subplots(figsize=(6, 6))
    _draw_map(ax, image, table, name)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _draw_map(ax, image, table, name):
    ax.imshow(image, cmap="gray")
    limits = (-180, 180) if name in CIRCULAR else (None, None)
    points = ax.scatter(table["x"], table["y"], c=in_units(name, table[name].to_numpy()), s=30,
                        cmap=latent_cmap(name), vmin=limits[0], vmax=limits[1], edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    return points


def latent_map_animation(frames, table, name: str, path, fps: int = 5, max_frames: int | None = None) -> None:
    """Animated GIF of the frames with the particles coloured by a latent, written atomically.

    Parameters
    ----------
    frames : xr.DataArray
        ``frames`` of ``movie.nc`` (frame, y, x).
    table : DataFrame
        One row per detection with ``frame``, ``x``, ``y`` and ``name``.
    name : str
        The latent.
    path : str or os.PathLike
        The GIF.
    fps : int
        Frames per second.
    max_frames : int or None
        Show at most this many frames, evenly spaced (a time lapse); None: all.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> movie = xr.DataArray(np.zeros((3, 8, 8)), dims=("frame", "y", "x"), coords={"frame": [4, 5, 6]})
    >>> rows = pd.DataFrame({"frame": [4, 6], "x": [2.0, 3.0], "y": [2.0, 3.0], "angle": [0.0, 1.0]})
    >>> path = os.path.join(tempfile.mkdtemp(), "angle.gif")
    >>> latent_map_animation(movie, rows, "angle", path)
    >>> Image.open(path).n_frames
    3
    >>> latent_map_animation(movie, rows, "angle", path, max_frames=2)
    >>> Image.open(path).n_frames
    2
    """
    values = in_units(name, table[name].to_numpy())
    lo, hi = _limits(name, values)
    fig, ax = plt.subplots(figsize=(5, 5))
    image = ax.imshow(frames.isel(frame=0).values, cmap="gray")
    points = ax.scatter([], [], c=[], s=25, cmap=latent_cmap(name), vmin=lo, vmax=hi, edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    groups = dict(tuple(table.groupby("frame")))

    n = frames.sizes["frame"]
    shown = np.unique(np.linspace(0, n - 1, min(n, max_frames or n)).round().astype(int))

    def draw(i):
        number = int(frames["frame"].values[i])
        image.set_data(frames.isel(frame=i).values)
        rows = groups.get(number)
        points.set_offsets(np.empty((0, 2)) if rows is None else rows[["x", "y"]].to_numpy())
        points.set_array(np.empty(0) if rows is None else in_units(name, rows[name].to_numpy()))
        ax.set_title(f"{name}, frame {number}")
        return image, points

    animation = FuncAnimation(fig, draw, frames=shown.tolist(), blit=False)
    with atomic_path(path) as tmp:
        animation.save(tmp, writer=PillowWriter(fps=fps))
    plt.close(fig)


def track_latents(tracks, names=TRACK_LATENTS, longest: int = 5, unwrap: bool = True):
    """Latents along the longest tracks (Fig. 6d-e); the angle unwrapped along each track.

    Parameters
    ----------
    tracks : DataFrame
        ``tracks.csv``: ``track``, ``frame`` and the latent columns.
    names : sequence of str
        Latents, one panel each.
    longest : int
        Tracks drawn, the longest first.
    unwrap : bool
        Unwrap the angle along each track (no jumps of 360 deg).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> tracks = pd.DataFrame({"track": [7, 7, 7, 2], "frame": [0, 1, 2, 0], "angle": [3.0, -3.0, -2.5, 0.0],
    ...                        "z1": [0.1, 0.2, 0.3, 0.0]})
    >>> fig = track_latents(tracks, ["angle", "z1"], longest=1)
    >>> line = fig.axes[0].lines[0]
    >>> line.get_label(), np.round(line.get_ydata()).tolist()  # unwrapped across 180 deg
    ('track 7', [172.0, 188.0, 217.0])
    >>> plt.close(fig)
    """
    key = track_column(tracks.columns)
    lengths = tracks.groupby(key).size().sort_values(ascending=False)
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for number in lengths.index[:longest]:
        track = tracks[tracks[key] == number].sort_values("frame")
        for ax, name in zip(axes[0], names):
            values = track[name].to_numpy()
            if name in CIRCULAR and unwrap:
                values = np.unwrap(values)
            ax.plot(track["frame"], in_units(name, values), marker=".", label=f"track {number}")
    for ax, name in zip(axes[0], names):
        ax.set(xlabel="frame", ylabel=f"{name} (deg, unwrapped)" if name in CIRCULAR else name)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(job) -> None:
    """Entry of rule ``maps``: latent maps of a few frames, the angle animation, the longest tracks.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.tracks`` (``tracks.csv``), ``input.movie`` (``movie.nc``);
        ``output.frames`` (a folder: ``<latent>_frame<NNNNN>.png`` for
        :data:`MAP_LATENTS` present), ``output.animation`` (GIF of the angle),
        ``output.tracks`` (PNG of :data:`TRACK_LATENTS` along the longest
        tracks); ``params.maps`` (``frames_shown``, ``tracks_shown``, ``animated_frames``).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> write_netcdf(xr.Dataset({"frames": (("frame", "y", "x"), np.zeros((3, 8, 8)))}, coords={"frame": [0, 1, 2]}),
    ...              os.path.join(folder, "movie.nc"))
    >>> pd.DataFrame({"frame": [0, 1, 2], "x": 3.0, "y": 4.0, "angle": [0.0, 0.1, 0.2], "dx": 0.0, "z1": 1.0,
    ...               "track": 0, "particle": 0}).to_csv(os.path.join(folder, "tracks.csv"), index=False)
    >>> out = {"frames": os.path.join(folder, "maps"), "animation": os.path.join(folder, "angle.gif"),
    ...        "tracks": os.path.join(folder, "tracks.png")}
    >>> run(job("maps", input={"tracks": os.path.join(folder, "tracks.csv"), "movie": os.path.join(folder, "movie.nc")},
    ...         output=out, params={"maps": {"frames_shown": 2, "tracks_shown": 1}}))
    >>> sorted(os.listdir(out["frames"]))
    ['angle_frame00000.png', 'angle_frame00002.png', 'z1_frame00000.png', 'z1_frame00002.png']
    """
    p = job.params.maps
    tracks = pd.read_csv(job.input.tracks)
    out = Path(job.output.frames)
    out.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(job.input.movie) as movie:
        frames = movie["frames"]
        numbers = frames["frame"].values
        shown = numbers[np.unique(np.linspace(0, len(numbers) - 1, p["frames_shown"]).round().astype(int))]
        names = _shown(tracks.columns, MAP_LATENTS)
        for number in shown:
            rows = tracks[tracks.frame == number]
            for name in names:
                fig = latent_map(frames.sel(frame=number).values, rows, name, f"{name}, frame {number}")
                save(fig, out / f"{name}_frame{number:05d}.png")
        latent_map_animation(frames, tracks, ANIMATED, job.output.animation, max_frames=p.get("animated_frames"))
    save(track_latents(tracks, _shown(tracks.columns, TRACK_LATENTS), longest=p["tracks_shown"]), job.output.tracks)
