"""Decoding chosen latent points into images: single renders and the latent manifold (paper 000, Fig. 2g)."""
from __future__ import annotations

import numpy as np
import torch

from ..networks import model_device
from .model import RVAE


def render(model: RVAE, angle=0.0, dx=0.0, dy=0.0, z=None) -> np.ndarray:
    """Decode latent points given by parts; returns ``(n, S, S)`` float32.

    Parameters
    ----------
    model : RVAE
    angle : float or array
        Latent angle(s), rad.
    dx, dy : float or array
        Latent offsets (latent units; :meth:`RVAE.offsets_px` converts).
    z : array ``(n, k)`` or ``(k,)`` or None
        Content latents; None = zeros. All arguments broadcast to one ``n``.

    Returns
    -------
    ndarray
        ``(n, S, S)`` float32 images: pixel means (Gaussian) or probabilities (Bernoulli).

    Examples
    --------
    >>> model = RVAE(9, latent_dim=2, hidden=16)
    >>> render(model, angle=[0.0, 1.0], z=[0.5, -0.5]).shape
    (2, 9, 9)
    """
    k = model.latent_dim
    z = np.zeros((1, k)) if z is None else np.atleast_2d(np.asarray(z, dtype=np.float64))
    if z.shape[1] != k:
        raise ValueError(f"z needs {k} columns, got shape {z.shape}")
    n = np.broadcast_shapes(np.shape(angle), np.shape(dx), np.shape(dy), (len(z),))
    if len(n) != 1:
        raise ValueError(f"angle, dx, dy must be scalars or 1-D, got shapes {np.shape(angle)}, "
                         f"{np.shape(dx)}, {np.shape(dy)}")
    cols = [np.broadcast_to(angle, n)[:, None]]
    if model.n_shift:
        cols += [np.broadcast_to(dx, n)[:, None], np.broadcast_to(dy, n)[:, None]]
    latent = np.concatenate(cols + [np.broadcast_to(z, n + (k,))], 1)
    with torch.inference_mode():
        images = model.decode(torch.as_tensor(latent, dtype=torch.float32, device=model_device(model)))
    return images.float().cpu().numpy()


def latent_grid(model: RVAE, n: int = 10, ranges=None, dims=(0, 1), angle: float = 0.0):
    """Decoded images on a regular grid of two content latents (the manifold of paper 000, Fig. 2g).

    Parameters
    ----------
    model : RVAE
    n : int
        Points per axis.
    ranges : ((lo, hi), (lo, hi)) or None
        Ranges of ``z[dims[0]]`` (columns) and ``z[dims[1]]`` (rows);
        None = (-2, 2) for both (+-2 prior sd).
    dims : (int, int)
        Which content latents span the grid; other latents are 0.
    angle : float
        Latent angle of every image, rad (offsets 0).

    Returns
    -------
    images : ndarray ``(n, n, S, S)``
        ``images[i, j]`` at ``z[dims[0]] = cols[j]``, ``z[dims[1]] = rows[i]``;
        rows run from high to low so that a montage shows the second latent
        increasing upwards. With one content latent: ``(1, n, S, S)``.
    cols, rows : ndarray
        The latent values.

    Examples
    --------
    >>> images, cols, rows = latent_grid(RVAE(9, hidden=16), n=3)
    >>> images.shape, cols.tolist(), rows.tolist()
    ((3, 3, 9, 9), [-2.0, 0.0, 2.0], [2.0, 0.0, -2.0])
    """
    k = model.latent_dim
    if k == 0:
        raise ValueError("the model has no content latents to span a grid")
    ranges = ((-2.0, 2.0), (-2.0, 2.0)) if ranges is None else ranges
    cols = np.linspace(*ranges[0], n)
    rows = np.linspace(*ranges[1], n)[::-1] if k > 1 else np.zeros(1)
    z = np.zeros((len(rows), n, k))
    z[:, :, dims[0]] = cols[None, :]
    if k > 1:
        z[:, :, dims[1]] = rows[:, None]
    images = render(model, angle=angle, z=z.reshape(-1, k))
    return images.reshape(len(rows), n, model.size, model.size), cols, rows
