"""The rVAE's coordinate frame: the pixel grid of a window and rotation matrices.

Pixel coordinates live on a grid "x right, y up as displayed" centred on the
window's particle pixel (index ``size // 2``, see :mod:`rotdyn.patches`) and
scaled by ``2 / (size - 1)``: [-1, 1] exactly for odd sizes, shifted by half
a pixel for even ones. Centring on the particle pixel (not the array centre)
makes the latent rotation turn about the particle, so the offsets do not
depend on the angle. Why this frame, and the sign of the angle:
``docs/rvae-geometry.md``.
"""
from __future__ import annotations

import torch


def pixel_grid(size: int) -> torch.Tensor:
    """Display coordinates (x right, y up) of a window's pixels, row-major.

    Parameters
    ----------
    size : int
        Window side, px.

    Returns
    -------
    torch.Tensor
        ``(size * size, 2)`` float32; pixel ``size // 2`` is at (0, 0) and
        neighbours are ``2 / (size - 1)`` apart.

    Examples
    --------
    >>> pixel_grid(3).tolist()
    [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]
    """
    half = max((size - 1) / 2, 0.5)
    idx = (torch.arange(size, dtype=torch.float64) - size // 2) / half
    y, x = torch.meshgrid(-idx, idx, indexing="ij")  # row r -> y = -(r - size//2) / half
    return torch.stack([x.reshape(-1), y.reshape(-1)], 1).float()


def rotation(angle: torch.Tensor) -> torch.Tensor:
    """Counter-clockwise rotation matrices ``R(angle)``, ``(B, 2, 2)``.

    Parameters
    ----------
    angle : torch.Tensor
        ``(B,)`` angles, rad.

    Returns
    -------
    torch.Tensor
        ``(B, 2, 2)`` matrices ``[[cos, -sin], [sin, cos]]``, of ``angle``'s dtype and device.

    Examples
    --------
    >>> import math
    >>> R = rotation(torch.tensor([math.pi / 2]))
    >>> (R[0] @ torch.tensor([1.0, 0.0])).round().tolist()  # +x turns to +y (up on screen)
    [0.0, 1.0]
    """
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def display_shift(shift: torch.Tensor, dx_scale: float) -> torch.Tensor:
    """Latent offsets ``(B, 2)`` (dx right, dy DOWN, latent units) -> display-frame shifts (grid units, y up).

    Parameters
    ----------
    shift : torch.Tensor
        ``(B, 2)`` latent offsets ``(dx, dy)``, latent units, dy positive down.
    dx_scale : float
        Grid units per latent offset unit (:class:`~rotdyn.rvae.RVAE`'s ``dx_scale``).

    Returns
    -------
    torch.Tensor
        ``(B, 2)`` shifts ``(x, y)`` in grid units, y positive up.

    Examples
    --------
    >>> display_shift(torch.tensor([[1.0, 2.0]]), 0.1).tolist()
    [[0.10000000149011612, -0.20000000298023224]]
    """
    return torch.stack([shift[:, 0], -shift[:, 1]], 1) * dx_scale
