"""On-the-fly augmentation of training batches, in torch on whatever device holds them.

One affine resampling per batch applies rotation (any angle), flips and scale
jitter to images (bilinear) and masks (nearest) alike, so labels stay on
their pixels; intensity changes (blur, gamma, contrast, noise) touch the
images only. Every random draw comes from the caller's ``torch.Generator``,
so a seed fixes the augmentation exactly.

Parameters (a dict; missing keys are off):

``rotate``          bool, rotation by a uniform angle in [0, 360) degrees
``flip``            bool, horizontal and vertical flips, each with probability 1/2
``scale``           float, zoom factor uniform in [1 - scale, 1 + scale]
``gaussian_noise``  float, noise sd uniform in [0, gaussian_noise] x the image's sd
``poisson_noise``   float, 0 = off; else the dose (counts at the image's maximum)
``blur``            float, Gaussian blur sigma uniform in [0, blur] pixels
``gamma``           float, gamma = exp(u), u uniform in [-gamma, gamma]
``contrast``        float, contrast factor uniform in [1 - contrast, 1 + contrast]
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULTS = {
    "rotate": False,
    "flip": False,
    "scale": 0.0,
    "gaussian_noise": 0.0,
    "poisson_noise": 0.0,
    "blur": 0.0,
    "gamma": 0.0,
    "contrast": 0.0,
}


def check_params(params: dict | None) -> dict:
    """``params`` completed with :data:`DEFAULTS`; unknown keys are an error (typos).

    Parameters
    ----------
    params : dict or None
        Some of the keys of :data:`DEFAULTS` (see the module docstring).

    Returns
    -------
    dict
        Every key of :data:`DEFAULTS`.

    Raises
    ------
    ValueError
        For an unknown key, a negative value, ``scale >= 1`` or ``contrast > 1``.

    Examples
    --------
    >>> check_params({"rotate": True})["rotate"], check_params(None) == DEFAULTS
    (True, True)
    >>> check_params({"rotation": True})
    Traceback (most recent call last):
    ...
    ValueError: unknown augmentation parameters ['rotation']; known: [...]
    """
    params = dict(params or {})
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown augmentation parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    full = {**DEFAULTS, **params}
    for key, value in full.items():
        if not isinstance(value, bool) and float(value) < 0:
            raise ValueError(f"augmentation {key}={value} must not be negative")
    if full["scale"] >= 1 or full["contrast"] > 1:
        raise ValueError("augmentation scale must be < 1 and contrast <= 1")
    return full


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    """``n`` draws uniform in [low, high) from ``generator``, moved to ``device``."""
    u = torch.rand(n, generator=generator, device=generator.device)
    return (low + (high - low) * u).to(device)


def affine_matrices(angle_deg: torch.Tensor, flip_x: torch.Tensor, flip_y: torch.Tensor,
                    zoom: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, 2, 3)`` matrices for ``F.affine_grid`` (align_corners=False).

    The output pixel at ``p`` (pixel units, from the centre) samples the input
    at ``R(angle) S p / zoom``, where ``S`` flips the axes; positive angles turn
    the picture like ``torch.rot90(k=1)``. The rotation is built in pixel
    units, then converted to the normalised coordinates of ``affine_grid``,
    whose x and y units differ on non-square frames.

    Parameters
    ----------
    angle_deg : Tensor
        ``(B,)`` rotation angles, degrees.
    flip_x, flip_y : Tensor
        ``(B,)`` bool, mirror the columns / rows.
    zoom : Tensor
        ``(B,)`` magnification factors.
    height, width : int
        Frame size, px.

    Returns
    -------
    Tensor
        ``(B, 2, 3)`` float32.

    Examples
    --------
    >>> import torch
    >>> no = torch.zeros(1, dtype=torch.bool)
    >>> affine_matrices(torch.tensor([90.0]), no, no, torch.ones(1), 8, 8).round().tolist()
    [[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]]
    """
    a = torch.deg2rad(angle_deg.float())
    cos, sin = torch.cos(a), torch.sin(a)
    sx = torch.where(flip_x, -1.0, 1.0).to(cos) / zoom
    sy = torch.where(flip_y, -1.0, 1.0).to(cos) / zoom
    # pixel-unit matrix [[cos, -sin], [sin, cos]] @ diag(sx, sy), then D^-1 M D, D = diag(W/2, H/2)
    theta = torch.zeros(len(a), 2, 3, dtype=torch.float32, device=a.device)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin * sy * height / width
    theta[:, 1, 0] = sin * sx * width / height
    theta[:, 1, 1] = cos * sy
    return theta


def warp(images: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample images (bilinear) and masks (nearest) on the same grid, reflecting at the borders.

    Parameters
    ----------
    images : Tensor
        ``(B, 1, H, W)`` float.
    masks : Tensor
        ``(B, H, W)`` integer labels.
    theta : Tensor
        ``(B, 2, 3)`` from :func:`affine_matrices`.

    Returns
    -------
    images, masks : Tensor
        Resampled, same shapes and dtypes.

    Examples
    --------
    The identity leaves both unchanged:

    >>> import torch
    >>> images, masks = torch.rand(1, 1, 4, 4), torch.randint(0, 3, (1, 4, 4))
    >>> theta = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    >>> out, labels = warp(images, masks, theta)
    >>> bool(torch.allclose(out, images)), bool(torch.equal(labels, masks))
    (True, True)
    """
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    labels = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="reflection",
                           align_corners=False)
    return images, labels[:, 0].round().to(masks.dtype)


def rotate(images: torch.Tensor, masks: torch.Tensor, angle_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate every image and mask by ``angle_deg`` (as ``torch.rot90`` for +90).

    Parameters
    ----------
    images, masks : Tensor
        ``(B, 1, H, W)`` float and ``(B, H, W)`` integer.
    angle_deg : float
        Degrees.

    Returns
    -------
    images, masks : Tensor

    Examples
    --------
    >>> import torch
    >>> images, masks = torch.rand(1, 1, 4, 4), torch.randint(0, 3, (1, 4, 4))
    >>> out, labels = rotate(images, masks, 90)
    >>> bool(torch.allclose(out, torch.rot90(images, 1, (2, 3)), atol=1e-5))
    True
    >>> bool(torch.equal(labels, torch.rot90(masks, 1, (1, 2))))
    True
    """
    b, _, h, w = images.shape
    no = torch.zeros(b, dtype=torch.bool)
    theta = affine_matrices(torch.full((b,), float(angle_deg)), no, no, torch.ones(b), h, w)
    return warp(images, masks, theta)


def _geometry(images, masks, p, generator):
    b, _, h, w = images.shape
    cpu = torch.device("cpu")
    angle = _uniform(b, 0.0, 360.0, generator, cpu) if p["rotate"] else torch.zeros(b)
    if p["flip"]:
        flip_x, flip_y = (_uniform(b, 0, 1, generator, cpu) < 0.5 for _ in range(2))
    else:
        flip_x = flip_y = torch.zeros(b, dtype=torch.bool)
    zoom = _uniform(b, 1 - p["scale"], 1 + p["scale"], generator, cpu) if p["scale"] else torch.ones(b)
    return warp(images, masks, affine_matrices(angle, flip_x, flip_y, zoom, h, w))


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image ``(B, 1, H, W)`` with its own Gaussian ``sigma`` (pixels), reflecting at edges.

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)`` float.
    sigma : Tensor
        ``(B,)`` sd of each image's kernel, px; about 0 leaves the image as it is.

    Returns
    -------
    Tensor
        Same shape; the kernel is normalised, so the mean is kept.

    Examples
    --------
    >>> import torch
    >>> point = torch.zeros(2, 1, 9, 9)
    >>> point[:, :, 4, 4] = 1
    >>> out = gaussian_blur(point, torch.tensor([0.0, 1.0]))
    >>> round(float(out[0].max()), 3), round(float(out[1].max()), 3), round(float(out[1].sum()), 3)
    (1.0, 0.159, 1.0)
    """
    b, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    radius = min(radius, h - 1, w - 1)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(images).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # sigma ~ 0 leaves a delta: no blur
    # one group per image: every image gets its own kernel in a single conv
    x = F.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    k = kernel.repeat_interleave(c, dim=0)
    x = F.conv2d(x, k[:, None, None, :], groups=b * c)
    x = F.conv2d(x, k[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


def _range(images):
    low = images.amin(dim=(-2, -1), keepdim=True)
    span = (images.amax(dim=(-2, -1), keepdim=True) - low).clamp_min(1e-12)
    return low, span


def _intensity(images, p, generator):
    b = images.shape[0]
    dev = images.device
    shape = (b, 1, 1, 1)
    if p["blur"]:
        images = gaussian_blur(images, _uniform(b, 0.0, p["blur"], generator, dev))
    if p["gamma"]:
        # gamma acts on [0, 1]; map there and back so the intensity range is kept
        low, span = _range(images)
        gamma = torch.exp(_uniform(b, -p["gamma"], p["gamma"], generator, dev)).view(shape)
        images = low + span * ((images - low) / span).clamp(0, 1) ** gamma
    if p["contrast"]:
        mean = images.mean(dim=(-2, -1), keepdim=True)
        factor = _uniform(b, 1 - p["contrast"], 1 + p["contrast"], generator, dev).view(shape)
        images = mean + (images - mean) * factor
    if p["poisson_noise"]:
        # shot noise: the image maximum collects ``dose`` counts
        low, span = _range(images)
        rate = ((images - low) / span).clamp_min(0) * p["poisson_noise"]
        counts = torch.poisson(rate.to(generator.device), generator=generator).to(dev)
        images = low + span * counts / p["poisson_noise"]
    if p["gaussian_noise"]:
        sd = images.std(dim=(-2, -1), keepdim=True) * _uniform(b, 0, p["gaussian_noise"], generator, dev).view(shape)
        noise = torch.randn(images.shape, generator=generator, device=generator.device).to(dev)
        images = images + sd * noise
    return images


def augment(images: torch.Tensor, masks: torch.Tensor, params: dict | None,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transform a batch: images ``(B, 1, H, W)`` float, masks ``(B, H, W)`` integer labels.

    Geometry is shared by image and mask; intensity changes apply to images
    only. With every switch off the inputs come back unchanged.

    Parameters
    ----------
    images, masks : Tensor
        The batch.
    params : dict or None
        See the module docstring (:func:`check_params`).
    generator : torch.Generator
        The source of every random draw, on the batch's device.

    Returns
    -------
    images, masks : Tensor

    Examples
    --------
    The same seed gives the same augmentation:

    >>> import torch
    >>> images, masks = torch.rand(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8))
    >>> p = {"rotate": True, "flip": True, "gaussian_noise": 0.1}
    >>> a = augment(images, masks, p, torch.Generator().manual_seed(0))
    >>> b = augment(images, masks, p, torch.Generator().manual_seed(0))
    >>> bool(torch.equal(a[0], b[0])), bool(torch.equal(a[1], b[1]))
    (True, True)
    >>> augment(images, masks, None, torch.Generator())[0] is images
    True
    """
    p = check_params(params)
    if p["rotate"] or p["flip"] or p["scale"]:
        images, masks = _geometry(images, masks, p, generator)
    return _intensity(images, p, generator), masks
