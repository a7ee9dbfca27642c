"""The rule ``dynamics_figures``: each latent's density over time with its NMF components (paper 000, Fig. 5).

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
import xarray as xr

from ..contracts import CIRCULAR, DENSITY, TRANSITION, density_names
from . import in_units, save


def latent_dynamics(kde, nmf, name: str):
    """KDE(value, time) of one latent, its NMF weights and endmembers, the transition marked (Fig. 5).

    Parameters
    ----------
    kde, nmf : xr.Dataset
        The ``kde.nc`` and ``nmf.nc`` datasets (:func:`rotdyn.kde.kde_maps`,
        :func:`rotdyn.nmf.nmf_maps`).
    name : str
        A latent variable (``angle``, ``dx``, ``dy``, ``z1``, ...).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: the density map (frame x value), the weights over the
        value, the endmembers over time; the transition frame dashed in the
        first and last, its confidence set shaded in the last.

    Examples
    --------
    >>> from rotdyn.kde import kde_maps
    >>> from rotdyn.nmf import nmf_maps
    >>> frame = np.repeat(np.arange(12), 3)
    >>> latents = xr.Dataset({"frame": ("particle", frame), "angle": ("particle", np.where(frame < 4, -1.0, 1.0))})
    >>> kde = kde_maps(latents, np.arange(12), grid_points=40, bandwidth=0.3)
    >>> fig = latent_dynamics(kde, nmf_maps(kde), "angle")
    >>> [float(line.get_xdata()[0]) for line in fig.axes[2].lines[2:]]  # the transition, after 2 endmembers
    [4.0]
    >>> plt.close(fig)
    """
    density = kde[f"{DENSITY}{name}"]
    grid = in_units(name, kde[f"{name}_grid"].values)
    frames = kde["frame"].values
    unit = " (deg)" if name in CIRCULAR else ""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].pcolormesh(frames, grid, density.values.T, shading="auto", cmap="magma")
    axes[0].set(xlabel="frame", ylabel=f"{name}{unit}", title=f"KDE of {name} per frame")
    weights, endmembers = nmf[f"weights_{name}"], nmf[f"endmembers_{name}"]
    for c in range(weights.sizes["component"]):
        axes[1].plot(grid, weights.values[c], label=f"component {c + 1}")
        axes[2].plot(endmembers["frame"].values, endmembers.values[c], label=f"component {c + 1}")
    axes[1].set(xlabel=f"{name}{unit}", ylabel="NMF weight", title="weights over the latent value")
    axes[2].set(xlabel="frame", ylabel="share of the density", title="endmembers over time")
    frame = float(nmf[f"{TRANSITION}{name}"])
    if np.isfinite(frame):
        low, high = float(nmf[f"transition_low_{name}"]), float(nmf[f"transition_high_{name}"])
        for ax in (axes[0], axes[2]):
            ax.axvline(frame, color="white" if ax is axes[0] else "k", ls="--", lw=1)
        axes[2].axvspan(low, high, color="0.8", zorder=0, label=f"transition {frame:.0f}")
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(job) -> None:
    """Entry of rule ``dynamics_figures``: one figure per latent of ``job.input.kde`` in the folder ``job.output[0]``.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.kde`` (``kde.nc``), ``input.nmf`` (``nmf.nc``), ``output[0]``
        (a folder: ``<latent>.png`` per density in ``kde.nc``, see
        :func:`latent_dynamics`).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.kde import kde_maps
    >>> from rotdyn.nmf import nmf_maps
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> latents = xr.Dataset({"frame": ("particle", np.arange(8) % 4), "angle": ("particle", np.linspace(-1, 1, 8)),
    ...                       "z": (("particle", "latent"), np.ones((8, 1)))})
    >>> kde = kde_maps(latents, np.arange(4), grid_points=20, bandwidth=0.5)
    >>> files = {name: os.path.join(folder, f"{name}.nc") for name in ("kde", "nmf")}
    >>> write_netcdf(kde, files["kde"])
    >>> write_netcdf(nmf_maps(kde), files["nmf"])
    >>> run(job("dynamics_figures", input=files, output=[os.path.join(folder, "dynamics")]))
    >>> sorted(os.listdir(os.path.join(folder, "dynamics")))
    ['angle.png', 'z1.png']
    """
    out = Path(job.output[0])
    out.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(job.input.kde) as kde, xr.open_dataset(job.input.nmf) as nmf:
        for name in density_names(kde):
            save(latent_dynamics(kde, nmf, name), out / f"{name}.png")
