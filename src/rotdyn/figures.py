"""Figures of the latent space, as in paper 000 (Figs. 2g and 4) and the training history.

Each function takes arrays or xarray objects and returns a matplotlib Figure;
the workflow saves them as PNG. Angles are stored in radians and plotted in
degrees.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402


def manifold(images: np.ndarray, z1: np.ndarray, z2: np.ndarray, cmap: str = "viridis"):
    """Decoded images on a grid over two content latents, tiled (paper 000, Fig. 2g).

    Parameters
    ----------
    images : (n2, n1, S, S) decoded windows; ``images[i, j]`` is at ``z1[j]``, ``z2[i]``,
        with ``z2`` running from high to low (top row first), as
        :func:`rotdyn.rvae.latent_grid` returns them.
    z1, z2 : the grid values along each latent (for the axis labels).
    """
    n2, n1, s, _ = images.shape
    tiled = images.transpose(0, 2, 1, 3).reshape(n2 * s, n1 * s)
    fig, ax = plt.subplots(figsize=(6, 6))
    h1, h2 = _half_step(z1), _half_step(z2)
    ax.imshow(tiled, cmap=cmap, extent=(z1[0] - h1, z1[-1] + h1, min(z2) - abs(h2), max(z2) + abs(h2)))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title("latent manifold (angle 0, no offset)")
    return fig


def _half_step(values: np.ndarray) -> float:
    return 0.5 * (values[-1] - values[0]) / max(len(values) - 1, 1)


def latent_histograms(angle: np.ndarray, dx: np.ndarray, dy: np.ndarray, bins: int = 72):
    """Distributions of the latent angle and the two offsets (paper 000, Fig. 4a-c)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].hist(np.degrees(angle), bins=bins, range=(-180, 180), color="C0")
    axes[0].set_xlabel("latent angle (deg)")
    for ax, values, name in zip(axes[1:], (dx, dy), ("dx", "dy")):
        ax.hist(values, bins=50, color="C1")
        ax.set_xlabel(f"latent offset {name} (px)")
    for ax in axes:
        ax.set_ylabel("particles")
    fig.tight_layout()
    return fig


def angle_vs_latents(angle: np.ndarray, z: np.ndarray, max_points: int = 20000, seed: int = 0):
    """Each particle's latent angle against each content latent, with density contours (Fig. 4d-f)."""
    k = z.shape[1]
    fig, axes = plt.subplots(1, k, figsize=(4.5 * k, 4), squeeze=False)
    degrees = np.degrees(angle)
    for i, ax in enumerate(axes[0]):
        ax.scatter(degrees, z[:, i], s=2, alpha=0.3, color="0.3", rasterized=True)
        grid = _density(degrees, z[:, i], max_points, seed)
        if grid is not None:
            ax.contour(*grid, levels=6, cmap="viridis", linewidths=1)
        ax.set_xlabel("latent angle (deg)")
        ax.set_ylabel(f"$z_{i + 1}$")
        ax.set_xlim(-180, 180)
    fig.tight_layout()
    return fig


def _density(x: np.ndarray, y: np.ndarray, max_points: int, seed: int):
    """(X, Y, density) on a grid from a Gaussian KDE, or None when it cannot be estimated."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 5 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    if len(x) > max_points:  # the contours do not need every point
        pick = np.random.default_rng(seed).choice(len(x), max_points, replace=False)
        x, y = x[pick], y[pick]
    try:
        kde = gaussian_kde(np.vstack([x, y]))
    except np.linalg.LinAlgError:
        return None
    gx, gy = np.meshgrid(np.linspace(x.min(), x.max(), 80), np.linspace(y.min(), y.max(), 80))
    return gx, gy, kde(np.vstack([gx.ravel(), gy.ravel()])).reshape(gx.shape)


def training_history(history, train: str, test: str, title: str):
    """Loss per epoch on the training and held-out parts."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(history["epoch"], history[train], label="train")
    ax.plot(history["epoch"], history[test], label="held out")
    ax.set_xlabel("epoch")
    ax.set_ylabel(title)
    ax.legend()
    fig.tight_layout()
    return fig


def empty(message: str):
    """A figure that says why there is nothing to show."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def save(fig, path) -> None:
    """Save a figure atomically (temporary name, then rename) and close it."""
    from .store import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _latent_cmap(name: str) -> str:
    """A cyclic colour map for the angle (so -180 and 180 deg look alike), else viridis."""
    return "twilight" if name == "angle" else "viridis"


def _in_units(name: str, values):
    return np.degrees(values) if name == "angle" else values


def latent_dynamics(kde, nmf, name: str):
    """KDE(value, time) of one latent, its NMF weights and endmembers, the transition marked (Fig. 5).

    ``kde`` and ``nmf`` are the ``kde.nc`` and ``nmf.nc`` datasets; ``name`` is
    a latent variable (``angle``, ``dx``, ``dy``, ``z1``, ...).
    """
    density = kde[f"density_{name}"]
    grid = _in_units(name, kde[f"{name}_grid"].values)
    frames = kde["frame"].values
    unit = " (deg)" if name == "angle" else ""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].pcolormesh(frames, grid, density.values.T, shading="auto", cmap="magma")
    axes[0].set(xlabel="frame", ylabel=f"{name}{unit}", title=f"KDE of {name} per frame")
    weights, endmembers = nmf[f"weights_{name}"], nmf[f"endmembers_{name}"]
    for c in range(weights.sizes["component"]):
        axes[1].plot(grid, weights.values[c], label=f"component {c + 1}")
        axes[2].plot(endmembers["frame"].values, endmembers.values[c], label=f"component {c + 1}")
    axes[1].set(xlabel=f"{name}{unit}", ylabel="NMF weight", title="weights over the latent value")
    axes[2].set(xlabel="frame", ylabel="share of the density", title="endmembers over time")
    frame = float(nmf[f"transition_frame_{name}"])
    if np.isfinite(frame):
        low, high = float(nmf[f"transition_low_{name}"]), float(nmf[f"transition_high_{name}"])
        for ax in (axes[0], axes[2]):
            ax.axvline(frame, color="white" if ax is axes[0] else "k", ls="--", lw=1)
        axes[2].axvspan(low, high, color="0.8", zorder=0, label=f"transition {frame:.0f}")
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


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
    points = ax.scatter(table["x"], table["y"], c=_in_units(name, table[name].to_numpy()), s=30,
                        cmap=_latent_cmap(name), vmin=limits[0], vmax=limits[1], edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    return points


def latent_map_animation(frames, table, name: str, path, fps: int = 5) -> None:
    """Animated GIF of the frames with the particles coloured by a latent.

    ``frames`` is the ``frames`` DataArray of ``movie.nc`` (frame, y, x),
    ``table`` one row per particle with ``frame``, ``x``, ``y`` and ``name``.
    Written atomically.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    from .store import atomic_path

    values = _in_units(name, table[name].to_numpy())
    lo, hi = (-180, 180) if name == "angle" else (np.nanmin(values, initial=0), np.nanmax(values, initial=1))
    fig, ax = plt.subplots(figsize=(5, 5))
    image = ax.imshow(frames.isel(frame=0).values, cmap="gray")
    points = ax.scatter([], [], c=[], s=25, cmap=_latent_cmap(name), vmin=lo, vmax=hi, edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    groups = dict(tuple(table.groupby("frame")))

    def draw(i):
        number = int(frames["frame"].values[i])
        image.set_data(frames.isel(frame=i).values)
        rows = groups.get(number)
        points.set_offsets(np.empty((0, 2)) if rows is None else rows[["x", "y"]].to_numpy())
        points.set_array(np.empty(0) if rows is None else _in_units(name, rows[name].to_numpy()))
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
            ax.plot(track["frame"], _in_units(name, values), marker=".", label=f"track {particle}")
    for ax, name in zip(axes[0], names):
        ax.set(xlabel="frame", ylabel=f"{name} (deg, unwrapped)" if name == "angle" else name)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
