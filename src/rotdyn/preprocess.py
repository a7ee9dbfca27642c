"""Preprocessing of ingested movies: frame range, AFM flattening, drift, normalisation.

All functions take and return ``(frame, y, x)`` float32 arrays. Frames that are
entirely non-finite (a dropped frame, a saturated scan) pass through unchanged
and are reported, so one bad frame never stops a movie.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

NORMALIZE_METHODS = ("none", "percentile", "minmax", "zscore")


def select_frames(frames: np.ndarray, first_frame: int = 0, last_frame: int | None = None) -> np.ndarray:
    """Frames ``first_frame`` .. ``last_frame`` inclusive (``None`` or -1: to the end)."""
    n = len(frames)
    last = n - 1 if last_frame is None or last_frame < 0 else last_frame
    if not 0 <= first_frame < n:
        raise ValueError(f"first_frame={first_frame} is outside the movie's {n} frames")
    if last < first_frame:
        raise ValueError(f"last_frame={last_frame} comes before first_frame={first_frame}")
    return frames[first_frame : min(last, n - 1) + 1]


def bad_frames(frames: np.ndarray) -> np.ndarray:
    """Indices of frames without a single finite pixel or with no contrast at all."""
    finite = np.isfinite(frames).any(axis=(1, 2))
    flat = np.array([np.nanmax(f) == np.nanmin(f) if ok else True for f, ok in zip(frames, finite)])
    return np.flatnonzero(flat)


def _plane(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Least-squares plane through the ``background`` pixels of ``image``."""
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    design = np.column_stack([np.ones(image.size), xx.ravel() / nx, yy.ravel() / ny])
    use = (background & np.isfinite(image)).ravel()
    if use.sum() < 3:
        return np.zeros_like(image)
    coef, *_ = np.linalg.lstsq(design[use], image.ravel()[use].astype(np.float64), rcond=None)
    return (design @ coef).reshape(image.shape)


def _lines_then_plane(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Subtract each scan line's background median, then a background plane.

    A plane comes off first too: with a tilt along the fast axis, a line's
    median depends on which of its pixels are background, which differs from
    line to line.
    """
    image = image - _plane(image, background)
    masked = np.where(background, image, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lines without background
        medians = np.nanmedian(masked, axis=1, keepdims=True)
    medians = np.where(np.isfinite(medians), medians, np.nanmedian(masked))
    lines = image - medians
    return lines - _plane(lines, background)


def _features(image: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Pixels standing out from the background by more than ``clip`` robust sd."""
    centre = np.nanmedian(image)
    sd = 1.4826 * np.nanmedian(np.abs(image - centre))
    if not sd > 0:
        return np.zeros(image.shape, dtype=bool)
    return ndimage.binary_dilation(np.abs(image - centre) > clip * sd, iterations=2)


def flatten_frame(image: np.ndarray) -> np.ndarray:
    """AFM flattening of one frame: scan-line medians, then a plane; twice.

    The line medians remove scan-line offsets (and the tilt along the slow
    axis), the plane the tilt along the fast axis. A first pass over all
    pixels finds the particles; the second pass repeats both steps on the
    background alone, as TopoStats and Gwyddion do, because particles in a
    tilted line shift its median.
    """
    finite = np.isfinite(image)
    first = _lines_then_plane(image, finite)
    background = finite & ~_features(first)
    return _lines_then_plane(image, background).astype(np.float32)


def flatten(frames: np.ndarray) -> np.ndarray:
    """:func:`flatten_frame` on every frame; unusable frames are passed through."""
    out = frames.astype(np.float32, copy=True)
    skip = set(bad_frames(frames).tolist())
    for i in range(len(frames)):
        if i not in skip:
            out[i] = flatten_frame(frames[i])
    return out


def normalize(frames: np.ndarray, method: str = "percentile", percentiles=(0.5, 99.5)) -> np.ndarray:
    """Per-frame intensity normalisation.

    ``percentile`` maps the given low/high percentiles to 0 and 1 (robust to
    hot pixels; values outside are kept, not clipped); ``minmax`` maps the
    range to [0, 1]; ``zscore`` gives zero mean and unit standard deviation;
    ``none`` returns the frames unchanged.
    """
    if method not in NORMALIZE_METHODS:
        raise ValueError(f"normalize={method!r}: choose one of {', '.join(NORMALIZE_METHODS)}")
    frames = frames.astype(np.float32, copy=True)
    if method == "none":
        return frames
    good = np.setdiff1d(np.arange(len(frames)), bad_frames(frames))
    for i in good:
        f = frames[i]
        if method == "zscore":
            lo, scale = np.nanmean(f), np.nanstd(f)
        else:
            q = (0.0, 100.0) if method == "minmax" else percentiles
            lo, hi = np.nanpercentile(f, q)
            scale = hi - lo
        frames[i] = (f - lo) / scale if scale > 0 else f - lo
    return frames


def estimate_drift(frames: np.ndarray, reference: str = "previous", upsample: int = 100) -> np.ndarray:
    """Shift ``(dy, dx)`` in pixels that registers each frame onto the first one.

    Phase correlation (scikit-image) with sub-pixel upsampling. ``previous``
    correlates each frame with the one before and sums the steps, which copes
    with content that changes slowly over a long movie; ``first`` correlates
    every frame with frame 0, which does not accumulate error when the scene
    is static. Unusable frames get the previous frame's shift.
    """
    if reference not in ("previous", "first"):
        raise ValueError(f"drift_reference={reference!r}: choose 'previous' or 'first'")
    skip = set(bad_frames(frames).tolist())
    shifts = np.zeros((len(frames), 2))
    ref_index = 0
    for t in range(1, len(frames)):
        if t in skip or ref_index in skip:
            shifts[t] = shifts[t - 1]
            continue
        step, _, _ = phase_cross_correlation(
            _fill(frames[ref_index]), _fill(frames[t]), upsample_factor=upsample, normalization=None
        )
        shifts[t] = step + (shifts[ref_index] if reference == "previous" else 0.0)
        if reference == "previous":
            ref_index = t
    return shifts


def _fill(image: np.ndarray) -> np.ndarray:
    """Replace non-finite pixels by the median so FFT-based steps stay finite."""
    return np.where(np.isfinite(image), image, np.nanmedian(image))


def apply_drift(frames: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift every frame by ``shifts[t]`` (cubic spline; edges repeat the border)."""
    out = np.empty_like(frames, dtype=np.float32)
    for t, (frame, shift) in enumerate(zip(frames, shifts)):
        out[t] = ndimage.shift(frame, shift, order=3, mode="nearest") if np.any(shift) else frame
    return out


def preprocess(
    frames: np.ndarray,
    *,
    flatten_afm: bool = False,
    normalize_method: str = "percentile",
    drift_correction: bool = False,
    drift_reference: str = "previous",
    first_frame: int = 0,
    last_frame: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the preprocessing chain in its fixed order.

    Order matters: flattening before drift estimation keeps scan-line offsets
    from dominating the correlation, and normalisation comes last so it sees
    the corrected background.

    Returns
    -------
    frames : (T, Y, X) float32
    shifts : (T, 2) the drift shift (dy, dx) applied to each frame (zeros when off)
    bad : indices (in the output) of frames that were unusable and passed through
    """
    frames = select_frames(np.asarray(frames, dtype=np.float32), first_frame, last_frame)
    if flatten_afm:
        frames = flatten(frames)
    shifts = np.zeros((len(frames), 2))
    if drift_correction and len(frames) > 1:
        shifts = estimate_drift(frames, drift_reference)
        frames = apply_drift(frames, shifts)
    frames = normalize(frames, normalize_method)
    return frames, shifts, bad_frames(frames)
