"""Particles in segmentation probability maps: classify pixels, split touching particles, measure.

The ensemble's mean probability of each foreground class (``probability.nc``)
becomes one row per particle: a sub-pixel centroid, size, axis orientation,
class and how sure the ensemble was about it. Touching particles are split by a
marker-controlled watershed; which markers to use depends on the particles:

* ``split="valley"`` (default; rods and other elongated particles): markers
  are the maxima of the (lightly smoothed) probability that stand at least
  ``min_valley`` above the saddle to any higher maximum (h-maxima). The
  ensemble is trained to leave a valley between touching particles, so each
  of them keeps its own maximum, while the shallow dips that noise leaves
  inside one particle do not cut it in two. The watershed of ``-probability``
  then grows the markers over the mask. Measured on the demo rods, this splits
  as many touching pairs as fixed-threshold cores but keeps noisy rods whole
  (at noise 0.25: precision 0.98 against 0.48 with cores above 0.9).
* ``split="neck"`` (cells that divide, chains): the valley split, then each
  particle is cut where its width narrows: markers are the maxima of the
  (smoothed) distance transform of each particle that stand ``min_neck`` px
  above the saddle to any higher one. Two cells end to end keep a high
  probability across their septum, so no valley parts them, but the pair
  narrows there; a straight or gently bent cell has one ridge of even
  width. On the real bacteria (6 hand-checked frames, 102 whole cells)
  precision and recall rise from 0.85 and 0.72 (``valley``) to 0.97 and
  0.94 (``min_neck`` 0.75 px, ``smooth`` 1 px; 0.6-0.9 px: 0.93-0.97,
  0.91-0.94).
* ``max_area_ratio`` (any split; the ``cells`` kind sets 1.65): a particle
  of at least this many times its frame's median area is round(area /
  median) particles in contact that no valley or neck parted (side by side,
  in a T, end to end across a faded septum), cut into that many straight
  pieces (k-segments of its pixels). On the real bacteria, with ``neck``:
  precision and recall 0.95 and 0.90 -> 1.00 and 1.00 (102 hand-checked
  cells, the default ensemble; 1.6-1.7 alike, single cells reach 1.58 x
  the median, pairs from 1.73 x).
* ``split="centre"`` (crowded, crossing or overlapping particles): the
  ensemble was trained with a class of particle centres
  (``training_set.centres``); markers are the maxima of its (lightly
  smoothed) probability that reach ``min_centre`` and stand ``min_valley``
  above the saddle to any higher one: one per particle, also where two
  particles cross and no valley parts them. The particle's pixels are those
  of its class and the centre class; the watershed of ``-probability`` grows
  the markers over them. Where a particle's centroid and that of the centre
  probability in it differ by more than a pixel (crossing particles, whose
  pixels are shared unevenly), ``x, y`` is the latter. A piece of the mask
  without a centre is kept only if it has at least half the median
  particle's area (a particle whose centre was missed), not when it is the
  end of a crossing particle cut off by the threshold. Measured on crowded
  rods from a generator the networks never saw (``benchmarks/segmentation.py``),
  this finds 0.85 of the rods whose neighbour is closer than half a length,
  against 0.24-0.31 with ``valley``.
* ``split="probability"``: markers are the cores where the probability
  exceeds ``marker_threshold``. Right for maps whose valleys between touching
  particles are shallow but never dip inside a particle (e.g. smoothed masks).
* ``split="distance"`` (round particles: atoms, spheres): markers are maxima of
  the distance transform of the mask, at least ``min_distance`` apart; splits
  convex blobs at their necks even without a probability valley, but cuts
  elongated or bent particles into pieces.
* ``split="none"``: plain connected components (particles never touch, or
  touching ones should count as one).

Components are 4-connected, so particles meeting only diagonally stay apart.

With the movie's frames, ``mass_diameter`` adds each particle's ``mass``,
trackpy's integrated brightness: the frame band-passed as ``trackpy.locate``
does (:func:`trackpy.preprocessing.bandpass`, noise 1 px, background over
the diameter) summed over a disc of that diameter at the particle's centre,
in the movie's own units (:func:`rotdyn.preprocess.intensity_scale` undoes
the normalisation), so ``min_mass`` is trackpy's ``minmass``: in bright
field, colloids out of the focal plane are dim and a trackpy user leaves
them out this way. On the real colloids (``bulk_water``, 20 frames), the
trackpy walkthrough's ``diameter=9, minmass=100`` as ``mass_diameter: 9,
min_mass: 100`` takes precision against ``trackpy.locate`` with those
settings from 0.64 to 0.82 at recall 0.98 -> 0.975; most of what stays
extra are colloids in contact, less than trackpy's ``separation`` (10 px)
apart, of which trackpy keeps one.

Conventions: ``x`` is the column, ``y`` the row, in pixels from the centre of
the top-left pixel; ``orientation`` is the axis angle in [0, pi), counter-
clockwise from +x as displayed (y up on screen).
"""
from __future__ import annotations

import inspect
import logging
from contextlib import nullcontext

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.measure import regionprops_table
from skimage.morphology import h_maxima, reconstruction
from skimage.segmentation import expand_labels, watershed
from sklearn.cluster import KMeans
from trackpy.masks import binary_mask
from trackpy.preprocessing import bandpass

from .contracts import CENTRE_CLASS
from .store import provenance, write_netcdf

log = logging.getLogger(__name__)

SPLIT_METHODS = ("valley", "neck", "centre", "probability", "distance", "none")
ORPHAN_SHARE = 0.5  # split="centre": a piece without a centre is a particle if it has this share of the median area
MIN_PEERS = 5  # max_area_ratio: a frame needs this many particles of a class for their median area to be typical
BANDPASS_THRESHOLD = 1 / 255  # trackpy.locate's for float frames, in the movie's units: fainter is background
CENTRE_AGREEMENT = 1.0  # px: a particle's own centroid this near its centre's is the more precise one
MIN_CENTRE_MASS = 1.0  # px of centre probability: less, and the particle's own centroid is used
COLUMNS = {  # name -> dtype of one row per particle, as locate_frame returns them
    "x": np.float64, "y": np.float64, "area": np.int64, "major_axis": np.float64,
    "minor_axis": np.float64, "orientation": np.float64, "eccentricity": np.float64,
    "class": np.int64, "mean_probability": np.float64, "mean_variance": np.float64,
    "touches_edge": bool,
}


# ------------------------------------------------------------------ one frame
def axis_angle_from_skimage(orientation):
    """Project axis angle in [0, pi) from skimage's regionprops ``orientation``.

    skimage measures the major axis from the row axis (+y down): its direction
    is ``(d_row, d_col) = (cos o, sin o)``. The project angle of that direction
    is ``atan2(-d_row, d_col) = o - pi/2``; as an axis it is taken modulo pi.

    Parameters
    ----------
    orientation : float or array_like
        skimage's angle of the major axis from the row axis, radians, in [-pi/2, pi/2].

    Returns
    -------
    ndarray
        The axis angle, radians in [0, pi), counter-clockwise from +x as displayed.

    Examples
    --------
    A vertical axis (along the rows) is at 90 deg, a horizontal one at 0:

    >>> import numpy as np
    >>> np.degrees(axis_angle_from_skimage([0.0, np.pi / 2, -np.pi / 4])).round(1).tolist()
    [90.0, 0.0, 45.0]
    """
    angle = np.mod(np.asarray(orientation, dtype=float) + np.pi / 2, np.pi)
    return np.where(angle >= np.pi, 0.0, angle)  # mod of a tiny negative rounds up to pi


def _components_without_markers(markers, mask):
    """Add each connected component of ``mask`` that holds no marker as a marker of its own.

    A faint particle whose probability never reaches the marker threshold is
    still one particle, not background.
    """
    components, n = ndimage.label(mask)
    if n == 0:
        return markers
    marked = np.zeros(n + 1, bool)
    marked[components[markers > 0]] = True
    orphan = ~marked[components] & mask
    extra, _ = ndimage.label(orphan)
    return np.where(orphan, extra + markers.max(), markers)


def _with_whole_orphans(labels, mask, share=ORPHAN_SHARE):
    """``labels`` plus each component of ``mask`` without a label that is as large as a particle.

    With centre markers, a piece of the mask without a centre is mostly the
    end of a crossing particle cut off by the threshold (a false particle if
    kept); one at least ``share`` of the median particle's area is a whole
    particle whose centre the ensemble missed, and is kept.
    """
    orphans, n = ndimage.label(mask & (labels == 0))
    if n == 0:
        return labels
    areas = np.bincount(labels.ravel())[1:]
    floor = share * np.median(areas[areas > 0]) if (areas > 0).any() else 0
    big = np.flatnonzero(np.bincount(orphans.ravel())[1:] >= floor) + 1
    keep = np.isin(orphans, big)
    extra = ndimage.label(keep)[0]
    return np.where(keep, extra + labels.max(), labels)


def _domes(image: np.ndarray, h: float) -> np.ndarray:
    """Pixels of the h-domes of ``image``: the tops, ``h`` deep, of its maxima.

    Two maxima share one dome when the saddle between them is less than ``h``
    below the lower one, and have separate domes when the valley is deeper:
    one connected dome per particle. (skimage's h_maxima keeps both of two
    maxima of exactly equal height however shallow the dip between them.)
    """
    image = image.astype(np.float64)
    floor = reconstruction(image - h, image, method="dilation")
    return image - floor > 1e-6 * h


def _peak_markers(image, mask, min_valley, smooth, min_peak=0.0):
    """Markers at the maxima of ``image`` (smoothed) that stand ``min_valley`` above the saddle to any
    higher one and reach ``min_peak``."""
    smoothed = ndimage.gaussian_filter(image, smooth) if smooth > 0 else image
    domes = ndimage.label(_domes(smoothed, min_valley) & mask, structure=np.ones((3, 3)))[0]
    # Seed from the top of each dome only, so the watershed, not the dome's
    # outline, draws the border between touching particles.
    peaks = h_maxima(smoothed.astype(np.float64), min_valley, footprint=np.ones((3, 3)))
    return np.where((peaks > 0) & (smoothed >= min_peak), domes, 0)


def _contacts(labels: np.ndarray) -> np.ndarray:
    """Pixels of a particle that touch another particle (not the background)."""
    apart = np.where(labels > 0, labels, labels.max() + 1)  # the background never differs from a neighbour
    return (labels > 0) & (ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(apart, 3))


def _neck_split(labels, mask, min_neck, smooth):
    """``labels`` with every particle cut where its width narrows by ``min_neck`` px (end-to-end pairs).

    The width is the distance transform of the particles, each on its own
    (pixels touching a neighbour count as background); its maxima that stand
    ``min_neck`` above the saddle to any higher one seed a watershed of its
    negative. A straight particle of even width has one ridge; two cells in
    a chain have a ridge each and a neck between them.
    """
    apart = mask & ~_contacts(labels)
    distance = ndimage.distance_transform_edt(apart)
    distance = ndimage.gaussian_filter(distance, smooth) if smooth > 0 else distance
    markers = _peak_markers(distance, apart, min_neck, 0.0)  # smoothed once, for markers and watershed alike
    return watershed(-distance, _components_without_markers(markers, mask), mask=mask)


def _segments_of(pixels: np.ndarray, n: int, rounds: int = 20) -> np.ndarray:
    """Which of ``n`` straight pieces each of ``pixels`` (``(N, 2)`` coordinates) belongs to: k-segments.

    Started from k-means; then each piece is the segment along its pixels'
    principal axis, as long as a uniform rod of their spread (half-length
    sqrt(3) sd), and every pixel goes to the nearest segment, until nothing
    moves. K-means alone cuts a T of two cells diagonally; segments follow
    the cells (round pieces have short segments: k-means again).
    """
    parts = KMeans(n, n_init=4, random_state=0).fit_predict(pixels)
    points = pixels.astype(np.float64)
    for _ in range(rounds):
        distance = np.full((len(points), n), np.inf)
        for k in range(n):
            own = points[parts == k]
            if len(own) < 2:
                continue
            centre = own.mean(axis=0)
            spread, axes = np.linalg.eigh(np.cov(own.T))
            axis = axes[:, -1]
            half = np.sqrt(3.0 * max(spread[-1], 0.0))
            along = np.clip((points - centre) @ axis, -half, half)
            distance[:, k] = np.linalg.norm(points - centre - along[:, None] * axis, axis=1)
        moved = distance.argmin(axis=1)
        if np.array_equal(moved, parts) or len(np.unique(moved)) < n:
            break
        parts = moved
    return parts


def _split_oversized(labels: np.ndarray, ratio: float | None, min_peers: int = MIN_PEERS) -> np.ndarray:
    """``labels`` with each particle of at least ``ratio`` x the median area cut into round(area / median) parts.

    Two cells side by side, in an L or a T, or end to end across a faded
    septum, show neither a probability valley nor a neck; their area gives
    them away. The parts are :func:`_segments_of` the particle's pixels.
    Frames with fewer than ``min_peers`` particles have no median to trust
    and are kept.
    """
    areas = np.bincount(labels.ravel())[1:]
    present = np.flatnonzero(areas) + 1
    if ratio is None or len(present) < min_peers:
        return labels
    median = float(np.median(areas[present - 1]))
    out, top = labels.copy(), int(labels.max())
    for label in present[areas[present - 1] >= ratio * median]:
        pixels = np.argwhere(labels == label)
        parts = _segments_of(pixels, int(round(len(pixels) / median)))
        for part in range(1, parts.max() + 1):  # part 0 keeps the label
            top += 1
            out[tuple(pixels[parts == part].T)] = top
    return out


def _segment(prob, mask, split, marker_threshold, min_distance, min_marker_area, min_valley, smooth,
             centres=None, min_centre=0.0, min_neck=1.0):
    """Instance labels (0 background) of the particles of one class."""
    if split == "none":
        return ndimage.label(mask)[0]
    if split in ("valley", "neck"):
        markers = _peak_markers(prob, mask, min_valley, smooth)
        labels = watershed(-prob, _components_without_markers(markers, mask), mask=mask)
        return _neck_split(labels, mask, min_neck, smooth) if split == "neck" else labels
    if split == "centre":
        labels = watershed(-prob, _peak_markers(centres, mask, min_valley, smooth, min_centre), mask=mask)
        return _with_whole_orphans(labels, mask)
    if split == "probability":
        markers = ndimage.label(mask & (prob > marker_threshold))[0]
        small = np.bincount(markers.ravel()) < min_marker_area  # noise specks, not cores
        small[0] = True
        markers = _components_without_markers(np.where(small[markers], 0, markers), mask)
        return watershed(-prob, markers, mask=mask)
    distance = ndimage.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=ndimage.label(mask)[0],
                           exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    markers = _components_without_markers(markers, mask)
    return watershed(-distance, markers, mask=mask)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in COLUMNS.items()})


def _measure(labels, prob, variance, cls, edge_margin, centres=None):
    """One row per label of ``labels``: weighted centroid, ellipse, confidence, edge contact.

    With ``centres`` (a centre-class probability), a particle whose centroid
    lies more than :data:`CENTRE_AGREEMENT` px from the centroid of the centre
    probability in it takes the latter: where particles cross, the pixels a
    particle was given are not symmetric about its centre (or hold a second
    particle whose centre was missed), but the centre the networks saw is.
    Where the two agree, the centroid of all the particle's pixels is the
    more precise.
    """
    props = regionprops_table(
        labels, intensity_image=prob,
        properties=("label", "area", "bbox", "axis_major_length", "axis_minor_length",
                    "orientation", "eccentricity", "intensity_mean"))
    # The weighted centroid also takes a one-pixel rim of background: the threshold cuts the
    # soft edge unevenly on the two sides of a particle at a sub-pixel position, biasing it.
    rim = expand_labels(labels, distance=1)
    centroids = np.array(ndimage.center_of_mass(prob, rim, props["label"])).reshape(-1, 2)
    if centres is not None and len(centroids):
        mass = np.asarray(ndimage.sum(centres, rim, props["label"]))
        with np.errstate(invalid="ignore", divide="ignore"):  # no centre mass: NaN, replaced below
            at = np.array(ndimage.center_of_mass(centres, rim, props["label"])).reshape(-1, 2)
        agree = np.hypot(*(at - centroids).T) <= CENTRE_AGREEMENT
        centroids = np.where(((mass > MIN_CENTRE_MASS) & ~agree)[:, None], at, centroids)
    H, W = labels.shape
    m = edge_margin
    touches = ((props["bbox-0"] < m) | (props["bbox-1"] < m)
               | (props["bbox-2"] > H - m) | (props["bbox-3"] > W - m))
    table = pd.DataFrame({
        "x": centroids[:, 1], "y": centroids[:, 0],
        "area": props["area"], "major_axis": props["axis_major_length"],
        "minor_axis": props["axis_minor_length"],
        "orientation": axis_angle_from_skimage(props["orientation"]),
        "eccentricity": props["eccentricity"], "class": cls,
        "mean_probability": props["intensity_mean"],
        "mean_variance": ndimage.mean(variance, labels, props["label"]),
        "touches_edge": touches,
    })
    return table.astype(COLUMNS)


def _check(split, threshold, marker_threshold, min_valley, min_centre=0.0, min_neck=1.0, max_area_ratio=None):
    if split not in SPLIT_METHODS:
        raise ValueError(f"split must be one of {SPLIT_METHODS}, got {split!r}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if split == "probability" and not threshold <= marker_threshold < 1:
        raise ValueError(f"marker_threshold must be in [threshold, 1), got {marker_threshold!r}")
    if split == "centre" and not 0 <= min_centre < 1:
        raise ValueError(f"min_centre must be in [0, 1), got {min_centre!r}")
    if split in ("valley", "neck", "centre") and not 0 < min_valley < 1:
        raise ValueError(f"min_valley must be in (0, 1), got {min_valley!r}")
    if split == "neck" and not min_neck > 0:
        raise ValueError(f"min_neck must be > 0 px, got {min_neck!r}")
    if max_area_ratio is not None and not max_area_ratio > 1:
        raise ValueError(f"max_area_ratio must be > 1 (times the median area) or None, got {max_area_ratio!r}")


def locate_frame(mean, variance, classes, centres=None, *, threshold=0.5, split="valley", min_valley=0.25, smooth=1.0,
                 min_neck=1.0, min_centre=0.3, marker_threshold=0.9, min_distance=3, min_marker_area=4, min_area=10,
                 max_area=None, max_area_ratio=None, edge_margin=1) -> pd.DataFrame:
    """Particles in one frame's probability maps.

    Parameters
    ----------
    mean, variance : ndarray, (C, H, W)
        Ensemble mean probability and its variance for each foreground class.
        NaN counts as probability 0.
    classes : sequence of int
        The class label of each of the C maps.
    centres : ndarray (H, W), optional
        The ensemble mean probability of the centre class (``split="centre"``),
        kept out of ``mean``; its pixels count as the particles' own.
    threshold : float
        A pixel belongs to a particle when the probability of any particle
        there (the sum over the foreground classes) exceeds ``threshold``,
        and then to the most probable class; else to the background. On the
        low-dose STEM atoms of ``benchmarks/real_movies.py`` the ensemble
        splits some atoms and dopants between the two classes: the sum finds
        recall 0.973 where the most probable class alone found 0.964
        (dopants 0.975 where 0.65), at precision 0.984 (0.986).
    split : {"valley", "neck", "centre", "probability", "distance", "none"}
        How touching particles are split (see the module docstring).
    min_valley : float
        ``split="valley"``: how far (in probability) the map must dip between
        two maxima for them to be two particles; ``split="centre"``: the same
        for the centre probability's maxima (and a lone one must reach it).
    smooth : float
        ``split="valley"``, ``"neck"`` and ``"centre"``: sd (px) of the
        Gaussian applied before finding maxima, so pixel noise makes no maxima.
    min_neck : float
        ``split="neck"``: how much (px) a particle's half-width must narrow
        between two wider parts for them to be two particles.
    min_centre : float
        ``split="centre"``: a centre's (smoothed) probability must reach this;
        fainter maxima are the ensemble's doubts at the ends of crossing
        particles, not centres.
    marker_threshold : float
        ``split="probability"``: watershed markers are the regions above it.
        It must lie above the saddle between touching particles and below
        each particle's peak: on Gaussian-smoothed (sigma 0.8-1.2 px) masks of
        rods 0.75 px apart, saddles reach 0.92 and peaks fall to 0.96 at
        sigma 1.2, hence 0.9 (0.8 merges a third of the touching pairs).
    min_distance : int
        ``split="distance"``: minimum distance between markers, px.
    min_marker_area : int
        ``split="probability"``: cores smaller than this (px) are noise, not
        markers.
    min_area, max_area : int or None
        Particles outside [min_area, max_area] px are dropped.
    max_area_ratio : float or None
        A particle of at least this many times the frame's median area (of
        its class, in frames with at least 5 of them) is taken for
        round(area / median) touching particles that no valley or neck
        parted, and cut into as many straight pieces (k-segments of its
        pixels). None: never.
    edge_margin : int
        ``touches_edge`` is True for a particle with a pixel in the outer
        ``edge_margin`` rows or columns (1: on the border itself; 0: never).

    Returns
    -------
    DataFrame
        One row per particle, columns :data:`COLUMNS`: probability-weighted
        centroid ``x, y`` (over the particle and a one-pixel rim of
        background, so that the threshold does not bias it); ``area`` (px); ``major_axis, minor_axis``, the
        lengths of the ellipse with the same second moments as the (binary)
        particle, and its ``eccentricity``; ``orientation``, the major axis
        angle in [0, pi) (project convention); ``class``;
        ``mean_probability, mean_variance`` over its pixels; ``touches_edge``.

    Examples
    --------
    One horizontal 3 x 10 px rod of class 1:

    >>> import numpy as np
    >>> mean = np.zeros((1, 16, 16), np.float32)
    >>> mean[0, 4:7, 3:13] = 1.0
    >>> rod = locate_frame(mean, np.zeros_like(mean), [1]).iloc[0]
    >>> float(rod.x), float(rod.y), int(rod.area), int(rod["class"]), round(float(rod.orientation), 3)
    (7.5, 5.0, 30, 1, 0.0)
    """
    _check(split, threshold, marker_threshold, min_valley, min_centre, min_neck, max_area_ratio)
    mean = np.nan_to_num(np.asarray(mean, np.float32), nan=0.0)
    variance = np.nan_to_num(np.asarray(variance, np.float32), nan=0.0)
    if mean.ndim != 3 or mean.shape != variance.shape or len(classes) != len(mean):
        raise ValueError(f"mean and variance must be (C, H, W) with C = len(classes); got "
                         f"{mean.shape}, {variance.shape}, {len(classes)} classes")
    if split == "centre" and centres is None:
        raise ValueError("split 'centre' needs the centre class's probability: train the ensemble with "
                         "training_set.centres: true, or choose another split")
    # a pixel is a particle's when the probability of any particle there exceeds the threshold: with two
    # classes (atoms and dopants) the ensemble may split it between them, neither reaching it alone
    particle = mean.sum(axis=0)
    if centres is not None:
        centres = np.nan_to_num(np.asarray(centres, np.float32), nan=0.0)
        if centres.shape != mean.shape[1:]:
            raise ValueError(f"centres {centres.shape} must be (H, W) = {mean.shape[1:]}")
        mean = mean + centres  # the centre pixels are the particles' own (for every class: a shared marker map)
        particle = particle + centres
    best = mean.argmax(axis=0)
    foreground = particle > threshold
    tables = []
    for k, cls in enumerate(classes):
        mask = foreground & (best == k)
        if not mask.any():
            continue
        labels = _segment(mean[k], mask, split, marker_threshold, min_distance, min_marker_area,
                          min_valley, smooth, centres, min_centre, min_neck)
        labels = _split_oversized(labels, max_area_ratio)
        tables.append(_measure(labels, mean[k], variance[k], int(cls), edge_margin,
                               centres if split == "centre" else None))
    table = pd.concat(tables, ignore_index=True) if tables else _empty_table()
    keep = table["area"] >= min_area
    if max_area is not None:
        keep &= table["area"] <= max_area
    return table[keep].reset_index(drop=True)


#: The settings of :func:`locate_frame` with their defaults, read off its
#: signature so that the two never disagree.
LOCATE_DEFAULTS = {name: p.default for name, p in inspect.signature(locate_frame).parameters.items()
                   if p.kind is inspect.Parameter.KEYWORD_ONLY}


# ------------------------------------------------------------------ brightness
def particle_mass(frame: np.ndarray, x, y, diameter: int, scale: float = 1.0) -> np.ndarray:
    """trackpy's ``mass`` of particles at ``(x, y)``: band-passed brightness summed over a disc.

    Parameters
    ----------
    frame : ndarray (H, W)
        One preprocessed frame (particles bright), as in ``movie.nc``.
    x, y : array_like
        Particle centres (px; rounded to the pixel, as trackpy places its mask).
    diameter : int
        Odd disc diameter (px): trackpy's ``diameter``, also the band-pass's background length.
    scale : float
        The frame's ``intensity_scale``: the result is in the movie's own units.

    Returns
    -------
    ndarray
        One mass per particle (NaN pixels count as background).

    Examples
    --------
    A Gaussian spot of height 10 on an even background of 3, against trackpy's own
    (which truncates the band-passed frame to 8 bits):

    >>> import trackpy
    >>> yy, xx = np.mgrid[:32, :32]
    >>> frame = 3 + 10 * np.exp(-((xx - 16) ** 2 + (yy - 12) ** 2) / (2 * 1.5 ** 2))
    >>> mass = particle_mass(frame, [16.0], [12.0], diameter=9)
    >>> round(float(mass[0]), 1), round(float(trackpy.locate(frame, 9)["mass"].iloc[0]), 1)
    (59.2, 59.0)
    """
    if diameter < 3 or diameter % 2 == 0:
        raise ValueError(f"mass_diameter must be an odd integer >= 3 px (trackpy's diameter), got {diameter!r}")
    image = np.nan_to_num(np.asarray(frame, np.float64), nan=0.0) * scale
    filtered = bandpass(image, 1, diameter, threshold=BANDPASS_THRESHOLD)
    total = ndimage.correlate(filtered, binary_mask(diameter // 2, 2).astype(np.float64), mode="constant")
    rows = np.clip(np.round(np.asarray(y, np.float64)).astype(int), 0, frame.shape[0] - 1)
    cols = np.clip(np.round(np.asarray(x, np.float64)).astype(int), 0, frame.shape[1] - 1)
    return total[rows, cols]


def _check_mass(movie, mass_diameter, min_mass) -> None:
    if min_mass is not None and mass_diameter is None:
        raise ValueError("min_mass needs mass_diameter (trackpy's diameter, an odd number of px)")
    if mass_diameter is not None and movie is None:
        raise ValueError("mass_diameter needs the movie's frames (movie.nc) besides the probability maps")


# ------------------------------------------------------------------ the movie
def _blank(mean) -> bool:
    """True for a frame without a single positive probability (all zeros or NaN)."""
    return not (np.nan_to_num(mean, nan=0.0) > 0).any()


def _to_dataset(table: pd.DataFrame, attrs: dict) -> xr.Dataset:
    """The particle table as a Dataset on dimension ``particle`` (bools as int8 for NetCDF)."""
    table = table.astype({"frame": np.int64, **COLUMNS})
    data = {name: ("particle", table[name].to_numpy()) for name in table.columns}
    data["touches_edge"] = ("particle", table["touches_edge"].to_numpy().astype(np.int8))
    ds = xr.Dataset(data, coords={"particle": np.arange(len(table), dtype=np.int64)}, attrs=attrs)
    ds["x"].attrs["units"] = ds["y"].attrs["units"] = "px"
    ds["orientation"].attrs.update(units="rad", long_name="axis angle, counter-clockwise from +x as displayed")
    ds["area"].attrs["units"] = "px"
    if "mass" in ds:
        ds["mass"].attrs.update(units="the movie's intensity x px", long_name=(
            "integrated brightness: band-passed frame summed over a disc (trackpy's mass)"))
    return ds


def locate(prob: xr.Dataset, movie: xr.Dataset | None = None, *, mass_diameter: int | None = None,
           min_mass: float | None = None, **params) -> xr.Dataset:
    """Particles in every frame of a ``probability.nc`` Dataset, read one frame at a time.

    Parameters
    ----------
    prob : Dataset
        ``mean`` and ``variance`` on ``(frame, class, y, x)``; ``class`` holds
        the foreground class labels.
    movie : Dataset, optional
        ``movie.nc`` (``frames`` and ``intensity_scale``): needed for ``mass``.
    mass_diameter : int or None
        Add a ``mass`` column (:func:`particle_mass`, trackpy's, over a disc of this odd diameter, px).
    min_mass : float or None
        Drop particles of less mass (the movie's units; trackpy's ``minmass``); needs ``mass_diameter``.
    **params
        Keyword arguments of :func:`locate_frame` (:data:`LOCATE_DEFAULTS`
        for those not given).

    Returns
    -------
    Dataset
        Dimension ``particle``; variables ``frame`` (movie frame number) and
        the columns of :func:`locate_frame` (``touches_edge`` as int8 0/1);
        attrs: those of ``prob`` plus every parameter used. Frames that are
        entirely zero or NaN give no particles and are named in one warning.

    Raises
    ------
    TypeError
        For a parameter :func:`locate_frame` does not know (a typo in the config).

    Examples
    --------
    Two frames, the rod moving one pixel right:

    >>> import numpy as np, xarray as xr
    >>> mean = np.zeros((2, 1, 16, 16), np.float32)
    >>> mean[0, 0, 4:7, 3:13] = mean[1, 0, 4:7, 4:14] = 1.0
    >>> prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean),
    ...                    "variance": (("frame", "class", "y", "x"), np.zeros_like(mean))},
    ...                   coords={"frame": [0, 1], "class": [1]})
    >>> found = locate(prob, min_area=20)
    >>> found["frame"].values.tolist(), found["x"].values.tolist(), found.attrs["min_area"]
    ([0, 1], [7.5, 8.5], 20)
    >>> locate(prob, min_aera=20)
    Traceback (most recent call last):
    ...
    TypeError: unknown locate parameters: ['min_aera']; known: ['edge_margin', ...]
    """
    unknown = set(params) - set(LOCATE_DEFAULTS)
    if unknown:
        known = sorted([*LOCATE_DEFAULTS, "mass_diameter", "min_mass"])
        raise TypeError(f"unknown locate parameters: {sorted(unknown)}; known: {known}")
    _check_mass(movie, mass_diameter, min_mass)
    settings = {**LOCATE_DEFAULTS, **params}
    names = [str(n) for n in prob["class_name"].values] if "class_name" in prob else []
    centre = names.index(CENTRE_CLASS) if CENTRE_CLASS in names else None
    keep = [k for k in range(prob.sizes["class"]) if k != centre]
    classes = [int(prob["class"].values[k]) for k in keep]
    tables, blank = [], []
    for i, frame in enumerate(prob["frame"].values):
        one = prob.isel(frame=i)
        mean = one["mean"].transpose("class", "y", "x").values
        if _blank(mean):
            blank.append(int(frame))
            continue
        variance = one["variance"].transpose("class", "y", "x").values
        centres = None if centre is None else mean[centre]
        table = locate_frame(mean[keep], variance[keep], classes, centres, **settings)
        if mass_diameter is not None:
            image = movie["frames"].sel(frame=frame).values
            scale = float(movie["intensity_scale"].sel(frame=frame)) if "intensity_scale" in movie else 1.0
            table["mass"] = particle_mass(image, table["x"], table["y"], mass_diameter, scale)
        tables.append(table.assign(frame=int(frame)))
    if blank:
        log.warning("%s: %d frame(s) with no probability at all, no particles from them: %s",
                    prob.attrs.get("source", "probability maps"), len(blank), blank)
    table = pd.concat(tables, ignore_index=True) if tables else _empty_table().assign(frame=0, mass=0.0)[:0]
    table = table[["frame", *COLUMNS, *(["mass"] if mass_diameter is not None else [])]]
    if min_mass is not None:
        table = _massive(table, min_mass, prob.attrs.get("source", "probability maps"))
    settings.update(mass_diameter=mass_diameter, min_mass=min_mass)
    recorded = {k: ("none" if v is None else v) for k, v in settings.items()}
    return _to_dataset(table, {**prob.attrs, **provenance(**recorded)})


def _massive(table: pd.DataFrame, min_mass: float, source: str) -> pd.DataFrame:
    """The particles of ``table`` with at least ``min_mass`` (the rest logged)."""
    kept = table[table["mass"].fillna(-np.inf) >= min_mass].reset_index(drop=True)
    log.info("%s: %d of %d particles have mass >= %g (min_mass); %d dimmer ones left out",
             source, len(kept), len(table), min_mass, len(table) - len(kept))
    return kept


def run(job) -> None:
    """Entry of rule ``locate``: ``probability.nc`` -> ``particles.nc`` with ``job.params.locate``.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input[0]``: the probability maps, ``input[1]`` (optional) the movie
        (``movie.nc``, for ``mass``); ``output[0]``: the particles;
        ``params.locate``: the ``locate`` config section (:func:`locate`'s parameters).

    Examples
    --------
    >>> import os, tempfile, numpy as np, xarray as xr
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> mean = np.zeros((1, 1, 16, 16), np.float32)
    >>> mean[0, 0, 4:7, 3:13] = 1.0
    >>> write_netcdf(xr.Dataset({"mean": (("frame", "class", "y", "x"), mean),
    ...                          "variance": (("frame", "class", "y", "x"), np.zeros_like(mean))},
    ...                         coords={"frame": [0], "class": [1]}), os.path.join(folder, "probability.nc"))
    >>> run(job("locate", input=[os.path.join(folder, "probability.nc")],
    ...         output=[os.path.join(folder, "particles.nc")], params={"locate": {"min_area": 20}}))
    >>> with xr.open_dataset(os.path.join(folder, "particles.nc")) as particles:
    ...     particles.sizes["particle"], float(particles["y"][0])
    (1, 5.0)
    """
    frames = xr.open_dataset(job.input[1]) if len(job.input) > 1 else nullcontext()
    with xr.open_dataset(job.input[0]) as prob, frames as movie:
        particles = locate(prob, movie, **job.params.locate)
    log.info("%d particles in %d frames", particles.sizes["particle"], prob.sizes["frame"])
    write_netcdf(particles, job.output[0])
