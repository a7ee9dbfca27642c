"""The rule ``dynamics_figures``: each latent's density over time with its NMF components (paper 000, Fig. 5)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..contracts import density_names
from . import in_units, save


def latent_dynamics(kde, nmf, name: str):
    """KDE(value, time) of one latent, its NMF weights and endmembers, the transition marked (Fig. 5).

    ``kde`` and ``nmf`` are the ``kde.nc`` and ``nmf.nc`` datasets; ``name`` is
    a latent variable (``angle``, ``dx``, ``dy``, ``z1``, ...).
    """
    density = kde[f"density_{name}"]
    grid = in_units(name, kde[f"{name}_grid"].values)
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


def run(job) -> None:
    """Entry of rule ``dynamics_figures``: one panel per latent of ``job.input.kde`` into the folder ``job.output[0]``."""
    out = Path(job.output[0])
    out.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(job.input.kde) as kde, xr.open_dataset(job.input.nmf) as nmf:
        for name in density_names(kde):
            save(latent_dynamics(kde, nmf, name), out / f"{name}.png")
