"""The fit_rvae stage: training the rVAE on the windows of one movie, or of all movies of a kind pooled.

Loss convention: the loss is the *negative* ELBO per window in nats
(positive, lower is better), ``-log p(x | latent) + KL`` with one
reparameterised sample per window. ``history.csv`` holds it as
``train_loss`` (mean over the epoch's mini-batches, weights changing during
the epoch) and ``test_loss`` (after the epoch, on the held-out windows, with
noise seeded by (seed, epoch), so it is reproducible).

:func:`fit` is built from an epoch step (:func:`train_epoch`), a resume
helper (:func:`resume`) and a checkpoint writer (:func:`save_checkpoint`),
as :mod:`rotdyn.train` does for the segmentation ensemble. Speed notes and
the measurements behind the CPU settings: ``docs/rvae-speed.md``.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .jobs import device
from .networks import autocast, autocast_dtype, cpu_has_fast_bf16, model_device, num_threads, pick_device
from .rvae import RVAE, save_rvae
from .store import atomic_path, plain

log = logging.getLogger(__name__)
HISTORY_COLUMNS = ["epoch", "train_loss", "test_loss", "seconds"]
# Constructor settings of the rVAE among the stage's params (the rest are training settings).
MODEL_KEYS = ("latent_dim", "hidden", "encoder", "translation", "likelihood", "rotation_prior", "rotation_sd",
              "polarity")


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
    """Random ``(train, test)`` indices; at least one training window, test may be empty.

    Parameters
    ----------
    n : int
        Number of windows.
    test_fraction : float
        Share held out for testing, in [0, 1) (rounded to whole windows; ValueError outside).
    seed : int
        Seed of the permutation.

    Returns
    -------
    train, test : ndarray
        Sorted window indices; together ``0 .. n - 1``.

    Examples
    --------
    >>> train, test = split_train_test(8, 0.25, seed=0)
    >>> len(train), len(test), sorted(np.concatenate([train, test]).tolist()) == list(range(8))
    (6, 2, True)
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(int(round(test_fraction * n)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _data_hash(x: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(x).view(np.uint8)).hexdigest()[:16]


def mean_loss(model: RVAE, x: torch.Tensor, idx: torch.Tensor, batch_size: int,
              generator: torch.Generator | None = None, amp_dtype=None) -> float:
    """Mean negative ELBO per window of windows ``x[idx]`` (no gradients); NaN when ``idx`` is empty.

    Parameters
    ----------
    model : RVAE
        Put in eval mode.
    x : torch.Tensor
        ``(N, S, S)`` windows.
    idx : torch.Tensor
        Indices of the windows to score.
    batch_size : int
        Windows per forward pass.
    generator : torch.Generator or None
        Source of the reparameterisation noise.
    amp_dtype : torch.dtype or None
        Autocast dtype (None: no autocast).

    Returns
    -------
    float
        Mean negative ELBO per window, nats.

    Examples
    --------
    >>> model = RVAE(8, hidden=8, polarity=False)
    >>> x = torch.rand(4, 8, 8)
    >>> math.isfinite(mean_loss(model, x, torch.arange(4), 2)), math.isnan(mean_loss(model, x, torch.arange(0), 2))
    (True, True)
    """
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


@dataclass
class FitState:
    """Everything a fit carries from epoch to epoch, and what a checkpoint holds.

    Attributes
    ----------
    model : RVAE
        The model being trained.
    optimizer : torch.optim.Optimizer
        Adam over the model's parameters.
    scaler : torch.amp.GradScaler
        Loss scaling (enabled for float16 on CUDA only).
    shuffle_gen, noise_gen : torch.Generator
        The order of the windows; the reparameterisation noise.
    history : dict
        One list per column of :data:`HISTORY_COLUMNS`.
    epoch : int
        Epochs done.

    Examples
    --------
    >>> model = RVAE(8, hidden=8, polarity=False)
    >>> state = FitState(model, torch.optim.Adam(model.parameters()), torch.amp.GradScaler("cpu", enabled=False),
    ...                  torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    >>> state.epoch, sorted(state.history)
    (0, ['epoch', 'seconds', 'test_loss', 'train_loss'])
    """

    model: RVAE
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    shuffle_gen: torch.Generator
    noise_gen: torch.Generator
    history: dict = field(default_factory=lambda: {name: [] for name in HISTORY_COLUMNS})
    epoch: int = 0


def train_epoch(state: FitState, x: torch.Tensor, train_idx: torch.Tensor, batch_size: int, amp_dtype) -> float:
    """One pass of Adam over the training windows in a shuffled order; returns the mean loss per window.

    Parameters
    ----------
    state : FitState
        Model, optimizer, scaler and generators; updated in place.
    x : torch.Tensor
        ``(N, S, S)`` windows.
    train_idx : torch.Tensor
        Indices of the training windows.
    batch_size : int
        Windows per optimizer step.
    amp_dtype : torch.dtype or None
        Autocast dtype (None: no autocast).

    Returns
    -------
    float
        Mean negative ELBO per training window over the epoch, nats (as trained, before each step).

    Examples
    --------
    >>> model = RVAE(8, hidden=8, polarity=False)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    >>> state = FitState(model, opt, torch.amp.GradScaler("cpu", enabled=False),
    ...                  torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    >>> loss = train_epoch(state, torch.rand(6, 8, 8), torch.arange(6), batch_size=4, amp_dtype=None)
    >>> math.isfinite(loss)
    True
    """
    model, dev = state.model, x.device
    model.train()
    order = train_idx[torch.randperm(len(train_idx), generator=state.shuffle_gen).to(dev)]
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for b in range(0, len(order), batch_size):
        state.optimizer.zero_grad(set_to_none=True)
        with autocast(dev, amp_dtype):
            terms = model.negative_elbo(x[order[b:b + batch_size]], generator=state.noise_gen)
        state.scaler.scale(terms["loss"].mean()).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        total += terms["loss"].detach().double().sum()
    return float(total) / len(order)


def resume(state: FitState, checkpoint, settings: dict, epochs: int) -> None:
    """Load ``checkpoint`` into ``state`` when it was written by this very fit (same data and settings).

    Otherwise (no file, unreadable, other data or settings, more epochs) the
    fit starts afresh, and the reason is logged.

    Parameters
    ----------
    state : FitState
        Filled in place from the checkpoint.
    checkpoint : path or None
        Written by :func:`save_checkpoint`.
    settings : dict
        This fit's data hash and settings; the checkpoint's must equal them.
    epochs : int
        This fit's total epochs.

    Examples
    --------
    >>> import tempfile, os
    >>> def fresh():
    ...     model = RVAE(8, hidden=8, polarity=False)
    ...     return FitState(model, torch.optim.Adam(model.parameters()), torch.amp.GradScaler("cpu", enabled=False),
    ...                     torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.ckpt")
    >>> saved = fresh()
    >>> saved.epoch = 4
    >>> save_checkpoint(path, saved, {"data": "abc"})
    >>> state = fresh()
    >>> resume(state, path, {"data": "abc"}, epochs=10)
    >>> state.epoch
    4
    >>> other = fresh()
    >>> resume(other, path, {"data": "other windows"}, epochs=10)  # not this fit's: starts afresh
    >>> other.epoch
    0
    """
    saved = _load_checkpoint(checkpoint, model_device(state.model))
    if saved is None:
        return
    if saved.get("settings") != settings or saved["epoch"] > epochs:
        log.warning("rvae: checkpoint %s does not match this fit's data/settings "
                    "(or has more epochs); starting afresh", checkpoint)
        return
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scaler.load_state_dict(saved["scaler"])
    state.shuffle_gen.set_state(saved["rng"]["shuffle"].cpu())  # states are CPU byte tensors
    state.noise_gen.set_state(saved["rng"]["noise"].cpu())
    state.history = {name: list(saved["history"][name]) for name in HISTORY_COLUMNS}
    state.epoch = int(saved["epoch"])
    log.info("rvae: resuming from %s at epoch %d", checkpoint, state.epoch)


def _load_checkpoint(path, device) -> dict | None:
    """The checkpoint at ``path``, or None when there is none or it cannot be read (logged)."""
    if path is None or not Path(path).exists():
        return None
    try:
        return torch.load(Path(path), map_location=device, weights_only=True)
    except Exception as exc:  # a foreign or damaged file: train afresh rather than fail
        log.warning("rvae: cannot read checkpoint %s (%s); starting afresh", path, exc)
        return None


def save_checkpoint(path, state: FitState, settings: dict) -> None:
    """Write model, optimiser, scaler, epoch, history and RNG states to ``path`` atomically.

    Parameters
    ----------
    path : path
        The checkpoint file (written under a temporary name, then renamed).
    state : FitState
        What to save.
    settings : dict
        The fit's data hash and settings, compared by :func:`resume`.

    Examples
    --------
    >>> import tempfile, os
    >>> model = RVAE(8, hidden=8, polarity=False)
    >>> state = FitState(model, torch.optim.Adam(model.parameters()), torch.amp.GradScaler("cpu", enabled=False),
    ...                  torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.ckpt")
    >>> save_checkpoint(path, state, {"data": "abc"})
    >>> sorted(torch.load(path, weights_only=True))
    ['epoch', 'history', 'model', 'optimizer', 'rng', 'scaler', 'settings']
    """
    blob = {
        "model": {k: v.detach().cpu() for k, v in state.model.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "epoch": int(state.epoch),
        "history": plain(state.history, nan=float("nan")),
        "rng": {"shuffle": state.shuffle_gen.get_state(), "noise": state.noise_gen.get_state()},
        "settings": settings,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def _report(progress, row: dict, epochs: int) -> None:
    eta = row["seconds"] * (epochs - row["epoch"])
    log.info("rvae epoch %d/%d: -ELBO train %.3f, test %.3f nats/window; %.2f s (eta %.0f min)",
             row["epoch"], epochs, row["train_loss"], row["test_loss"], row["seconds"], eta / 60)
    if progress is not None:
        progress(dict(row, epochs=epochs))


def _update_polarity(model: RVAE, x: torch.Tensor, epoch: int) -> None:
    model.eval()
    changed = model.fit_polarity(x)
    log.info("rvae: head-tail reference refitted after epoch %d; %.1f %% of the training windows turned by pi",
             epoch, 100 * changed)


def epochs_for(epochs: int, min_steps: int, n_train: int, batch_size: int) -> int:
    """Epochs that run at least ``min_steps`` Adam steps on ``n_train`` windows: ``epochs`` or more.

    A budget in epochs undertrains a small movie: 700 windows in batches of
    32 take 17 steps an epoch, so 60 epochs are 1,000 steps, where the demo's
    1,300 windows get 1,800 and the real bacteria's latent angle needs about
    3,000 to follow the cells' turns (``benchmarks/rvae_real.py``).

    Parameters
    ----------
    epochs : int
        The epochs asked for.
    min_steps : int
        Fewest optimiser steps (0: ``epochs`` as given).
    n_train, batch_size : int
        Training windows and mini-batch size (a last, smaller batch is a step too).

    Returns
    -------
    int
        ``max(epochs, ceil(min_steps / steps per epoch))``.

    Examples
    --------
    >>> epochs_for(60, 3000, n_train=525, batch_size=32), epochs_for(60, 3000, n_train=4000, batch_size=32)
    (177, 60)
    """
    per_epoch = max(math.ceil(n_train / batch_size), 1)
    return max(int(epochs), math.ceil(int(min_steps) / per_epoch))


def _check_counts(epochs, batch_size, checkpoint_every, polarity_every, lr) -> None:
    if epochs < 0 or batch_size < 1 or checkpoint_every < 1 or polarity_every < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 0, batch_size >= 1, checkpoint_every >= 1, polarity_every >= 1, "
                         f"lr > 0; got {epochs}, {batch_size}, {checkpoint_every}, {polarity_every}, {lr}")


# ---------------------------------------------------------------- training
def fit(patches, *, latent_dim: int = 2, epochs: int = 3000, batch_size: int = 200, lr: float = 1e-4,
        seed: int = 0, test_fraction: float = 0.25, device: str = "auto", threads: int | None = None,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
        progress: Callable[[dict], None] | None = None, amp: bool | str = "auto", polarity_every: int = 5,
        precision: str = "auto", min_steps: int = 0, **model_options) -> tuple[RVAE, pd.DataFrame]:
    """Train an :class:`~rotdyn.rvae.RVAE` on windows with Adam (paper 000: lr 1e-4, batch 200).

    Parameters
    ----------
    patches : array ``(N, S, S)``
        Windows (probability maps in [0, 1], or preprocessed frames).
    latent_dim : int
        Content latents besides angle and offsets.
    epochs : int
        Total epochs (a resumed fit counts the checkpoint's epochs); raised
        where needed to run ``min_steps`` (:func:`epochs_for`, logged).
    batch_size, lr : int, float
        Mini-batch size and Adam learning rate.
    seed : int
        Seeds the weights, the train/test split, the batch order and the
        sampling noise: the same seed (and thread count) gives the same fit.
    test_fraction : float
        Held-out share for the test loss (paper 002: 75/25).
    device : str
        "auto" (CUDA when present), "cpu" or "cuda[:N]".
    threads : int or None
        Torch CPU threads during the fit (None: unchanged).
    checkpoint : path or None
        Save the fit's state here every ``checkpoint_every`` epochs and at the
        end (atomically). If the file exists and was written with the same
        data and settings, the fit resumes from it and ends bit-identical to
        an uninterrupted one; otherwise it starts afresh (logged).
    progress : callable or None
        Called with each epoch's history row (plus ``epochs``); every
        epoch is also logged (INFO) -- the log is the progress bar.
    amp : bool or "auto"
        Autocast the matmuls to bfloat16/float16 on CUDA ("auto"); float32 on
        the CPU unless True.
    polarity_every : int
        With the model option ``polarity`` (default on), refit the head-tail
        reference on the training windows after every this many epochs.
    precision : {"auto", "float32", "bfloat16"}
        Compute dtype of the decoder (:class:`~rotdyn.rvae.RVAE`'s option;
        weights and Adam stay float32). "auto": bfloat16 on a CPU that
        computes it natively, for windows where it measured faster
        (``docs/rvae-speed.md``). Resolved once; logged, part of the
        checkpoint's settings and of ``training_info["precision"]``.
    min_steps : int
        Fewest Adam steps: a small set of windows gets more epochs (0: off).
    **model_options
        Passed to :class:`~rotdyn.rvae.RVAE` (``hidden``, ``encoder``,
        ``likelihood``, ``rotation_prior``, ``rotation_sd``, ``polarity``, ...).

    Returns
    -------
    model : RVAE
        In eval mode, with ``training_info``.
    history : DataFrame
        ``epoch, train_loss, test_loss, seconds``; the losses are the
        negative ELBO per window in nats.

    Examples
    --------
    >>> windows = np.random.default_rng(0).random((20, 10, 10), dtype=np.float32)
    >>> model, history = fit(windows, epochs=2, batch_size=8, hidden=16, device="cpu")
    >>> history.columns.tolist(), history["epoch"].tolist(), model.training_info["n_train"]
    (['epoch', 'train_loss', 'test_loss', 'seconds'], [1, 2], 15)
    """
    x_np = _windows(patches)
    epochs, batch_size, checkpoint_every = int(epochs), int(batch_size), int(checkpoint_every)
    polarity_every = int(polarity_every)
    _check_counts(epochs, batch_size, checkpoint_every, polarity_every, lr)
    dev = pick_device(device)
    amp_dtype = autocast_dtype(dev, amp) if (dev.type == "cuda" or amp is True) else None
    n, size = x_np.shape[0], x_np.shape[1]
    train_idx, test_idx = split_train_test(n, test_fraction, seed)
    asked, epochs = epochs, epochs_for(epochs, min_steps, len(train_idx), batch_size)
    if epochs > asked:
        log.info("rvae: %d epochs instead of %d, for at least %d steps on %d training windows",
                 epochs, asked, min_steps, len(train_idx))
    settings = plain(dict(n=n, size=size, data=_data_hash(x_np), latent_dim=latent_dim,
                          batch_size=batch_size, lr=lr, seed=seed, test_fraction=test_fraction,
                          device=dev.type, amp=str(amp_dtype), polarity_every=polarity_every,
                          model=model_options))

    with num_threads(threads):
        state = _new_state(size, latent_dim, lr, seed, dev, amp_dtype, dict(model_options, precision=precision))
        settings["precision"] = precision = _fix_precision(state.model, dev, amp_dtype, precision)
        resume(state, checkpoint, settings, epochs)
        x = torch.as_tensor(x_np, device=dev)
        train_t, test_t = torch.as_tensor(train_idx, device=dev), torch.as_tensor(test_idx, device=dev)
        eval_gen = torch.Generator(device=dev)
        for epoch in range(state.epoch + 1, epochs + 1):
            t0 = time.perf_counter()
            train_loss = train_epoch(state, x, train_t, batch_size, amp_dtype)
            if not math.isfinite(train_loss):
                raise RuntimeError(f"rvae: non-finite loss at epoch {epoch}; try a lower lr (now {lr})")
            if state.model.config["polarity"] and epoch % polarity_every == 0:
                _update_polarity(state.model, x[train_t], epoch)
            eval_gen.manual_seed(seed + 1_000_003 * epoch)
            test_loss = mean_loss(state.model, x, test_t, 1000, eval_gen, amp_dtype)
            row = dict(epoch=epoch, train_loss=train_loss, test_loss=test_loss, seconds=time.perf_counter() - t0)
            for name in HISTORY_COLUMNS:
                state.history[name].append(row[name])
            state.epoch = epoch
            _report(progress, row, epochs)
            if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == epochs):
                save_checkpoint(checkpoint, state, settings)

    history = pd.DataFrame(state.history, columns=HISTORY_COLUMNS).astype({"epoch": np.int64})
    state.model.training_info = _training_info(state.model, history, epochs, batch_size, lr, seed, test_fraction,
                                               len(train_idx), len(test_idx), dev, amp_dtype, precision)
    return state.model.eval(), history


def _new_state(size, latent_dim, lr, seed, dev, amp_dtype, model_options) -> FitState:
    """A fresh model (weights seeded by ``seed``), its optimiser and the seeded generators."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RVAE(size, latent_dim=latent_dim, **model_options).to(dev)
    return FitState(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=lr),
                    scaler=torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16),
                    shuffle_gen=torch.Generator().manual_seed(seed + 1),
                    noise_gen=torch.Generator(device=dev).manual_seed(seed + 2))


def _fix_precision(model: RVAE, dev, amp_dtype, asked: str) -> str:
    """Fix the model's decoder precision for the whole fit ("auto" resolved) and log it."""
    with autocast(dev, amp_dtype):
        model.precision = str(model.decoder_dtype(dev)).removeprefix("torch.")
    log.info("rvae: decoder in %s (precision %s; autocast %s; CPU computes bfloat16 natively: %s)",
             model.precision, asked, amp_dtype, cpu_has_fast_bf16())
    return model.precision


def _training_info(model, history, epochs, batch_size, lr, seed, test_fraction, n_train, n_test, dev,
                   amp_dtype, precision) -> dict:
    """What the model file records of its training (``model.training_info``)."""
    last = history.iloc[-1] if len(history) else None
    noise = model.noise_sd()
    return plain(dict(
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, test_fraction=test_fraction,
        n_train=n_train, n_test=n_test, device=dev.type, amp=str(amp_dtype), precision=precision,
        final_train_loss=None if last is None else last["train_loss"],
        final_test_loss=None if last is None else last["test_loss"],
        noise_sd=None if noise is None else float(torch.as_tensor(noise).detach())), nan=float("nan"))


# ------------------------------------------------------------------- stage
def run(job) -> None:
    """Entry of rule ``fit_rvae``: the rVAE on the windows of one movie, or of all movies pooled.

    ``job.input`` lists patches.nc files; ``job.params.rvae`` holds the
    model settings ("auto" resolved, :func:`rotdyn.settings.rvae_fit_settings`),
    ``job.params.checkpoint`` where to keep the resumable state. With no
    windows at all, an untrained model is saved (``trained = 0``) so the chain
    goes on to empty tables.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``output.model``, ``output.history``; ``config["rvae"]["checkpoint_every"]``.

    Examples
    --------
    >>> import tempfile, os
    >>> from rotdyn.jobs import job
    >>> from rotdyn.rvae import load_rvae
    >>> folder = tempfile.mkdtemp()
    >>> windows = np.random.default_rng(0).random((8, 8, 8), np.float32)
    >>> xr.Dataset({"patches": (("particle", "py", "px"), windows)}).to_netcdf(os.path.join(folder, "p.nc"))
    >>> out = {"model": os.path.join(folder, "model.pt"), "history": os.path.join(folder, "history.csv")}
    >>> settings = {"latent_dim": 1, "hidden": 8, "epochs": 2, "batch_size": 4, "polarity": False}
    >>> run(job("fit_rvae", input=[os.path.join(folder, "p.nc")], output=out, config={"rvae": {"checkpoint_every": 1}},
    ...         params={"rvae": settings, "checkpoint": os.path.join(folder, "fit.ckpt")}))
    >>> model, meta = load_rvae(out["model"])
    >>> meta["trained"], model.latent_dim, len(pd.read_csv(out["history"])), os.path.exists(os.path.join(folder, "fit.ckpt"))
    (1, 1, 2, False)
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
