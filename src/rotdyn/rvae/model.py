"""The rVAE model: encoder, spatial decoder, priors, likelihood and the negative ELBO.

Every window is encoded into an angle, two offsets and ``latent_dim``
content variables (paper 000: "latent angle + 2 offsets + 2"). The decoder
is a *spatial* generator (Bepler et al.'s spatial-VAE): it maps the
coordinate of every pixel, rotated and shifted by the angle and offsets,
together with the content ``z``, to the pixel's value, so rotation and
translation are built into the geometry and ``z`` is left to describe
shape and neighbourhood.

A pixel at display coordinate ``r`` gets the value ``g(R(-a) (r - t), z)``,
so ``decode(angle=a)`` is ``decode(angle=0)`` turned counter-clockwise as
displayed by ``a`` about the particle pixel: the project's angle convention
(:mod:`rotdyn.contracts`). The priors and likelihoods, with the measurements
that chose them: ``docs/rvae-priors.md``; the split first layer and the
tiled kernel: ``docs/rvae-speed.md``.

References
----------
.. [1] S. V. Kalinin et al., "Disentangling Rotational Dynamics and Ordering
   Transitions in a System of Self-Organizing Protein Nanorods via
   Rotationally Invariant Latent Representations", ACS Nano 15, 6471-6480
   (2021). doi:10.1021/acsnano.0c08914
.. [2] S. V. Kalinin, O. Dyck, S. Jesse, M. Ziatdinov, "Exploring order
   parameters and dynamic processes in disordered systems via variational
   autoencoders", Science Advances 7, eabd5084 (2021). doi:10.1126/sciadv.abd5084
"""
from __future__ import annotations

import contextlib
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import polarity
from .geometry import display_shift, pixel_grid, rotation
from .kernel import PRECISIONS, Workspace, decoder_precision, tile_images, tiled_mlp

ENCODERS = ("mlp", "conv")
LIKELIHOODS = ("gaussian", "bernoulli")
ROTATION_PRIORS = ("uniform", "normal")
# Old option names that still work for one release, with a warning: old -> new.
DEPRECATED_PRIORS = {"vonmises": "uniform"}
LOG_2PI = math.log(2 * math.pi)
_LOGSD_RANGE = (-12.0, 6.0)  # keeps exp() finite early in training


def rotation_prior_name(name: str, warn: bool = True) -> str:
    """The current name of a rotation prior option (``"vonmises"`` is now ``"uniform"``), warning on old names.

    Parameters
    ----------
    name : str
        A ``rotation_prior`` option, current or deprecated (:data:`DEPRECATED_PRIORS`).
    warn : bool
        Issue a FutureWarning for a deprecated name.

    Returns
    -------
    str
        The current name (``name`` itself when it is not deprecated).

    Examples
    --------
    >>> rotation_prior_name("normal")
    'normal'
    >>> rotation_prior_name("vonmises", warn=False)
    'uniform'
    """
    if name in DEPRECATED_PRIORS:
        new = DEPRECATED_PRIORS[name]
        if warn:
            warnings.warn(f"rVAE rotation_prior {name!r} is deprecated and will be removed in the next release: "
                          f"it is the uniform prior; use {new!r}", FutureWarning, stacklevel=3)
        return new
    return name


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
        Pixel likelihood: Gaussian with noise sd ``noise_sd`` (frames), or
        Bernoulli with logits (probability maps in [0, 1]).
    rotation_prior : {"uniform", "normal"}
        Prior of the angle: uniform on the circle (every orientation equally
        likely; the posterior sd is held near ``rotation_sd``), or
        N(0, ``rotation_sd``^2) (paper 002, for nearly aligned objects).
        ``"vonmises"``, the old name of ``"uniform"``, warns.
    rotation_sd : float
        Sd of the normal rotation prior, and the posterior sd the uniform
        prior's term favours, rad (paper 002: 0.1).
    translation_sd : float
        Sd of the offsets' normal prior, latent units (0.5: 0.58 px for
        24-px windows).
    dx_scale : float
        Grid units (half the window is about 1) per latent offset unit.
    noise_sd : float or None
        Gaussian likelihood's pixel noise sd; None = learned.
    polarity : bool
        Resolve head vs tail with :attr:`polarity_ref` (:mod:`rotdyn.rvae.polarity`).
    tiled : bool or None
        Tiled decoder with reused buffers (:mod:`rotdyn.rvae.kernel`; None: on CPU only).
    tile_pixels : int or None
        Pixels per tile of the tiled decoder (whole images per tile); None:
        as many as keep one hidden activation of a tile within 2 MiB
        (:func:`~rotdyn.rvae.kernel.tile_images`).
    precision : {"float32", "bfloat16", "auto"}
        Compute dtype of the decoder's matmuls and activations (weights,
        output and gradients stay float32; the plain decoder autocasts):
        "auto" takes bfloat16 for the tiled decoder where it measured faster
        on this CPU (:func:`~rotdyn.rvae.kernel.auto_dtype`). Under
        ``torch.autocast`` to bfloat16 the decoder runs in bfloat16 whatever
        this says (:meth:`decoder_dtype`).

    Notes
    -----
    Latent layout: ``[angle, dx, dy, z_1 .. z_k]`` (without translation:
    ``[angle, z_1 .. z_k]``). Offsets are in units of ``dx_scale`` grid
    units, ``dx`` positive right, ``dy`` positive down; :meth:`offsets_px`
    converts them to pixels.

    Examples
    --------
    >>> torch.manual_seed(0) is not None
    True
    >>> model = RVAE(16, latent_dim=2, hidden=32)
    >>> x = torch.rand(5, 16, 16)
    >>> model.encode(x)["mean"].shape, model.negative_elbo(x)["loss"].shape
    (torch.Size([5, 5]), torch.Size([5]))
    """

    def __init__(self, size: int, latent_dim: int = 2, hidden: int = 128, encoder: str = "mlp",
                 translation: bool = True, likelihood: str = "gaussian", rotation_prior: str = "uniform",
                 rotation_sd: float = 0.1, translation_sd: float = 0.5,
                 dx_scale: float = 0.1, noise_sd: float | None = None, polarity: bool = True,
                 tiled: bool | None = None, tile_pixels: int | None = None, precision: str = "float32"):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        rotation_prior = rotation_prior_name(rotation_prior)
        _check_options(size, latent_dim, hidden, encoder, likelihood, rotation_prior, rotation_sd,
                       translation_sd, dx_scale, noise_sd)
        self.config = dict(size=int(size), latent_dim=int(latent_dim), hidden=int(hidden), encoder=encoder,
                           translation=bool(translation), likelihood=likelihood, rotation_prior=rotation_prior,
                           rotation_sd=float(rotation_sd),
                           translation_sd=float(translation_sd), dx_scale=float(dx_scale),
                           noise_sd=None if noise_sd is None else float(noise_sd), polarity=bool(polarity))
        self.size, self.latent_dim, self.hidden = int(size), int(latent_dim), int(hidden)
        self.n_shift = 2 if translation else 0
        self.n_latent = 1 + self.n_shift + self.latent_dim
        self.tiled, self.precision = tiled, precision
        self.tile_pixels = None if tile_pixels is None else int(tile_pixels)
        S, H, k = self.size, self.hidden, self.latent_dim

        self.features = _encoder_features(encoder, S, H)
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
        self._ws = Workspace()

    # ------------------------------------------------------------ geometry
    def offsets_px(self, dx, dy):
        """Latent offsets -> pixels: ``(dx_px, dy_px)``, +x right (column), +y down (row).

        Parameters
        ----------
        dx, dy : float, ndarray or torch.Tensor
            Offsets in latent units (``dx_scale`` grid units each).

        Returns
        -------
        dx_px, dy_px : same type as the input
            The offsets in px, +x right, +y down.

        Examples
        --------
        >>> RVAE(25).offsets_px(1.0, -1.0)
        (1.2000000000000002, -1.2000000000000002)
        """
        scale = self.config["dx_scale"] * (self.size - 1) / 2
        return dx * scale, dy * scale

    def split_latent(self, latent: torch.Tensor):
        """Full latent ``(B, n_latent)`` -> angle ``(B,)``, shift ``(B, 2)`` (latent units, y down), z ``(B, k)``.

        Parameters
        ----------
        latent : torch.Tensor
            ``(B, n_latent)`` full latents ``[angle, dx, dy, z...]`` (``[angle, z...]`` without translation).

        Returns
        -------
        angle : torch.Tensor
            ``(B,)`` rad.
        shift : torch.Tensor
            ``(B, 2)`` offsets ``(dx, dy)`` in latent units; zeros without translation.
        z : torch.Tensor
            ``(B, latent_dim)`` content latents.

        Examples
        --------
        >>> angle, shift, z = RVAE(8, latent_dim=2).split_latent(torch.arange(5.0)[None])
        >>> angle.tolist(), shift.tolist(), z.tolist()
        ([0.0], [[1.0, 2.0]], [[3.0, 4.0]])
        """
        angle = latent[:, 0]
        shift = latent[:, 1:3] if self.n_shift else latent.new_zeros(len(latent), 2)
        return angle, shift, latent[:, 1 + self.n_shift:]

    def _first_layer(self, angle, shift, z):
        """Per-image ``A = R(a) W_c^T`` ``(B, 2, H)`` and bias ``c`` ``(B, H)`` of the first layer.

        The coordinate part of the first layer is affine in the fixed pixel
        grid, ``W_c R(-a) (r - t) = r (R(a) W_c^T) - t (R(a) W_c^T)``, so the
        per-pixel concatenation of coordinates and ``z`` is never built.
        """
        Wc, Wz = self.first.weight[:, :2], self.first.weight[:, 2:]
        A = rotation(angle) @ Wc.t()
        t = display_shift(shift, self.config["dx_scale"])
        c = torch.addmm(self.first.bias, z, Wz.t()) if self.latent_dim else self.first.bias.expand(len(A), -1)
        c = c - (t[:, None] @ A)[:, 0]
        return A, c

    def _tiled(self, device: torch.device) -> bool:
        return self.tiled if self.tiled is not None else device.type == "cpu"

    def decoder_dtype(self, device: torch.device | str = "cpu") -> torch.dtype:
        """Compute dtype of the decoder on ``device``: bfloat16 under autocast to it, else :attr:`precision`.

        Parameters
        ----------
        device : torch.device or str
            Where the decoder runs.

        Returns
        -------
        torch.dtype
            ``torch.float32`` or ``torch.bfloat16``.

        Examples
        --------
        >>> RVAE(8).decoder_dtype(), RVAE(8, precision="bfloat16").decoder_dtype()
        (torch.float32, torch.bfloat16)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     RVAE(8).decoder_dtype()
        torch.bfloat16
        """
        device = torch.device(device)
        autocast = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        return decoder_precision(self.precision, device, self.size * self.size, self.hidden,
                                 self._tiled(device), autocast)

    def decoder_raw(self, latent: torch.Tensor) -> torch.Tensor:
        """Decoder output ``(B, P)``, float32: logits (Bernoulli) or means (Gaussian).

        Parameters
        ----------
        latent : torch.Tensor
            ``(B, n_latent)`` full latents ``[angle, dx, dy, z...]``.

        Returns
        -------
        torch.Tensor
            ``(B, S * S)`` float32, pixels row by row; :meth:`decode` makes images of them.

        Examples
        --------
        >>> model = RVAE(8, latent_dim=2, likelihood="bernoulli")
        >>> raw = model.decoder_raw(torch.zeros(3, 5))
        >>> images = model.decode(torch.zeros(3, 5))
        >>> raw.shape, raw.dtype, bool(torch.allclose(torch.sigmoid(raw).reshape(3, 8, 8), images))
        (torch.Size([3, 64]), torch.float32, True)
        """
        dev = latent.device
        dtype = self.decoder_dtype(dev)
        if self._tiled(dev) and len(latent) and self.second.weight.dtype == torch.float32:
            with torch.autocast(dev.type, enabled=False):  # the kernel casts for itself; A, c in float32
                A, c = self._first_layer(*self.split_latent(latent.float()))
                P = self.grid.shape[0]
                tile = tile_images(P, self.hidden, dtype) if self.tile_pixels is None \
                    else max(1, self.tile_pixels // P)
                Ac = torch.cat([A, c[:, None]], 1)
                return tiled_mlp(self.grid1, Ac, self.second.weight, self.second.bias, self.out.weight,
                                 self.out.bias, self._ws, tile, dtype)
        cast = dtype == torch.bfloat16 and not torch.is_autocast_enabled(dev.type)
        with torch.autocast(dev.type, dtype=torch.bfloat16) if cast else contextlib.nullcontext():
            angle, shift, z = self.split_latent(latent)
            A, c = self._first_layer(angle, shift, z)
            # plain: (B, P, H) activations; first layer = grid @ A + c, never the concatenation
            h = torch.tanh(torch.baddbmm(c[:, None], self.grid.to(A.dtype).expand(len(A), -1, -1), A))
            h = torch.tanh(self.second(h))
            return self.out(h)[..., 0].float()

    # --------------------------------------------------------- public API
    def encode(self, x: torch.Tensor) -> dict:
        """Posterior of windows ``x`` ``(B, S, S)``: ``{"mean", "sd"}``, each ``(B, n_latent)``.

        The angle's mean is wrapped to [-pi, pi).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, S, S)`` windows (or ``(B, S * S)``).

        Returns
        -------
        dict
            ``mean`` and ``sd``, each ``(B, n_latent)`` in the layout ``[angle (rad), dx, dy, z...]``.

        Examples
        --------
        >>> q = RVAE(8, latent_dim=2).encode(torch.rand(3, 8, 8))
        >>> q["mean"].shape, bool((q["sd"] > 0).all()), bool((q["mean"][:, 0].abs() <= math.pi).all())
        (torch.Size([3, 5]), True, True)
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

        Parameters
        ----------
        latent : torch.Tensor
            ``(B, n_latent)`` full latents (angle in rad, offsets in latent units).

        Returns
        -------
        torch.Tensor
            ``(B, S, S)`` float32 images.

        Examples
        --------
        >>> RVAE(8, latent_dim=2).decode(torch.zeros(2, 5)).shape
        torch.Size([2, 8, 8])
        """
        raw = self.decoder_raw(latent)
        if self.config["likelihood"] == "bernoulli":
            raw = torch.sigmoid(raw)
        return raw.reshape(len(latent), self.size, self.size)

    def noise_sd(self) -> torch.Tensor | float | None:
        """Gaussian pixel noise sd (learned or fixed); None for Bernoulli.

        Returns
        -------
        torch.Tensor, float or None
            The learned sd (a 0-d tensor, with gradient), the fixed ``noise_sd``, or None for Bernoulli.

        Examples
        --------
        >>> RVAE(8, noise_sd=0.1).noise_sd(), RVAE(8).noise_sd().item(), RVAE(8, likelihood="bernoulli").noise_sd()
        (0.1, 1.0, None)
        """
        if self.config["likelihood"] != "gaussian":
            return None
        return torch.exp(self.log_noise) if self.log_noise is not None else self.config["noise_sd"]

    def kl(self, mean: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
        """KL(q || prior) per image ``(B,)`` (``docs/rvae-priors.md``).

        Angle: KL of N(m, s^2) against N(0, rs^2) for the normal prior; the
        uniform prior drops the ``m^2`` term (the mean is free, the posterior
        sd held near ``rotation_sd``). Offsets: N(0, ``translation_sd``^2).
        Content: N(0, 1).

        Parameters
        ----------
        mean, sd : torch.Tensor
            ``(B, n_latent)`` posterior means and sds (:meth:`encode`).

        Returns
        -------
        torch.Tensor
            ``(B,)`` KL divergence in nats, summed over the latents.

        Examples
        --------
        A posterior equal to the prior costs nothing:

        >>> model = RVAE(8, latent_dim=1, translation=False, rotation_prior="normal", rotation_sd=1.0)
        >>> model.kl(torch.zeros(1, 2), torch.ones(1, 2)).tolist()
        [0.0]
        """
        m_a, s_a = mean[:, 0], sd[:, 0]
        rs = self.config["rotation_sd"]
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
        """-log p(x | latent) per image ``(B,)`` from decoder output ``raw`` ``(B, P)``.

        Gaussian: ``sum (x - mu)^2 / (2 sd^2) + P log sd + P/2 log(2 pi)``;
        Bernoulli: binary cross-entropy with logits, summed over pixels.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, S, S)`` windows (or ``(B, P)``).
        raw : torch.Tensor
            ``(B, P)`` decoder output (:meth:`decoder_raw`): means (Gaussian) or logits (Bernoulli).

        Returns
        -------
        torch.Tensor
            ``(B,)`` negative log-likelihood in nats.

        Examples
        --------
        A perfect Gaussian fit with sd 1 costs ``P/2 log(2 pi)``; logits 0 cost ``P log 2``:

        >>> x, raw = torch.zeros(1, 8, 8), torch.zeros(1, 64)
        >>> gaussian, bernoulli = RVAE(8, noise_sd=1.0), RVAE(8, likelihood="bernoulli")
        >>> round(gaussian.nll(x, raw).item(), 4), round(bernoulli.nll(x, raw).item(), 4)
        (58.8121, 44.3614)
        """
        x = x.reshape(len(x), -1)
        if self.config["likelihood"] == "bernoulli":
            return F.binary_cross_entropy_with_logits(raw, x, reduction="none").sum(1)
        sd = self.noise_sd()
        log_sd = torch.log(sd) if torch.is_tensor(sd) else math.log(sd)
        P = x.shape[1]
        return ((x - raw) ** 2).sum(1) / (2 * sd**2) + P * (log_sd + 0.5 * LOG_2PI)

    def negative_elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """One-sample estimate of -ELBO per image, in nats: ``{"loss", "nll", "kl"}``, each ``(B,)``.

        ``generator`` draws the reparameterisation noise (for reproducibility).
        With polarity on, windows pointing against the head-tail reference are
        decoded at their angle + pi (a discrete turn, outside the gradient).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, S, S)`` windows.
        generator : torch.Generator or None
            Source of the reparameterisation noise; None: torch's global one.

        Returns
        -------
        dict
            ``loss`` (= ``nll + kl``), ``nll`` and ``kl``, each ``(B,)`` in nats.

        Examples
        --------
        >>> out = RVAE(8, polarity=False).negative_elbo(torch.rand(4, 8, 8), generator=torch.Generator().manual_seed(0))
        >>> sorted(out), out["loss"].shape, bool(torch.allclose(out["loss"], out["nll"] + out["kl"]))
        (['kl', 'loss', 'nll'], torch.Size([4]), True)
        """
        q = self.encode(x)
        eps = torch.randn(q["mean"].shape, generator=generator, device=x.device, dtype=q["mean"].dtype)
        latent = q["mean"] + q["sd"] * eps
        if self.config["polarity"]:
            turn = math.pi * self.polarity_flip(x, latent).to(latent.dtype)
            latent = torch.cat([latent[:, :1] + turn[:, None], latent[:, 1:]], 1)
        raw = self.decoder_raw(latent).float()
        nll, kl = self.nll(x.float(), raw), self.kl(q["mean"].float(), q["sd"].float())
        return {"loss": nll + kl, "nll": nll, "kl": kl}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` from the posterior means ``(B, S, S)``, polarity resolved."""
        return self.decode(self.resolve_polarity(x, self.encode(x)["mean"]))

    # ------------------------------------------------- polarity (rotdyn.rvae.polarity)
    def aligned(self, x: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows seen in the decoder's angle-0 frame at ``r'`` and ``-r'`` (:func:`~rotdyn.rvae.polarity.aligned`).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, S, S)`` windows.
        latent : torch.Tensor
            ``(B, n_latent)`` full latents ``[angle, dx, dy, z...]``.

        Returns
        -------
        plus, minus : torch.Tensor
            ``(B, S * S)`` each: the window at ``r'`` and at ``-r'``, in the order of :attr:`grid`.

        Examples
        --------
        >>> model = RVAE(9, hidden=16)
        >>> x = torch.arange(81.0).reshape(1, 9, 9)
        >>> plus, minus = model.aligned(x, torch.zeros(1, model.n_latent))
        >>> torch.equal(plus.reshape(9, 9), x[0]), torch.equal(minus.reshape(9, 9), x[0].flip(0, 1))
        (True, True)
        """
        return polarity.aligned(self, x, latent)

    def polarity_flip(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: the head lies at the latent angle + pi (:func:`~rotdyn.rvae.polarity.flip`).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, S, S)`` windows.
        latent : torch.Tensor
            ``(B, n_latent)`` their latents.

        Returns
        -------
        torch.Tensor
            ``(B,)`` bool, on ``x``'s device; all False until :meth:`fit_polarity`.

        Examples
        --------
        >>> model = RVAE(9, hidden=16)
        >>> model.polarity_flip(torch.rand(2, 9, 9), torch.zeros(2, model.n_latent)).tolist()  # no reference fitted
        [False, False]
        """
        return polarity.flip(self, x, latent)

    def resolve_polarity(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``latent`` with head and tail resolved (:func:`~rotdyn.rvae.polarity.resolve`).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, S, S)`` windows.
        latent : torch.Tensor
            ``(B, n_latent)`` their latents.

        Returns
        -------
        torch.Tensor
            ``(B, n_latent)``: the angle turned by pi where the head lies opposite, wrapped to [-pi, pi) (rad);
            the other latents as given.

        Examples
        --------
        Without a fitted reference nothing turns:

        >>> model = RVAE(9, hidden=16)
        >>> latent = torch.tensor([[0.5, 0.0, 0.0, 1.0, 2.0]])
        >>> torch.equal(model.resolve_polarity(torch.rand(1, 9, 9), latent), latent)
        True
        """
        return polarity.resolve(self, x, latent)

    def fit_polarity(self, x: torch.Tensor, batch_size: int = 1000, iterations: int = 30) -> float:
        """Refit :attr:`polarity_ref` on windows ``x`` (:func:`~rotdyn.rvae.polarity.fit_reference`).

        Parameters
        ----------
        x : torch.Tensor
            ``(N, S, S)`` windows.
        batch_size : int
            Windows encoded at once.
        iterations : int
            Passes of the sign ascent.

        Returns
        -------
        float
            Share of windows whose polarity changed against the previous reference (1.0 for the first fit;
            0.0 for no windows).

        Examples
        --------
        >>> _ = torch.manual_seed(0)
        >>> model = RVAE(9, hidden=16)
        >>> x = torch.rand(6, 9, 9)
        >>> model.fit_polarity(x), bool(model.polarity_ref.abs().sum() > 0), model.fit_polarity(x[:0])
        (1.0, True, 0.0)
        """
        return polarity.fit_reference(self, x, batch_size, iterations)


def _check_options(size, latent_dim, hidden, encoder, likelihood, rotation_prior, rotation_sd, translation_sd,
                   dx_scale, noise_sd) -> None:
    """ValueError naming the first constructor option out of range."""
    if int(size) < 2:
        raise ValueError(f"size must be at least 2 px, got {size}")
    if int(latent_dim) < 0 or int(hidden) < 1:
        raise ValueError(f"latent_dim must be >= 0 and hidden >= 1, got {latent_dim}, {hidden}")
    for name, value, options in (("encoder", encoder, ENCODERS), ("likelihood", likelihood, LIKELIHOODS),
                                 ("rotation_prior", rotation_prior, ROTATION_PRIORS)):
        if value not in options:
            raise ValueError(f"{name} must be one of {options}, got {value!r}")
    for name, value in (("rotation_sd", rotation_sd), ("translation_sd", translation_sd), ("dx_scale", dx_scale)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if noise_sd is not None and not noise_sd > 0:
        raise ValueError(f"noise_sd must be > 0 or None, got {noise_sd}")


def _encoder_features(encoder: str, S: int, H: int) -> nn.Module:
    """The encoder up to its last hidden layer ``(B, S, S) -> (B, H)``."""
    if encoder == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(S * S, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh())
    conv = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.LeakyReLU(0.01), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.LeakyReLU(0.01), nn.MaxPool2d(2), nn.Flatten())
    with torch.no_grad():
        n_flat = conv(torch.zeros(1, 1, S, S)).shape[1]
    return nn.Sequential(nn.Unflatten(1, (1, S)), conv, nn.Linear(n_flat, H), nn.Tanh())
