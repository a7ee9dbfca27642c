"""The rule ``maps``: frames with particles coloured by their latents, an animation, latents along tracks (Fig. 6)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.animation import FuncAnimation, PillowWriter

from ..contracts import TRACK
from ..store import atomic_path
from . import in_units, latent_cmap, save


def latent_map(image: np.ndarray, table, name: str, title: str = ""):
    """One frame with each particle drawn at its position, coloured by a latent (Fig. 6a-c)."""
    fig, ax = plt.subplots(figsize=(6, 6))
    _draw_map(ax, image, table, name)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _draw_map(ax, image, table, name):
    ax.imshow(image, cmap="gray")
    limits = (-180, 180) if name == "angle" else (None, None)
    points = ax.scatter(table["x"], table["y"], c=in_units(name, table[name].to_numpy()), s=30,
                        cmap=latent_cmap(name), vmin=limits[0], vmax=limits[1], edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    return points


def latent_map_animation(frames, table, name: str, path, fps: int = 5) -> None:
    """Animated GIF of the frames with the particles coloured by a latent.

    ``frames`` is the ``frames`` DataArray of ``movie.nc`` (frame, y, x),
    ``table`` one row per particle with ``frame``, ``x``, ``y`` and ``name``.
    Written atomically.
    """
    values = in_units(name, table[name].to_numpy())
    lo, hi = (-180, 180) if name == "angle" else (np.nanmin(values, initial=0), np.nanmax(values, initial=1))
    fig, ax = plt.subplots(figsize=(5, 5))
    image = ax.imshow(frames.isel(frame=0).values, cmap="gray")
    points = ax.scatter([], [], c=[], s=25, cmap=latent_cmap(name), vmin=lo, vmax=hi, edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    groups = dict(tuple(table.groupby("frame")))

    def draw(i):
        number = int(frames["frame"].values[i])
        image.set_data(frames.isel(frame=i).values)
        rows = groups.get(number)
        points.set_offsets(np.empty((0, 2)) if rows is None else rows[["x", "y"]].to_numpy())
        points.set_array(np.empty(0) if rows is None else in_units(name, rows[name].to_numpy()))
        ax.set_title(f"{name}, frame {number}")
        return image, points

    animation = FuncAnimation(fig, draw, frames=frames.sizes["frame"], blit=False)
    with atomic_path(path) as tmp:
        animation.save(tmp, writer=PillowWriter(fps=fps))
    plt.close(fig)


def track_latents(tracks, names=("angle", "z1"), longest: int = 5, unwrap: bool = True):
    """Latents along the longest trajectories (Fig. 6d-e); the angle unwrapped along each track."""
    lengths = tracks.groupby("particle").size().sort_values(ascending=False)
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for particle in lengths.index[:longest]:
        track = tracks[tracks.particle == particle].sort_values("frame")
        for ax, name in zip(axes[0], names):
            values = track[name].to_numpy()
            if name == "angle" and unwrap:
                values = np.unwrap(values)
            ax.plot(track["frame"], in_units(name, values), marker=".", label=f"track {particle}")
    for ax, name in zip(axes[0], names):
        ax.set(xlabel="frame", ylabel=f"{name} (deg, unwrapped)" if name == "angle" else name)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(job) -> None:
    """Entry of rule ``maps``: latent maps of a few frames, the angle animation, the longest tracks."""
    p = job.params.maps
    tracks = pd.read_csv(job.input.tracks)
    out = Path(job.output.frames)
    out.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(job.input.movie) as movie:
        frames = movie["frames"]
        numbers = frames["frame"].values
        shown = numbers[np.unique(np.linspace(0, len(numbers) - 1, p["frames_shown"]).round().astype(int))]
        names = [n for n in ("angle", "z1", "z2") if n in tracks.columns]
        for number in shown:
            rows = tracks[tracks.frame == number]
            for name in names:
                fig = latent_map(frames.sel(frame=number).values, rows, name, f"{name}, frame {number}")
                save(fig, out / f"{name}_frame{number:05d}.png")
        latent_map_animation(frames, tracks, "angle", job.output.animation)
    save(track_latents(tracks, [n for n in ("angle", "z1") if n in tracks.columns], longest=p["tracks_shown"]),
         job.output.tracks)
