"""Capsule geometry shared by the rods and the cells (project conventions: x = column, y = row,
angles counter-clockwise as displayed, so direction ``a`` is ``(cos a, -sin a)`` in (x, y))."""
from __future__ import annotations

import numpy as np


def point_segment_distance(p, a, b):
    """Distance from points ``p`` to segments ``a``-``b`` (arrays ``(..., 2)``, broadcast).

    Parameters
    ----------
    p : ndarray
        ``(..., 2)`` points (x, y).
    a, b : ndarray
        ``(..., 2)`` the segments' end points; ``a == b`` is a point.

    Returns
    -------
    ndarray
        ``(...)`` distances.

    Examples
    --------
    >>> a, b = np.array([0.0, 0.0]), np.array([2.0, 0.0])
    >>> point_segment_distance(np.array([[1.0, 1.0], [5.0, 4.0], [0.5, 0.0]]), a, b).tolist()
    [1.0, 5.0, 0.0]
    """
    ab, ap = b - a, p - a
    len2 = np.sum(ab * ab, -1)
    t = np.clip(np.sum(ap * ab, -1) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1)


def _orientation(a, b, c):
    """z of (b - a) x (c - a): the side of line a-b on which c lies."""
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def segment_distance(p1, q1, p2, q2):
    """Minimum distance between 2-D segments ``p1-q1`` and ``p2-q2`` (broadcast).

    In 2-D two segments that do not cross are closest at an endpoint of one of
    them, so four point-to-segment distances plus a crossing test suffice.

    Parameters
    ----------
    p1, q1 : ndarray
        ``(..., 2)`` end points of the first segments.
    p2, q2 : ndarray
        ``(..., 2)`` end points of the second segments.

    Returns
    -------
    ndarray
        ``(...)`` distances, 0 where the segments cross.

    Examples
    --------
    >>> a, b = np.array([0.0, 0.0]), np.array([2.0, 0.0])
    >>> float(segment_distance(a, b, np.array([1.0, 1.0]), np.array([1.0, 3.0])))
    1.0
    >>> float(segment_distance(a, b, np.array([1.0, -1.0]), np.array([1.0, 1.0])))  # crossing
    0.0
    """
    d = np.minimum.reduce([
        point_segment_distance(p1, p2, q2), point_segment_distance(q1, p2, q2),
        point_segment_distance(p2, p1, q1), point_segment_distance(q2, p1, q1),
    ])
    cross = ((_orientation(p1, q1, p2) * _orientation(p1, q1, q2) < 0)
             & (_orientation(p2, q2, p1) * _orientation(p2, q2, q1) < 0))
    return np.where(cross, 0.0, d)


def axes(centres, angles, half_core):
    """End points of the capsules' core segments (the capsule is this segment dilated by width/2).

    Parameters
    ----------
    centres : ndarray
        ``(..., 2)`` capsule centres (x, y).
    angles : ndarray or float
        Head directions, rad, counter-clockwise as displayed.
    half_core : ndarray or float
        Half the core segment's length, ``(length - width) / 2``.

    Returns
    -------
    tail, head : ndarray
        ``(..., 2)`` each: ``centre -+ half_core * (cos a, -sin a)``.

    Examples
    --------
    A capsule pointing up the screen (y, the row, decreasing):

    >>> tail, head = axes(np.array([10.0, 10.0]), np.pi / 2, 3.0)
    >>> tail.round(6).tolist(), head.round(6).tolist()
    ([10.0, 13.0], [10.0, 7.0])
    """
    half_core = np.asarray(half_core)[..., None] if np.ndim(half_core) else half_core
    u = np.stack([np.cos(angles), -np.sin(angles)], -1)
    return centres - half_core * u, centres + half_core * u


def capsule_box(shape, x, y, angle, length):
    """The box around one capsule and its coordinates in the capsule's frame.

    Parameters
    ----------
    shape : (int, int)
        The frame's ``(H, W)``; the box is clipped to it.
    x, y : float
        The capsule's centre, px.
    angle : float
        Its head direction, rad, counter-clockwise as displayed.
    length : float
        Its length end to end, px.

    Returns
    -------
    box : (slice, slice)
        Rows and columns of the frame that may hold the capsule (its reach + 1.5 px).
    s, t : ndarray
        Distance along the axis (+ toward the head, direction ``angle``) and
        across it, for every pixel of the box.

    Examples
    --------
    A capsule 6 px long at (10, 10), pointing up the screen:

    >>> box, s, t = capsule_box((20, 20), 10.0, 10.0, np.pi / 2, 6.0)
    >>> box
    (slice(5, 16, None), slice(5, 16, None))
    >>> row, col = 7 - box[0].start, 10 - box[1].start  # 3 px above the centre
    >>> round(float(s[row, col]), 6), round(float(t[row, col]), 6)
    (3.0, 0.0)
    """
    H, W = shape
    reach = length / 2 + 1.5
    r0, r1 = max(int(np.floor(y - reach)), 0), min(int(np.ceil(y + reach)) + 1, H)
    c0, c1 = max(int(np.floor(x - reach)), 0), min(int(np.ceil(x + reach)) + 1, W)
    yy, xx = np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :]
    ux, uy = np.cos(angle), -np.sin(angle)
    s = (xx - x) * ux + (yy - y) * uy
    t = -(xx - x) * uy + (yy - y) * ux
    return (slice(r0, r1), slice(c0, c1)), s, t
