"""The fit_rvae stage: training the rVAE on the windows of one movie or of all movies pooled.

Loss convention: every ELBO reported here is the *negative* ELBO per image
in nats (a positive loss, lower is better): ``-log p(x | latent) + KL``,
one reparameterised sample per image. The history columns keep the names
``train_elbo``/``test_elbo`` but hold this positive loss; ``train_elbo`` is
the mean over the epoch's mini-batches (weights changing during the epoch),
``test_elbo`` is computed after the epoch on the held-out windows with
noise seeded by (seed, epoch), so it is reproducible.

Speed notes (2-core AVX-512 Xeon without AMX, 24 x 24 windows): bfloat16 is
slower than float32 there, so the CPU trains in float32
(:func:`rotdyn.networks.autocast_dtype`); the decoder's large activations
are kept in reused buffers (see :mod:`rotdyn.rvae`). For processes that
allocate large arrays every step anyway, ``GLIBC_TUNABLES`` can keep glibc
from mapping (and the kernel from zeroing) fresh memory for each of them;
see ``benchmarks/rvae_speed.py`` for the measured effect.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .jobs import device
from .networks import autocast, autocast_dtype, num_threads, pick_device
from .rvae import RVAE, plain, save_rvae
from .store import atomic_path, provenance

log = logging.getLogger(__name__)
HISTORY_COLUMNS = ["epoch", "train_elbo", "test_elbo", "seconds"]


# ------------------------------------------------------------------ helpers
def _windows(patches) -> np.ndarray:
    """``patches`` as a checked ``(N, S, S)`` float32 array."""
    x = np.asarray(patches, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"patches must be (N, S, S) square windows, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("no windows to train the rVAE on: patches has 0 particles "
                         "(no particles were found, or all windows were dropped at the frame edge)")
    if not np.isfinite(x).all():
        raise ValueError(f"patches contain {int((~np.isfinite(x)).sum())} non-finite values")
    return x


def split_train_test(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train, test)`` indices; at least one training window, test may be empty."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(int(round(test_fraction * n)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _data_hash(x: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(x).view(np.uint8)).hexdigest()[:16]


def _mean_loss(model: RVAE, x: torch.Tensor, idx: torch.Tensor, batch_size: int,
               generator: torch.Generator, amp_dtype) -> float:
    """Mean -ELBO per image of windows ``idx`` (no gradients); NaN when ``idx`` is empty."""
    if len(idx) == 0:
        return math.nan
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            with autocast(x.device, amp_dtype):
                terms = model.negative_elbo(x[idx[start:start + batch_size]], generator=generator)
            total += terms["loss"].double().sum()
    return float(total) / len(idx)


def _report(progress, row: dict, epochs: int) -> None:
    eta = row["seconds"] * (epochs - row["epoch"])
    log.info("rvae epoch %d/%d: -ELBO train %.3f, test %.3f nats/window; %.2f s (eta %.0f min)",
             row["epoch"], epochs, row["train_elbo"], row["test_elbo"], row["seconds"], eta / 60)
    if progress is not None:
        progress(dict(row, epochs=epochs))


# ---------------------------------------------------------------- training
def fit(patches, *, latent_dim: int = 2, epochs: int = 3000, batch_size: int = 200, lr: float = 1e-4,
        seed: int = 0, test_fraction: float = 0.25, device: str = "auto", threads: int | None = None,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
        progress: Callable[[dict], None] | None = None, amp: bool | str = "auto", polarity_every: int = 5,
        **model_options) -> tuple[RVAE, pd.DataFrame]:
    """Train an :class:`~rotdyn.rvae.RVAE` on windows with Adam (paper 000: lr 1e-4, batch 200).

    Parameters
    ----------
    patches : array ``(N, S, S)``
        Windows (probability maps in [0, 1], or preprocessed frames).
    latent_dim : int
        Content latents besides angle and offsets.
    epochs : int
        Total epochs (a resumed fit counts the checkpoint's epochs).
    batch_size, lr : int, float
        Mini-batch size and Adam learning rate.
    seed : int
        Seeds the weights, the train/test split, the batch order and the
        sampling noise: the same seed (and thread count) gives the same fit.
    test_fraction : float
        Held-out share for the test ELBO (paper 002: 75/25).
    device : str
        "auto" (CUDA when present), "cpu" or "cuda[:N]".
    threads : int or None
        Torch CPU threads during the fit (None: unchanged).
    checkpoint : path or None
        Save model, optimiser, epoch, history and RNG states here every
        ``checkpoint_every`` epochs and at the end (atomically). If the file
        exists and was written with the same data and settings, the fit
        resumes from it and ends bit-identical to an uninterrupted one;
        otherwise it starts afresh (logged).
    progress : callable or None
        Called with each epoch's history row (plus ``epochs``); every
        epoch is also logged (INFO) -- the log is the progress bar.
    amp : bool or "auto"
        Autocast the matmuls to bfloat16/float16 on CUDA ("auto"); float32 on
        the CPU unless True (bfloat16 is slower without AMX).
    polarity_every : int
        With the model option ``polarity`` (default on), refit the head-tail
        reference on the training windows after every this many epochs
        (:meth:`~rotdyn.rvae.RVAE.fit_polarity`; the first ones, while the
        angle is still being learned, are soon replaced).
    **model_options
        Passed to :class:`~rotdyn.rvae.RVAE` (``hidden``, ``encoder``,
        ``likelihood``, ``rotation_prior``, ``rotation_sd``, ``polarity``, ...).

    Returns
    -------
    model : RVAE
        In eval mode, with ``training_info``.
    history : DataFrame
        ``epoch, train_elbo, test_elbo, seconds``; the ELBO columns hold
        -ELBO per window in nats (see the module docstring).
    """
    x_np = _windows(patches)
    epochs, batch_size, checkpoint_every = int(epochs), int(batch_size), int(checkpoint_every)
    polarity_every = int(polarity_every)
    if epochs < 0 or batch_size < 1 or checkpoint_every < 1 or polarity_every < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 0, batch_size >= 1, checkpoint_every >= 1, polarity_every >= 1, "
                         f"lr > 0; got {epochs}, {batch_size}, {checkpoint_every}, {polarity_every}, {lr}")
    device = pick_device(device)
    amp_dtype = autocast_dtype(device, amp) if (device.type == "cuda" or amp is True) else None
    n, size = x_np.shape[0], x_np.shape[1]
    train_idx, test_idx = split_train_test(n, test_fraction, seed)
    settings = plain(dict(n=n, size=size, data=_data_hash(x_np), latent_dim=latent_dim,
                           batch_size=batch_size, lr=lr, seed=seed, test_fraction=test_fraction,
                           device=device.type, amp=str(amp_dtype), polarity_every=polarity_every,
                           model=model_options))

    with num_threads(threads):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = RVAE(size, latent_dim=latent_dim, **model_options).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        shuffle_gen = torch.Generator().manual_seed(seed + 1)
        noise_gen = torch.Generator(device=device).manual_seed(seed + 2)
        eval_gen = torch.Generator(device=device)
        history = {name: [] for name in HISTORY_COLUMNS}
        start = 0
        state = _load_checkpoint(checkpoint, device)
        if state is not None:
            if state.get("settings") == settings and state["epoch"] <= epochs:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                scaler.load_state_dict(state["scaler"])
                shuffle_gen.set_state(state["rng"]["shuffle"].cpu())  # states are CPU byte tensors
                noise_gen.set_state(state["rng"]["noise"].cpu())
                history = {name: list(state["history"][name]) for name in HISTORY_COLUMNS}
                start = int(state["epoch"])
                log.info("rvae: resuming from %s at epoch %d", checkpoint, start)
            else:
                log.warning("rvae: checkpoint %s does not match this fit's data/settings "
                            "(or has more epochs); starting afresh", checkpoint)

        x = torch.as_tensor(x_np, device=device)
        train_t = torch.as_tensor(train_idx, device=device)
        test_t = torch.as_tensor(test_idx, device=device)
        for epoch in range(start + 1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            order = train_t[torch.randperm(len(train_t), generator=shuffle_gen).to(device)]
            total = torch.zeros((), dtype=torch.float64, device=device)
            for b in range(0, len(order), batch_size):
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, amp_dtype):
                    terms = model.negative_elbo(x[order[b:b + batch_size]], generator=noise_gen)
                scaler.scale(terms["loss"].mean()).backward()
                scaler.step(optimizer)
                scaler.update()
                total += terms["loss"].detach().double().sum()
            train_loss = float(total) / len(order)
            if not math.isfinite(train_loss):
                raise RuntimeError(f"rvae: non-finite ELBO at epoch {epoch}; try a lower lr (now {lr})")
            if model.config["polarity"] and epoch % polarity_every == 0:
                _update_polarity(model, x[train_t], epoch)
            eval_gen.manual_seed(seed + 1_000_003 * epoch)
            test_loss = _mean_loss(model, x, test_t, 1000, eval_gen, amp_dtype)
            row = dict(epoch=epoch, train_elbo=train_loss, test_elbo=test_loss,
                       seconds=time.perf_counter() - t0)
            for name in HISTORY_COLUMNS:
                history[name].append(row[name])
            _report(progress, row, epochs)
            if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == epochs):
                _save_checkpoint(checkpoint, model, optimizer, scaler, epoch, history, shuffle_gen, noise_gen,
                                 settings)

    history = pd.DataFrame(history, columns=HISTORY_COLUMNS).astype({"epoch": np.int64})
    last = history.iloc[-1] if len(history) else None
    model.training_info = plain(dict(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, test_fraction=test_fraction,
        n_train=len(train_idx), n_test=len(test_idx), device=device.type, amp=str(amp_dtype),
        final_train_elbo=None if last is None else last["train_elbo"],
        final_test_elbo=None if last is None else last["test_elbo"],
        noise_sd=None if model.noise_sd() is None else float(torch.as_tensor(model.noise_sd()).detach())))
    return model.eval(), history


def _update_polarity(model: RVAE, x: torch.Tensor, epoch: int) -> None:
    model.eval()
    changed = model.fit_polarity(x)
    log.info("rvae: head-tail reference refitted after epoch %d; %.1f %% of the training windows turned by pi",
             epoch, 100 * changed)


def _load_checkpoint(path, device) -> dict | None:
    """The checkpoint at ``path``, or None when there is none or it cannot be read (logged)."""
    if path is None or not Path(path).exists():
        return None
    try:
        return torch.load(Path(path), map_location=device, weights_only=True)
    except Exception as exc:  # a foreign or damaged file: train afresh rather than fail
        log.warning("rvae: cannot read checkpoint %s (%s); starting afresh", path, exc)
        return None


def _save_checkpoint(path, model, optimizer, scaler, epoch, history, shuffle_gen, noise_gen, settings):
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": int(epoch),
        "history": plain(history),
        "rng": {"shuffle": shuffle_gen.get_state(), "noise": noise_gen.get_state()},
        "settings": settings,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# ------------------------------------------------------------------- stage
MODEL_KEYS = ("latent_dim", "hidden", "encoder", "translation", "likelihood", "rotation_prior", "rotation_sd",
              "polarity")


def run(job) -> None:
    """Entry of rule ``fit_rvae``: the rVAE on the windows of one movie, or of all movies pooled.

    ``job.input`` lists patches.nc files; ``job.params.rvae`` holds the
    model settings ("auto" resolved, :func:`rotdyn.settings.rvae_fit_settings`),
    ``job.params.checkpoint`` where to keep the resumable state. With no
    windows at all, an untrained model is saved (``trained = 0``) so the chain
    goes on to empty tables.
    """
    windows = []
    for path in job.input:
        with xr.open_dataset(path) as ds:
            windows.append(ds["patches"].values)
    patches = np.concatenate(windows)
    log.info("%d windows from %d movie(s)", len(patches), len(job.input))
    p = dict(job.params.rvae)
    meta = {"movies": ",".join(Path(path).parent.name for path in job.input), "trained": 1}
    if len(patches):
        model, history = fit(patches, checkpoint=job.params.checkpoint,
                             checkpoint_every=job.config["rvae"]["checkpoint_every"],
                             device=device(job), threads=job.threads, **p)
    else:
        log.warning("%s: no windows to train on; the rVAE stays untrained and encodes nothing",
                    ", ".join(job.input))
        model = RVAE(windows[0].shape[-1], **{k: p[k] for k in MODEL_KEYS})
        history, meta["trained"] = pd.DataFrame(columns=HISTORY_COLUMNS), 0
    with atomic_path(job.output.history) as tmp:
        history.to_csv(tmp, index=False)
    save_rvae(model, job.output.model, meta)
    Path(job.params.checkpoint).unlink(missing_ok=True)  # finished: nothing to resume
