"""Saving and loading rVAE models: weights, constructor settings and training metadata, plain types only."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..store import atomic_path, plain
from .model import RVAE, rotation_prior_name


def save_rvae(model: RVAE, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Save ``{"state_dict", "config", "meta"}`` to ``path`` atomically.

    ``meta`` is merged over ``model.training_info``; everything is stored as
    plain Python types so :func:`load_rvae` can read it with ``weights_only``.

    Parameters
    ----------
    model : RVAE
        The model; its weights are saved on the CPU.
    path : str or os.PathLike
        The file (written under a temporary name, then renamed).
    meta : dict or None
        Training metadata (movies, epochs, losses, ...).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "model.pt"
    >>> save_rvae(RVAE(8, hidden=16), path, {"movies": "demo"})
    >>> model, meta = load_rvae(path)
    >>> meta["movies"], meta["config"]["size"], model.training
    ('demo', 8, False)
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {**getattr(model, "training_info", {}), **(meta or {})}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "config": plain(model.config),
                    "meta": plain(meta, nan=float("nan"))}, tmp)


def load_rvae(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[RVAE, dict]:
    """Rebuild a model saved by :func:`save_rvae`; returns ``(model, meta)`` in eval mode.

    ``meta`` holds the saved meta plus ``config`` (the constructor's
    arguments). Files from older releases load: without a head-tail
    reference (none fitted) and with the old name of the uniform prior.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_rvae`.
    device : str or torch.device
        Where the model is placed.

    Returns
    -------
    model : RVAE
        In eval mode, with ``training_info`` set to the saved meta.
    meta : dict
        The saved meta and ``config``.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "model.pt"
    >>> saved = RVAE(8, hidden=16)
    >>> save_rvae(saved, path)
    >>> model, meta = load_rvae(path)
    >>> latent = torch.randn(2, model.n_latent)
    >>> torch.equal(model.decoder_raw(latent), saved.decoder_raw(latent))  # the same network
    True

    A file from before the head-tail reference, with the uniform prior's old name:

    >>> blob = torch.load(path, weights_only=True)
    >>> del blob["state_dict"]["polarity_ref"]
    >>> blob["config"]["rotation_prior"] = "vonmises"
    >>> torch.save(blob, path)
    >>> model, meta = load_rvae(path)
    >>> meta["config"]["rotation_prior"], bool(model.polarity_ref.any())
    ('uniform', False)
    """
    blob = torch.load(Path(path), map_location=device, weights_only=True)
    config = dict(blob["config"])
    config["rotation_prior"] = rotation_prior_name(config["rotation_prior"], warn=False)
    model = RVAE(**config)
    state = dict(blob["state_dict"])
    state.setdefault("polarity_ref", model.polarity_ref)  # saved before polarity existed: none fitted
    model.load_state_dict(state)
    meta = dict(blob["meta"])
    model.training_info = dict(meta)
    meta["config"] = config
    return model.to(device).eval(), meta
