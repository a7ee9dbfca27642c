"""A classical first look at a movie: particle contrast, size and noise, before any training.

Pure functions on a movie's preprocessed frames (float32 ``(T, H, W)``, per
frame normalised, as ``results/<movie>/movie.nc`` holds them) that tell the
ingest stage what the particles look like, so that the simulated training set
can be matched to the movie:

* :func:`detect_contrast` -- are the particles brighter or darker than the
  background? A matched filter with the particle's template, compared for the
  two polarities.
* :func:`estimate_sizes` -- length and width (rods, cells), diameter (discs)
  or lattice spacing (atoms), from isolated objects of a half-height
  threshold.
* :func:`estimate_noise` -- the noise sd relative to the particle height, the
  unit of the simulators' ``noise`` (:func:`rotdyn.simulate.simulate_rods`).
* :func:`particle_template` -- the image of one particle of a kind: a rod, a
  cell, a disc or an atom.

All of them look at a few frames only (``n_frames``, spread over the movie),
skip frames without finite pixels, and treat non-finite pixels as background.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, optimize
from scipy.interpolate import RectBivariateSpline
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max
from skimage.filters import apply_hysteresis_threshold, threshold_otsu
from skimage.measure import label, regionprops
from skimage.segmentation import clear_border, expand_labels

log = logging.getLogger(__name__)

# Particle shapes, their size parameters, and the kind names (rotdyn.simulate) that mean them.
SHAPES = {"rod": ("length", "width"), "cell": ("length", "width"), "disc": ("diameter",), "atom": ("spacing",)}
ALIASES = {"rods": "rod", "cells": "cell", "disc": "disc", "discs": "disc", "sphere": "disc",
           "spheres": "disc", "atoms": "atom"}
CONTRASTS = ("bright", "dark")
# Atom sigma over nearest-neighbour spacing: rotdyn.simulate.simulate_atoms' defaults (1.2 px at 6 px).
ATOM_SIGMA_PER_SPACING = 0.2


# -------------------------------------------------------------------- shapes
def shape_name(shape: str) -> str:
    """The canonical shape (``rod``, ``cell``, ``disc``, ``atom``) of a shape or kind name.

    Parameters
    ----------
    shape : str
        A shape or a simulator kind (``rods``, ``cells``, ``spheres``, ``atoms``).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a name that is neither.

    Examples
    --------
    >>> shape_name("rods"), shape_name("spheres"), shape_name("cell")
    ('rod', 'disc', 'cell')
    """
    name = ALIASES.get(shape, shape)
    if name not in SHAPES:
        known = ", ".join(sorted(set(SHAPES) | set(ALIASES)))
        raise ValueError(f"unknown particle shape {shape!r}; known: {known}")
    return name


def _sizes(shape: str, size: dict) -> dict:
    """The size parameters of ``shape``, checked: all present, positive, no others."""
    need = SHAPES[shape]
    extra = sorted(set(size) - set(need) - ({"sigma"} if shape == "atom" else set()))
    missing = [k for k in need if k not in size]
    if extra or missing:
        raise ValueError(f"a {shape} template takes {', '.join(need)}"
                         f"{' (and sigma)' if shape == 'atom' else ''}; "
                         f"missing {missing or 'none'}, unknown {extra or 'none'}")
    out = {}
    for k, v in size.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not v > 0 or not math.isfinite(v):
            raise ValueError(f"{shape} {k} must be a positive number of pixels, got {v!r}")
        out[k] = float(v)
    if shape in ("rod", "cell") and out["width"] > out["length"]:
        raise ValueError(f"{shape} width {out['width']} exceeds its length {out['length']}")
    return out


def particle_template(shape: str, *, angle: float = 0.0, **size) -> np.ndarray:
    """The image of one particle of ``shape``, peak 1 on a background of 0.

    * ``rod`` (``length``, ``width``): a flat-topped capsule, as the AFM rods
      of :func:`rotdyn.simulate.simulate_rods` without their head knob;
    * ``cell`` (``length``, ``width``): a spherocylinder, drawn as its
      thickness (rounded across and at the ends), like an optical cell body;
    * ``disc`` (``diameter``): a flat disc;
    * ``atom`` (``spacing``, optional ``sigma``): a Gaussian of sd ``sigma``,
      by default ``0.2 * spacing`` (the simulator's 1.2 px at 6 px).

    Edges are antialiased (1 px linear ramp of coverage). Lengths are end to
    end, in pixels. The frame is square, odd-sized, centred on the particle,
    with a margin of about half the particle's width (at least 2 px) around
    it at any angle.

    Parameters
    ----------
    shape : str
        ``rod``, ``cell``, ``disc`` or ``atom`` (or the simulator kinds
        ``rods``, ``cells``, ``spheres``, ``atoms``).
    angle : float
        Axis angle of rods and cells, rad, counter-clockwise from +x as displayed.
    **size : float
        The shape's size parameters, px.

    Returns
    -------
    ndarray, (K, K) float64

    Raises
    ------
    ValueError
        For an unknown shape, or size parameters missing, unknown or not positive.

    Examples
    --------
    >>> t = particle_template("rod", length=9, width=3)
    >>> t.shape, float(t.max()), int((t > 0.5).sum(axis=1).max()), int((t > 0.5).sum(axis=0).max())
    ((15, 15), 1.0, 9, 3)
    >>> particle_template("disc", diameter=5).shape
    (11, 11)
    >>> particle_template("atom", length=3)
    Traceback (most recent call last):
    ...
    ValueError: a atom template takes spacing (and sigma); missing ['spacing'], unknown ['length']
    """
    name = shape_name(shape)
    s = _sizes(name, size)
    if name == "atom":
        sigma = s.get("sigma", ATOM_SIGMA_PER_SPACING * s["spacing"])
        half = int(math.ceil(3 * sigma))
        yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
        return np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
    length, width = (s["diameter"], s["diameter"]) if name == "disc" else (s["length"], s["width"])
    half = int(math.ceil(length / 2 + max(2.0, width / 2)))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    along = xx * math.cos(angle) - yy * math.sin(angle)
    across = xx * math.sin(angle) + yy * math.cos(angle)
    radius = width / 2
    d = np.hypot(np.clip(np.abs(along) - (length - width) / 2, 0, None), across)  # to the core segment
    if name == "cell":
        return np.sqrt(np.clip(radius ** 2 - d ** 2, 0, None)) / radius
    return np.clip(radius - d + 0.5, 0.0, 1.0)


# ------------------------------------------------------------------- frames
def _pick_frames(frames, n_frames: int) -> np.ndarray:
    """Up to ``n_frames`` usable frames spread over the movie, as float64, NaNs set to the median."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be a whole number >= 1, got {n_frames!r}")
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or min(frames.shape) < 1:
        raise ValueError(f"frames must be a (T, H, W) array, got shape {frames.shape}")
    if min(frames.shape[1:]) < 16:
        raise ValueError(f"frames of {frames.shape[1]} x {frames.shape[2]} px are too small to survey (need >= 16)")
    usable = [t for t in range(len(frames))
              if np.isfinite(frames[t]).any() and np.nanmax(frames[t]) > np.nanmin(frames[t])]
    if not usable:
        raise ValueError("no usable frame: every frame is non-finite or constant")
    spread = np.linspace(0, len(usable) - 1, min(n_frames, len(usable))).round().astype(int)
    pick = np.asarray(usable)[np.unique(spread)]
    out = frames[pick].astype(np.float64)
    for f in out:
        f[~np.isfinite(f)] = np.nanmedian(f)
    return out


def flatten_background(image: np.ndarray, block: int | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """``image`` minus its smooth background: clipped medians of tiles, interpolated.

    The background of each ``block`` x ``block`` tile is its median: robust
    to particles covering less than half of the tile, bright or dark alike.
    The tile levels, placed at the tile centres, are interpolated to full
    size (cubic splines from 4 x 4 tiles up, else bilinear; continued
    linearly beyond the outer centres), as astronomers' background meshes
    do. A second pass on the remainder takes each tile's median after
    clipping, three times, the pixels more than 2.5 noise sd
    (:func:`noise_sd`) from it, so that, unlike a plain median, the level is
    not pulled toward the particles by the noise. Median and clipping are
    symmetric, so flattening ``-image`` gives minus the result: neither
    polarity is favoured.

    Where the particles are known, ``mask`` leaves them out of the tile
    levels altogether (needed when the noise is so strong that clipping can
    no longer tell particle pixels from background ones); a tile with less
    than a tenth of its pixels left takes the median of the other tiles.

    Parameters
    ----------
    image : (H, W) array
    block : int or None
        Tile side, px; None = a quarter of the shorter side, at least 32.
    mask : (H, W) bool array or None
        Pixels to leave out (True = particle).

    Returns
    -------
    (H, W) float64, background near 0.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> image = 0.02 * xx + 0.01 * yy + (np.hypot(xx - 30, yy - 30) < 3)
    >>> flat = flatten_background(image)
    >>> round(float(np.abs(flat[:20, 40:]).max()), 2), round(float(flat[30, 30]), 1)
    (0.0, 1.0)
    """
    image = np.asarray(image, dtype=np.float64)
    block = block or max(32, min(image.shape) // 4)
    keep = np.ones(image.shape, bool) if mask is None else ~np.asarray(mask, bool)
    coarse = _mesh(image, keep, block, np.median)
    # Second pass on what the coarse one left: the clipping band is then not eaten up by the illumination's
    # slope within a tile.
    rest = image - coarse
    noise = noise_sd(image)
    return rest - _mesh(rest, keep, block, lambda v: _clipped_median(v, noise))


def _mesh(image, keep, block, level):
    """``level`` of the ``keep`` pixels of every ``block`` x ``block`` tile, interpolated to full size.

    Cubic splines (linear below 4 x 4 tiles), continued linearly beyond the
    outer tile centres.
    """
    H, W = image.shape
    ys = np.linspace(0, H, max(1, round(H / block)) + 1).round().astype(int)
    xs = np.linspace(0, W, max(1, round(W / block)) + 1).round().astype(int)

    def tile(y0, y1, x0, x1):
        values = image[y0:y1, x0:x1][keep[y0:y1, x0:x1]]
        return level(values) if values.size >= 0.1 * (y1 - y0) * (x1 - x0) else np.nan

    grid = np.array([[tile(y0, y1, x0, x1) for x0, x1 in zip(xs[:-1], xs[1:])] for y0, y1 in zip(ys[:-1], ys[1:])])
    grid[np.isnan(grid)] = np.nanmedian(grid) if np.isfinite(grid).any() else level(image.ravel())
    centres = [(e[:-1] + e[1:] - 1) / 2 for e in (ys, xs)]
    # One more tile beyond each border, continuing the trend (odd reflection): the spline never extrapolates.
    grid = np.pad(grid, 1, mode="reflect", reflect_type="odd") if min(grid.shape) > 1 else np.pad(grid, 1, mode="edge")
    centres = [np.concatenate([[2 * c[0] - (c[1] if len(c) > 1 else c[0] + block)], c,
                               [2 * c[-1] - (c[-2] if len(c) > 1 else c[-1] - block)]]) for c in centres]
    order = 3 if min(grid.shape) >= 4 else 1
    spline = RectBivariateSpline(*centres, grid, kx=order, ky=order)  # interpolating (s = 0), separable
    return spline(np.arange(H), np.arange(W))


def _clipped_median(values, noise, clip=2.5, rounds=3):
    """Median of ``values`` after dropping, ``rounds`` times, those more than ``clip * noise`` from it."""
    values = values.ravel()
    m = np.median(values)
    for _ in range(rounds if noise > 0 else 0):
        kept = values[np.abs(values - m) < clip * noise]
        if kept.size < 0.1 * values.size:
            break
        m = np.median(kept)
    return m


def noise_sd(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sd of the white noise in ``image``: the robust (MAD) sd of its diagonal 2 x 2 differences.

    ``(a - b - c + d) / 2`` over every 2 x 2 block is the Haar wavelet's
    diagonal detail: white noise of sd s passes with sd s, while planes,
    scan-line and column offsets cancel and smooth particles leave little;
    the median ignores the edges that do leave some.

    Quantised data (8-bit video, whatever the normalisation after) has
    differences in whole steps, which make the median coarse (or 0, when
    most differences are 0); there a uniform dither of one step is added to
    every pixel (seeded) and its variance, a twelfth of a step squared,
    taken off: the result is the sd of the noise in the frames, rounding
    included. Where most differences are exactly 0 but the values lie on no
    single grid (colour channels mixed into luminance), the mean absolute
    deviation stands in for the median one.

    Parameters
    ----------
    image : (H, W) array
    mask : (H, W) bool array or None
        Use only blocks whose four pixels are in the mask (e.g. the
        background, away from particle edges); None = all.

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[0:128, 0:128]
    >>> lines = rng.normal(0, 1, (128, 1))
    >>> round(noise_sd(0.1 * xx + lines + rng.normal(0, 0.2, (128, 128))), 2)
    0.2
    """
    f = np.asarray(image, dtype=np.float64)
    step = _quantum(f)
    if step:
        f = f + np.random.default_rng(0).uniform(-step / 2, step / 2, f.shape)
    d = (f[:-1, :-1] - f[1:, :-1] - f[:-1, 1:] + f[1:, 1:]) / 2
    if mask is not None:
        m = np.asarray(mask, bool)
        d = d[m[:-1, :-1] & m[1:, :-1] & m[:-1, 1:] & m[1:, 1:]]
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan
    dev = np.abs(d - np.median(d))
    sd = 1.4826 * np.median(dev)
    if sd == 0:  # most differences exactly 0: values on no single grid (mixed colour channels), little noise
        sd = 1.2533 * dev[dev <= np.percentile(dev, 99)].mean()  # mean absolute deviation, for Gaussian noise
    return float(math.sqrt(max(sd * sd - step * step / 12, 0.0)))


def _quantum(image) -> float:
    """The step of the grid the values lie on (8-bit data: 1 grey level, in whatever units), else 0."""
    finite = image[np.isfinite(image)]
    if len(np.unique(finite[::max(1, finite.size // 20000)])) > 4096:  # a sample settles most frames
        return 0.0
    values = np.unique(finite)
    if len(values) < 2 or len(values) > 4096:
        return 0.0
    gaps = np.diff(values)
    step = gaps.min()
    return float(step) if np.allclose(gaps / step, np.round(gaps / step), atol=1e-3) else 0.0


# ------------------------------------------------------------------ contrast
@dataclass
class ContrastDecision:
    """Whether particles are brighter or darker than the background, and how sure that is.

    Attributes
    ----------
    contrast : str
        ``"bright"`` or ``"dark"``.
    score : dict
        ``{"bright": s, "dark": s}``: the mean of the strongest template
        responses for each polarity, in robust sd of the response, in the
        view that decided (single frames or their mean; see ``reason``).
    confidence : float
        ``(best - other) / best`` of the two scores, in [0, 1]; below the
        threshold the decision is the default and ``decided`` is False.
    decided : bool
        False when the confidence was too low and ``contrast`` is the default.
    reason : str
        One line for the log.

    Examples
    --------
    Colloids, dark on a bright background, as :func:`detect_contrast` decides:

    >>> from rotdyn.simulate import simulate_spheres
    >>> frames = simulate_spheres(size=64, frames=2, count=8, defocus=0.5, seed=0).frames
    >>> disc = particle_template("disc", diameter=3)
    >>> decision = detect_contrast(frames, disc)
    >>> decision.contrast, decision.decided, decision.score["dark"] > decision.score["bright"]
    ('dark', True, True)
    >>> best, other = decision.score["dark"], decision.score["bright"]
    >>> decision.confidence == round((best - other) / best, 4)
    True

    Asked for more certainty than the movie gives, it keeps the default and says so:

    >>> unsure = detect_contrast(frames, disc, min_confidence=1.0)
    >>> unsure.contrast, unsure.decided, unsure.reason.endswith("undecided, default bright")
    ('bright', False, True)
    """

    contrast: str
    score: dict
    confidence: float
    decided: bool
    reason: str


def _rotations(template: np.ndarray, n_angles: int | None) -> list[np.ndarray]:
    """``template`` at ``n_angles`` orientations over half a turn, each zero-mean.

    None: 12 for an elongated template (second moments differing by more than
    1.5 times), else 1.
    """
    t = np.asarray(template, dtype=np.float64)
    if t.ndim != 2 or not np.isfinite(t).all() or np.ptp(t) == 0:
        raise ValueError(f"template must be a finite, non-constant 2-D array, got shape {t.shape}")
    if n_angles is None:
        w = np.clip(t - t.min(), 0, None)
        yy, xx = np.indices(t.shape)
        cov = np.cov(np.stack([yy.ravel(), xx.ravel()]), aweights=w.ravel())
        lo, hi = np.linalg.eigvalsh(cov)
        n_angles = 12 if hi > 1.5 * lo else 1
    turned = [t] + [ndimage.rotate(t, 180.0 * i / n_angles, order=1, reshape=True, mode="constant", cval=t.min())
                    for i in range(1, n_angles)]
    return [k - k.mean() for k in turned]


def _correlate(image: np.ndarray, kernels: list[np.ndarray]) -> np.ndarray:
    """Cross-correlation of ``image`` with each kernel (FFT, same size, zero padding): ``(K, H, W)``."""
    H, W = image.shape
    k = max(max(t.shape) for t in kernels)
    shape = (sfft.next_fast_len(H + k), sfft.next_fast_len(W + k))
    F = sfft.rfft2(image, shape)
    out = np.empty((len(kernels), H, W))
    for i, t in enumerate(kernels):
        ky, kx = t.shape
        full = sfft.irfft2(F * sfft.rfft2(t[::-1, ::-1], shape), shape)
        out[i] = full[ky // 2:ky // 2 + H, kx // 2:kx // 2 + W]
    return out


def _peak_heights(response: np.ndarray, min_distance: int) -> np.ndarray:
    """Heights of the local maxima of ``response``, highest first."""
    peaks = peak_local_max(response, min_distance=min_distance, exclude_border=False)
    return np.sort(response[tuple(peaks.T)])[::-1]


def _mean_frame(frames) -> np.ndarray | None:
    """The mean of the frames, pixel by pixel over their finite values, as ``(1, H, W)``; None for one frame.

    Accumulated a frame at a time (no float64 copy of the movie); pixels
    never finite take the median of the rest.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or len(frames) < 2:
        return None
    total, count = np.zeros(frames.shape[1:]), np.zeros(frames.shape[1:])
    for frame in frames:
        finite = np.isfinite(frame)
        total += np.where(finite, frame, 0.0)
        count += finite
    if not count.any():
        return None
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    mean[count == 0] = np.median(mean[count > 0])
    return mean[None]


def _polarity_scores(frames, kernels, border, min_distance, block) -> dict:
    """Each polarity's score on ``frames``: the mean of its ``k`` highest response maxima, in robust sd, over frames.

    ``k`` is a tenth of the maxima found, at least 3; responses within
    ``border`` of the edge (zero padding) are left out.
    """
    scores = {"bright": [], "dark": []}
    inner = (slice(None), slice(border, -border), slice(border, -border))
    for frame in frames:
        R = _correlate(flatten_background(frame, block), kernels)
        scale = 1.4826 * np.median(np.abs(R - np.median(R))) or 1.0
        R = R[inner] / scale
        heights = {"bright": _peak_heights(R.max(0), min_distance), "dark": _peak_heights((-R).max(0), min_distance)}
        k = max(3, min(len(h) for h in heights.values()) // 10)
        for polarity, h in heights.items():
            scores[polarity].append(float(h[:k].mean()) if len(h) else 0.0)
    return {p: float(np.mean(v)) for p, v in scores.items()}


def _confidence(score: dict) -> tuple[str, float]:
    """The polarity with the higher score, and ``(best - other) / best`` (0 when no score is positive)."""
    best = max(score, key=score.get)
    other = "dark" if best == "bright" else "bright"
    return best, (score[best] - score[other]) / score[best] if score[best] > 0 else 0.0


def detect_contrast(frames, template, *, n_frames: int = 5, n_angles: int | None = None,
                    min_confidence: float | None = None, default: str = "bright", modality: str | None = None,
                    block: int | None = None) -> ContrastDecision:
    """Decide whether the particles are brighter or darker than the background.

    Method: on each of up to ``n_frames`` frames, the smooth background is
    removed (:func:`flatten_background`) and the frame is cross-correlated
    (FFT) with the particle ``template`` made zero-mean, at ``n_angles``
    orientations for elongated templates. The bright response is the maximum
    over orientations of the correlation R, the dark one the maximum of -R.
    A matched filter answers most strongly where the image holds the
    template's shape: the particles in their true polarity, while the other
    polarity only finds gaps between particles, halos and noise, which match
    the shape less well. Each polarity's score is the mean of its ``k``
    highest local maxima (``k`` = a tenth of the maxima found, at least 3),
    over a robust sd of R (MAD), averaged over the frames; the polarity with
    the higher score wins, with confidence ``(best - other) / best``. Below
    ``min_confidence`` the decision is ``default`` and says so.

    The same scores are taken on the mean of all the frames given, and the
    view (single frames or their mean) with the higher confidence decides.
    Static particles keep their shape in the mean while its noise falls as
    1/sqrt(T) and, a sum of many counts, loses the skew of shot noise: in a
    low-dose STEM movie (about 10 counts per atom) a single frame holds each
    atom at about one noise sd, and the top maxima are the noise's, whose
    Poisson skew favours bright even where the atoms are dips; the mean of
    20 such frames decides them clearly. Moving particles smear out in the
    mean and answer the filter less there, so their single frames decide.

    The flattening removes uneven illumination and AFM tilt; a phase-contrast
    halo around a particle is a thin rim that answers the filled template
    less than the body does, so a bright body with a dark rim is "bright" and
    a dark body with a bright rim "dark". AFM height maps (``modality``
    starting with "AFM"): particles stand up from the substrate, so they are
    bright; a closed layer whose gaps look like particles too can score
    either way, so there the decision needs twice the usual confidence
    (0.3), and the default, bright, applies below it.

    Parameters
    ----------
    frames : (T, H, W) or (H, W) array
        Preprocessed frames; non-finite pixels are ignored. All of them go
        into the mean frame; ``n_frames`` of them are scored singly.
    template : (K, L) array
        One particle, brighter than its surround (e.g. :func:`particle_template`).
    n_frames : int
        Frames looked at, spread over the movie.
    n_angles : int or None
        Orientations of the template over half a turn; None = 12 for an
        elongated template, 1 for a round one.
    min_confidence : float or None
        Below this the decision falls back to ``default``; None = 0.15, or
        0.3 for AFM.
    default : {"bright", "dark"}
        The fallback.
    modality : str or None
        The movie's modality (:class:`rotdyn.formats.Movie`), e.g. "AFM".
    block : int or None
        Background tile, px (:func:`flatten_background`).

    Returns
    -------
    ContrastDecision

    Raises
    ------
    ValueError
        For frames that are not 2- or 3-D or hold no usable frame, a bad
        template or default.

    Examples
    --------
    >>> from rotdyn.simulate import simulate_rods
    >>> frames = simulate_rods(size=96, frames=2, count=10, seed=0).frames
    >>> t = particle_template("rod", length=16, width=5)
    >>> detect_contrast(frames, t).contrast, detect_contrast(-frames, t).contrast
    ('bright', 'dark')

    Low-dose STEM (about 9 counts per atom), atoms as dips in a bright
    background: single frames cannot tell, the mean of the 20 frames can:

    >>> from rotdyn.simulate import simulate_atoms
    >>> stem = simulate_atoms(size=128, frames=20, background="bright", dose=1.0, seed=3).frames
    >>> d = detect_contrast(stem, particle_template("atom", spacing=6.0))
    >>> d.contrast, d.decided, "the mean of 20 frames" in d.reason
    ('dark', True, True)
    """
    if default not in CONTRASTS:
        raise ValueError(f"default contrast must be 'bright' or 'dark', got {default!r}")
    if min_confidence is None:
        min_confidence = 0.3 if str(modality or "").upper().startswith("AFM") else 0.15
    kernels = _rotations(template, n_angles)
    picked = _pick_frames(frames, n_frames)
    border = max(max(k.shape) for k in kernels) // 2  # responses nearer the edge saw zero padding
    if min(picked.shape[1:]) <= 2 * border + 8:
        raise ValueError(f"frames of {picked.shape[1]} x {picked.shape[2]} px are too small for a template "
                         f"{2 * border + 1} px across")
    # Peaks closer than half the particle's smaller size are one particle.
    template = np.asarray(template, dtype=np.float64)
    w = template > (template.min() + template.max()) / 2
    min_distance = max(2, int(ndimage.distance_transform_edt(w).max()))
    views = {f"{len(picked)} frames": picked}
    mean = _mean_frame(frames)
    if mean is not None:
        views[f"the mean of {len(frames)} frames"] = mean
    scored = {}
    for view, images in views.items():
        score = _polarity_scores(images, kernels, border, min_distance, block)
        scored[view] = (score, *_confidence(score))
    view = max(scored, key=lambda v: scored[v][2])  # the view that tells the polarities apart best
    score, best, confidence = scored[view]
    decided = confidence >= min_confidence
    contrast = best if decided else default
    reason = (f"{contrast}: strongest template responses {score['bright']:.1f} (bright) vs "
              f"{score['dark']:.1f} (dark) robust sd in {view}, confidence {confidence:.2f}"
              + ("" if decided else f" < {min_confidence}: undecided, default {default}"))
    return ContrastDecision(contrast, score, round(confidence, 4), decided, reason)


# --------------------------------------------------------------------- sizes
def _survey_frame(frame, contrast, smooth, min_area, block):
    """One frame's objects (:func:`_half_height_objects`), the flattened frame they were found in, and the dither.

    The frame is flattened (:func:`flatten_background`) with particles made
    positive, its objects found, then flattened again with the objects left
    out of the background, and its objects found again: in strong noise the
    first background, taken with the particles in it, sits too high.
    Quantised frames (8-bit video) first get a uniform dither of one step
    (:func:`noise_sd`), so that thresholds and medians do not stick to the
    grid of values; its variance is returned, to be taken off noise
    estimates. The noise is measured on the frame before flattening, whose
    differences still show whether they are exactly 0.
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be 'bright' or 'dark', got {contrast!r}")
    step = _quantum(frame)
    if step:
        frame = frame + np.random.default_rng(0).uniform(-step / 2, step / 2, frame.shape)
    sign = 1.0 if contrast == "bright" else -1.0
    raw = sign * frame
    image = flatten_background(raw, block)
    found = _half_height_objects(image, smooth, min_area, raw)
    if found.mask.any():
        image = flatten_background(raw, block, mask=found.mask)
        found = _half_height_objects(image, smooth, min_area, raw)
    return found, image, step * step / 12


@dataclass
class _Profiles:
    """Each object's height along its major axis, ``a + b * s`` (``s`` px from its core's middle); index = label."""

    a: np.ndarray          # mean raw height of the core
    b: np.ndarray          # slope along the axis (0 for round objects)
    b_var: np.ndarray      # the noise's share of b's variance
    reach: np.ndarray      # half the core's extent along the axis, px
    middle: np.ndarray     # (2, n + 1) row, col of the core's middle
    axis: np.ndarray       # (2, n + 1) unit (d_row, d_col) along the major axis
    area: np.ndarray       # px

    def along(self, labels, rows, cols):
        """Position ``s`` along each pixel's object axis, px from its core's middle."""
        return ((rows - self.middle[0, labels]) * self.axis[0, labels]
                + (cols - self.middle[1, labels]) * self.axis[1, labels])


def _profiles(image, labels, noise) -> _Profiles:
    """Height profiles of the objects of ``labels``, fitted to the raw values of their cores.

    The core of an object is where its inner distance (to the background) is
    at least 70 % of its largest: chosen by shape, not by pixel values, so its
    mean is not biased by the noise. Elongated objects (second-moment axes
    in a ratio under 0.7, core of 6 px or more) get a straight line along
    their major axis, so a particle brighter at one end is cut at half its
    own local height; round ones a constant. All objects at once, with
    per-label sums (``np.bincount``).
    """
    n = int(labels.max())
    obj = labels.ravel() > 0
    lab = labels.ravel()[obj]
    rows, cols = (i.ravel()[obj].astype(float) for i in np.indices(labels.shape))
    values = image.ravel()[obj]

    def mean(w, where=slice(None)):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(lab[where], w[where], n + 1) / np.bincount(lab[where], minlength=n + 1)

    area = np.bincount(lab, minlength=n + 1)
    dr, dc = rows - mean(rows)[lab], cols - mean(cols)[lab]
    crr, ccc, crc = mean(dr * dr), mean(dc * dc), mean(dr * dc)
    theta = 0.5 * np.arctan2(2 * crc, crr - ccc)  # major axis from the row axis
    axis = np.stack([np.cos(theta), np.sin(theta)])
    half_gap = np.sqrt(((crr - ccc) / 2) ** 2 + crc ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.sqrt(np.clip((crr + ccc) / 2 - half_gap, 0, None) / ((crr + ccc) / 2 + half_gap))
    inner = ndimage.distance_transform_edt(labels > 0).ravel()[obj]
    deepest = np.zeros(n + 1)
    np.maximum.at(deepest, lab, inner)
    core = inner >= 0.7 * deepest[lab]
    middle = np.stack([mean(rows, core), mean(cols, core)])
    a = mean(values, core)
    profiles = _Profiles(a, np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1), middle, axis, area)
    s = profiles.along(lab[core], rows[core], cols[core])
    ss = np.bincount(lab[core], s * s, n + 1)
    sv = np.bincount(lab[core], s * (values[core] - a[lab[core]]), n + 1)
    elongated = (ratio < 0.7) & (np.bincount(lab[core], minlength=n + 1) >= 6) & (ss > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        profiles.b = np.where(elongated, sv / ss, 0.0)
        profiles.b_var = np.where(elongated, noise ** 2 / ss, 0.0)
    hi, lo = np.full(n + 1, -np.inf), np.full(n + 1, np.inf)
    np.maximum.at(hi, lab[core], s)
    np.minimum.at(lo, lab[core], s)
    profiles.reach = np.where(np.isfinite(hi - lo), (hi - lo) / 2, 0.0)
    return profiles


def _significance(image, labels, noise):
    """Per label (index 0 = background): the object's summed signal over the noise of that sum."""
    area = np.bincount(labels.ravel())
    total = np.bincount(labels.ravel(), image.ravel(), len(area))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(total / (noise * np.sqrt(area)))


def _speck_floor(image, smoothed, noise, low, high, min_area):
    """How significant (:func:`_significance`) the noise's own specks get: decoys from the flipped frame.

    Particles are positive, so the objects the same thresholds find in
    ``-image`` are noise (or dark rims, which only raise the bar): the 95th
    percentile of their significance (their largest when fewer than 20; 0
    when none) is the floor a particle must clear.
    """
    decoys = _drop_small(_clean(apply_hysteresis_threshold(-smoothed, low, high), 1), min_area)
    if decoys.max() == 0:
        return 0.0
    sig = _significance(-image, decoys, noise)[1:]
    sig = sig[np.bincount(decoys.ravel())[1:] > 0]
    return float(np.percentile(sig, 95) if len(sig) >= 20 else sig.max())


def _isolated_labels(area, significance, floor=0.0, spread=0.5):
    """Labels (of per-label ``area``, index 0 = background) within ``1 -+ spread`` of the typical area.

    Typical: the smallest clear peak of a Gaussian kernel density (sd 0.1)
    of the objects' log areas, each object weighted by its summed signal in
    units of its noise (:func:`_significance`, which grows as the square
    root of the area for objects of one height); clear: at least half the
    highest peak. The specks noise leaves in a noisy frame each weigh little
    and spread over many sizes, so a few particles outweigh many specks;
    touching pairs and merged clusters are larger, so where they are as
    common as single particles, the singles' peak still wins. Pairs,
    clusters, fragments and specks are out; so are objects no more
    significant than ``floor`` (:func:`_speck_floor`; at most half the
    significance of the objects above it that hold half their total),
    unless none is.
    """
    ids = np.flatnonzero(area[1:]) + 1
    above = significance[ids] > floor
    if above.any():
        # Dark rims as decoys can set the floor near the particles themselves: at most half the
        # significance of the objects that hold half the total (so specks just above it do not count).
        ranked = np.sort(significance[ids][above])[::-1]
        floor = min(floor, 0.5 * float(ranked[np.searchsorted(np.cumsum(ranked), ranked.sum() / 2)]))
        ids = ids[significance[ids] > floor]
    weight = np.clip(significance[ids], 0, None)
    if not len(ids) or not weight.sum() > 0:
        return ids[:0]
    logs = np.log(area[ids].astype(float))
    grid = np.linspace(logs.min() - 0.3, logs.max() + 0.3, 300)
    density = (weight * np.exp(-0.5 * ((grid[:, None] - logs[None]) / 0.1) ** 2)).sum(axis=1)
    peaks = np.flatnonzero((density >= np.roll(density, 1)) & (density >= np.roll(density, -1))
                           & (density >= 0.5 * density.max()))
    typical = np.exp(grid[peaks[0]])
    return ids[(area[ids] >= (1 - spread) * typical) & (area[ids] <= (1 + spread) * typical)]


def _heights(image, labels, noise, floor=0.0):
    """The objects' profiles (:func:`_profiles`), and the typical level and peak height over the background.

    Level: the median over isolated objects (:func:`_isolated_labels`: a
    merged pair's core holds the gap between them; ``floor``: the speck
    limit) of their cores' mean raw value. Peak: the level plus the rise from a core's middle to its brighter
    end (the slope's root mean square over the objects, its noise variance
    taken off, times the median half extent of the cores): a particle
    brighter at one end (the simulated rods' head) peaks above its mean, a
    flat one not.
    """
    if labels.max() == 0:
        return None, math.nan, math.nan
    p = _profiles(image, labels, noise)
    ids = _isolated_labels(p.area, _significance(image, labels, noise), floor)
    if not len(ids):
        return p, math.nan, math.nan
    level = float(np.median(p.a[ids]))
    slope = math.sqrt(max(float(np.mean(p.b[ids] ** 2 - p.b_var[ids])), 0.0))
    return p, level, level + slope * float(np.median(p.reach[ids]))


@dataclass
class _Objects:
    """What :func:`_half_height_objects` found in one frame."""

    labels: np.ndarray  # objects above half height; border and small objects removed
    level: float        # typical core height (threshold = level / 2)
    peak: float         # typical peak height
    noise: float        # white-noise sd on the background, away from the objects
    mask: np.ndarray    # every object of the hysteresis (border ones too), widened by 2 px
    specks: float       # significance the noise's own specks reach (_speck_floor)


def _half_height_objects(image, smooth, min_area, raw=None, rounds=2) -> _Objects:
    """Objects of ``image`` (particles positive, background 0) above half the particle height.

    A first threshold (Otsu, at least 3 noise sd of the smoothed image) finds
    the particles and their height (:func:`_heights`). Objects are then the
    connected regions of the smoothed image above 0.3 of the height that
    reach half of it (hysteresis, so noise does not cut a thin particle in
    pieces). The height is measured again on these objects (a first
    threshold high in the noise favours noise peaks), ``rounds`` times,
    unless it falls by more than 30 % (particles bridged into clusters
    through the noise: the last objects are kept). Noise specks are told
    from particles by how significant the same thresholds' objects get in
    the flipped frame (:func:`_speck_floor`). Each object keeps its pixels
    above half height, where a blurred or ramped
    edge lies, so areas are biased neither by the particles' contrast nor by
    the blur; this last cut smooths only as much as the noise needs
    (smoothed noise at most a tenth of the height), since blur rounds off
    small ends and widens thin particles. Around a dark rim (a phase-contrast
    halo, :func:`_dark_rim`) the cut lies half-way between body and rim.
    The noise is measured on ``raw`` (the frame before flattening; default
    ``image``), on the background away from the objects when that is at
    least a quarter of the frame.
    """
    raw = image if raw is None else raw
    smoothed = ndimage.gaussian_filter(image, smooth) if smooth > 0 else image
    noise = noise_sd(raw)
    # White noise of sd s has sd s / (2 sqrt(pi) sigma) after a Gaussian of sd sigma.
    floor = 3 * noise / (2 * math.sqrt(math.pi) * smooth if smooth > 0 else 1.0)
    first = max(threshold_otsu(smoothed), floor)
    hysteresis = smoothed > first
    whole = _clean(hysteresis, min_area)
    specks = _speck_floor(image, smoothed, noise, first, first, min_area)
    _, level, _ = _heights(image, whole, noise, specks)
    if not level > 0:
        return _Objects(np.zeros(image.shape, int), math.nan, math.nan, noise, np.zeros(image.shape, bool), 0.0)
    for _ in range(rounds):
        half = level / 2
        # Cores come from the filled hysteresis objects: holes the noise makes at half height would
        # steer them toward pixels with positive noise.
        grown = ndimage.binary_fill_holes(apply_hysteresis_threshold(smoothed, 0.6 * half, half))
        objects = _drop_small(_clean(grown, 1), min_area)
        floor_now = _speck_floor(image, smoothed, noise, 0.6 * half, half, min_area)
        _, again, _ = _heights(image, objects, noise, floor_now)
        if not again >= 0.7 * level:  # particles bridged through the noise into clusters: keep the last
            break
        hysteresis, whole, level, specks = grown, objects, again, floor_now
    widened = ndimage.binary_dilation(hysteresis, iterations=2)
    background = ~widened
    if background.mean() > 0.25:  # particle edges would add to the noise
        noise = noise_sd(raw, background)
    profiles, level, peak = _heights(image, whole, noise, specks)
    fine = min(smooth, noise / (2 * math.sqrt(math.pi) * 0.1 * level))
    final = ndimage.gaussian_filter(image, fine) if fine > 0.3 else image
    # The cut may lie below the hysteresis' low threshold (half-way to a dark rim): look 2 px beyond it.
    reach = expand_labels(whole, 2)
    obj = reach > 0
    lab = reach[obj]
    rows, cols = (i[obj] for i in np.indices(whole.shape))
    local = profiles.a[lab] + profiles.b[lab] * profiles.along(lab, rows, cols)
    local = np.clip(local, 0.5 * profiles.a[lab], 1.5 * profiles.a[lab])  # not far beyond the core's range
    rim = _dark_rim(image, whole)[lab]
    labels = np.zeros_like(whole)
    labels[obj] = np.where(final[obj] > rim + (local - rim) / 2, lab, 0)
    labels = _drop_small(labels, min_area)
    return _Objects(labels, level, peak, noise, widened, specks)


def _dark_rim(image, labels, inner=1, outer=3):
    """Per label, the median raw value of the background ``inner``-``outer`` px around it, if below 0, else 0.

    A phase-contrast halo is a dark rim around a bright body: the body's edge
    lies half-way between the body and the rim, not the far background.
    Brighter surroundings (a neighbour's tail) are left out.
    """
    ring = expand_labels(labels, outer)
    ring[expand_labels(labels, inner) > 0] = 0
    ids = np.arange(labels.max() + 1)
    rim = np.nan_to_num(np.asarray(ndimage.median(image, ring, ids), dtype=float), nan=0.0)
    return np.minimum(rim, 0.0)


def _clean(mask, min_area):
    """Labels of ``mask`` without objects touching the border or under ``min_area`` px."""
    return _drop_small(clear_border(label(mask)), min_area)


def _drop_small(labels, min_area):
    """``labels`` without objects of fewer than ``min_area`` px."""
    sizes = np.bincount(labels.ravel())
    labels[(sizes < min_area)[labels] & (labels > 0)] = 0
    return labels


def capsule_from_moments(area: float, var_along: float) -> tuple[float, float]:
    """Length and width of the capsule (stadium) with this area and second moment along its axis.

    A capsule of length ``L`` (end to end) and width ``W`` is a ``(L - W) x W``
    rectangle with half discs of radius ``W / 2`` at both ends: area
    ``L W - (1 - pi/4) W^2``; its variance along the axis is the rectangle's
    ``c^2 / 12`` (core ``c = L - W``) and the half discs' ``c^2/4 + 4 c r / (3 pi) + r^2 / 4``,
    weighted by area. Given both, the width follows from the length through
    the area and the length is found by root search. Objects rounder than a
    disc come back as discs.

    Parameters
    ----------
    area : float
        px^2.
    var_along : float
        Variance of the shape along its major axis, px^2 (of the continuous
        shape: add 1/12 to a variance of pixel centres).

    Returns
    -------
    (length, width) : floats, px

    Examples
    --------
    >>> L, W = 20.0, 6.0
    >>> A = L * W - (1 - np.pi / 4) * W ** 2
    >>> [round(v, 6) for v in capsule_from_moments(A, _capsule_var(L, W))]
    [20.0, 6.0]
    """
    k = 1 - math.pi / 4

    def width(L):
        return (L - math.sqrt(max(L * L - 4 * k * area, 0.0))) / (2 * k)

    disc = math.sqrt(4 * area / math.pi)
    if var_along <= _capsule_var(disc, disc):
        return disc, disc
    hi = 2 * disc
    while _capsule_var(hi, width(hi)) < var_along:
        hi *= 2
    L = optimize.brentq(lambda L: _capsule_var(L, width(L)) - var_along, disc, hi, xtol=1e-9)
    return L, width(L)


def _capsule_var(length, width):
    """Variance along the axis of a uniform capsule (see :func:`capsule_from_moments`)."""
    c, r = length - width, width / 2
    rect, discs = c * width, math.pi * r * r
    second = rect * c * c / 12 + discs * (c * c / 4 + 4 * c * r / (3 * math.pi) + r * r / 4)
    return second / (rect + discs)


def _subpixel(image, peaks):
    """Peak positions refined by a parabola through each peak and its two neighbours, per axis."""
    out = peaks.astype(float)
    for axis in (0, 1):
        step = np.eye(2, dtype=int)[axis]
        lo, mid, hi = (image[tuple((peaks + k * step).T)] for k in (-1, 0, 1))
        curvature = lo - 2 * mid + hi
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(curvature < 0, 0.5 * (lo - hi) / curvature, 0.0)
        out[:, axis] += np.clip(shift, -0.5, 0.5)
    return out


def _spacing(image, smooth, threshold, min_distance=2):
    """Lattice spacing: median distance to first-shell neighbours among the local maxima above ``threshold``."""
    smoothed = ndimage.gaussian_filter(image, smooth) if smooth > 0 else image
    peaks = peak_local_max(smoothed, min_distance=min_distance, threshold_abs=threshold, exclude_border=True)
    if len(peaks) < 3:
        return math.nan, len(peaks), 0
    peaks = _subpixel(smoothed, peaks)
    tree = cKDTree(peaks)
    nearest = tree.query(peaks, k=2)[0][:, 1]
    # All neighbours within 1.25 x the typical nearest distance: the whole first shell, not only its
    # closest member (which jitter biases low); a honeycomb's second shell is 1.73 x away.
    pairs = tree.query_pairs(1.25 * np.median(nearest), output_type="ndarray")
    d = np.linalg.norm(peaks[pairs[:, 0]] - peaks[pairs[:, 1]], axis=1)
    return float(np.median(d)), len(peaks), len(np.unique(pairs))


def _defaults(shape, smooth, min_area):
    """Smoothing and smallest object kept, as given or by shape: atoms are small and packed (0.5 px, 3 px)."""
    atom = shape == "atom"
    if smooth is None:
        smooth = 0.5 if atom else 1.0
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0 <= smooth < math.inf:
        raise ValueError(f"smooth must be a Gaussian sd >= 0 px, got {smooth!r}")
    if min_area is None:
        min_area = 3 if atom else 6
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 1:
        raise ValueError(f"min_area must be a positive whole number of pixels, got {min_area!r}")
    return float(smooth), int(min_area)


def estimate_sizes(frames, contrast: str, shape: str, *, n_frames: int = 5, smooth: float | None = None,
                   min_area: int | None = None, block: int | None = None) -> dict:
    """A classical first pass at the particles' size, from a few frames.

    Method, per frame (:func:`_survey_frame`, :func:`_half_height_objects`):

    1. The smooth background is removed (:func:`flatten_background`) and
       dark particles are turned bright.
    2. On the frame smoothed by a Gaussian of sd ``smooth`` px, a first
       threshold (Otsu, at least 3 noise sd) finds the particles; their
       height is the median over the isolated ones of the mean raw value of
       their core (the pixels deepest inside, chosen by shape, so the noise
       does not bias it). Objects are then the regions above 0.3 of that
       height reaching half of it (hysteresis), twice over; the background
       is taken again with them left out, and the objects found again.
    3. Each object keeps its pixels above half of its own height, fitted
       along its axis (a particle brighter at one end is cut at half its
       local height), or half-way down to a dark rim around it (a
       phase-contrast halo). Half height is where a blurred or ramped edge
       lies, so areas are biased neither by the contrast nor by the blur.
    4. Objects touching the border or under ``min_area`` px are dropped.
       The *isolated* ones are measured: clear of the noise and within 0.5 to
       1.5 times the most common area (touching pairs, merged clusters,
       fragments and noise specks out; :func:`_isolated_labels`).

    * ``rod``, ``cell``: each object's area and variance along its major axis
      (pixel centres + 1/12) give the capsule of the same area and moment
      (:func:`capsule_from_moments`); the medians are ``length`` and
      ``width``, ``length_sd`` is the robust (MAD) spread of the lengths;
    * ``disc``: ``diameter`` of the disc of the median area;
    * ``atom``: ``spacing``, the median distance between the local maxima
      (sub-pixel) of the smoothed frame above half height and their
      first-shell neighbours (all within 1.25 times the typical nearest
      distance, so jitter does not bias it low).

    Parameters
    ----------
    frames : (T, H, W) or (H, W) array
        Preprocessed frames.
    contrast : {"bright", "dark"}
        The particles' polarity (:func:`detect_contrast`).
    shape : str
        ``rod``, ``cell``, ``disc``, ``atom`` or a simulator kind (``rods``, ...).
    n_frames : int
        Frames looked at, spread over the movie.
    smooth : float or None
        Gaussian sd before thresholding, px (0 = none); None = 0.5 for atoms
        (closely packed: more would join them), else 1.
    min_area : int or None
        Smaller objects are noise, px; None = 3 for atoms, else 6.
    block : int or None
        Background tile, px (:func:`flatten_background`).

    Returns
    -------
    dict
        The sizes in px (``length``, ``width``, ``length_sd`` / ``diameter``
        / ``spacing``; NaN when nothing was measured), ``n_objects`` (objects
        found, or local maxima for atoms), ``n_used`` (isolated objects
        measured, or maxima with a neighbour), ``height`` (the particles' peak
        height over the background, in frame units), ``frames`` (frames
        looked at).

    Examples
    --------
    >>> from rotdyn.simulate import simulate_rods
    >>> frames = simulate_rods(size=96, frames=2, count=10, length=20, width=6, seed=0).frames
    >>> s = estimate_sizes(frames, "bright", "rods")
    >>> round(s["length"]), round(s["width"]), s["n_used"] > 10
    (20, 6, True)
    """
    name = shape_name(shape)
    smooth, min_area = _defaults(name, smooth, min_area)
    picked = _pick_frames(frames, n_frames)
    per_object, heights, found, used = [], [], 0, 0
    spacings = []
    for frame in picked:
        found_here, image, _ = _survey_frame(frame, contrast, smooth, min_area, block)
        labels, height = found_here.labels, found_here.peak
        heights.append(height)
        if name == "atom":
            spacing, n, paired = _spacing(image, smooth, found_here.level / 2) if height > 0 else (math.nan, 0, 0)
            spacings.append(spacing)
            found += n
            used += paired
            continue
        regions = regionprops(labels)
        found += len(regions)
        significance = _significance(image, labels, found_here.noise)
        isolated = set(_isolated_labels(np.bincount(labels.ravel()), significance, found_here.specks).tolist())
        keep = [r for r in regions if r.label in isolated]
        used += len(keep)
        for r in keep:
            if name == "disc":
                per_object.append((2 * math.sqrt(r.area / math.pi),))
            else:
                per_object.append(capsule_from_moments(r.area, r.inertia_tensor_eigvals[0] + 1 / 12))
    out = {}
    if name == "atom":
        out["spacing"] = float(np.nanmedian(spacings)) if np.isfinite(spacings).any() else math.nan
    elif name == "disc":
        out["diameter"] = float(np.median(per_object)) if per_object else math.nan
    else:
        sizes = np.array(per_object).reshape(-1, 2)
        med = np.median(sizes, axis=0) if len(sizes) else (math.nan, math.nan)
        out["length"], out["width"] = float(med[0]), float(med[1])
        out["length_sd"] = float(1.4826 * np.median(np.abs(sizes[:, 0] - med[0]))) if len(sizes) else math.nan
    finite = [h for h in heights if math.isfinite(h)]
    out.update(n_objects=int(found), n_used=int(used),
               height=float(np.median(finite)) if finite else math.nan, frames=len(picked))
    return out


def estimate_noise(frames, contrast: str = "bright", shape: str | None = None, *, n_frames: int = 5,
                   smooth: float | None = None, min_area: int | None = None, block: int | None = None) -> float:
    """Noise sd relative to the particle height: the unit of the simulators' ``noise``.

    The noise sd of each frame is :func:`noise_sd` (the robust sd of the
    Haar diagonal detail: white noise only; scan-line offsets, illumination
    and the particles' smooth bodies do not count) on the background at
    least 2 px from the particles; the height is the particles' peak height
    over the background (the ``height`` of :func:`estimate_sizes`: the mean
    of their cores plus the rise to their brighter end). The result is the
    median over frames of their ratio. The simulators' ``noise`` is relative
    to a particle height of 1: for flat rods this reads it within about 5 %,
    for :func:`rotdyn.simulate.simulate_rods`' default rods (0.7 at the
    tail, a knob of 1 at the head) about 10 to 25 % high.

    Atoms (``shape`` ``atoms``) at low dose sit at about one noise sd in a
    single frame, too low to find them there: their height is measured
    once, on the mean of all the ``frames`` given (the lattice stays while
    the noise falls as 1/sqrt(T)), and the noise sd, the median over the
    frames of :func:`noise_sd` over the whole frame, is divided by it. On
    :func:`rotdyn.simulate.simulate_atoms` with a bright background (noise
    everywhere, sd sqrt(3 / dose) carbon peaks) this reads 1.6 at dose 1
    (1.73 expected), 0.69 at dose 10 (0.55), 0.17 at dose 200 (0.13): the
    lattice's own fine detail adds about 0.1. On a dark background (annular
    dark field) the shot noise sits on the atoms and the median reads the
    background's read noise: set the training's ``dose`` there.

    Parameters
    ----------
    frames : (T, H, W) or (H, W) array
        Preprocessed frames.
    contrast : {"bright", "dark"}
        The particles' polarity (:func:`detect_contrast`).
    shape : str or None
        The particle shape, for the smallest object kept (atoms are small).
    n_frames, smooth, min_area, block
        As :func:`estimate_sizes`.

    Returns
    -------
    float
        NaN when no particle was found.

    Examples
    --------
    >>> from rotdyn.simulate import simulate_rods
    >>> frames = simulate_rods(size=96, frames=2, count=10, noise=0.3, seed=0).frames
    >>> round(estimate_noise(frames), 1), round(estimate_noise(-frames, "dark"), 1)
    (0.3, 0.3)

    Low-dose atoms, dark on a bright background (inverted first, as the ingest does):

    >>> from rotdyn.simulate import simulate_atoms
    >>> atoms = simulate_atoms(size=64, frames=10, background="bright", dose=1.0, seed=3).frames
    >>> 1.0 < estimate_noise(atoms.max() - atoms, "bright", "atoms") < 2.5  # sqrt(3) expected
    True
    """
    name = shape_name(shape) if shape else None
    smooth, min_area = _defaults(name, smooth, min_area)
    if name == "atom":
        return _atom_noise(frames, smooth, min_area, block)
    ratios = []
    for frame in _pick_frames(frames, n_frames):
        found, _, dither = _survey_frame(frame, contrast, smooth, min_area, block)
        if found.peak > 0:
            ratios.append(math.sqrt(max(found.noise ** 2 - dither, 0.0)) / found.peak)
    return float(np.median(ratios)) if ratios else math.nan


def _atom_noise(frames, smooth, min_area, block) -> float:
    """Noise sd of single frames over the atoms' height in the mean of the frames (:func:`estimate_noise`)."""
    frames = np.asarray(frames, dtype=np.float32)
    frames = frames[None] if frames.ndim == 2 else frames
    usable = [f for f in frames if np.isfinite(f).any()]
    if not usable:
        raise ValueError("no frame with finite pixels")
    sds = [noise_sd(np.where(np.isfinite(f), f, np.nanmedian(f))) for f in usable]
    mean = _mean_frame(np.stack(usable))
    found, _, _ = _survey_frame(usable[0] if mean is None else mean[0], "bright", smooth, min_area, block)
    # noise_sd takes quantisation (whole counts) into account itself
    return float(np.nanmedian(sds)) / found.peak if found.peak > 0 else math.nan


def measure(frames, simulator: str, keys) -> dict:
    """The sizes and noise ``keys`` of a simulator's particle, measured on frames with bright particles.

    ``keys`` are simulator parameters (``length``, ``length_sd``, ``width``,
    ``diameter``, ``spacing``, ``noise``) in the simulator's units: px, and
    noise relative to the particle height (:func:`estimate_sizes`,
    :func:`estimate_noise`). A key that could not be measured (no isolated
    particle, or no usable frame) is left out, with a warning.

    Parameters
    ----------
    frames : array_like
        ``(T, H, W)`` normalised frames, particles bright.
    simulator : str
        The simulator whose particle is measured (``rods``, ``cells``, ``spheres``, ``atoms``).
    keys : iterable of str
        The parameters to measure.

    Returns
    -------
    dict
        Each measured key's value (float); keys that could not be measured are left out.

    Examples
    --------
    >>> from rotdyn.simulate import simulate_rods
    >>> frames = simulate_rods(size=96, frames=2, count=10, length=20, width=6, seed=0).frames
    >>> m = measure(frames, "rods", ["length", "width"])
    >>> round(m["length"]), round(m["width"])
    (20, 6)
    """
    keys, found = list(keys), {}
    try:
        if any(key != "noise" for key in keys):
            found.update(estimate_sizes(frames, "bright", simulator))
        if "noise" in keys:
            found["noise"] = estimate_noise(frames, "bright", simulator)
    except ValueError as exc:  # no usable frame
        log.warning("cannot measure the particles: %s", exc)
    out = {key: float(found[key]) for key in keys if key in found and np.isfinite(found[key])}
    if missing := [key for key in keys if key not in out]:
        log.warning("could not measure %s of the %s (no isolated particle found); the simulator's defaults "
                    "stand in for them", ", ".join(missing), simulator)
    return out
