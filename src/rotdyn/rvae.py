"""Rotationally invariant variational autoencoder (rVAE; spatial-VAE of Bepler et al.).

Every window is encoded into an angle, two offsets and ``latent_dim`` content
variables (Kalinin et al.: "latent angle + 2 offsets + 2"). The decoder is a
*spatial* generator: it maps the coordinate of every pixel, rotated and
shifted by the angle and offsets, together with the content ``z`` to the
pixel's value, so rotation and translation are built into the geometry and
the content latents are left to describe shape and neighbourhood.

Geometry and units
------------------
Pixel coordinates live on a grid "x right, y up as displayed" centred on the
window's particle pixel (index ``size // 2``, see :mod:`rotdyn.patches`) and
scaled by ``2 / (size - 1)``: [-1, 1] exactly for odd sizes, shifted by half a
pixel for even ones. Centring on the particle pixel (not the array centre)
makes the latent rotation turn about the particle, so the offsets do not
depend on the angle.

A pixel at display coordinate ``r`` gets the value ``g(R(-a) (r - t), z)``,
with ``R`` the counter-clockwise rotation matrix. Hence a feature the
decoder draws at point ``p`` for angle 0 appears at ``R(a) p + t``:

    decode(angle=a) is decode(angle=0) rotated COUNTER-CLOCKWISE AS DISPLAYED
    by ``a`` (about the particle pixel), i.e. the project's angle convention.

So the latent angle equals the particle orientation (head direction, as in
``simulate``) plus one constant (the orientation of the decoder's angle-0
template), with sign +1; :func:`rotdyn.fit_rvae.angle_accuracy` finds both.
For head-tail symmetric images (probability maps) a and a + pi decode the
same image and only the axis (modulo 180 deg) is identified.

Polarity (head vs tail)
-----------------------
Gradients turn the angle continuously, so they never move it by half a turn:
left alone, each window keeps whichever end the encoder happened to point at
(about half the rods come out reversed). With ``polarity=True`` the half
turn is a discrete choice made from the data:

* :meth:`RVAE.aligned` samples a window in the decoder's angle-0 frame at
  every grid point ``r'`` and at ``-r'`` (its angle and offsets undone), so
  their difference is the window's *odd* part, the part a half turn reverses;
* the odd part is weighted by the particle's own body, where the window is
  bright at both ``r'`` and ``-r'``: the polarity is read on the particle
  itself, not on partners and neighbours, whose odd parts are larger but
  point either way (``_odd_on_body``; weighting by the mean particle instead
  left 22 % of the rods of ``test_rvae``'s partnered set reversed);
* :meth:`RVAE.fit_polarity` (run by ``fit`` every few epochs on the training
  windows) finds the signs ``s_i`` that make ``sum_i s_i O_i`` longest (from
  the leading eigenvector and from the previous reference, then sign
  iterations): the odd pattern shared by all windows, e.g. the brighter
  head; ``polarity_ref = sum_i s_i O_i / N``;
* a window's angle is turned by pi where its odd part projects negatively
  on ``polarity_ref`` (:meth:`polarity_flip`): in training (so the decoder
  learns one head-tail asymmetric template) and when encoding.

A reference that is all zeros (not fitted yet, or ``polarity=False``) turns
nothing. Successive references keep the sign of the previous one, so the
angles do not jump by pi between updates. Choosing, instead, whichever of
a and a + pi the decoder reconstructs better (tried first; 1.7 times the
decoder work) left 29-36 % of the demo's rods reversed: the template's odd
part followed neighbours, and the content latents learned the ends. On
head-tail symmetric windows (probability maps) there is nothing to find and
the search picks ends by noise: switch it off there.

Offsets: the latent offsets ``(dx, dy)`` are in units of ``dx_scale`` grid
units; ``dx`` is positive to the right (+column), ``dy`` positive DOWN
(+row, the array convention of ``x``/``y`` in the project tables).
:meth:`RVAE.offsets_px` converts them to pixels:
``px = latent * dx_scale * (size - 1) / 2``. With the default
``dx_scale = 0.1`` one latent unit is 1.15 px for 24-px windows.

Priors, likelihood, ELBO (per image, in nats)
---------------------------------------------
* content ``z``: N(0, 1) each (standard VAE KL);
* offsets: N(0, ``translation_sd``^2) in latent units. Default 0.5, i.e.
  0.05 grid units = 0.58 px for 24-px windows (atomai: 1 latent unit of 0.1
  grid units): on the simulated rods the wider prior let the offsets take
  up neighbours and shape (sd > 1 px), 0.5 keeps them to the centring error
  (sd 0.2-0.5 px, correlated with the true sub-pixel offsets);
* angle, ``rotation_prior="normal"``: N(0, ``rotation_sd``^2) with the
  exact KL of the Gaussian posterior N(m, s^2),
  ``log(rs / s) + (s^2 + m^2) / (2 rs^2) - 1/2`` (paper 002's formula; with
  rs = 0.1 rad it costs 50 m^2 nats, so the latent angle then only absorbs
  small rotations: use it for nearly aligned objects). Note that atomai, the
  code papers 000/002 ran, drops the ``m^2`` term, which amounts to the
  uniform prior below with the posterior sd pulled towards ``rotation_sd``;
* angle, ``rotation_prior="vonmises"`` (default): uniform on the circle
  (a von Mises of concentration 0): every orientation is equally likely a
  priori, so the angle's mean is not penalised at all, which suits full
  +-180 deg disorder. The exact KL of a (wrapped normal) posterior against
  that prior is ``log(2 pi) - H(q)``; it only rewards wide posteriors, and in
  practice the fit then escapes into a rotation-blind decoder (measured on
  the simulated rods: posterior angle sd -> 13 rad, the latent angle
  useless). The term used instead is atomai's (the code of papers 000 and
  002): ``log(rs / s) + s^2 / (2 rs^2) - 1/2``, the KL against a normal of sd
  ``rotation_sd`` centred on the posterior's own mean. It keeps the angle
  posterior about ``rotation_sd`` (0.1 rad) wide, so the decoder must use the
  angle, and leaves the mean free.
* likelihood ``"gaussian"``: independent pixels with noise sd ``noise_sd``
  (``None``: one learned scalar, i.e. its maximum-likelihood value, which
  weighs reconstruction against the KL by the data's own noise level);
  ``-log p = sum (x - mu)^2 / (2 sd^2) + P log sd + P/2 log(2 pi)``.
  atomai's "mse" is this with sd = 1 and the constants left out.
* likelihood ``"bernoulli"``: binary cross-entropy with logits summed over
  pixels (probability maps in [0, 1] as soft targets; the value is then a
  cross-entropy rather than a normalised log-likelihood).

Speed
-----
The first decoder layer is split: its coordinate part is affine in the
fixed pixel grid, ``W_c R(-a) (r - t) = r (R(a) W_c^T) - t (R(a) W_c^T)``,
so each image needs one ``(2, hidden)`` matrix ``A`` and one bias row ``c``
(holding ``W_z z + b`` too); the per-pixel concatenation of coordinates and
``z`` of the original is never built (:func:`naive_decoder_forward` keeps it
for comparison). On the CPU the decoder MLP runs as one autograd function
over tiles of whole images (``tile_pixels``, 16384 = 28 windows of 24 x 24):
its temporaries stay in cache, the two saved activations go to buffers
reused from batch to batch (no freshly mapped, kernel-zeroed memory every
step), tanh's derivative comes from its saved output, and a column of ones
in the grid folds the first layer's bias into its matmul and its gradient.
On CUDA the plain layer-by-layer version is used.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .store import atomic_path

ENCODERS = ("mlp", "conv")
LIKELIHOODS = ("gaussian", "bernoulli")
ROTATION_PRIORS = ("normal", "vonmises")
LOG_2PI = math.log(2 * math.pi)
_LOGSD_RANGE = (-12.0, 6.0)  # keeps exp() finite early in training


def pixel_grid(size: int) -> torch.Tensor:
    """``(size * size, 2)`` display coordinates (x right, y up) of the pixels, row-major.

    Centred on pixel ``size // 2`` and scaled by ``2 / (size - 1)``.
    """
    half = max((size - 1) / 2, 0.5)
    idx = (torch.arange(size, dtype=torch.float64) - size // 2) / half
    y, x = torch.meshgrid(-idx, idx, indexing="ij")  # row r -> y = -(r - size//2) / half
    return torch.stack([x.reshape(-1), y.reshape(-1)], 1).float()


def rotation(angle: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 2)`` counter-clockwise rotation matrices R(angle)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _odd_on_body(plus: torch.Tensor, minus: torch.Tensor) -> torch.Tensor:
    """Odd parts ``plus - minus`` of aligned windows, weighted by the particle's own body.

    The weight, ``min(plus, minus)`` above the window's median, is high only
    where the window is bright on both sides of the particle centre: on the
    particle itself, whose outline a half turn keeps, and not on a partner
    or neighbour on one side, whose odd part is larger than the head-tail
    contrast but points either way; nor on the ends that an offset error of
    a fraction of a pixel brightens on one side only.
    """
    weight = (torch.minimum(plus, minus) - plus.median(1, keepdim=True).values).clamp_min(0)
    return (plus - minus) * weight


def _sign_ascent(odd: torch.Tensor, score: torch.Tensor, iterations: int) -> torch.Tensor:
    """Signs ``s`` (+-1) from ``sign(score)``, refined by ``s <- sign(O O^T s)``.

    Each pass lengthens ``|sum_i s_i O_i|`` (the rows of ``odd``) until a fixed point.
    """
    signs = torch.where(score >= 0, 1.0, -1.0).to(odd.dtype)
    for _ in range(iterations):
        new = torch.where(odd @ (odd.T @ signs) >= 0, 1.0, -1.0).to(odd.dtype)
        if torch.equal(new, signs):
            break
        signs = new
    return signs


# --------------------------------------------------------------- the decoder MLP
class _Workspace:
    """Buffers of the tiled decoder kept from call to call (not part of the state).

    ``generation`` counts forwards that saved activations: a backward whose
    buffers a later forward has overwritten raises instead of returning
    wrong gradients.
    """

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}
        self.generation = 0

    def get(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        buf = self.buffers.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != like.dtype \
                or buf.device != like.device:
            with torch.inference_mode(False):  # a normal tensor, usable in and out of inference mode
                buf = self.buffers[name] = torch.empty(rows, cols, dtype=like.dtype, device=like.device)
        return buf[:rows]


_tanh_backward = torch.ops.aten.tanh_backward


class _TiledMLP(torch.autograd.Function):
    """out[b, p] = w3 . tanh(W2 tanh([grid[p], 1] Ac[b]) + b2) + b3, over tiles of whole images.

    ``grid1`` is the pixel grid with a column of ones and ``Ac[b]`` stacks
    the first layer's per-image matrix ``A`` (2 rows) and bias ``c`` (1 row),
    so one batched matmul writes the first layer, and one gives both
    gradients back.
    """

    @staticmethod
    def forward(ctx, grid1, Ac, W2, b2, w3, b3, ws, tile, save):
        B, P, H = Ac.shape[0], grid1.shape[0], Ac.shape[2]
        out = torch.empty(B, P, dtype=Ac.dtype, device=Ac.device)
        if save:
            h1_all, h2_all = ws.get("h1", B * P, H, Ac), ws.get("h2", B * P, H, Ac)
            ws.generation += 1
            ctx.generation = ws.generation
        else:
            h1_tile, h2_tile = ws.get("t1", tile * P, H, Ac), ws.get("t2", tile * P, H, Ac)
        g1x = grid1.expand(tile, P, 3)
        for i in range(0, B, tile):
            j = min(i + tile, B)
            n = j - i
            rows = slice(i * P, j * P)
            h1 = (h1_all[rows] if save else h1_tile[: n * P]).view(n, P, H)
            h2 = h2_all[rows] if save else h2_tile[: n * P]
            torch.bmm(g1x[:n], Ac[i:j], out=h1)
            h1.tanh_()
            torch.addmm(b2, h1.view(n * P, H), W2.t(), out=h2)
            h2.tanh_()
            torch.mv(h2, w3[0], out=out[i:j].view(-1))
        out.add_(b3)
        ctx.ws, ctx.tile = ws, tile
        ctx.save_for_backward(grid1, Ac, W2, w3)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grid1, Ac, W2, w3 = ctx.saved_tensors
        ws, tile = ctx.ws, ctx.tile
        if not hasattr(ctx, "generation") or ctx.generation != ws.generation:
            raise RuntimeError("rVAE decoder: a later forward reused the saved activations; "
                               "call backward() before the next training forward (or use tiled=False)")
        B, P, H = Ac.shape[0], grid1.shape[0], Ac.shape[2]
        grad_out = grad_out.contiguous()
        h1_all, h2_all = ws.buffers["h1"], ws.buffers["h2"]
        g2_tile, g1_tile = ws.get("g2", tile * P, H, Ac), ws.get("g1", tile * P, H, Ac)
        ones = torch.ones(tile * P, dtype=Ac.dtype, device=Ac.device)
        gAc = torch.empty_like(Ac)
        gW2, gb2 = torch.zeros_like(W2), torch.zeros(H, dtype=Ac.dtype, device=Ac.device)
        gw3 = torch.zeros(H, dtype=Ac.dtype, device=Ac.device)
        g1xt = grid1.t().expand(tile, 3, P)
        for i in range(0, B, tile):
            j = min(i + tile, B)
            n = j - i
            rows = slice(i * P, j * P)
            h1, h2 = h1_all[rows], h2_all[rows]
            g = grad_out[i:j].reshape(-1)
            gw3.addmv_(h2.t(), g)
            g2 = g2_tile[: n * P]
            torch.outer(g, w3[0], out=g2)
            _tanh_backward(g2, h2, grad_input=g2)  # through tanh via its output: g (1 - h^2)
            gW2.addmm_(g2.t(), h1)
            gb2.addmv_(g2.t(), ones[: n * P])
            g1 = g1_tile[: n * P]
            torch.mm(g2, W2, out=g1)
            _tanh_backward(g1, h1, grad_input=g1)
            torch.bmm(g1xt[:n], g1.view(n, P, H), out=gAc[i:j])
        gb3 = grad_out.sum().reshape(1)
        return None, gAc, gW2, gb2, gw3[None], gb3, None, None, None


# ------------------------------------------------------------------- the model
class RVAE(nn.Module):
    """Rotationally invariant VAE for square windows.

    Parameters
    ----------
    size : int
        Window side, px.
    latent_dim : int
        Number of content latents ``z`` (paper 000: 2).
    hidden : int
        Width of the two hidden layers of encoder and decoder (128).
    encoder : {"mlp", "conv"}
        Two tanh layers on the flattened window, or a small conv net
        (2 x [3x3 conv, LeakyReLU, 2x2 max-pool], 16 and 32 channels) then
        one tanh layer.
    translation : bool
        Learn the two offsets (else they are fixed at 0).
    likelihood : {"gaussian", "bernoulli"}
        Pixel likelihood (see the module docstring).
    rotation_prior : {"vonmises", "normal"}
        Prior of the angle: uniform on the circle (a von Mises of
        concentration 0; the posterior sd is held near ``rotation_sd``), or
        N(0, ``rotation_sd``^2).
    rotation_sd : float
        Sd of the normal rotation prior, and the posterior sd the
        "vonmises" term favours, rad (paper 002: 0.1).
    translation_sd : float
        Sd of the offsets' normal prior, latent units (0.5: 0.58 px for
        24-px windows).
    dx_scale : float
        Grid units (half the window is about 1) per latent offset unit.
    noise_sd : float or None
        Gaussian likelihood's pixel noise sd; None = learned.
    polarity : bool
        Resolve head vs tail with :attr:`polarity_ref` (module docstring).
    tiled : bool or None
        Tiled decoder with reused buffers (None: on CPU only).
    tile_pixels : int
        Pixels per tile of the tiled decoder (whole images per tile).

    Latent layout: ``[angle, dx, dy, z_1 .. z_k]`` (without translation:
    ``[angle, z_1 .. z_k]``).
    """

    def __init__(self, size: int, latent_dim: int = 2, hidden: int = 128, encoder: str = "mlp",
                 translation: bool = True, likelihood: str = "gaussian", rotation_prior: str = "vonmises",
                 rotation_sd: float = 0.1, translation_sd: float = 0.5,
                 dx_scale: float = 0.1, noise_sd: float | None = None, polarity: bool = True,
                 tiled: bool | None = None, tile_pixels: int = 16384):
        super().__init__()
        if int(size) < 2:
            raise ValueError(f"size must be at least 2 px, got {size}")
        if int(latent_dim) < 0 or int(hidden) < 1:
            raise ValueError(f"latent_dim must be >= 0 and hidden >= 1, got {latent_dim}, {hidden}")
        for name, value, options in (("encoder", encoder, ENCODERS), ("likelihood", likelihood, LIKELIHOODS),
                                     ("rotation_prior", rotation_prior, ROTATION_PRIORS)):
            if value not in options:
                raise ValueError(f"{name} must be one of {options}, got {value!r}")
        for name, value in (("rotation_sd", rotation_sd), ("translation_sd", translation_sd),
                            ("dx_scale", dx_scale)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if noise_sd is not None and not noise_sd > 0:
            raise ValueError(f"noise_sd must be > 0 or None, got {noise_sd}")
        self.config = dict(size=int(size), latent_dim=int(latent_dim), hidden=int(hidden), encoder=encoder,
                           translation=bool(translation), likelihood=likelihood, rotation_prior=rotation_prior,
                           rotation_sd=float(rotation_sd),
                           translation_sd=float(translation_sd), dx_scale=float(dx_scale),
                           noise_sd=None if noise_sd is None else float(noise_sd), polarity=bool(polarity))
        self.size, self.latent_dim, self.hidden = int(size), int(latent_dim), int(hidden)
        self.n_shift = 2 if translation else 0
        self.n_latent = 1 + self.n_shift + self.latent_dim
        self.tiled, self.tile_pixels = tiled, int(tile_pixels)
        S, H, k = self.size, self.hidden, self.latent_dim

        if encoder == "mlp":
            self.features = nn.Sequential(nn.Flatten(), nn.Linear(S * S, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh())
        else:
            conv = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.LeakyReLU(0.01), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.LeakyReLU(0.01), nn.MaxPool2d(2), nn.Flatten())
            with torch.no_grad():
                n_flat = conv(torch.zeros(1, 1, S, S)).shape[1]
            self.features = nn.Sequential(nn.Unflatten(1, (1, S)), conv, nn.Linear(n_flat, H), nn.Tanh())
        # The angle's mean is atan2 of two outputs: continuous all round the circle,
        # where a single output would need a jump somewhere between -pi and pi.
        self.mean_head = nn.Linear(H, 2 + self.n_shift + k)
        self.logsd_head = nn.Linear(H, self.n_latent)

        self.first = nn.Linear(2 + k, H)  # weight columns: [x, y | z_1..z_k]
        self.second = nn.Linear(H, H)
        self.out = nn.Linear(H, 1)
        self.log_noise = nn.Parameter(torch.zeros(())) if (likelihood == "gaussian" and noise_sd is None) else None
        self.register_buffer("grid", pixel_grid(S), persistent=False)
        self.register_buffer("grid1", torch.cat([self.grid, torch.ones(S * S, 1)], 1), persistent=False)
        # odd pattern in the angle-0 frame that tells head from tail; zeros until fit_polarity
        self.register_buffer("polarity_ref", torch.zeros(S * S))
        self._ws = _Workspace()

    # ------------------------------------------------------------ geometry
    def offsets_px(self, dx, dy):
        """Latent offsets -> pixels: ``(dx_px, dy_px)``, +x right (column), +y down (row)."""
        scale = self.config["dx_scale"] * (self.size - 1) / 2
        return dx * scale, dy * scale

    def _split(self, latent: torch.Tensor):
        """Full latent ``(B, n_latent)`` -> angle ``(B,)``, shift ``(B, 2)`` (latent units, y down), z."""
        angle = latent[:, 0]
        if self.n_shift:
            shift = latent[:, 1:3]
        else:
            shift = latent.new_zeros(len(latent), 2)
        return angle, shift, latent[:, 1 + self.n_shift:]

    def _first_layer(self, angle, shift, z):
        """Per-image ``A = R(a) W_c^T`` ``(B, 2, H)`` and bias ``c`` ``(B, H)`` of the first layer."""
        Wc, Wz = self.first.weight[:, :2], self.first.weight[:, 2:]
        A = rotation(angle) @ Wc.t()
        # display-frame shift: y up on screen, the latent dy points down
        t = torch.stack([shift[:, 0], -shift[:, 1]], 1) * self.config["dx_scale"]
        c = torch.addmm(self.first.bias, z, Wz.t()) if self.latent_dim else self.first.bias.expand(len(A), -1)
        c = c - (t[:, None] @ A)[:, 0]
        return A, c

    def decoder_raw(self, latent: torch.Tensor) -> torch.Tensor:
        """Decoder output ``(B, P)``: logits (Bernoulli) or means (Gaussian)."""
        angle, shift, z = self._split(latent)
        A, c = self._first_layer(angle, shift, z)
        tiled = self.tiled if self.tiled is not None else A.device.type == "cpu"
        if tiled and A.dtype == torch.float32 and len(A):
            tile = max(1, self.tile_pixels // self.grid.shape[0])
            Ac = torch.cat([A, c[:, None]], 1)
            params = (Ac, self.second.weight, self.second.bias, self.out.weight, self.out.bias)
            save = torch.is_grad_enabled() and any(p.requires_grad for p in params)
            return _TiledMLP.apply(self.grid1, *params, self._ws, tile, save)
        # plain: (B, P, H) activations; first layer = grid @ A + c, never the concatenation
        h = torch.tanh(torch.baddbmm(c[:, None], self.grid.to(A.dtype).expand(len(A), -1, -1), A))
        h = torch.tanh(self.second(h))
        return self.out(h)[..., 0]

    # --------------------------------------------------------- public API
    def encode(self, x: torch.Tensor) -> dict:
        """Posterior of windows ``x`` ``(B, S, S)``: ``{"mean", "sd"}``, each ``(B, n_latent)``.

        The angle's mean is wrapped to [-pi, pi).
        """
        h = self.features(x.reshape(len(x), self.size, self.size))
        m = self.mean_head(h)
        angle = torch.atan2(m[:, 1], m[:, 0])
        mean = torch.cat([angle[:, None], m[:, 2:]], 1)
        sd = torch.exp(self.logsd_head(h).clamp(*_LOGSD_RANGE))
        return {"mean": mean, "sd": sd}

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Images ``(B, S, S)`` for full latents ``[angle, dx, dy, z...]``.

        Bernoulli: pixel probabilities; Gaussian: pixel means.
        """
        raw = self.decoder_raw(latent)
        if self.config["likelihood"] == "bernoulli":
            raw = torch.sigmoid(raw)
        return raw.reshape(len(latent), self.size, self.size)

    def noise_sd(self) -> torch.Tensor | float | None:
        """Gaussian pixel noise sd (learned or fixed); None for Bernoulli."""
        if self.config["likelihood"] != "gaussian":
            return None
        return torch.exp(self.log_noise) if self.log_noise is not None else self.config["noise_sd"]

    def kl(self, mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        """KL(q || prior) per image ``(B,)`` (see the module docstring)."""
        m_a, s_a = mean[:, 0], sd[:, 0]
        rs = self.config["rotation_sd"]
        # KL of N(m, s^2) against N(0, rs^2); "vonmises" (uniform on the circle) drops the m^2 term
        m2 = m_a**2 if self.config["rotation_prior"] == "normal" else 0.0
        kl = math.log(rs) - torch.log(s_a) + (s_a**2 + m2) / (2 * rs**2) - 0.5
        if self.n_shift:
            ts = self.config["translation_sd"]
            m, s = mean[:, 1:3], sd[:, 1:3]
            kl = kl + (math.log(ts) - torch.log(s) + (s**2 + m**2) / (2 * ts**2) - 0.5).sum(1)
        if self.latent_dim:
            m, s = mean[:, 1 + self.n_shift:], sd[:, 1 + self.n_shift:]
            kl = kl + (0.5 * (m**2 + s**2 - 1) - torch.log(s)).sum(1)
        return kl

    def nll(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """-log p(x | latent) per image ``(B,)`` from decoder output ``raw`` ``(B, P)``."""
        x = x.reshape(len(x), -1)
        if self.config["likelihood"] == "bernoulli":
            return F.binary_cross_entropy_with_logits(raw, x, reduction="none").sum(1)
        sd = self.noise_sd()
        log_sd = torch.log(sd) if torch.is_tensor(sd) else math.log(sd)
        P = x.shape[1]
        return ((x - raw) ** 2).sum(1) / (2 * sd**2) + P * (log_sd + 0.5 * LOG_2PI)

    def negative_elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """One-sample estimate of -ELBO per image: ``{"loss", "nll", "kl"}``, each ``(B,)``.

        ``generator`` draws the reparameterisation noise (for reproducibility).
        """
        q = self.encode(x)
        eps = torch.randn(q["mean"].shape, generator=generator, device=x.device, dtype=q["mean"].dtype)
        latent = q["mean"] + q["sd"] * eps
        if self.config["polarity"]:  # a discrete half turn, outside the gradient (adding pi keeps it)
            turn = math.pi * self.polarity_flip(x, latent).to(latent.dtype)
            latent = torch.cat([latent[:, :1] + turn[:, None], latent[:, 1:]], 1)
        raw = self.decoder_raw(latent).float()
        nll, kl = self.nll(x.float(), raw), self.kl(q["mean"].float(), q["sd"].float())
        return {"loss": nll + kl, "nll": nll, "kl": kl}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` from the posterior means ``(B, S, S)``, polarity resolved."""
        return self.decode(self.resolve_polarity(x, self.encode(x)["mean"]))

    # ------------------------------------------------------------ polarity
    def aligned(self, x: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``x`` seen in the decoder's angle-0 frame, at the grid ``r'`` and at ``-r'``: ``(B, P)`` each.

        The inverse of the decoder's geometry: template point ``r'`` lies at
        ``R(a) r' + t`` in the window (bilinear; border values outside).
        """
        angle, shift, _ = self._split(latent.float())
        t = torch.stack([shift[:, 0], -shift[:, 1]], 1) * self.config["dx_scale"]
        g = torch.cat([self.grid, -self.grid])
        r = g @ rotation(angle).transpose(1, 2) + t[:, None]  # (B, 2P, 2) display coordinates
        S, half = self.size, max((self.size - 1) / 2, 0.5)
        # -> grid_sample's frame: -1..1 over the pixel centres, x = column, y = row (down)
        cols, rows = S // 2 + r[..., 0] * half, S // 2 - r[..., 1] * half
        norm = torch.stack([cols, rows], -1) * (2 / max(S - 1, 1)) - 1
        out = F.grid_sample(x.float().reshape(len(x), 1, S, S), norm[:, None], mode="bilinear",
                            padding_mode="border", align_corners=True)[:, 0, 0]
        return out[:, :S * S], out[:, S * S:]

    def polarity_flip(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: the window's head lies at the latent angle + pi (see the module docstring)."""
        if not self.config["polarity"] or not bool(self.polarity_ref.any()):
            return torch.zeros(len(x), dtype=torch.bool, device=x.device)
        # float32 under mixed precision too: bfloat16 coordinates would be ~0.1 px off
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            return _odd_on_body(*self.aligned(x, latent.detach())) @ self.polarity_ref < 0

    def resolve_polarity(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``latent`` with the angle turned by pi where :meth:`polarity_flip` says so, wrapped to [-pi, pi)."""
        turn = math.pi * self.polarity_flip(x, latent).to(latent.dtype)
        angle = torch.remainder(latent[:, 0] + turn + math.pi, 2 * math.pi) - math.pi
        return torch.cat([angle[:, None], latent[:, 1:]], 1)

    @torch.no_grad()
    def fit_polarity(self, x: torch.Tensor, batch_size: int = 1000, iterations: int = 30) -> float:
        """Set :attr:`polarity_ref` from windows ``x`` ``(N, S, S)`` at their posterior means.

        Returns the share of windows whose polarity changed against the
        previous reference (1.0 for the first one). See the module docstring.
        """
        if len(x) == 0:
            return 0.0
        odd = torch.cat([_odd_on_body(*self.aligned(b, self.encode(b)["mean"]))
                         for b in torch.split(x, batch_size)]).double()
        old = self.polarity_ref.double()
        # start from the leading eigenvector and from the previous reference; keep the better end point
        scores = [odd @ torch.linalg.eigh(odd.T @ odd).eigenvectors[:, -1]] + ([odd @ old] if old.any() else [])
        signs = max((_sign_ascent(odd, score, iterations) for score in scores),
                    key=lambda s: float((odd.T @ s).norm()))
        ref = odd.T @ signs / len(x)
        if ref @ old < 0:  # keep the previous reference's sign: no jump of pi between updates
            ref = -ref
        changed = ((odd @ old < 0) != (odd @ ref < 0)).double().mean() if old.any() else torch.tensor(1.0)
        self.polarity_ref.copy_(ref.to(self.polarity_ref.dtype))
        return float(changed)


def naive_decoder_forward(model: RVAE, latent: torch.Tensor) -> torch.Tensor:
    """The textbook spatial-VAE decoder (same weights): per-pixel concatenation ``[coord, z]``.

    Transforms every pixel's coordinate, concatenates ``z`` to it, and runs
    the three layers on the ``(B, P, 2 + k)`` result. Kept for the speed
    comparison and as a check of the split first layer; returns ``(B, P)``
    like :meth:`RVAE.decoder_raw`.
    """
    angle, shift, z = model._split(latent)
    t = torch.stack([shift[:, 0], -shift[:, 1]], 1) * model.config["dx_scale"]
    # row-vector form of R(-a) (r - t): (r - t) @ R(-a)^T = (r - t) @ R(a)
    coords = (model.grid[None] - t[:, None]) @ rotation(angle)
    B, P = coords.shape[:2]
    h = torch.cat([coords, z[:, None].expand(B, P, z.shape[1])], -1)
    h = torch.tanh(model.first(h))
    h = torch.tanh(model.second(h))
    return model.out(h)[..., 0]


# --------------------------------------------------------------- rendering
def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def render(model: RVAE, angle=0.0, dx=0.0, dy=0.0, z=None) -> np.ndarray:
    """Decode latent points given by parts; returns ``(n, S, S)`` float32.

    ``angle`` (rad), ``dx``, ``dy`` (latent units) are scalars or length-n
    arrays; ``z`` is ``(n, k)`` (or ``(k,)``; None = zeros). All broadcast
    to a common ``n``.
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
    device = _model_device(model)
    with torch.inference_mode():
        images = model.decode(torch.as_tensor(latent, dtype=torch.float32, device=device))
    return images.float().cpu().numpy()


def latent_grid(model: RVAE, n: int = 10, ranges=None, dims=(0, 1), angle: float = 0.0):
    """Decoded images on a regular grid of two content latents (the manifold of Fig. 2g).

    Parameters
    ----------
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


# --------------------------------------------------------------- save / load
def plain(value):
    """``value`` with numpy/torch scalars and containers turned into plain Python types.

    ``torch.load(weights_only=True)`` refuses numpy objects, and numpy floats
    pass ``isinstance(x, float)``, so they are converted first.
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item() if getattr(value, "ndim", 0) == 0 else plain(value.tolist())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def save_rvae(model: RVAE, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Save ``{"state_dict", "config", "meta"}`` to ``path`` atomically (plain types only)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {**getattr(model, "training_info", {}), **(meta or {})}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "config": plain(model.config), "meta": plain(meta)}, tmp)


def load_rvae(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[RVAE, dict]:
    """Rebuild a model saved by :func:`save_rvae`; returns ``(model, meta)`` in eval mode.

    ``meta`` holds the saved meta plus ``config`` (the constructor's arguments).
    """
    blob = torch.load(Path(path), map_location=device, weights_only=True)
    model = RVAE(**blob["config"])
    state = dict(blob["state_dict"])
    state.setdefault("polarity_ref", model.polarity_ref)  # saved before polarity existed: none fitted
    model.load_state_dict(state)
    meta = dict(blob["meta"])
    model.training_info = dict(meta)
    meta["config"] = dict(blob["config"])
    return model.to(device).eval(), meta
