"""Preprocessing of ingested movies: frame range, AFM flattening, drift, averaging over time, normalisation.

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
# What drift_reference may be: see estimate_frame_drift.
DRIFT_REFERENCES = ("previous", "first")


def select_frames(frames: np.ndarray, first_frame: int = 0, last_frame: int | None = None) -> np.ndarray:
    """Frames ``first_frame`` .. ``last_frame`` inclusive (``None`` or -1: to the end).

    Parameters
    ----------
    frames : (T, Y, X) array.
    first_frame : index of the first frame kept, ``0 <= first_frame < T``.
    last_frame : index of the last frame kept (clipped to T - 1); None or -1 = the last.

    Returns
    -------
    A view of the kept frames.

    Raises
    ------
    ValueError if ``first_frame`` is outside the movie or after ``last_frame``.

    Examples
    --------
    >>> select_frames(np.arange(5)[:, None, None], 1, 3).ravel().tolist()
    [1, 2, 3]
    >>> select_frames(np.arange(5)[:, None, None], 3, -1).ravel().tolist()
    [3, 4]
    """
    n = len(frames)
    last = n - 1 if last_frame is None or last_frame < 0 else last_frame
    if not 0 <= first_frame < n:
        raise ValueError(f"first_frame={first_frame} is outside the movie's {n} frames")
    if last < first_frame:
        raise ValueError(f"last_frame={last_frame} comes before first_frame={first_frame}")
    return frames[first_frame : min(last, n - 1) + 1]


def bad_frames(frames: np.ndarray) -> np.ndarray:
    """Indices of frames without a single finite pixel, with no contrast, or saturated.

    Saturated: the 0.5 and 99.5 percentiles are equal, so one value holds at
    least 99 % of the pixels (99.5 % when it is the end of the range), as
    when an AFM tip loses the surface and the height sits at its floor.
    Flattening and normalising such a frame blew its few other pixels up
    by 10^13.

    Parameters
    ----------
    frames : (T, Y, X) array.

    Returns
    -------
    int array of frame indices.

    Examples
    --------
    >>> frames = np.random.default_rng(0).random((4, 20, 20))
    >>> frames[1] = np.nan
    >>> frames[2] = 7.0
    >>> frames[3] = -249.0
    >>> frames[3, 0, 0] = 0.5  # all pixels but one at the end of the range
    >>> bad_frames(frames).tolist()
    [1, 2, 3]
    """
    bad = []
    for i, frame in enumerate(frames):
        finite = frame[np.isfinite(frame)]
        if not finite.size:
            bad.append(i)
            continue
        lo, hi = np.percentile(finite, (0.5, 99.5))
        if lo == hi:
            bad.append(i)
    return np.array(bad, dtype=int)


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

    Parameters
    ----------
    image : (Y, X) height map; non-finite pixels are ignored.

    Returns
    -------
    (Y, X) float32 with the background at height 0.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:32, 0:32]
    >>> offsets = np.random.default_rng(0).normal(0, 1, (32, 1))  # one per scan line
    >>> tilted = 0.1 * xx + 0.05 * yy + offsets
    >>> float(np.abs(tilted).max()) > 4, float(np.abs(flatten_frame(tilted)).max()) < 0.01
    (True, True)
    """
    finite = np.isfinite(image)
    first = _lines_then_plane(image, finite)
    background = finite & ~_features(first)
    return _lines_then_plane(image, background).astype(np.float32)


def flatten(frames: np.ndarray, bad=None) -> np.ndarray:
    """:func:`flatten_frame` on every frame; unusable frames (:func:`bad_frames`) are passed through.

    Parameters
    ----------
    frames : (T, Y, X) array.
    bad : frame indices to pass through; default :func:`bad_frames` of ``frames``.

    Returns
    -------
    (T, Y, X) float32 copy.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:16, 0:16]
    >>> frames = np.stack([0.2 * xx, np.full((16, 16), np.nan)])
    >>> out = flatten(frames)
    >>> float(np.abs(out[0]).max()) < 1e-4, bool(np.isnan(out[1]).all())
    (True, True)
    """
    out = frames.astype(np.float32, copy=True)
    skip = set((bad_frames(frames) if bad is None else np.asarray(bad)).tolist())
    for i in range(len(frames)):
        if i not in skip:
            out[i] = flatten_frame(frames[i])
    return out


def normalize(frames: np.ndarray, method: str = "percentile", percentiles=(0.5, 99.5), bad=None) -> np.ndarray:
    """Per-frame intensity normalisation.

    ``percentile`` maps the given low/high percentiles to 0 and 1 (robust to
    hot pixels; values outside are kept, not clipped); ``minmax`` maps the
    range to [0, 1]; ``zscore`` gives zero mean and unit standard deviation;
    ``none`` returns the frames unchanged. Unusable frames (:func:`bad_frames`)
    pass through.

    Parameters
    ----------
    frames : (T, Y, X) array.
    method : one of :data:`NORMALIZE_METHODS`.
    percentiles : low and high percentile of the ``percentile`` method.
    bad : frame indices to pass through; default :func:`bad_frames` of ``frames``.

    Returns
    -------
    (T, Y, X) float32 copy.

    Raises
    ------
    ValueError for an unknown method.

    Examples
    --------
    >>> frames = np.array([[[2.0, 4.0], [6.0, 10.0]]])
    >>> normalize(frames, "minmax").ravel().tolist()
    [0.0, 0.25, 0.5, 1.0]
    >>> normalize(frames, "zscore").mean().round(6).item()
    0.0
    """
    return _scaled(frames, *intensity_scale(frames, method, percentiles, bad))


def _scaled(frames: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(frames - offset) / scale`` frame by frame, as a float32 copy."""
    return ((frames - offset[:, None, None]) / scale[:, None, None]).astype(np.float32)


def intensity_scale(frames: np.ndarray, method: str = "percentile", percentiles=(0.5, 99.5),
                    bad=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame offset and scale of :func:`normalize`: normalised = (frame - offset) / scale.

    ``scale`` is what one normalised unit is in the movie's own units (an
    AFM height in nm, counts of a camera): a sum over normalised pixels
    times the frame's scale is in the file's units again (``mass`` in
    :mod:`rotdyn.locate`). Unusable frames, method ``none`` and frames
    without contrast get offset 0 (``none``, unusable) and scale 1.

    Parameters
    ----------
    frames : (T, Y, X) array.
    method, percentiles, bad : as :func:`normalize`.

    Returns
    -------
    offset, scale : (T,) float64 arrays.

    Examples
    --------
    >>> offset, scale = intensity_scale(np.array([[[2.0, 4.0], [6.0, 10.0]]]), "minmax")
    >>> offset.tolist(), scale.tolist()
    ([2.0], [8.0])
    """
    if method not in NORMALIZE_METHODS:
        raise ValueError(f"normalize={method!r}: choose one of {', '.join(NORMALIZE_METHODS)}")
    offset, scale = np.zeros(len(frames)), np.ones(len(frames))
    if method == "none":
        return offset, scale
    good = np.setdiff1d(np.arange(len(frames)), bad_frames(frames) if bad is None else bad)
    for i in good:
        f = frames[i]
        if method == "zscore":
            lo, width = np.nanmean(f), np.nanstd(f)
        else:
            lo, hi = np.nanpercentile(f, (0.0, 100.0) if method == "minmax" else percentiles)
            width = hi - lo
        offset[i], scale[i] = lo, (width if width > 0 else 1.0)
    return offset, scale


def invert(frames: np.ndarray, method: str = "percentile") -> np.ndarray:
    """Normalised frames of the negated signal: dark particles on a bright background become bright.

    Equals ``normalize(-raw, method)`` for frames ``normalize(raw, method)``:
    the percentile and min-max scales map to ``1 - frames``, z-scores and
    unnormalised frames to ``-frames`` (flattening and drift correction do
    not depend on the sign).

    Parameters
    ----------
    frames : ndarray
        ``(T, H, W)`` frames normalised with ``method``.
    method : str
        The normalisation they went through (:data:`NORMALIZE_METHODS`); another raises ValueError.

    Returns
    -------
    ndarray
        ``(T, H, W)`` float32: ``1 - frames`` (percentile, minmax) or ``-frames`` (the others).

    Examples
    --------
    >>> raw = np.array([[[2.0, 4.0], [6.0, 10.0]]])
    >>> np.allclose(invert(normalize(raw, "minmax"), "minmax"), normalize(-raw, "minmax"))
    True
    >>> invert(np.array([[[0.5, -1.0]]]), "zscore").ravel().tolist()
    [-0.5, 1.0]
    """
    if method not in NORMALIZE_METHODS:
        raise ValueError(f"normalize={method!r}: choose one of {', '.join(NORMALIZE_METHODS)}")
    return (1 - frames if method in ("percentile", "minmax") else -frames).astype(np.float32)


def estimate_frame_drift(frames: np.ndarray, reference: str = "previous", upsample: int = 100,
                         bad=None) -> np.ndarray:
    """Shift ``(dy, dx)`` in pixels that registers each frame onto the first one.

    Phase correlation (scikit-image) with sub-pixel upsampling. ``previous``
    correlates each frame with the one before and sums the steps, which copes
    with content that changes slowly over a long movie; ``first`` correlates
    every frame with frame 0, which does not accumulate error when the scene
    is static. Unusable frames get the previous frame's shift. (Image drift
    between frames; the drift of particle tracks is
    :func:`rotdyn.link.estimate_track_drift`.)

    Parameters
    ----------
    frames : (T, Y, X) array.
    reference : one of :data:`DRIFT_REFERENCES`.
    upsample : sub-pixel precision, 1/``upsample`` px.
    bad : frame indices taken as unusable; default :func:`bad_frames` of ``frames``.

    Returns
    -------
    (T, 2) float array; row 0 is zero. :func:`apply_drift` with it undoes the drift.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scene = ndimage.gaussian_filter(rng.random((40, 40)), 2)
    >>> frames = np.stack([scene, np.roll(scene, (2, -3), axis=(0, 1))]).astype(np.float32)
    >>> estimate_frame_drift(frames).round(2).tolist()
    [[0.0, 0.0], [-2.0, 3.0]]
    """
    skip = set((bad_frames(frames) if bad is None else np.asarray(bad)).tolist())
    tracker = DriftTracker(reference, upsample)
    return np.array([tracker.step(frame, t in skip) for t, frame in enumerate(frames)]).reshape(-1, 2)


class DriftTracker:
    """:func:`estimate_frame_drift` one frame at a time, for movies read in chunks.

    Parameters
    ----------
    reference : one of :data:`DRIFT_REFERENCES`.
    upsample : sub-pixel precision, 1/``upsample`` px.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scene = ndimage.gaussian_filter(rng.random((40, 40)), 2)
    >>> tracker = DriftTracker()
    >>> [tracker.step(f, False).round(2).tolist() for f in (scene, np.roll(scene, (2, -3), axis=(0, 1)))]
    [[0.0, 0.0], [-2.0, 3.0]]
    """

    def __init__(self, reference: str = "previous", upsample: int = 100):
        if reference not in DRIFT_REFERENCES:
            raise ValueError(f"drift_reference={reference!r}: choose 'previous' or 'first'")
        self.reference, self.upsample = reference, upsample
        self.ref = None  # the frame the next one is registered onto (a copy), and whether it is usable
        self.ref_bad = False
        self.ref_shift = np.zeros(2)
        self.last = np.zeros(2)

    def step(self, frame: np.ndarray, bad: bool) -> np.ndarray:
        """The shift ``(dy, dx)`` of the next frame; an unusable frame (``bad``) gets the previous one's.

        Parameters
        ----------
        frame : (Y, X) array.
        bad : whether the frame is unusable.

        Returns
        -------
        (2,) float array.
        """
        if self.ref is None:  # the movie's first frame: the origin
            self.ref, self.ref_bad, shift = np.array(frame, copy=True), bad, np.zeros(2)
        elif bad or self.ref_bad:
            shift = self.last.copy()
        else:
            step, _, _ = phase_cross_correlation(_fill(self.ref), _fill(frame), upsample_factor=self.upsample,
                                                 normalization=None)
            shift = step + (self.ref_shift if self.reference == "previous" else 0.0)
            if self.reference == "previous":
                self.ref, self.ref_shift = np.array(frame, copy=True), shift
        self.last = shift
        return shift


def estimate_drift(*args, **kwargs) -> np.ndarray:
    """Deprecated name of :func:`estimate_frame_drift` (removed in the next release).

    Returns
    -------
    ndarray
        What :func:`estimate_frame_drift` returns: ``(T, 2)`` shift of each frame (px).

    Examples
    --------
    >>> frames = np.zeros((2, 8, 8), np.float32)
    >>> frames[:, 3, 3] = 1
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     estimate_drift(frames).tolist(), caught[0].category.__name__
    ([[0.0, 0.0], [0.0, 0.0]], 'DeprecationWarning')
    """
    warnings.warn("rotdyn.preprocess.estimate_drift is renamed estimate_frame_drift",
                  DeprecationWarning, stacklevel=2)
    return estimate_frame_drift(*args, **kwargs)


def _fill(image: np.ndarray) -> np.ndarray:
    """Replace non-finite pixels by the median so FFT-based steps stay finite."""
    return np.where(np.isfinite(image), image, np.nanmedian(image))


def apply_drift(frames: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift every frame by ``shifts[t]`` (cubic spline; edges repeat the border).

    Parameters
    ----------
    frames : (T, Y, X) array.
    shifts : (T, 2) shifts ``(dy, dx)`` in pixels, e.g. from :func:`estimate_frame_drift`.

    Returns
    -------
    (T, Y, X) float32.

    Examples
    --------
    >>> frames = np.zeros((1, 5, 5), np.float32)
    >>> frames[0, 2, 2] = 1
    >>> np.argwhere(apply_drift(frames, np.array([[1.0, -2.0]])) > 0.99).tolist()
    [[0, 3, 0]]
    """
    out = np.empty_like(frames, dtype=np.float32)
    for t, (frame, shift) in enumerate(zip(frames, shifts)):
        out[t] = ndimage.shift(frame, shift, order=3, mode="nearest") if np.any(shift) else frame
    return out


def average_frames(frames: np.ndarray, n: int = 1, bad=None) -> np.ndarray:
    """Each frame replaced by the mean of the ``n`` frames centred on it (a running mean over time).

    Frame ``t`` becomes the mean of frames ``t - (n - 1) // 2`` to
    ``t + n // 2``; near the ends the window keeps its ``n`` frames and
    shifts inside the movie (the first ``(n - 1) // 2`` frames are all the
    mean of frames ``0`` to ``n - 1``), so every frame has the same noise:
    the ensemble is trained at one noise level, measured on these frames.
    A movie shorter than ``n`` becomes its mean. Unusable frames (:func:`bad_frames`)
    are left out of every window and themselves pass through unchanged; a
    non-finite pixel is left out of its pixel's mean. The movie keeps its
    frames and their times: low-dose STEM series of a slow specimen are
    averaged so, at the price of blurring whatever changes faster than
    ``n`` frames. ``n = 1`` returns the frames unchanged (a float32 copy).

    Parameters
    ----------
    frames : (T, Y, X) array.
    n : frames per window, >= 1.
    bad : frame indices to leave out; default :func:`bad_frames` of ``frames``.

    Returns
    -------
    (T, Y, X) float32.

    Examples
    --------
    >>> movie = np.arange(5.0)[:, None, None] + np.array([[0.0, 0.1], [0.2, 0.3]])  # frame t: t at [0, 0]
    >>> average_frames(movie, 3)[:, 0, 0].tolist()  # the ends: the first and last 3 frames
    [1.0, 1.0, 2.0, 3.0, 3.0]
    >>> average_frames(movie, 2)[:, 0, 0].tolist()  # an even window reaches one frame further ahead
    [0.5, 1.5, 2.5, 3.5, 3.5]
    >>> movie[2] = np.nan  # an unusable frame: left out of the others' means, passed through
    >>> average_frames(movie, 3)[:, 0, 0].tolist()
    [0.5, 0.5, nan, 3.5, 3.5]
    """
    frames = np.asarray(frames)
    out, _ = _RunningMean(n, frames.shape[1:]).push(frames, bad_frames(frames) if bad is None else bad, final=True)
    return out


class _RunningMean:
    """:func:`average_frames` fed a chunk of frames at a time: holds the frames the next windows need.

    :meth:`push` returns the averaged frames whose windows are complete
    (all of them when ``final``), in order, and their bad flags.
    """

    def __init__(self, n: int, shape):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"average_frames={n!r}: a whole number of frames >= 1")
        self.n, self.before, self.after = int(n), (int(n) - 1) // 2, int(n) // 2
        self.held = np.zeros((0, *shape), np.float32)  # frames from index self.start on
        self.bad = np.zeros(0, bool)
        self.start = 0  # index of held[0] in the movie
        self.done = 0   # frames returned so far

    def window(self, t: int, total: int | None = None) -> tuple[int, int]:
        """Frames ``lo:hi`` averaged into frame ``t``: ``n`` centred on it, shifted inside a movie of ``total``."""
        lo = max(t - self.before, 0)
        if total is not None:
            lo = max(min(lo, total - self.n), 0)
        return lo, min(lo + self.n, total) if total is not None else lo + self.n

    def push(self, block: np.ndarray, bad, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        flags = np.zeros(len(block), bool)
        flags[np.asarray(bad, dtype=int)] = True
        if self.n == 1:
            self.done += len(block)
            return np.array(block, dtype=np.float32), np.flatnonzero(flags)
        self.held = np.concatenate([self.held, np.asarray(block, np.float32)])
        self.bad = np.concatenate([self.bad, flags])
        end = self.start + len(self.held)  # frames seen so far
        ready = self.done
        while ready < end and (final or self.window(ready)[1] <= end):  # hi grows with t: a prefix is ready
            ready += 1
        out = np.empty((ready - self.done, *self.held.shape[1:]), np.float32)
        for i, t in enumerate(range(self.done, ready)):
            k = t - self.start
            if self.bad[k]:
                out[i] = self.held[k]
                continue
            lo, hi = (j - self.start for j in self.window(t, end if final else None))
            window = self.held[lo:hi][~self.bad[lo:hi]]
            finite = np.isfinite(window)
            count = finite.sum(axis=0)
            total = np.where(finite, window, 0.0).sum(axis=0, dtype=np.float64)
            out[i] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        flags_out = np.flatnonzero(self.bad[self.done - self.start:ready - self.start])
        self.done = ready
        drop = max(ready - self.n - self.start, 0)  # frames no later window reaches (the last ones reach back n)
        self.held, self.bad, self.start = self.held[drop:], self.bad[drop:], self.start + drop
        return out, flags_out


def preprocess(
    frames: np.ndarray,
    *,
    flatten_afm: bool = False,
    normalize_method: str = "percentile",
    drift_correction: bool = False,
    drift_reference: str = "previous",
    first_frame: int = 0,
    last_frame: int | None = None,
    average: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the preprocessing chain in its fixed order: frame range, flattening, drift, averaging, normalisation.

    Order matters: flattening before drift estimation keeps scan-line offsets
    from dominating the correlation, and normalisation comes last so it sees
    the corrected background. The whole movie in one chunk of
    :func:`preprocess_chunks`, which gives the same frames a chunk at a time.

    Parameters
    ----------
    frames : (T, Y, X) array.
    flatten_afm : AFM flattening (:func:`flatten`).
    normalize_method : one of :data:`NORMALIZE_METHODS` (:func:`normalize`).
    drift_correction : register the frames (:func:`estimate_frame_drift`, :func:`apply_drift`).
    drift_reference : one of :data:`DRIFT_REFERENCES`.
    first_frame, last_frame : frame range (:func:`select_frames`).
    average : frames in the running mean over time (:func:`average_frames`); 1 = off.

    Returns
    -------
    frames : (T, Y, X) float32
    shifts : (T, 2) the drift shift (dy, dx) applied to each frame (zeros when off)
    bad : indices (in the output) of frames that were unusable and passed through

    Examples
    --------
    >>> movie = np.arange(4 * 2 * 2, dtype=float).reshape(4, 2, 2)
    >>> frames, shifts, bad = preprocess(movie, normalize_method="minmax", first_frame=1, last_frame=2)
    >>> frames.shape, frames[0].ravel().tolist(), shifts.tolist(), bad.tolist()
    ((2, 2, 2), [0.0, 0.3333333432674408, 0.6666666865348816, 1.0], [[0.0, 0.0], [0.0, 0.0]], [])
    """
    _, out, shifts, bad, _ = next(preprocess_chunks(
        frames, flatten_afm=flatten_afm, normalize_method=normalize_method, drift_correction=drift_correction,
        drift_reference=drift_reference, first_frame=first_frame, last_frame=last_frame, average=average,
        chunk=max(len(frames), 1)))
    return out, shifts, bad


def preprocess_chunks(frames, *, flatten_afm: bool = False, normalize_method: str = "percentile",
                      drift_correction: bool = False, drift_reference: str = "previous", first_frame: int = 0,
                      last_frame: int | None = None, average: int = 1, chunk: int = 32):
    """:func:`preprocess` a chunk of frames at a time, so a long movie never sits in memory whole.

    Every step but the drift and the averaging is one frame at a time; the
    drift's reference frame is carried from chunk to chunk
    (:class:`DriftTracker`), and so are the drift-corrected frames the next
    running means need (:func:`average_frames`: a chunk's last
    ``average // 2`` frames come out with the next chunk, the last
    ``average`` are held for the movie's end), so the frames
    equal :func:`preprocess`'s whatever the chunk.

    Parameters
    ----------
    frames : (T, Y, X) array, or a lazy one such as :class:`rotdyn.formats.FrameFile` (read ``chunk`` frames at a time).
    flatten_afm, normalize_method, drift_correction, drift_reference, first_frame, last_frame, average :
        See :func:`preprocess`.
    chunk : frames per chunk.

    Yields
    ------
    offset : int
        Index (in the output) of the chunk's first frame.
    frames : (n, Y, X) float32
        The chunk, preprocessed.
    shifts : (n, 2)
        Drift shifts applied (zeros when off).
    bad : int array
        Indices (in the chunk) of unusable frames, passed through.
    scale : (n,) float64
        Each frame's :func:`intensity_scale`: one unit of the chunk is this much of the movie's own.

    Examples
    --------
    >>> movie = np.random.default_rng(0).random((5, 8, 8))
    >>> chunks = list(preprocess_chunks(movie, normalize_method="minmax", chunk=2))
    >>> [(offset, len(f)) for offset, f, *_ in chunks]
    [(0, 2), (2, 2), (4, 1)]
    >>> bool((np.concatenate([f for _, f, *_ in chunks]) == preprocess(movie, normalize_method="minmax")[0]).all())
    True
    >>> averaged = list(preprocess_chunks(movie, normalize_method="minmax", average=3, chunk=2))
    >>> [(offset, len(f)) for offset, f, *_ in averaged]  # frame 0 needs frames 0-2: the first chunk waits
    [(0, 3), (3, 2)]
    >>> whole = preprocess(movie, normalize_method="minmax", average=3)[0]
    >>> bool((np.concatenate([f for _, f, *_ in averaged]) == whole).all())
    True
    """
    if chunk < 1:
        raise ValueError(f"chunk={chunk}: at least one frame per chunk")
    kept = select_frames(frames, first_frame, last_frame)  # a view: nothing read yet
    tracker = DriftTracker(drift_reference) if drift_correction and len(kept) > 1 else None
    running = _RunningMean(average, kept.shape[1:])
    held_shifts = np.zeros((0, 2))
    for offset in range(0, len(kept), chunk):
        block = np.array(kept[offset:offset + chunk], dtype=np.float32)
        # decided on the raw frames: flattening turns a saturated frame into float noise that looks usable
        bad = bad_frames(block)
        if flatten_afm:
            block = flatten(block, bad)
        shifts = np.zeros((len(block), 2))
        if tracker is not None:
            skip = set(bad.tolist())
            shifts = np.array([tracker.step(frame, t in skip) for t, frame in enumerate(block)]).reshape(-1, 2)
            block = apply_drift(block, shifts)
        start = running.done
        block, bad = running.push(block, bad, final=offset + chunk >= len(kept))
        held_shifts = np.concatenate([held_shifts, shifts])
        shifts, held_shifts = held_shifts[:len(block)], held_shifts[len(block):]
        if not len(block):
            continue
        lo, scale = intensity_scale(block, normalize_method, bad=bad)
        block = _scaled(block, lo, scale)
        yield start, block, shifts, np.union1d(bad, bad_frames(block)).astype(int), scale
