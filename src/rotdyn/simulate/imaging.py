"""Imaging effects shared by every simulated kind, each a small function with its own parameters.

A simulator draws a clean *object* image (background 0, a particle's body
about 1) and passes it through the microscope, in this order:

1. ``halo`` -- phase-contrast rim: :func:`halo_rim` times the signed
   ``halo`` amplitude is added to the object (negative = a dark rim around a
   bright body, as phase contrast shows bacteria), ``halo_width`` px wide;
2. ``blur`` -- the optical point-spread function (:func:`blur`), a Gaussian
   of sd ``blur`` px or an Airy pattern with the same central lobe (``psf``);
3. ``contrast`` -- ``level + object`` (``bright``) or ``level - object``
   (``dark``: particles darker than the background, as in bright-field TEM or
   bright-field optical microscopy of colloids); ``level`` is the background
   intensity in units of a particle's body;
4. ``illumination`` -- the image times a smooth low-order field
   (:func:`illumination_field`) that varies by ``+- illumination`` across the frame;
5. ``texture`` -- smooth correlated background noise (:func:`texture`) of sd
   ``texture`` and correlation length ``texture_length`` px, the same in
   every frame (dirt on the optics, the substrate: real backgrounds are not
   white noise);
6. the kind's own noise (white, Poisson), then scan noise: ``line_noise``
   (an offset per scan line, :func:`line_offsets`) and ``line_jitter`` (each
   scan line shifted sideways by a random sub-pixel amount, sd px,
   :func:`line_jitter`), as STEM and AFM scans show.

An effect whose amplitude is 0 is skipped (and draws no random numbers).
The static fields and the noise draw from their own random streams, so
switching one on leaves the particles and the other effects as they were.
Every intensity is in units of a particle's body contrast.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage, signal, special

from .base import Simulation, param, stream

# The shared parameters: their defaults (no effect) and allowed values.
IMAGING = {
    "blur": dict(default=0.0, low=0),
    "psf": dict(default="gaussian", choices=("gaussian", "airy")),
    "halo": dict(default=0.0),
    "halo_width": dict(default=1.5, low=0, strict=True),
    "illumination": dict(default=0.0, low=0, high=0.9),
    "texture": dict(default=0.0, low=0),
    "texture_length": dict(default=3.0, low=0, strict=True),
    "line_jitter": dict(default=0.0, low=0),
    "contrast": dict(default="bright", choices=("bright", "dark")),
    "level": dict(default=0.0),
}

# The Airy pattern's first zero in units of the sd of the Gaussian that best fits its central lobe
# (0.61 lambda/NA over 0.21 lambda/NA).
_AIRY_ZERO = 0.61 / 0.21
_J1_ZERO = 3.8317059702075125


def imaging(name, default=None):
    """A field for shared imaging parameter ``name`` in a simulator's table, with its own default.

    Parameters
    ----------
    name : str
        A key of :data:`IMAGING`.
    default : object or None
        The simulator's default; None keeps the shared one (no effect).

    Returns
    -------
    dataclasses.Field
        As :func:`rotdyn.simulate.base.param` makes it, with the shared range or choices.

    Examples
    --------
    >>> halo = imaging("halo", -2.5)
    >>> halo.default, imaging("halo").default, imaging("psf").metadata["choices"]
    (-2.5, 0.0, ('gaussian', 'airy'))
    """
    spec = dict(IMAGING[name])
    shared = spec.pop("default")
    return param(shared if default is None else default, **spec)


def psf_kernel(sigma: float, psf: str = "gaussian") -> np.ndarray:
    """The point-spread function on a pixel grid, normalised to sum 1.

    Parameters
    ----------
    sigma : float
        Sd of the Gaussian PSF, px; for ``"airy"``, the sd of the Gaussian
        that fits the Airy pattern's central lobe (first dark ring at 2.9 sigma).
    psf : "gaussian" or "airy"

    Returns
    -------
    ndarray, (K, K) with K odd

    Examples
    --------
    >>> k = psf_kernel(1.0, "airy")
    >>> k.shape, round(float(k.sum()), 6), bool(k[k.shape[0] // 2].argmax() == k.shape[0] // 2)
    ((17, 17), 1.0, True)
    """
    half = int(np.ceil((8 if psf == "airy" else 4) * sigma))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    r = np.hypot(xx, yy)
    if psf == "gaussian":
        k = np.exp(-r ** 2 / (2 * sigma ** 2))
    elif psf == "airy":
        v = _J1_ZERO * r / (_AIRY_ZERO * sigma)
        k = np.where(v > 0, (2 * special.j1(v) / np.where(v > 0, v, 1.0)) ** 2, 1.0)
    else:
        raise ValueError(f"psf must be 'gaussian' or 'airy', got {psf!r}")
    return k / k.sum()


def blur(images: np.ndarray, sigma: float, psf: str = "gaussian") -> np.ndarray:
    """``images`` (..., H, W) seen through the PSF of sd ``sigma`` px (edges reflected).

    Parameters
    ----------
    images : ndarray
        ``(..., H, W)``; each image blurred on its own.
    sigma : float
        Sd of the Gaussian PSF, px (for ``"airy"``: of its central lobe); 0
        returns ``images`` as they are.
    psf : "gaussian" or "airy"
        The PSF's shape (:func:`psf_kernel`).

    Returns
    -------
    ndarray
        The same shape.

    Examples
    --------
    >>> point = np.zeros((1, 21, 21)); point[0, 10, 10] = 1
    >>> out = blur(point, 2.0)
    >>> yy, xx = np.mgrid[:21, :21]
    >>> round(float((out[0] * (xx - 10) ** 2).sum()), 2)  # variance = sigma ** 2
    4.0
    """
    if sigma == 0:
        return images
    if psf == "gaussian":
        return ndimage.gaussian_filter(images, [0] * (images.ndim - 2) + [sigma, sigma], mode="reflect",
                                       truncate=5.0)
    k = psf_kernel(sigma, psf)
    h = k.shape[0] // 2
    pad = [(0, 0)] * (images.ndim - 2) + [(h, h), (h, h)]
    return signal.fftconvolve(np.pad(images, pad, mode="reflect"), k.reshape((1,) * (images.ndim - 2) + k.shape),
                              mode="valid", axes=(-2, -1))


def halo_rim(objects: np.ndarray, width: float) -> np.ndarray:
    """The phase-contrast rim of ``objects`` (..., H, W): ``2 * max(G_width * obj - obj, 0)``.

    Zero inside a flat or convex body, largest just outside its edge (1 at
    the edge of a large flat body of height 1), falling off over about
    ``width`` px; its integral across a straight edge is about
    ``2 width / sqrt(2 pi)`` per unit edge length. Multiply by the signed
    halo amplitude and add it to the object.

    Parameters
    ----------
    objects : ndarray
        ``(..., H, W)`` clean object images.
    width : float
        Sd of the Gaussian that spreads the edge, px.

    Returns
    -------
    ndarray
        The rim, >= 0, the same shape.

    Examples
    --------
    >>> import math
    >>> body = np.zeros((40, 40)); body[:, 20:] = 1  # a straight edge
    >>> rim = halo_rim(body, 2.0)
    >>> float(rim[:, 20:].max()), round(float(rim[20, :20].sum()), 2), round(2 * 2.0 / math.sqrt(2 * math.pi), 2)
    (0.0, 1.56, 1.6)
    """
    spread = ndimage.gaussian_filter(objects, [0] * (objects.ndim - 2) + [width, width], mode="nearest",
                                     truncate=5.0)
    return 2 * np.maximum(spread - objects, 0)


def illumination_field(shape: tuple, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field ``1 + amplitude * f``, ``f`` a random quadratic in [-1, 1].

    ``f`` is a random combination of x, y, x^2, xy, y^2 (coordinates scaled
    to [-1, 1]) stretched so its extremes over the frame are -1 and 1: the
    field varies between ``1 - amplitude`` and ``1 + amplitude``.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``.
    amplitude : float
        Half the field's range.
    rng : numpy.random.Generator
        Draws the quadratic's five coefficients.

    Returns
    -------
    ndarray
        ``(H, W)``.

    Examples
    --------
    >>> f = illumination_field((32, 48), 0.2, np.random.default_rng(0))
    >>> f.shape, round(float(f.min()), 6), round(float(f.max()), 6)
    ((32, 48), 0.8, 1.2)
    """
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    f = np.tensordot(rng.standard_normal(5), np.stack([x, y, x * x, x * y, y * y]), 1)
    f = 2 * (f - f.min()) / (f.max() - f.min()) - 1
    return 1 + amplitude * f


def texture(shape: tuple, amplitude: float, length: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth correlated noise: white noise filtered by a Gaussian of sd ``length`` px, sd ``amplitude``.

    Its autocorrelation at a lag of ``d`` px is ``exp(-d^2 / (4 length^2))``
    (0.78 at ``length``, 0.37 at ``2 length``).

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``.
    amplitude : float
        The texture's sd.
    length : float
        Correlation length, px (periodic edges).
    rng : numpy.random.Generator
        Draws the white noise.

    Returns
    -------
    ndarray
        ``(H, W)``, mean 0, sd ``amplitude``.

    Examples
    --------
    >>> tex = texture((128, 128), 0.1, 3.0, np.random.default_rng(0))
    >>> round(float(tex.std()), 6), round(float(np.corrcoef(tex[:, :-3].ravel(), tex[:, 3:].ravel())[0, 1]), 1)
    (0.1, 0.8)
    """
    smooth = ndimage.gaussian_filter(rng.standard_normal(shape), length, mode="wrap")
    return amplitude * (smooth - smooth.mean()) / smooth.std()


def line_offsets(shape: tuple, sd: float, rng: np.random.Generator) -> np.ndarray:
    """One random offset per scan line (row) of every frame: ``(T, H, 1)``, sd ``sd``.

    Parameters
    ----------
    shape : tuple
        ``(T, H, W)`` of the movie.
    sd : float
        Sd of the offsets.
    rng : numpy.random.Generator
        Draws them.

    Returns
    -------
    ndarray
        ``(T, H, 1)``, to add to the movie.

    Examples
    --------
    >>> offsets = line_offsets((2, 500, 40), 0.3, np.random.default_rng(0))
    >>> offsets.shape, round(float(offsets.std()), 1)
    ((2, 500, 1), 0.3)
    """
    return sd * rng.standard_normal((shape[0], shape[1], 1))


def line_jitter(images: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``images`` (T, H, W) shifted along x by its own random amount (sd ``sd`` px).

    Row ``r`` of frame ``t`` shows what lies ``shift[t, r]`` px further along
    x (linear interpolation, edges repeated), as when a scanning probe's line
    starts late or early.

    Parameters
    ----------
    images : ndarray
        ``(T, H, W)``.
    sd : float
        Sd of the shifts, px.
    rng : numpy.random.Generator
        Draws the shifts.

    Returns
    -------
    ndarray
        ``(T, H, W)``.

    Examples
    --------
    >>> ramp = np.broadcast_to(np.arange(40.0), (2, 30, 40))
    >>> out = line_jitter(ramp, 0.5, np.random.default_rng(0))
    >>> shift = (out - ramp)[..., 5:-5].mean(-1)  # a ramp turns each shift into an offset
    >>> bool(np.allclose((out - ramp)[..., 5:-5], shift[..., None])), 0.35 < float(shift.std()) < 0.65
    (True, True)
    """
    T, H, W = images.shape
    shift = sd * rng.standard_normal((T, H, 1))
    t, r, c = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return ndimage.map_coordinates(images, [t, r, c + shift], order=1, mode="nearest")


def optics(objects: np.ndarray, p, seed: int) -> np.ndarray:
    """Steps 1-5 of the module docstring: ``objects`` (T, H, W) as the microscope images them.

    ``p`` holds the shared parameters (``halo``, ``halo_width``, ``blur``,
    ``psf``, ``contrast``, ``level``, ``illumination``, ``texture``,
    ``texture_length``); static fields come from ``stream(seed, 1)``. With
    every effect off, ``objects`` is returned as it is.

    Parameters
    ----------
    objects : ndarray
        ``(T, H, W)`` clean object images (background 0, a body about 1).
    p : Params
        A simulator's checked parameter table.
    seed : int
        The simulation's seed.

    Returns
    -------
    ndarray
        ``(T, H, W)``.

    Examples
    --------
    >>> from rotdyn.simulate import CellParams, RodParams
    >>> objects = np.zeros((1, 16, 16)); objects[0, 6:10, 6:10] = 1
    >>> optics(objects, RodParams(), seed=0) is objects  # the rods' defaults: every effect off
    True
    >>> dark = CellParams(contrast="dark", level=1.0, blur=0, halo=0, illumination=0, texture=0)
    >>> optics(objects, dark, seed=0)[0, 8, [0, 8]].tolist()  # background at level 1, the body 1 below
    [1.0, 0.0]
    """
    out = objects
    if p.halo:
        out = out + p.halo * halo_rim(out, p.halo_width)
    out = blur(out, p.blur, p.psf)
    if p.contrast == "dark":
        out = p.level - out
    elif p.level:
        out = p.level + out
    rng = stream(seed, 1)
    if p.illumination:
        out = out * illumination_field(out.shape[1:], p.illumination, rng)
    if p.texture:
        out = out + texture(out.shape[1:], p.texture, p.texture_length, rng)
    return out


def scan(images: np.ndarray, p, seed: int, noise: float = 0.0, line_noise: float = 0.0) -> np.ndarray:
    """Step 6: white noise of sd ``noise``, scan-line offsets, scan-line jitter (``stream(seed, 2)``).

    Parameters
    ----------
    images : ndarray
        ``(T, H, W)``, after :func:`optics`.
    p : Params
        A simulator's checked table (its ``line_jitter``).
    seed : int
        The simulation's seed.
    noise : float
        Sd of the white noise.
    line_noise : float
        Sd of the per-line offsets (:func:`line_offsets`).

    Returns
    -------
    ndarray
        ``(T, H, W)``.

    Examples
    --------
    >>> from rotdyn.simulate import RodParams
    >>> images = np.zeros((2, 64, 64))
    >>> round(float(scan(images, RodParams(), seed=0, noise=0.5).std()), 1)
    0.5
    >>> lines = scan(images, RodParams(), seed=0, line_noise=0.2)
    >>> float(np.ptp(lines, axis=-1).max())  # one offset per scan line
    0.0
    """
    rng = stream(seed, 2)
    if noise:
        images = images + noise * rng.standard_normal(images.shape)
    if line_noise:
        images = images + line_offsets(images.shape, line_noise, rng)
    if p.line_jitter:
        images = line_jitter(images, p.line_jitter, rng)
    return images


def film(world, cfg, draw, kind: str, class_names: list):
    """Step ``world`` through ``cfg.frames`` frames, draw each particle, image the movie (optics, scan).

    ``world`` has ``step()`` and ``table(t)`` (one truth row per particle);
    ``draw(clean, labels, instances, row)`` paints one particle into one
    frame's arrays. Shared by the simulators whose particles move
    independently (cells, spheres).

    Parameters
    ----------
    world : object
        The particles' state: ``step()`` moves them one frame on,
        ``table(t)`` gives their truth rows (``TRUTH_COLUMNS`` and extras).
    cfg : Params
        The checked table: ``frames``, ``size``, ``seed``, ``noise``,
        ``line_noise`` and the shared imaging parameters.
    draw : callable
        ``draw(clean, labels, instances, row)`` for one truth row.
    kind : str
        Recorded as ``params["kind"]``.
    class_names : list of str
        The label values' names.

    Returns
    -------
    Simulation

    Examples
    --------
    One particle one pixel wide, one pixel further right in every frame:

    >>> import pandas as pd
    >>> from rotdyn.simulate import SphereParams
    >>> class Walker:
    ...     x = 4
    ...     def step(self):
    ...         self.x += 1
    ...     def table(self, t):
    ...         return pd.DataFrame({"frame": [t], "id": [1], "x": [self.x], "y": [8], "angle": [0.0], "class": [1]})
    >>> def draw(clean, labels, instances, row):
    ...     clean[row.y, row.x] = labels[row.y, row.x] = 1
    ...     instances[row.y, row.x] = row.id
    >>> cfg = SphereParams(size=16, frames=3, noise=0, blur=0, illumination=0, texture=0, contrast="bright", level=0)
    >>> sim = film(Walker(), cfg, draw, "spheres", ["background", "sphere"])
    >>> sim.truth.x.tolist(), [np.argwhere(frame).tolist() for frame in sim.frames]
    ([4, 5, 6], [[[8, 4]], [[8, 5]], [[8, 6]]])
    >>> bool((sim.instances == sim.labels).all()), sim.params["kind"]
    (True, 'spheres')
    """
    shape = (cfg.frames, cfg.size, cfg.size)
    clean = np.zeros(shape)
    labels = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.int32)
    tables = []
    for t in range(cfg.frames):
        if t > 0:
            world.step()
        table = world.table(t)
        for row in table.itertuples(index=False):
            draw(clean[t], labels[t], instances[t], row)
        tables.append(table)
    movie = scan(optics(clean, cfg, cfg.seed), cfg, cfg.seed, noise=cfg.noise, line_noise=cfg.line_noise)
    truth = pd.concat(tables, ignore_index=True)
    return Simulation(movie.astype(np.float32), labels, instances, truth, {"kind": kind, **cfg.as_dict()},
                      class_names)
