"""The encode stage: every particle's window -> its latent angle, offsets and content latents.

:func:`encode_windows` runs a trained rVAE's encoder over the windows of
``patches.nc``; :func:`latents_dataset` lays the result out as the
``latents.nc`` contract (:data:`rotdyn.contracts.LATENTS`).
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import xarray as xr

from .contracts import RECONSTRUCTION_ERROR
from .networks import model_device
from .rvae import RVAE, load_rvae
from .store import provenance, write_netcdf

log = logging.getLogger(__name__)


def encode_windows(model: RVAE, patches, batch_size: int = 1000) -> dict:
    """Posterior means and sds of every window, pose in both latent units and pixels.

    Unlike :meth:`RVAE.encode` (the raw posterior of one batch, a tensor), this
    resolves head vs tail, wraps the angle and converts offsets to pixels.

    Parameters
    ----------
    model : RVAE
        The trained model.
    patches : array_like
        ``(N, S, S)`` windows, ``S = model.size``.
    batch_size : int
        Windows per forward pass.

    Returns
    -------
    dict of arrays
        ``angle``, ``angle_sd`` (rad; angle wrapped to [-pi, pi)),
        ``dx``, ``dy``, ``dx_sd``, ``dy_sd`` (latent units), ``dx_px``,
        ``dy_px``, ``dx_px_sd``, ``dy_px_sd`` (pixels; +x right, +y down),
        ``z``, ``z_sd`` ``(N, k)``. Offsets are 0 for a model without
        translation. ``reconstruction_error``: :func:`reconstruction_error`
        of the decoding of the posterior mean.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> out = encode_windows(RVAE(12, latent_dim=2, polarity=False), np.random.default_rng(0).random((5, 12, 12)))
    >>> out["angle"].shape, out["z"].shape, bool((np.abs(out["angle"]) <= np.pi).all())
    ((5,), (5, 2), True)
    """
    x = np.asarray(patches, dtype=np.float32)
    S, k = model.size, model.latent_dim
    if x.ndim != 3 or x.shape[1:] != (S, S):
        raise ValueError(f"patches must be (N, {S}, {S}) for this model, got shape {x.shape}")
    device = model_device(model)
    means, sds = [np.zeros((0, model.n_latent), np.float32)], [np.zeros((0, model.n_latent), np.float32)]
    errors = [np.zeros(0, np.float32)]
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.as_tensor(x[start:start + batch_size], device=device)
            q = model.encode(batch)
            q["mean"] = model.resolve_polarity(batch, q["mean"])  # head vs tail (see rotdyn.rvae)
            means.append(q["mean"].float().cpu().numpy())
            sds.append(q["sd"].float().cpu().numpy())
            errors.append(reconstruction_error(x[start:start + batch_size],
                                               model.decode(q["mean"]).float().cpu().numpy()))
    mean, sd = np.concatenate(means), np.concatenate(sds)
    angle = (mean[:, 0] + np.pi) % (2 * np.pi) - np.pi
    out = {"angle": angle.astype(np.float32), "angle_sd": sd[:, 0]}
    if model.n_shift:
        dx, dy, dx_sd, dy_sd = mean[:, 1], mean[:, 2], sd[:, 1], sd[:, 2]
    else:
        dx = dy = dx_sd = dy_sd = np.zeros(len(x), np.float32)
    out.update(dx=dx, dy=dy, dx_sd=dx_sd, dy_sd=dy_sd)
    out["dx_px"], out["dy_px"] = model.offsets_px(dx, dy)
    out["dx_px_sd"], out["dy_px_sd"] = model.offsets_px(dx_sd, dy_sd)
    out["z"], out["z_sd"] = mean[:, 1 + model.n_shift:], sd[:, 1 + model.n_shift:]
    out[RECONSTRUCTION_ERROR] = np.concatenate(errors)
    return {key: np.asarray(value, np.float32).reshape((len(x), k) if key in ("z", "z_sd") else (len(x),))
            for key, value in out.items()}


def reconstruction_error(windows, reconstructions) -> np.ndarray:
    """Mean squared error of each reconstruction, over its window's variance.

    0 is a perfect reconstruction and 1 no better than the window's own mean;
    above 1 is worse than that. A window without variance (all one value)
    gets NaN: there is nothing to reconstruct.

    Parameters
    ----------
    windows, reconstructions : array_like
        ``(N, S, S)`` each.

    Returns
    -------
    ndarray
        ``(N,)`` float32.

    Examples
    --------
    >>> w = np.array([[[0.0, 1.0], [0.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]]])
    >>> reconstruction_error(w, [[[0.5, 0.5], [0.5, 0.5]], [[2.0, 2.0], [2.0, 2.0]]]).tolist()
    [1.0, nan]
    >>> reconstruction_error(w[:1], w[:1]).tolist()
    [0.0]
    """
    w = np.asarray(windows, np.float64)
    r = np.asarray(reconstructions, np.float64).reshape(w.shape)
    axes = tuple(range(1, w.ndim))
    variance = w.var(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        error = ((w - r) ** 2).mean(axis=axes) / variance
    return np.where(variance > 0, error, np.nan).astype(np.float32)


def latents_dataset(encoded: dict, patches_ds: xr.Dataset, model: RVAE | None = None) -> xr.Dataset:
    """The ``latents.nc`` contract from :func:`encode_windows` output and ``patches.nc``.

    Dimension ``particle`` in the order of ``patches_ds`` (``particle_index``
    points back into particles.nc); variables ``angle``, ``angle_sd`` (rad),
    ``dx``, ``dy``, ``dx_sd``, ``dy_sd`` (px, +x right, +y down),
    ``z(particle, latent)``, ``z_sd``; ``reconstruction_error`` when
    ``encoded`` has it (:func:`reconstruction_error`); ``frame, x, y, class``
    (and ``padded`` where present) copied. Attributes: those of ``patches_ds``
    plus the model's settings (``rvae_*``) when ``model`` is given.

    Parameters
    ----------
    encoded : dict
        :func:`encode_windows` of the windows of ``patches_ds``, in their order.
    patches_ds : Dataset
        ``patches.nc``.
    model : RVAE or None
        The model, for its settings and what its angle means.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> windows = np.random.default_rng(0).random((3, 12, 12)).astype(np.float32)
    >>> patches = xr.Dataset({"patches": (("particle", "py", "px"), windows), "frame": ("particle", [0, 0, 1])})
    >>> model = RVAE(12, latent_dim=2, polarity=False)
    >>> ds = latents_dataset(encode_windows(model, windows), patches, model)
    >>> ds.sizes["particle"], ds["latent"].values.tolist(), ds["frame"].values.tolist(), ds["dx"].attrs["units"]
    (3, [1, 2], [0, 0, 1], 'px')
    """
    n = patches_ds.sizes.get("particle", 0)
    z = np.asarray(encoded["z"], np.float32)
    if len(encoded["angle"]) != n:
        raise ValueError(f"encoded has {len(encoded['angle'])} windows, patches {n}")
    k = z.shape[1] if z.ndim == 2 else (model.latent_dim if model is not None else 0)
    z = z.reshape(n, k)
    z_sd = np.asarray(encoded["z_sd"], np.float32).reshape(n, k)
    index = patches_ds["particle_index"].values if "particle_index" in patches_ds else np.arange(n)
    px = {"units": "px"}
    angle_name = "latent angle, counter-clockwise as displayed, + a constant"
    if model is not None:  # what the angle can tell (see rotdyn.rvae, Polarity)
        angle_name += "; head direction" if model.config["polarity"] else "; axis only (modulo pi)"
    data = {
        "angle": ("particle", encoded["angle"], {"units": "rad", "long_name": angle_name}),
        "angle_sd": ("particle", encoded["angle_sd"], {"units": "rad"}),
        "dx": ("particle", encoded["dx_px"], {**px, "long_name": "latent x offset, + right"}),
        "dy": ("particle", encoded["dy_px"], {**px, "long_name": "latent y offset, + down (row)"}),
        "dx_sd": ("particle", encoded["dx_px_sd"], px),
        "dy_sd": ("particle", encoded["dy_px_sd"], px),
        "z": (("particle", "latent"), z, {"long_name": "content latents L_1..L_k"}),
        "z_sd": (("particle", "latent"), z_sd),
        "particle_index": ("particle", np.asarray(index, np.int64)),
    }
    if RECONSTRUCTION_ERROR in encoded:
        data[RECONSTRUCTION_ERROR] = ("particle", np.asarray(encoded[RECONSTRUCTION_ERROR], np.float32),
                                      {"long_name": "mean squared reconstruction error / window variance "
                                                    "(1 = no better than the window mean)"})
    for name in ("frame", "x", "y", "class", "padded"):
        if name in patches_ds:
            data[name] = ("particle", patches_ds[name].values)
    # the dataset gets its own provenance stamp
    attrs = {k: v for k, v in patches_ds.attrs.items() if k not in ("created", "rotdyn_version")}
    if model is not None:
        attrs.update({f"rvae_{key}": value for key, value in
                      {**model.config, **getattr(model, "training_info", {})}.items()})
    coords = {"particle": patches_ds["particle"].values if "particle" in patches_ds.coords else np.arange(n),
              "latent": np.arange(1, k + 1)}
    return xr.Dataset(data, coords=coords, attrs=provenance(**attrs))


def run(job) -> None:
    """Entry of rule ``encode``: ``job.input.patches`` through the rVAE ``job.input.model`` -> latents.nc.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.model`` (:func:`rotdyn.rvae.save_rvae`), ``input.patches``; ``output[0]``.

    Examples
    --------
    >>> import tempfile, os
    >>> from rotdyn.jobs import job
    >>> from rotdyn.rvae import save_rvae
    >>> folder = tempfile.mkdtemp()
    >>> save_rvae(RVAE(12, polarity=False), os.path.join(folder, "model.pt"))
    >>> windows = np.random.default_rng(0).random((4, 12, 12)).astype(np.float32)
    >>> xr.Dataset({"patches": (("particle", "py", "px"), windows)}).to_netcdf(os.path.join(folder, "patches.nc"))
    >>> run(job("encode", input={"model": os.path.join(folder, "model.pt"),
    ...                          "patches": os.path.join(folder, "patches.nc")},
    ...         output=[os.path.join(folder, "latents.nc")]))
    >>> with xr.open_dataset(os.path.join(folder, "latents.nc")) as latents:
    ...     latents.sizes["particle"], "reconstruction_error" in latents
    (4, True)
    """
    model, _ = load_rvae(job.input.model)
    with xr.open_dataset(job.input.patches) as patches:
        latents = latents_dataset(encode_windows(model, patches["patches"].values), patches, model)
    log.info("%d particles encoded", latents.sizes["particle"])
    write_netcdf(latents, job.output[0])
