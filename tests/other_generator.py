"""A second, independent generator of crowded AFM-like rod movies and of a tethered spinning cell, for tests.

Why it exists: the segmentation ensemble and the rVAE are trained on
:mod:`rotdyn.simulate` movies, so accuracy measured on movies from the same
generator flatters them (same rod shape, same head, same noise model). This
module draws rods its own way and shares no code with rotdyn (numpy, scipy,
scikit-image and pandas only), so accuracy measured on its movies is accuracy
*off the training generator*:

* rods are rounded rectangles (``length`` x ``width``, corner radius
  ``corner``), not capsules, rendered by 4 x 4 supersampling, not by an
  analytic edge ramp;
* the head is a raised flat-topped disc inside the head end, not a Gaussian
  knob on a ramp;
* positions are independent, so rods overlap and cross; a rod drawn later
  covers the earlier ones (painter's order), it is not a maximum;
* the noise is white noise, a random offset per scan line, and a smooth
  background made of a few random plane waves that drift between frames
  (not a tilted plane);
* rods take a random step and turn a little each frame, reflected at the edges.

Conventions (the project's): ``x`` is the column, ``y`` the row, origin at
the centre of the top-left pixel; ``angle`` is the head direction in radians,
counter-clockwise as displayed (y up on screen), so the head lies along
``(dx, dy) = (cos angle, -sin angle)`` in (column, row); wrapped to [-pi, pi).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

SUPERSAMPLE = 4


def _wrap(a):
    return (np.asarray(a, dtype=float) + np.pi) % (2 * np.pi) - np.pi


def _inside_rounded_rectangle(s, t, length, width, corner):
    """Points (s along the axis, t across) inside a ``length`` x ``width`` rectangle with rounded corners."""
    hs, ht = length / 2 - corner, width / 2 - corner
    ds, dt = np.maximum(np.abs(s) - hs, 0), np.maximum(np.abs(t) - ht, 0)
    return (np.abs(s) <= length / 2) & (np.abs(t) <= width / 2) & (ds ** 2 + dt ** 2 <= corner ** 2)


def _draw_rod(image, x, y, angle, length, width, corner, head_height):
    """Paint one rod over ``image`` (painter's order): coverage-weighted blend toward its height."""
    H, W = image.shape
    reach = length / 2 + 2
    r0, r1 = max(int(y - reach), 0), min(int(y + reach) + 2, H)
    c0, c1 = max(int(x - reach), 0), min(int(x + reach) + 2, W)
    if r0 >= r1 or c0 >= c1:
        return
    sub = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5  # sub-pixel offsets within a pixel
    rows = (np.arange(r0, r1)[:, None] + sub[None, :]).ravel()
    cols = (np.arange(c0, c1)[:, None] + sub[None, :]).ravel()
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    ux, uy = np.cos(angle), -np.sin(angle)
    s = (xx - x) * ux + (yy - y) * uy
    t = -(xx - x) * uy + (yy - y) * ux
    body = _inside_rounded_rectangle(s, t, length, width, corner)
    head = (s - (length / 2 - width / 2)) ** 2 + t ** 2 <= (0.4 * width) ** 2
    height = np.where(body, 1.0 + head_height * head, 0.0)
    shape = (r1 - r0, SUPERSAMPLE, c1 - c0, SUPERSAMPLE)
    cover = body.reshape(shape).mean(axis=(1, 3))
    mean_height = height.reshape(shape).mean(axis=(1, 3))
    box = image[r0:r1, c0:c1]
    box *= 1 - cover
    box += mean_height


def _background(rng, shape, frames, amplitude, waves=4):
    """Smooth background: a few plane waves of long wavelength whose phases drift from frame to frame."""
    H, W = shape
    yy, xx = np.mgrid[:H, :W]
    k = rng.uniform(0.5, 2.0, waves) * 2 * np.pi / max(H, W)  # half a period to two across the frame
    theta = rng.uniform(0, 2 * np.pi, waves)
    phase = rng.uniform(0, 2 * np.pi, waves)[None] + np.cumsum(rng.normal(0, 0.05, (frames, waves)), 0)
    proj = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
    out = np.cos(k[None, :, None, None] * proj[None] + phase[:, :, None, None]).sum(1)
    return amplitude * out / np.sqrt(waves / 2)


def crowded_rods(count=30, size=128, frames=8, *, length=22.0, width=6.5, corner=2.0, head_height=0.5,
                 step=0.4, turn=0.03, noise=0.1, line_noise=0.05, background=0.15, seed=0):
    """Crowded, overlapping AFM-like rods with a raised disc head, and their truth.

    Parameters
    ----------
    count : int
        Rods, all present in every frame, centres drawn uniformly (independently
        of each other) at least ``length / 2`` px inside the frame.
    size : int or (int, int)
        Frame side, or (height, width), px.
    frames : int
        Number of frames.
    length, width : float
        Rod size end to end and across, px.
    corner : float
        Radius of the rods' rounded corners, px (<= width / 2).
    head_height : float
        Height of the head disc above the body (body height 1).
    step : float
        Sd of each rod's step per frame and axis, px.
    turn : float
        Sd of each rod's turn per frame, rad.
    noise, line_noise, background : float
        Sd of white noise, sd of the per-scan-line offsets, and amplitude
        (sd) of the smooth background, in body heights.
    seed : int
        Seed; the rods and the noise come from separate streams, so
        ``noise=0`` etc. gives the same rods without noise.

    Returns
    -------
    frames : ndarray, (T, H, W) float32
    truth : DataFrame
        ``frame, id, x, y, angle, length, width, nn_distance``: the body
        centre (px), the head direction (rad), the size, and the distance
        from the centre to the nearest other rod's centre in that frame (px;
        inf when alone).

    Examples
    --------
    >>> movie, truth = crowded_rods(count=5, size=64, frames=2, seed=1)
    >>> movie.shape, movie.dtype, truth.columns.tolist()
    ((2, 64, 64), dtype('float32'), ['frame', 'id', 'x', 'y', 'angle', 'length', 'width', 'nn_distance'])
    """
    H, W = (size, size) if np.isscalar(size) else size
    if not 0 <= corner <= width / 2 or width > length:
        raise ValueError(f"need 0 <= corner <= width / 2 <= length / 2, got corner={corner}, width={width}, "
                         f"length={length}")
    if min(H, W) <= length + 2:
        raise ValueError(f"frame {H} x {W} too small for rods of length {length}")
    rods_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    lo, hi = length / 2, np.array([W - 1, H - 1]) - length / 2
    xy = rods_rng.uniform(lo, hi, (count, 2))
    angle = rods_rng.uniform(-np.pi, np.pi, count)
    clean = np.zeros((frames, H, W))
    tables = []
    for f in range(frames):
        if f:
            xy = xy + rods_rng.normal(0, step, xy.shape)
            xy = np.where(xy < lo, 2 * lo - xy, xy)
            xy = np.where(xy > hi, 2 * hi - xy, xy)
            angle = _wrap(angle + rods_rng.normal(0, turn, count))
        for (x, y), a in zip(xy, angle):
            _draw_rod(clean[f], x, y, a, length, width, corner, head_height)
        nn = cKDTree(xy).query(xy, k=2)[0][:, 1] if count > 1 else np.full(count, np.inf)
        tables.append(pd.DataFrame({"frame": f, "id": np.arange(1, count + 1), "x": xy[:, 0], "y": xy[:, 1],
                                    "angle": _wrap(angle), "length": length, "width": width, "nn_distance": nn}))
    movie = clean + _background(noise_rng, (H, W), frames, background)
    movie += noise_rng.normal(0, 1, clean.shape) * noise + noise_rng.normal(0, 1, (frames, H, 1)) * line_noise
    return movie.astype(np.float32), pd.concat(tables, ignore_index=True)


def tethered_cell(frames=300, size=64, *, turn_deg=18.0, turn_sd_deg=2.0, length=20.0, width=6.0, tether=3.0,
                  neighbour_gap=1.0, halo=0.6, tether_depth=0.8, blur=0.8, noise=0.06, background=0.1, seed=0):
    """A phase-contrast cell spinning about a tether near one pole, a still neighbour it brushes, and the truth.

    The stand-in for issue 13's real movie of a tethered cell (not in ../shared/data): the cell turns
    ``turn_deg`` per frame (sd ``turn_sd_deg``) about a point ``tether`` px inside one pole, which shows
    as a dark spot; bodies are bright with a dark halo (the drawn coverage less ``halo`` times its
    Gaussian blur, sd 2 px), seen through a Gaussian PSF (sd ``blur``); a second cell stands upright
    beside the tether, ``neighbour_gap`` px beyond the spinning cell's reach, so the two almost touch
    (and merge in the mask) once a turn.

    Parameters
    ----------
    frames, size : int
        Frames and frame side (px).
    turn_deg, turn_sd_deg : float
        Mean turn per frame and its sd (degrees, counter-clockwise as displayed).
    length, width, tether : float
        Cell size and the tether's distance inside the pole (px).
    neighbour_gap : float
        Closest approach between the spinning cell's free pole and the neighbour's side (px).
    halo, tether_depth, blur, noise, background : float
        Halo strength, depth of the tether spot, PSF sd (px), white-noise sd and the smooth background's
        amplitude (body heights).
    seed : int
        Seed.

    Returns
    -------
    frames : ndarray, (T, H, W) float32
    truth : DataFrame
        ``frame, id, x, y, angle``: the body centre (px) and the head direction (tether to free pole, rad)
        of the spinning cell (id 1) and the neighbour (id 2).

    Examples
    --------
    >>> movie, truth = tethered_cell(frames=3, seed=1)
    >>> movie.shape, [round(float(np.degrees(a)), 1) for a in np.diff(np.unwrap(truth[truth.id == 1].angle))]
    ((3, 64, 64), [17.2, 20.2])
    """
    from scipy import ndimage

    rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    centre = np.array([size / 2 - 6.0, size / 2])  # the tether (x, y)
    reach = length - tether
    nx = centre[0] + reach + neighbour_gap + width / 2  # the neighbour's axis, upright
    angles = rng.uniform(-np.pi, np.pi) + np.radians(turn_deg + rng.normal(0, turn_sd_deg, frames)).cumsum()
    yy, xx = np.mgrid[:size, :size]
    spot = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 1.2 ** 2))
    clean, rows = np.zeros((frames, size, size)), []
    for f, a in enumerate(angles):
        cover = np.zeros((size, size))
        body = centre + (length / 2 - tether) * np.array([np.cos(a), -np.sin(a)])
        _draw_rod(cover, body[0], body[1], a, length, width, width / 2, 0.0)
        _draw_rod(cover, nx, centre[1], np.pi / 2, length, width, width / 2, 0.0)
        image = cover - halo * ndimage.gaussian_filter(cover, 2.0) - tether_depth * spot
        clean[f] = ndimage.gaussian_filter(image, blur)
        rows += [dict(frame=f, id=1, x=body[0], y=body[1], angle=_wrap(a)),
                 dict(frame=f, id=2, x=nx, y=centre[1], angle=np.pi / 2)]
    movie = clean + _background(noise_rng, (size, size), frames, background)
    movie += noise_rng.normal(0, noise, clean.shape)
    return movie.astype(np.float32), pd.DataFrame(rows)
