"""The rule ``rvae_figures``: latent manifold, latent distributions, training history (paper 000, Figs. 2g, 4).

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
   a System of Self-Organizing Protein Nanorods via Rotationally Invariant
   Latent Representations", ACS Nano 15, 6471-6480 (2021).
   doi:10.1021/acsnano.0c08914 (paper 000)
"""
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
    """Decoded images on a grid over two content latents, tiled (paper 000 [1]_, Fig. 2g).

    Parameters
    ----------
    images : ndarray
        ``(n2, n1, S, S)`` decoded windows; ``images[i, j]`` is at ``z1[j]``,
        ``z2[i]``, with ``z2`` running from high to low (top row first), as
        :func:`rotdyn.rvae.latent_grid` returns them.
    z1, z2 : ndarray
        The grid values along each latent (for the axis labels).
    cmap : str
        Matplotlib colour map.

    Returns
    -------
    matplotlib.figure.Figure
        One image of ``(n2 * S, n1 * S)`` px, its axes in latent units.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
       a System of Self-Organizing Protein Nanorods via Rotationally Invariant
       Latent Representations", ACS Nano 15, 6471-6480 (2021).
       doi:10.1021/acsnano.0c08914 (paper 000)

    Examples
    --------
    >>> images = np.arange(2 * 3 * 4 * 4, dtype=float).reshape(2, 3, 4, 4)
    >>> fig = manifold(images, np.array([-1.0, 0.0, 1.0]), np.array([1.0, -1.0]))
    >>> shown = fig.axes[0].images[0]
    >>> tiled = shown.get_array()
    >>> tiled.shape, bool((tiled[:4, 4:8] == images[0, 1]).all())  # top row: the highest z2
    ((8, 12), True)
    >>> [float(v) for v in shown.get_extent()]  # half a step beyond the outer grid points
    [-1.5, 1.5, -2.0, 2.0]
    >>> plt.close(fig)
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
    """Distributions of the latent angle and the two offsets (paper 000 [1]_, Fig. 4a-c).

    Parameters
    ----------
    angle : ndarray
        Latent angles, rad (plotted in degrees).
    dx, dy : ndarray
        Latent offsets, px.
    bins : int
        Bins of the angle histogram over the circle (50 for each offset).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: angle, ``dx``, ``dy``.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
       a System of Self-Organizing Protein Nanorods via Rotationally Invariant
       Latent Representations", ACS Nano 15, 6471-6480 (2021).
       doi:10.1021/acsnano.0c08914 (paper 000)

    Examples
    --------
    >>> fig = latent_histograms(np.radians([92.0, 93.0, -10.0]), np.zeros(3), np.ones(3))
    >>> tallest = max(fig.axes[0].patches, key=lambda bar: bar.get_height())
    >>> float(tallest.get_x()), float(tallest.get_height())  # both in the 5 deg bin from 90
    (90.0, 2.0)
    >>> float(sum(bar.get_height() for bar in fig.axes[2].patches))  # every particle counted
    3.0
    >>> plt.close(fig)
    """
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
    """Each particle's latent angle against each content latent, with density contours (paper 000 [1]_, Fig. 4d-f).

    Parameters
    ----------
    angle : ndarray
        ``(N,)`` latent angles, rad (plotted in degrees).
    z : ndarray
        ``(N, k)`` content latents.
    max_points : int
        At most this many points (a random choice) go into the density.
    seed : int
        Seed of that choice.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per content latent; the contours of a Gaussian KDE where
        there are at least 5 points that spread in both directions.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
       a System of Self-Organizing Protein Nanorods via Rotationally Invariant
       Latent Representations", ACS Nano 15, 6471-6480 (2021).
       doi:10.1021/acsnano.0c08914 (paper 000)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> angle, z = rng.uniform(-np.pi, np.pi, 100), rng.normal(size=(100, 2))
    >>> fig = angle_vs_latents(angle, z)
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['$z_1$', '$z_2$']
    >>> point = fig.axes[1].collections[0].get_offsets()[0]
    >>> bool(np.allclose(point, [np.degrees(angle[0]), z[0, 1]]))
    True
    >>> len(fig.axes[0].collections) > 1  # the contours over the points
    True
    >>> plt.close(fig)
    """
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
    """Loss per epoch on the training and held-out parts.

    Parameters
    ----------
    history : DataFrame
        One row per epoch: ``epoch`` and the two loss columns.
    train, test : str
        The columns of the training and held-out losses.
    title : str
        The y-axis label.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [5.0, 3.0, 2.0], "test_loss": [5.5, 3.6, 2.9]})
    >>> fig = training_history(history, "train_loss", "test_loss", "negative ELBO per window")
    >>> ax = fig.axes[0]
    >>> [np.asarray(line.get_ydata()).tolist() for line in ax.lines]
    [[5.0, 3.0, 2.0], [5.5, 3.6, 2.9]]
    >>> [text.get_text() for text in ax.get_legend().get_texts()]
    ['train', 'held out']
    >>> plt.close(fig)
    """
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
    """Entry of rule ``rvae_figures``: the figures of ``job.input.model`` and ``job.input.latents``.

    The manifold is decoded over the 2nd to 98th percentile of ``z1`` and
    ``z2``; a movie without particles gets figures that say so.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.model`` (``model.pt``), ``input.latents`` (``latents.nc``),
        ``input.history`` (``history.csv``: ``epoch, train_loss,
        test_loss``), ``params.grid`` (manifold points per axis),
        ``wildcards.movie``; ``output`` names ``manifold``, ``histograms``,
        ``joint`` and ``history`` (PNG), in the order of
        :data:`rotdyn.stages.STAGES`.

    Examples
    --------
    A movie in which no particle was found (the figures with particles take
    seconds to draw: see ``tests/test_figures.py``):

    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.rvae import RVAE, save_rvae
    >>> d = tempfile.mkdtemp()
    >>> inputs = {name: os.path.join(d, name) for name in ("model.pt", "latents.nc", "history.csv")}
    >>> save_rvae(RVAE(8, hidden=16), inputs["model.pt"])
    >>> none = np.zeros(0)
    >>> xr.Dataset({"angle": ("particle", none), "dx": ("particle", none), "dy": ("particle", none),
    ...             "z": (("particle", "latent"), np.zeros((0, 2)))}).to_netcdf(inputs["latents.nc"])
    >>> pd.DataFrame({"epoch": [1], "train_loss": [2.0], "test_loss": [2.5]}).to_csv(inputs["history.csv"])
    >>> output = {name: os.path.join(d, f"{name}.png") for name in ("manifold", "histograms", "joint", "history")}
    >>> run(job("rvae_figures", input={"model": inputs["model.pt"], "latents": inputs["latents.nc"],
    ...                                "history": inputs["history.csv"]},
    ...         output=output, params={"grid": 3}, wildcards={"movie": "m"}))
    >>> [open(path, "rb").read(4)[1:] for path in output.values()]
    [b'PNG', b'PNG', b'PNG', b'PNG']
    """
    model, _ = load_rvae(job.input.model)
    with xr.open_dataset(job.input.latents) as latents:
        lat = latents.load()
    if lat.sizes["particle"]:
        _draw(model, lat, pd.read_csv(job.input.history), job.output, job.params.grid)
    else:
        log.warning("%s: no particles; the figures say so", job.input.latents)
        for path in job.output:
            save(empty(f"no particles in {job.wildcards.movie}"), path)
