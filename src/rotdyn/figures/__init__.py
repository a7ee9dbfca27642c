"""Figures of the workflow, one module per figure rule (paper 000, Figs. 2g, 4, 5 and 6).

Each plotting function takes arrays or xarray objects and returns a
matplotlib Figure; :func:`save` writes it as PNG. Angles are stored in
radians and plotted in degrees. The rules' entry functions are
:func:`rotdyn.figures.rvae.run`, :func:`rotdyn.figures.dynamics.run` and
:func:`rotdyn.figures.maps.run`; this package module holds only what they share,
so that each figure rule reruns only when its own code changes.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..store import atomic_path  # noqa: E402


def empty(message: str):
    """A figure that says why there is nothing to show."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def save(fig, path) -> None:
    """Save a figure atomically (temporary name, then rename) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def latent_cmap(name: str) -> str:
    """A cyclic colour map for the angle (so -180 and 180 deg look alike), else viridis."""
    return "twilight" if name == "angle" else "viridis"


def in_units(name: str, values):
    return np.degrees(values) if name == "angle" else values
