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

    Returns
    -------
    torch.Tensor
        ``(B, P)``: antisymmetric under ``r' -> -r'``, zero off the body.

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

    Parameters
    ----------
    odd : torch.Tensor
        ``(N, P)`` odd parts, one row per window (:func:`odd_on_body`).
    score : torch.Tensor
        ``(N,)`` starting point: its signs are the first guess.
    iterations : int
        At most this many passes.

    Returns
    -------
    torch.Tensor
        ``(N,)`` of +-1, in ``odd``'s dtype.

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

    Returns
    -------
    plus, minus : torch.Tensor
        ``(B, S * S)`` each, in the order of ``model.grid`` (row by row):
        the window at ``r'`` and at ``-r'``.

    Examples
    --------
    At angle 0 and no offset the window itself, and turned by half a turn;
    at a quarter turn the window turned back (clockwise as displayed):

    >>> from rotdyn.rvae import RVAE
    >>> model = RVAE(9, hidden=16)
    >>> x = torch.arange(81.0).reshape(1, 9, 9)
    >>> plus, minus = aligned(model, x, torch.zeros(1, model.n_latent))
    >>> torch.equal(plus.reshape(9, 9), x[0]), torch.equal(minus.reshape(9, 9), x[0].flip(0, 1))
    (True, True)
    >>> quarter = torch.tensor([[math.pi / 2, 0, 0, 0, 0]])
    >>> torch.allclose(aligned(model, x, quarter)[0].reshape(9, 9), torch.rot90(x[0], -1), atol=1e-4)
    True
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
    """``(B,)`` bool: the window's head lies at the latent angle + pi (its odd part opposes ``polarity_ref``).

    Parameters
    ----------
    model : rotdyn.rvae.RVAE
        With ``polarity`` on and a fitted ``polarity_ref`` (else nothing flips).
    x : torch.Tensor
        ``(B, S, S)`` windows.
    latent : torch.Tensor
        ``(B, n_latent)`` their latents.

    Returns
    -------
    torch.Tensor
        ``(B,)`` bool, on ``x``'s device.

    Examples
    --------
    A rod with a brighter head on the right, and the same rod turned by half a turn:

    >>> from rotdyn.rvae import RVAE
    >>> model = RVAE(9, hidden=16)
    >>> rod = torch.zeros(9, 9); rod[4, 1:8] = 1.0; rod[4, 6:8] = 2.0
    >>> x, latent = torch.stack([rod, rod.flip(0, 1)]), torch.zeros(2, model.n_latent)
    >>> flip(model, x, latent).tolist()  # no reference fitted yet
    [False, False]
    >>> _ = model.polarity_ref.copy_(odd_on_body(*aligned(model, x[:1], latent[:1]))[0])  # head right
    >>> flip(model, x, latent).tolist()
    [False, True]
    """
    if not model.config["polarity"] or not bool(model.polarity_ref.any()):
        return torch.zeros(len(x), dtype=torch.bool, device=x.device)
    # float32 under mixed precision too: bfloat16 coordinates would be ~0.1 px off
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return odd_on_body(*aligned(model, x, latent.detach())) @ model.polarity_ref < 0


def resolve(model, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """``latent`` with the angle turned by pi where :func:`flip` says so, wrapped to [-pi, pi).

    Parameters
    ----------
    model : rotdyn.rvae.RVAE
    x : torch.Tensor
        ``(B, S, S)`` windows.
    latent : torch.Tensor
        ``(B, n_latent)`` their latents.

    Returns
    -------
    torch.Tensor
        ``(B, n_latent)``: the angle resolved, the other latents as given.

    Examples
    --------
    The rod of :func:`flip`, head right, and turned by half a turn, both at angle 0:

    >>> from rotdyn.rvae import RVAE
    >>> model = RVAE(9, hidden=16)
    >>> rod = torch.zeros(9, 9); rod[4, 1:8] = 1.0; rod[4, 6:8] = 2.0
    >>> x, latent = torch.stack([rod, rod.flip(0, 1)]), torch.zeros(2, model.n_latent)
    >>> _ = model.polarity_ref.copy_(odd_on_body(*aligned(model, x[:1], latent[:1]))[0])
    >>> resolve(model, x, latent)[:, 0].tolist()  # the turned rod's head points at -pi
    [0.0, -3.1415927410125732]
    """
    turn = math.pi * flip(model, x, latent).to(latent.dtype)
    angle = torch.remainder(latent[:, 0] + turn + math.pi, 2 * math.pi) - math.pi
    return torch.cat([angle[:, None], latent[:, 1:]], 1)


@torch.no_grad()
def fit_reference(model, x: torch.Tensor, batch_size: int = 1000, iterations: int = 30) -> float:
    """Set ``model.polarity_ref`` from windows ``x`` ``(N, S, S)`` at their posterior means.

    Starts from the leading eigenvector of the odd parts and from the previous
    reference, keeps the better end point of :func:`sign_ascent`, and keeps the
    previous reference's sign, so angles never jump by pi between updates.

    Parameters
    ----------
    model : rotdyn.rvae.RVAE
        Its encoder gives the posterior means; ``polarity_ref`` is set in place.
    x : torch.Tensor
        ``(N, S, S)`` windows.
    batch_size : int
        Windows encoded at once.
    iterations : int
        Passes of :func:`sign_ascent`.

    Returns
    -------
    float
        Share of windows whose polarity changed against the previous
        reference (1.0 for the first one; 0.0 for no windows).

    Examples
    --------
    Rods with a brighter head and the same rods turned by half a turn:
    whatever the (untrained) encoder makes of them, each turned copy comes
    out flipped against its original, and a second fit changes nothing.

    >>> from rotdyn.rvae import RVAE
    >>> _ = torch.manual_seed(0)
    >>> model = RVAE(9, hidden=16)
    >>> rod = torch.zeros(9, 9); rod[4, 1:8] = 1.0; rod[4, 6:8] = 2.0
    >>> x = torch.stack([rod, rod.flip(0, 1)] * 4)
    >>> fit_reference(model, x), fit_reference(model, x)
    (1.0, 0.0)
    >>> flipped = flip(model, x, model.encode(x)["mean"])
    >>> bool((flipped[0::2] != flipped[1::2]).all())
    True
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
