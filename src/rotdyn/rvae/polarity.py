"""Head versus tail: the discrete half turn of the latent angle, found from the data.

Gradients turn the angle continuously and never by half a turn, so left
alone each window keeps whichever end the encoder first pointed at (about
half the rods come out reversed). With ``polarity`` on:

* :func:`aligned` samples a window in the decoder's angle-0 frame at every
  grid point ``r'`` and at ``-r'`` (its angle and offsets undone); their
  difference is the window's *odd* part, the part a half turn reverses;
* :func:`odd_on_body` weights the odd part by the particle's own body, so
  the polarity is read on the particle, not on neighbours;
* :func:`fit_reference` (run by the fit every few epochs) finds the signs
  that make the sum of the odd parts longest, i.e. the odd pattern the
  windows share (e.g. a brighter head): the model's ``polarity_ref``;
* :func:`flip` says which windows point against it; their angle is turned
  by pi in training and when encoding (:func:`resolve`).

A reference of zeros (not fitted yet, or polarity off) turns nothing. What
was tried before and how it measured: ``docs/rvae-polarity.md``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .geometry import display_shift, rotation


def odd_on_body(plus: torch.Tensor, minus: torch.Tensor) -> torch.Tensor:
    """Odd parts ``plus - minus`` of aligned windows, weighted by the particle's own body.

    The weight, ``min(plus, minus)`` above the window's median, is high only
    where the window is bright on both sides of the particle centre: on the
    particle itself, whose outline a half turn keeps, and not on a partner
    or neighbour on one side, whose odd part is larger than the head-tail
    contrast but points either way.

    Parameters
    ----------
    plus, minus : torch.Tensor
        ``(B, P)`` windows sampled at ``r'`` and ``-r'`` (:func:`aligned`).

    Examples
    --------
    A brighter head (3 vs 2) on a body, and a neighbour (5) on one side only:

    >>> plus = torch.tensor([[5.0, 0, 0, 3, 2, 2, 0, 0, 0]])
    >>> odd_on_body(plus, plus.flip(1)).tolist()  # the neighbour gets no weight
    [[0.0, 0.0, 0.0, 2.0, 0.0, -2.0, 0.0, 0.0, 0.0]]
    """
    weight = (torch.minimum(plus, minus) - plus.median(1, keepdim=True).values).clamp_min(0)
    return (plus - minus) * weight


def sign_ascent(odd: torch.Tensor, score: torch.Tensor, iterations: int) -> torch.Tensor:
    """Signs ``s`` (+-1) from ``sign(score)``, refined by ``s <- sign(O O^T s)`` to a fixed point.

    Each pass lengthens ``|sum_i s_i O_i|`` over the rows ``O_i`` of ``odd``.

    Examples
    --------
    >>> odd = torch.tensor([[1.0, 0.0], [-1.0, 0.1], [0.9, 0.0]], dtype=torch.float64)
    >>> sign_ascent(odd, torch.ones(3, dtype=torch.float64), 10).tolist()
    [1.0, -1.0, 1.0]
    """
    signs = torch.where(score >= 0, 1.0, -1.0).to(odd.dtype)
    for _ in range(iterations):
        new = torch.where(odd @ (odd.T @ signs) >= 0, 1.0, -1.0).to(odd.dtype)
        if torch.equal(new, signs):
            break
        signs = new
    return signs


def aligned(model, x: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``x`` seen in the decoder's angle-0 frame, at the grid ``r'`` and at ``-r'``: ``(B, P)`` each.

    The inverse of the decoder's geometry: template point ``r'`` lies at
    ``R(a) r' + t`` in the window (bilinear; border values outside).

    Parameters
    ----------
    model : rotdyn.rvae.RVAE
    x : torch.Tensor
        ``(B, S, S)`` windows.
    latent : torch.Tensor
        ``(B, n_latent)`` full latents ``[angle, dx, dy, z...]``.
    """
    angle, shift, _ = model.split_latent(latent.float())
    t = display_shift(shift, model.config["dx_scale"])
    g = torch.cat([model.grid, -model.grid])
    r = g @ rotation(angle).transpose(1, 2) + t[:, None]  # (B, 2P, 2) display coordinates
    S, half = model.size, max((model.size - 1) / 2, 0.5)
    # -> grid_sample's frame: -1..1 over the pixel centres, x = column, y = row (down)
    cols, rows = S // 2 + r[..., 0] * half, S // 2 - r[..., 1] * half
    norm = torch.stack([cols, rows], -1) * (2 / max(S - 1, 1)) - 1
    out = F.grid_sample(x.float().reshape(len(x), 1, S, S), norm[:, None], mode="bilinear",
                        padding_mode="border", align_corners=True)[:, 0, 0]
    return out[:, :S * S], out[:, S * S:]


def flip(model, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the window's head lies at the latent angle + pi (its odd part opposes ``polarity_ref``)."""
    if not model.config["polarity"] or not bool(model.polarity_ref.any()):
        return torch.zeros(len(x), dtype=torch.bool, device=x.device)
    # float32 under mixed precision too: bfloat16 coordinates would be ~0.1 px off
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return odd_on_body(*aligned(model, x, latent.detach())) @ model.polarity_ref < 0


def resolve(model, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """``latent`` with the angle turned by pi where :func:`flip` says so, wrapped to [-pi, pi)."""
    turn = math.pi * flip(model, x, latent).to(latent.dtype)
    angle = torch.remainder(latent[:, 0] + turn + math.pi, 2 * math.pi) - math.pi
    return torch.cat([angle[:, None], latent[:, 1:]], 1)


@torch.no_grad()
def fit_reference(model, x: torch.Tensor, batch_size: int = 1000, iterations: int = 30) -> float:
    """Set ``model.polarity_ref`` from windows ``x`` ``(N, S, S)`` at their posterior means.

    Starts from the leading eigenvector of the odd parts and from the previous
    reference, keeps the better end point of :func:`sign_ascent`, and keeps the
    previous reference's sign, so angles never jump by pi between updates.

    Returns
    -------
    float
        Share of windows whose polarity changed against the previous
        reference (1.0 for the first one).
    """
    if len(x) == 0:
        return 0.0
    odd = torch.cat([odd_on_body(*aligned(model, b, model.encode(b)["mean"]))
                     for b in torch.split(x, batch_size)]).double()
    old = model.polarity_ref.double()
    scores = [odd @ torch.linalg.eigh(odd.T @ odd).eigenvectors[:, -1]] + ([odd @ old] if old.any() else [])
    signs = max((sign_ascent(odd, score, iterations) for score in scores),
                key=lambda s: float((odd.T @ s).norm()))
    ref = odd.T @ signs / len(x)
    if ref @ old < 0:
        ref = -ref
    changed = ((odd @ old < 0) != (odd @ ref < 0)).double().mean() if old.any() else torch.tensor(1.0)
    model.polarity_ref.copy_(ref.to(model.polarity_ref.dtype))
    return float(changed)
