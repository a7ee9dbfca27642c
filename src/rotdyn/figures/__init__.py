"""Figures of the workflow, one module per figure rule (paper 000, Figs. 2g, 4, 5 and 6).

Each plotting function takes arrays or xarray objects and returns a
matplotlib Figure; :func:`save` writes it as PNG. Angles are stored in
radians and plotted in degrees. The rules' entry functions are
:func:`rotdyn.figures.rvae.run`, :func:`rotdyn.figures.dynamics.run` and
:func:`rotdyn.figures.maps.run`; this package module holds only what they share,
so that each figure rule reruns only when its own code changes.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
   a System of Self-Organizing Protein Nanorods via Rotationally Invariant
   Latent Representations", ACS Nano 15, 6471-6480 (2021).
   doi:10.1021/acsnano.0c08914 (paper 000)
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..contracts import CIRCULAR  # noqa: E402
from ..store import atomic_path  # noqa: E402


def empty(message: str):
    """A figure that says why there is nothing to show.

    Parameters
    ----------
    message : str
        The text, centred.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = empty("no particles")
    >>> fig.axes[0].texts[0].get_text()
    'no particles'
    >>> plt.close(fig)
    """
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def save(fig, path) -> None:
    """Save a figure atomically (temporary name, then rename) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (closed afterwards).
    path : str or os.PathLike
        The PNG file (120 dpi).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "note.png")
    >>> save(empty("nothing"), path)
    >>> open(path, "rb").read(4)[1:]
    b'PNG'
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def latent_cmap(name: str) -> str:
    """A cyclic colour map for the angle (so -180 and 180 deg look alike), else viridis.

    Parameters
    ----------
    name : str
        The latent (``angle``, ``dx``, ``z1``, ...).

    Returns
    -------
    str
        A matplotlib colour map name.

    Examples
    --------
    >>> latent_cmap("angle"), latent_cmap("z1")
    ('twilight', 'viridis')
    """
    return "twilight" if name in CIRCULAR else "viridis"


def in_units(name: str, values):
    """``values`` of latent ``name`` in the units plotted: degrees for the angle, else unchanged.

    Parameters
    ----------
    name : str
        The latent (``angle`` in rad, else unitless or px).
    values : array_like
        Its values.

    Returns
    -------
    ndarray or array_like
        The angle in degrees; other latents' values as given.

    Examples
    --------
    >>> in_units("angle", np.array([np.pi / 2])), in_units("z1", np.array([0.5]))
    (array([90.]), array([0.5]))
    """
    return np.degrees(values) if name in CIRCULAR else values
