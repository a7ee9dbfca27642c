"""Scoring latent angles against ground truth, windows of simulated movies, the naive decoder (tests and benchmarks only)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..patches import window
from ..preprocess import preprocess
from ..rvae.geometry import display_shift, rotation


def _best_offset(r: np.ndarray, period: float) -> tuple[float, float]:
    """Offset ``c`` minimising the median of ``|wrap_period(c - r)|``; returns (c, median)."""
    def medians(cands):
        out = np.empty(len(cands))
        for i in range(0, len(cands), 64):  # chunks keep the (candidates, N) array small
            d = (cands[i:i + 64, None] - r[None] + period / 2) % period - period / 2
            out[i:i + 64] = np.median(np.abs(d), 1)
        return out

    step = period / 720
    cands = np.arange(720) * step
    best = cands[np.argmin(medians(cands))]
    fine = best + np.linspace(-step, step, 201)
    m = medians(fine)
    i = int(np.argmin(m))
    return float(fine[i] % period), float(m[i])


def angle_accuracy(latent_angle, true_angle) -> dict:
    """How well latent angles recover true orientations, up to one offset and a sign.

    Finds ``s`` in {+1, -1} and ``c`` minimising the median circular
    ``|s * latent + c - true|``, over the full circle and modulo 180 deg
    (axis only, for head-tail symmetric particles). Non-finite pairs are
    left out.

    Parameters
    ----------
    latent_angle, true_angle : array_like
        Angles, rad, one per window, the same length.

    Returns
    -------
    dict
        ``median_error_deg``, ``sign``, ``offset_deg`` (full circle);
        ``median_axis_error_deg``, ``axis_sign``, ``axis_offset_deg``
        (modulo 180); ``flipped_fraction`` (share of windows more than 90 deg
        off on the full circle with the full-circle fit, i.e. head and tail
        swapped); ``n``.

    Raises
    ------
    ValueError
        When the two differ in length.

    Examples
    --------
    Latent angles that run against the truth (sign -1) from 0.5 rad (28.6
    deg) on, with a quarter of the heads swapped:

    >>> true = np.random.default_rng(0).uniform(-np.pi, np.pi, 200)
    >>> latent = 0.5 - true
    >>> latent[:50] += np.pi
    >>> r = angle_accuracy(latent, true)
    >>> r["sign"], round(r["offset_deg"], 1), round(r["median_error_deg"], 2), r["flipped_fraction"]
    (-1, 28.6, 0.0, 0.25)
    >>> round(r["median_axis_error_deg"], 2), r["n"]  # modulo 180 deg the swapped heads agree
    (0.0, 200)
    """
    a, t = np.asarray(latent_angle, np.float64).ravel(), np.asarray(true_angle, np.float64).ravel()
    if a.shape != t.shape:
        raise ValueError(f"latent_angle and true_angle differ in length: {a.shape} vs {t.shape}")
    ok = np.isfinite(a) & np.isfinite(t)
    a, t = a[ok], t[ok]
    out = {"n": int(len(a))}
    if len(a) == 0:
        nan = math.nan
        return dict(out, median_error_deg=nan, sign=1, offset_deg=nan, median_axis_error_deg=nan,
                    axis_sign=1, axis_offset_deg=nan, flipped_fraction=nan)
    for key, period in (("", 2 * np.pi), ("axis_", np.pi)):
        fits = []
        for s in (1, -1):
            c, med = _best_offset((t - s * a) % period, period)
            fits.append((med, s, c))
        med, s, c = min(fits)
        out[f"median_{key}error_deg"] = math.degrees(med)
        out[f"{key}sign"] = s
        out[f"{key}offset_deg"] = math.degrees(c)
    err = np.abs((out["sign"] * a + math.radians(out["offset_deg"]) - t + np.pi) % (2 * np.pi) - np.pi)
    out["flipped_fraction"] = float(np.mean(err > np.pi / 2))
    return out


def angle_peaks(angles, bins: int = 72, smooth_bins: float = 1.5, floor: float = 0.2) -> int:
    """Peaks of the circular histogram of ``angles`` (rad) higher than ``floor`` times the tallest.

    The histogram (``bins`` over the circle) is smoothed by a wrapped
    Gaussian of ``smooth_bins`` bins first, so one particle alone does not
    make a peak. Counts orientation variants, e.g. six before and four after
    the simulated rods' transition (as the nanorods of paper 000 [1]_).

    Parameters
    ----------
    angles : array_like
        Angles, rad; non-finite ones are left out.
    bins : int
        Histogram bins over the circle.
    smooth_bins : float
        Sd of the wrapped Gaussian smoothing, in bins.
    floor : float
        Smallest peak counted, as a share of the tallest.

    Returns
    -------
    int
        The number of peaks.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
       a System of Self-Organizing Protein Nanorods via Rotationally Invariant
       Latent Representations", ACS Nano 15, 6471-6480 (2021).
       doi:10.1021/acsnano.0c08914 (paper 000)

    Examples
    --------
    Six variants 60 deg apart, then the four left when one lattice direction empties:

    >>> variant = np.repeat(np.arange(6), 20)
    >>> angles = variant * np.pi / 3 - 2.9 + np.random.default_rng(0).normal(0, 0.05, 120)
    >>> angle_peaks(angles), angle_peaks(angles[variant % 3 != 0])
    (6, 4)
    """
    from scipy.ndimage import gaussian_filter1d

    a = np.asarray(angles, np.float64).ravel()
    counts, _ = np.histogram(a[np.isfinite(a)], bins=bins, range=(-np.pi, np.pi))
    smooth = gaussian_filter1d(counts.astype(float), smooth_bins, mode="wrap")
    peak = (smooth > np.roll(smooth, 1)) & (smooth >= np.roll(smooth, -1)) & (smooth > floor * smooth.max())
    return int(peak.sum())


def simulated_windows(sim, source: str = "labels", size: int = 24, smooth: float = 1.0):
    """Windows cut around the TRUE particle positions of a simulation (for acceptance checks).

    Parameters
    ----------
    sim : rotdyn.simulate.Simulation
    source : {"labels", "frames"}
        "labels": the clean masks ``labels == 1`` smoothed with a Gaussian of
        sd ``smooth`` px (a stand-in for a probability map, head-tail
        symmetric); "frames": the movie after AFM flattening and percentile
        normalisation (keeps the head knob).
    size : int
        Window side, px, centred as in :mod:`rotdyn.patches`.

    Returns
    -------
    windows : ndarray ``(N, size, size)`` float32
    truth : DataFrame
        The simulation's truth rows, in window order.

    Raises
    ------
    ValueError
        For a ``source`` other than "labels" or "frames".

    Examples
    --------
    Every window is centred on its rod: the smoothed mask is near 1 at the
    centre and 0 in the corner.

    >>> from rotdyn.simulate import simulate_rods
    >>> sim = simulate_rods(size=48, frames=1, count=3, pair_fraction=0, seed=0)
    >>> windows, truth = simulated_windows(sim)
    >>> windows.shape, len(truth)
    ((3, 24, 24), 3)
    >>> bool((windows[:, 12, 12] > 0.9).all()), bool((windows[:, 0, 0] == 0).all())
    (True, True)
    """
    from scipy import ndimage


    if source == "labels":
        images = np.stack([ndimage.gaussian_filter((lab == 1).astype(np.float32), smooth)
                           for lab in sim.labels]) if smooth > 0 else (sim.labels == 1).astype(np.float32)
    elif source == "frames":
        images = preprocess(sim.frames, flatten_afm=True)[0]
    else:
        raise ValueError(f"source must be 'labels' or 'frames', got {source!r}")
    truth = sim.truth.reset_index(drop=True)
    rows = np.floor(truth["y"].to_numpy() + 0.5).astype(int)
    cols = np.floor(truth["x"].to_numpy() + 0.5).astype(int)
    windows = np.stack([window(images[f], r, c, size)[0]
                        for f, r, c in zip(truth["frame"].to_numpy(), rows, cols)]) if len(truth) \
        else np.zeros((0, size, size), np.float32)
    return windows.astype(np.float32), truth


def naive_decoder_forward(model, latent):
    """The textbook spatial-VAE decoder with ``model``'s weights: per-pixel concatenation ``[coord, z]``.

    Transforms every pixel's coordinate, concatenates ``z`` to it, and runs
    the three layers on the ``(B, P, 2 + k)`` result. Kept for the speed
    comparison (``benchmarks/rvae_speed.py``) and as a check of the split
    first layer; returns ``(B, P)`` like :meth:`rotdyn.rvae.RVAE.decoder_raw`.

    Parameters
    ----------
    model : rotdyn.rvae.RVAE
        The weights.
    latent : torch.Tensor
        ``(B, n_latent)`` full latents ``[angle, dx, dy, z...]``.

    Returns
    -------
    torch.Tensor
        ``(B, P)``: the decoded value at each of the ``P = S * S`` pixels.

    Examples
    --------
    >>> import torch
    >>> from rotdyn.rvae import RVAE
    >>> model = RVAE(9, hidden=16)
    >>> latent = torch.randn(3, model.n_latent)
    >>> torch.allclose(naive_decoder_forward(model, latent), model.decoder_raw(latent), atol=1e-5)
    True
    """
    angle, shift, z = model.split_latent(latent)
    t = display_shift(shift, model.config["dx_scale"])
    # row-vector form of R(-a) (r - t): (r - t) @ R(-a)^T = (r - t) @ R(a)
    coords = (model.grid[None] - t[:, None]) @ rotation(angle)
    B, P = coords.shape[:2]
    h = torch.cat([coords, z[:, None].expand(B, P, z.shape[1])], -1)
    h = torch.tanh(model.first(h))
    h = torch.tanh(model.second(h))
    return model.out(h)[..., 0]
