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
    images : (n2, n1, S, S) decoded windows; row i is ``z2[i]``, column j is ``z1[j]``.
    z1, z2 : the grid values along each latent (for the axis labels).
    """
    n2, n1, s, _ = images.shape
    tiled = images.transpose(0, 2, 1, 3).reshape(n2 * s, n1 * s)
    fig, ax = plt.subplots(figsize=(6, 6))
    # Row 0 is the lowest z2: draw it at the bottom, as a plot of (z1, z2).
    ax.imshow(tiled, cmap=cmap, origin="lower",
              extent=(z1[0] - _half_step(z1), z1[-1] + _half_step(z1), z2[0] - _half_step(z2), z2[-1] + _half_step(z2)))
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


def save(fig, path) -> None:
    """Save a figure atomically (temporary name, then rename) and close it."""
    from .store import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
