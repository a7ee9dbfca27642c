"""The rule ``rvae_figures``: latent manifold, latent distributions, training history (paper 000, Figs. 2g, 4)."""
from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import gaussian_kde

from ..rvae import latent_grid, load_rvae
from . import empty, save

log = logging.getLogger(__name__)


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


def _draw(model, lat, history, out, grid):
    z = lat.z.values
    ranges = [tuple(np.percentile(z[:, j], [2, 98])) for j in range(min(2, z.shape[1]))]
    images, z1, z2 = latent_grid(model, n=grid, ranges=ranges if len(ranges) == 2 else None)
    save(manifold(images, z1, z2), out.manifold)
    save(latent_histograms(lat.angle.values, lat.dx.values, lat.dy.values), out.histograms)
    save(angle_vs_latents(lat.angle.values, z), out.joint)
    save(training_history(history, "train_loss", "test_loss", "negative ELBO per window"), out.history)


def run(job) -> None:
    """Entry of rule ``rvae_figures``: the figures of ``job.input.model`` and ``job.input.latents``."""
    model, _ = load_rvae(job.input.model)
    with xr.open_dataset(job.input.latents) as latents:
        lat = latents.load()
    if lat.sizes["particle"]:
        _draw(model, lat, pd.read_csv(job.input.history), job.output, job.params.grid)
    else:
        log.warning("%s: no particles; the figures say so", job.input.latents)
        for path in job.output:
            save(empty(f"no particles in {job.wildcards.movie}"), path)
