"""Capsule geometry shared by the rods and the cells (project conventions: x = column, y = row,
angles counter-clockwise as displayed, so direction ``a`` is ``(cos a, -sin a)`` in (x, y))."""
from __future__ import annotations

import numpy as np


def point_segment_distance(p, a, b):
    """Distance from points ``p`` to segments ``a``-``b`` (arrays ``(..., 2)``, broadcast)."""
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
    """End points of the capsules' core segments (the capsule is this segment dilated by width/2)."""
    half_core = np.asarray(half_core)[..., None] if np.ndim(half_core) else half_core
    u = np.stack([np.cos(angles), -np.sin(angles)], -1)
    return centres - half_core * u, centres + half_core * u


def capsule_box(shape, x, y, angle, length):
    """The box around one capsule and its coordinates in the capsule's frame.

    Returns
    -------
    box : (slice, slice)
        Rows and columns of the frame that may hold the capsule (its reach + 1.5 px).
    s, t : ndarray
        Distance along the axis (+ toward the head, direction ``angle``) and
        across it, for every pixel of the box.
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
