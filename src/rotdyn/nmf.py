"""NMF of the per-frame latent densities and the transition frame (paper 000, Fig. 5, Eq. 1).

For each latent variable ``L`` the (time x value) map of :func:`rotdyn.kde.kde_maps`
is factorised with scikit-learn's NMF into ``N`` components,
``KDE(L, t) = sum_i w_i(L) e_i(t)``: *weights* ``w_i`` over the latent value
(each scaled to integrate to 1 over the grid, i.e. a density of ``L``) and
*endmembers* ``e_i(t)`` over time (then the share of frame ``t``'s density in
component ``i``; they sum to ~1 in every frame). Components are ordered by the
centre of mass in time of their endmember, so component 0 dominates earliest.

Transition frame
----------------
A single step is fitted to the endmembers (:func:`change_point`): for each
candidate frame ``t`` (at least ``min_segment`` frames with data on either
side) a constant before ``t`` and another from ``t`` on, by least squares, on
all endmembers jointly; the endmembers are then projected onto the direction
of that step (for N = 2: their difference) and the best ``t`` of the
projection is the transition frame -- the first frame of the new state, in
the movie's numbering.

* ``transition_score`` = ``1 - RSS(t_best) / RSS_const``: the fraction of the
  projection's variance about its mean that the step explains (0 none, 1 a
  perfect step). ``has_transition`` = score >= ``min_score`` (default 0.5);
  without it the transition frame and its uncertainty are NaN, so a
  stationary movie gets no transition. The score measures signal over noise:
  for white noise the best step of ``n`` frames explains about ``10 / n`` by
  chance (the default is safe from ~20 frames on), and a real step smaller
  than the frame-to-frame noise also scores below 0.5. A smooth monotonic
  drift scores high too (a step explains 75 % of a straight ramp): look at
  the endmembers.
* ``transition_low`` .. ``transition_high``: the approximate ``confidence``
  (95 %) profile-likelihood set of the step position, with the residual
  variance inflated for autocorrelated residuals (see :func:`change_point`);
  ``transition_uncertainty`` is its largest distance from the estimate, in
  frames (0: only the estimate itself is in the set).

Frames without particles (zero density) carry no information: they are left
out of the NMF and of the step fit, and their endmembers are NaN.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in
   a System of Self-Organizing Protein Nanorods via Rotationally Invariant
   Latent Representations", ACS Nano 15, 6471-6480 (2021).
   doi:10.1021/acsnano.0c08914 (paper 000)
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import xarray as xr
from scipy.stats import chi2
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from .contracts import CIRCULAR, DENSITY, density_names, movie_attrs
from .kde import grid_integral
from .store import provenance, write_netcdf

log = logging.getLogger(__name__)

MIN_SCORE = 0.5
MIN_SEGMENT = 3
CONFIDENCE = 0.95


# ----------------------------------------------------------------- change point
def _step_residuals(x: np.ndarray, k: np.ndarray):
    """RSS of the best two-constant fit of the columns of ``x`` with ``k`` rows before the step."""
    n = len(x)
    s1 = np.vstack([np.zeros(x.shape[1]), np.cumsum(x, 0)])
    s2 = np.vstack([np.zeros(x.shape[1]), np.cumsum(x ** 2, 0)])
    before = s2[k] - s1[k] ** 2 / k[:, None]
    after = (s2[n] - s2[k]) - (s1[n] - s1[k]) ** 2 / (n - k)[:, None]
    const = s2[n] - s1[n] ** 2 / n
    return np.clip((before + after).sum(1), 0, None), float(max(const.sum(), 0.0))


def change_point(series, frames, *, min_segment: int = MIN_SEGMENT, min_score: float = MIN_SCORE,
                 confidence: float = CONFIDENCE) -> dict:
    """Best single step in ``series`` (rows = frames, columns fitted jointly) and its uncertainty.

    The step is located by least squares on all columns jointly, then the
    columns are projected onto the direction of that step (for two NMF
    endmembers, which sum to ~1: their difference), and the 1-D projection
    gives the estimate, the score and the interval. Working in 1-D keeps the
    interval honest when the columns are redundant (complementary endmembers
    would otherwise count the same evidence twice).

    Parameters
    ----------
    series : array_like, (n,) or (n, p)
        Values per frame (e.g. the endmembers); only frames with data.
    frames : array_like of int, (n,)
        Frame number of each row, increasing.
    min_segment : int
        Fewest rows on either side of the step.
    min_score : float
        Smallest ``score`` reported as a transition.
    confidence : float
        Level of the profile-likelihood set of the step position.

    Returns
    -------
    dict
        ``frame`` (first frame after the step), ``low``, ``high`` (hull of the
        confidence set), ``uncertainty`` (frames: the set's largest distance
        from ``frame``) -- NaN unless ``has_transition``; ``score``
        (``1 - RSS_step / RSS_const``), ``has_transition``, ``best_frame``
        (the best step even when it is not a transition), ``rho`` (lag-1
        autocorrelation of the residuals, as used) and ``profile``
        (``RSS(t) / RSS_const`` for every row, NaN where no step is allowed).

    Notes
    -----
    The set holds every step position with ``(RSS(t) - RSS_min) / s2 <=
    chi2_1(confidence)`` (Hinkley's profile likelihood, approximate for a
    change point). ``s2 = RSS_min / (n - 2) * (1 + rho) / (1 - rho)``: the
    residual variance of the best step, inflated to the long-run variance of
    AR(1) noise with the residuals' lag-1 autocorrelation ``rho`` (clipped to
    [0, 0.9]) -- endmembers of persistent particles are correlated in time,
    and a gradual or multi-step change leaves correlated residuals, both of
    which widen the interval.

    Examples
    --------
    A step from 0 to 1 at frame 13 with small alternating noise:

    >>> frames = np.arange(10, 30)
    >>> series = np.where(frames >= 13, 1.0, 0.0) + 0.01 * (-1.0) ** frames
    >>> step = change_point(series, frames)
    >>> step["frame"], step["has_transition"], round(step["score"], 3), step["uncertainty"]
    (13.0, True, 0.999, 0.0)
    >>> change_point(0.01 * (-1.0) ** frames, frames)["has_transition"]  # noise only
    False
    """
    x = np.asarray(series, np.float64)
    x = x.reshape(len(x), -1) if x.size else x.reshape(len(x), max(x.shape[1:], default=1))
    frames = np.asarray(frames, np.int64)
    n = len(x)
    nan = float("nan")
    out = dict(frame=nan, low=nan, high=nan, uncertainty=nan, score=nan, has_transition=False,
               best_frame=nan, rho=nan, profile=np.full(n, nan))
    if n < 2 * min_segment:
        return out
    k = np.arange(min_segment, n - min_segment + 1)  # rows before the step
    rss, rss_const = _step_residuals(x, k)
    if not rss_const > 0:  # constant series: nothing to explain
        out["score"] = 0.0
        return out
    split = k[int(np.argmin(rss))]
    direction = x[split:].mean(0) - x[:split].mean(0)
    y = x @ (direction / np.linalg.norm(direction))
    rss, rss_const = _step_residuals(y[:, None], k)
    if not rss_const > 0:
        out["score"] = 0.0
        return out
    best = int(np.argmin(rss))
    split, rss_min = k[best], float(rss[best])
    out["profile"][k] = rss / rss_const
    out["score"] = 1.0 - rss_min / rss_const
    out["best_frame"] = float(frames[split])
    if out["score"] < min_score:
        return out
    residual = y - np.where(np.arange(n) < split, y[:split].mean(), y[split:].mean())
    denom = float(residual @ residual)
    rho = float(residual[1:] @ residual[:-1]) / denom if denom > 0 else 0.0
    rho = min(max(rho, 0.0), 0.9)
    sigma2 = rss_min / max(n - 2, 1) * (1 + rho) / (1 - rho)
    if sigma2 > 0:
        inside = (rss - rss_min) / sigma2 <= chi2.ppf(confidence, 1)
    else:  # a noiseless step: only the best position fits
        inside = np.arange(k.size) == best
    candidates = frames[k[inside]]
    t = frames[split]
    out.update(frame=float(t), low=float(candidates.min()), high=float(candidates.max()), rho=rho,
               uncertainty=float(max(t - candidates.min(), candidates.max() - t)), has_transition=True)
    return out


# ----------------------------------------------------------------- NMF
def _factorise(x, n_components, seed, max_iter, tol, name=""):
    """NMF of ``x`` (frames x grid): returns endmembers (frames x C), weights (C x grid), model."""
    model = NMF(n_components=n_components, init="nndsvda", random_state=seed, max_iter=max_iter, tol=tol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        e = model.fit_transform(x)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning("NMF of %s stopped at max_iter=%d before reaching tol=%g (relative error %.3g)", name,
                    max_iter, tol, model.reconstruction_err_ / max(np.linalg.norm(x), 1e-300))
    return e, model.components_, model


def nmf_maps(kde: xr.Dataset, n_components: int = 2, seed: int = 0, variables=None, *, max_iter: int = 2000,
             tol: float = 1e-4,
             min_score: float = MIN_SCORE, min_segment: int = MIN_SEGMENT,
             confidence: float = CONFIDENCE) -> xr.Dataset:
    """NMF of every latent variable's (value x time) density map and its transition: ``nmf.nc``.

    Parameters
    ----------
    kde : xr.Dataset
        ``kde.nc`` from :func:`rotdyn.kde.kde_maps`.
    n_components : int
        NMF components ``N`` (the paper uses 2).
    seed : int
        ``random_state`` of the NMF (recorded; with init ``nndsvda`` and the
        coordinate-descent solver the factorisation is deterministic anyway).
    variables : list of str, optional
        Variables to factorise (default: every ``density_<var>`` in ``kde``).
    max_iter, tol : int, float
        Of scikit-learn's NMF (coordinate descent); non-convergence is logged.
    min_score, min_segment, confidence
        Of the transition, see :func:`change_point` and the module docstring.

    Returns
    -------
    xr.Dataset
        Coordinates ``component`` (0..N-1, ordered by the endmember's centre
        of mass in time), ``frame``, ``<var>_grid``. Per variable:
        ``weights_<var>(component, <var>_grid)`` (each integrates to 1),
        ``endmembers_<var>(component, frame)`` (NaN in frames without data),
        ``reconstruction_error_<var>`` (``||X - W H||_F / ||X||_F`` over the
        frames with data), ``transition_frame_<var>``,
        ``transition_low_<var>``, ``transition_high_<var>``,
        ``transition_uncertainty_<var>`` (frames; NaN without a transition),
        ``transition_score_<var>``, ``has_transition_<var>`` and
        ``step_residual_<var>(frame)`` (relative residual of a step at each
        frame, the profile behind the estimate). Attributes: the settings,
        ``transition_method``, the kde's bandwidths, and its
        :data:`rotdyn.contracts.MOVIE_ATTRS` (the movie's file and physical scales).

    Examples
    --------
    Angles at 0 rad in frames 0..9 and at 1.5 rad from frame 10 on:

    >>> from rotdyn.kde import kde_maps
    >>> frame = np.repeat(np.arange(20), 5)
    >>> angle = np.where(frame < 10, 0.0, 1.5) + np.tile(np.linspace(-0.1, 0.1, 5), 20)
    >>> kde = kde_maps(xr.Dataset({"frame": ("particle", frame), "angle": ("particle", angle)}), np.arange(20),
    ...                grid_points=60, bandwidth=0.2)
    >>> nmf = nmf_maps(kde)
    >>> float(nmf["transition_frame_angle"]), bool(nmf["has_transition_angle"])
    (10.0, True)
    >>> peaks = nmf["weights_angle"].idxmax("angle_grid").values  # component 0 is the early state
    >>> np.round(peaks, 1).tolist()
    [0.0, 1.5]
    """
    n_components = int(n_components)
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    names = density_names(kde) if variables is None else list(variables)
    frames = np.asarray(kde["frame"].values, np.int64)
    component = np.arange(n_components)
    data, coords = {}, {"component": component, "frame": frames}
    for name in names:
        grid_name = f"{name}_grid"
        density = kde[f"{DENSITY}{name}"].transpose("frame", grid_name)
        grid = np.asarray(density[grid_name].values, np.float64)
        x = np.clip(np.asarray(density.values, np.float64), 0, None)
        circular = name in CIRCULAR
        valid = grid_integral(x, grid, circular) > 0
        weights = np.full((n_components, grid.size), np.nan)
        endmembers = np.full((n_components, frames.size), np.nan)
        error = np.nan
        if valid.sum() >= max(n_components, 1):
            e, w, _ = _factorise(x[valid], n_components, seed, max_iter, tol, name)
            scale = grid_integral(w, grid, circular)
            scale[scale == 0] = 1.0
            w, e = w / scale[:, None], e * scale[None, :]  # w_i a density, e_i(t) its share
            mass = e.sum(0)
            centre = (frames[valid][:, None] * e).sum(0) / np.where(mass > 0, mass, 1)
            centre[mass == 0] = np.inf  # unused components last
            order = np.argsort(centre, kind="stable")
            w, e = w[order], e[:, order]
            weights, endmembers[:, valid] = w, e.T
            error = float(np.linalg.norm(x[valid] - e @ w) / np.linalg.norm(x[valid]))
            step = change_point(e, frames[valid], min_segment=min_segment, min_score=min_score,
                                confidence=confidence)
        else:
            log.warning("%s: %d frames with data, too few for %d components", name, int(valid.sum()), n_components)
            step = change_point(np.zeros((0, n_components)), np.zeros(0), min_segment=min_segment)
        profile = np.full(frames.size, np.nan)
        profile[valid] = step["profile"] if valid.sum() == step["profile"].size else np.nan
        coords[grid_name] = (grid_name, grid, density[grid_name].attrs)
        frame_units = {"units": "frame"}
        data.update({
            f"weights_{name}": (("component", grid_name), weights,
                                {"long_name": f"NMF weights w_i({name}), each a density over {name}"}),
            f"endmembers_{name}": (("component", "frame"), endmembers,
                                   {"long_name": f"NMF endmembers e_i(t) of {name}: share of the frame's density"}),
            f"reconstruction_error_{name}": ((), error, {"long_name": "||X - WH||_F / ||X||_F"}),
            f"transition_frame_{name}": ((), step["frame"], {**frame_units, "long_name": "first frame after the step"}),
            f"transition_low_{name}": ((), step["low"], frame_units),
            f"transition_high_{name}": ((), step["high"], frame_units),
            f"transition_uncertainty_{name}": ((), step["uncertainty"], {
                **frame_units, "long_name": f"largest distance of the {confidence:g} profile-likelihood set"}),
            f"transition_score_{name}": ((), step["score"], {"long_name": "1 - RSS_step / RSS_const"}),
            f"has_transition_{name}": ((), bool(step["has_transition"]), {"threshold": min_score}),
            f"step_residual_{name}": ("frame", profile, {"long_name": "RSS of a step at this frame / RSS_const"}),
        })
    attrs = dict(n_components=n_components, seed=seed, variables=" ".join(names), max_iter=max_iter, tol=tol,
                 nmf_init="nndsvda", component_order="centre of mass of the endmember in time",
                 transition_method="joint least-squares step in the endmembers",
                 min_score=min_score, min_segment=min_segment, confidence=confidence)
    attrs.update({f"kde_{key}": value for key, value in kde.attrs.items() if key.startswith("bandwidth")})
    attrs.update(movie_attrs(kde.attrs))
    return xr.Dataset(data, coords=coords, attrs=provenance(**attrs))


def run(job) -> None:
    """Entry of rule ``nmf``: components of each latent's density map and the transition frame.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input[0]`` (``kde.nc``), ``output[0]`` (``nmf.nc``, see
        :func:`nmf_maps`), ``params.nmf`` (the ``nmf`` config section:
        ``components``, ``seed``, ``min_score``).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.kde import kde_maps
    >>> folder = tempfile.mkdtemp()
    >>> frame = np.repeat(np.arange(12), 3)
    >>> latents = xr.Dataset({"frame": ("particle", frame), "angle": ("particle", np.where(frame < 4, -1.0, 1.0))})
    >>> write_netcdf(kde_maps(latents, np.arange(12), grid_points=40, bandwidth=0.3), os.path.join(folder, "kde.nc"))
    >>> run(job("nmf", input=[os.path.join(folder, "kde.nc")], output=[os.path.join(folder, "nmf.nc")],
    ...         params={"nmf": {"components": 2, "seed": 0, "min_score": 0.5}}))
    >>> with xr.open_dataset(os.path.join(folder, "nmf.nc")) as nmf:
    ...     float(nmf["transition_frame_angle"])
    4.0
    """
    p = job.params.nmf
    with xr.open_dataset(job.input[0]) as kde:
        nmf = nmf_maps(kde.load(), n_components=p["components"], seed=p["seed"], min_score=p["min_score"])
    for name in density_names(kde):
        log.info("%s: transition frame %s +- %s", name, float(nmf[f"transition_frame_{name}"]),
                 float(nmf[f"transition_uncertainty_{name}"]))
    write_netcdf(nmf, job.output[0])
