"""Training the segmentation ensemble: one baseline, then members fine-tuned from it.

The baseline trains from scratch with early stopping on a held-out split;
each ensemble member starts from the baseline's weights and fine-tunes for a
fixed number of epochs with its own seed for shuffling and augmentation, so
the members follow different training trajectories (the deep-ensemble recipe
of Kalinin et al. [1]_, paper 000). Every member validates on the
baseline's held-out split, which none of them ever trains on.

Loss: binary cross-entropy on the single logit (two classes) or
cross-entropy (more classes), without a Dice term: the ensemble mean and
variance are read as probabilities and uncertainties, and plain
cross-entropy is a proper scoring rule whereas Dice pushes outputs to 0/1.

Precision: ``bf16="auto"`` autocasts to bfloat16 only where that is faster
(CUDA; CPUs with AMX or AVX512-BF16). On an AVX512 CPU without them
bfloat16 was measured 1.5-2x slower than float32, so float32 is used there.
With AVX512-BF16 (2-core AMD EPYC, default rods training set, 12 epochs,
``benchmarks/segmentation.py --train-precision 12``) bfloat16 held the
held-out loss (0.2014 vs 0.2046 in float32 with seed 0, 0.3981 vs 0.3981
with seed 1) at 3-9x less time per epoch, so it stays the default there.
Convolutions run channels-last, measured 1.4x faster on CPU.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
   System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
   Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914
"""
from __future__ import annotations

import contextlib
import logging
import os
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .augment import augment, check_params
from .jobs import device
from .networks import autocast, autocast_dtype, build_network, load_model, num_threads, pick_device, save_model
from .store import atomic_path
from .training_set import load_training_set

log = logging.getLogger(__name__)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled ``(train, val)`` indices for ``n`` images; at least one of each.

    Parameters
    ----------
    n : int
        Number of images, at least 2.
    val_fraction : float
        Share held out, in (0, 1); rounded, but never 0 or all images.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    train, val : ndarray
        Sorted indices.

    Examples
    --------
    >>> train, val = split_indices(10, 0.2, seed=0)
    >>> len(train), len(val), sorted([*train, *val]) == list(range(10))
    (8, 2, True)
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must lie strictly between 0 and 1")
    if n < 2:
        raise ValueError(f"need at least 2 labelled images for a held-out split, got {n}")
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _tensors(images: np.ndarray, masks: np.ndarray, n_classes: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated ``(N, 1, H, W)`` float32 images and ``(N, H, W)`` long masks on ``device``."""
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 3 or images.shape != masks.shape:
        raise ValueError(f"images {images.shape} and masks {masks.shape} must both be (N, H, W)")
    if not np.isfinite(images).all():
        raise ValueError("training images contain non-finite values")
    if masks.min() < 0 or masks.max() >= n_classes:
        raise ValueError(f"mask labels span {masks.min()}..{masks.max()}, outside 0..{n_classes - 1}")
    x = torch.as_tensor(images, dtype=torch.float32)[:, None].to(device)
    return x, torch.as_tensor(masks.astype(np.int64)).to(device)


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean per-pixel (binary) cross-entropy, computed in float32.

    Parameters
    ----------
    logits : Tensor
        ``(B, 1, H, W)`` for two classes, else ``(B, n_classes, H, W)``.
    masks : Tensor
        ``(B, H, W)`` integer labels.
    n_classes : int
        Classes including the background.

    Returns
    -------
    Tensor
        A scalar.

    Examples
    --------
    Logit 0 is probability 1/2, whose cross-entropy is log 2:

    >>> import torch
    >>> round(float(segmentation_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2).long(), 2)), 4)
    0.6931
    """
    logits = logits.float()
    if n_classes == 2:
        return F.binary_cross_entropy_with_logits(logits[:, 0], masks.float())
    return F.cross_entropy(logits, masks)


@contextlib.contextmanager
def _deterministic(device: torch.device):
    """Deterministic kernels inside the block (warn where none exists), then restore."""
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


def _batches(idx: np.ndarray, batch_size: int):
    for start in range(0, len(idx), batch_size):
        yield torch.as_tensor(idx[start : start + batch_size])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: np.ndarray,
             batch_size: int, amp_dtype=None) -> float:
    """Mean loss of ``model`` (eval mode, no augmentation) over images ``idx``.

    Parameters
    ----------
    model : nn.Module
        From :func:`rotdyn.networks.build_network`.
    x, y : Tensor
        All images ``(N, 1, H, W)`` and masks ``(N, H, W)``, on the model's device.
    idx : ndarray
        The images to score.
    batch_size : int
        Images per forward pass.
    amp_dtype : torch.dtype or None
        See :func:`rotdyn.networks.autocast_dtype`.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, torch
    >>> from rotdyn.networks import build_network
    >>> x, y = torch.zeros(3, 1, 16, 16), torch.zeros(3, 16, 16).long()
    >>> evaluate(build_network("dilnet", 2, width=4), x, y, np.arange(3), batch_size=2) > 0
    True
    """
    model.eval()
    device = x.device
    total = 0.0
    with torch.inference_mode():
        for b in _batches(idx, batch_size):
            xb = x[b.to(device)].contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                logits = model(xb)
            total += float(segmentation_loss(logits, y[b.to(device)], model.n_classes)) * len(b)
    return total / len(idx)


def _train_epoch(model, optimizer, scaler, x, y, idx, batch_size, aug, shuffle_gen, aug_gen, amp_dtype) -> float:
    """One pass over ``idx`` in a seeded random order with fresh augmentation; mean training loss."""
    model.train()
    device = x.device
    order = idx[torch.randperm(len(idx), generator=shuffle_gen).numpy()]
    total = 0.0
    for b in _batches(order, batch_size):
        b = b.to(device)
        xb, yb = augment(x[b], y[b], aug, aug_gen)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp_dtype):
            logits = model(xb.contiguous(memory_format=torch.channels_last))
        loss = segmentation_loss(logits, yb, model.n_classes)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach()) * len(b)
    return total / len(idx)


def _fit(model, x, y, train_idx, val_idx, *, epochs, patience, batch_size, lr, aug, seed, amp_dtype):
    """Train ``model`` in place; returns ``(history, best_epoch)``.

    With ``patience`` set, stops once the held-out loss has not improved for
    ``patience`` epochs and restores the best epoch's weights; otherwise runs
    all ``epochs`` and keeps the last weights.
    """
    device = x.device
    shuffle_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    initial = evaluate(model, x, y, val_idx, batch_size, amp_dtype)
    rows, best, best_epoch, best_state = [], initial, 0, None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss = _train_epoch(model, optimizer, scaler, x, y, train_idx, batch_size, aug,
                                  shuffle_gen, aug_gen, amp_dtype)
        val_loss = evaluate(model, x, y, val_idx, batch_size, amp_dtype)
        rows.append((epoch, train_loss, val_loss, time.perf_counter() - start))
        log.info("epoch %d: train loss %.4f, held-out loss %.4f (%.1f s)", *rows[-1])
        if val_loss < best or best_state is None:
            best, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif patience is not None and epoch - best_epoch >= patience:
            log.info("held-out loss has not improved for %d epochs: stopping", patience)
            break
    if patience is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(rows)
    history = pd.DataFrame(rows, columns=["epoch", "train_loss", "val_loss", "seconds"])
    history.attrs.update(initial_val_loss=initial, best_epoch=best_epoch)
    return history, best_epoch


def _setup(device, bf16):
    device = pick_device(device)
    return device, autocast_dtype(device, bf16)


def _info(history, best_epoch, amp_dtype, device, **extra) -> dict:
    """Training facts stored with the weights (plain types only)."""
    return {
        "epochs_run": int(len(history)),
        "best_epoch": int(best_epoch),
        "val_loss": float(history["val_loss"].iloc[best_epoch - 1]),
        "precision": str(amp_dtype or torch.float32).replace("torch.", ""),
        "device": device.type,
        "loss": "bce" if extra.get("n_classes", 2) == 2 else "cross_entropy",
        **extra,
    }


def fit_baseline(images: np.ndarray, masks: np.ndarray, *, n_classes: int, class_names: list[str],
                 arch: str = "dilnet", width: int = 16, max_epochs: int = 60, patience: int = 8,
                 batch_size: int = 8, lr: float = 1e-3, val_fraction: float = 0.2,
                 augment_params: dict | None = None, seed: int = 0, device: str = "auto",
                 bf16: bool | str = "auto", threads: int | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Train a network from scratch with Adam and early stopping on a held-out split.

    Parameters
    ----------
    images, masks : ndarray
        ``(N, H, W)`` float32 images and integer labels 0..n_classes-1.
    n_classes : int
        Classes including the background (label 0).
    class_names : list of str
        One per class, background first.
    arch, width : str, int
        The network (:func:`rotdyn.networks.build_network`).
    max_epochs : int
        At most this many epochs.
    patience : int
        Epochs without a better held-out loss before stopping; the best
        epoch's weights are returned.
    batch_size, lr : int, float
        Adam's batches and learning rate.
    val_fraction, seed : float, int
        The held-out share and the seed of the split, the weight
        initialisation, the batch order and the augmentation.
    augment_params : dict or None
        See :mod:`rotdyn.augment`.
    device, bf16, threads
        See :func:`rotdyn.networks.pick_device`,
        :func:`rotdyn.networks.autocast_dtype`; CPU threads.

    Returns
    -------
    model : nn.Module
        Trained network in eval mode, with ``class_names`` and
        ``training_info`` for :func:`rotdyn.networks.save_model`.
    history : DataFrame
        One row per epoch: epoch, train_loss (augmented), val_loss
        (held-out, not augmented), seconds; ``attrs`` hold best_epoch and
        the initial held-out loss.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    >>> masks = (images > 0.5).astype(np.uint8)
    >>> model, history = fit_baseline(images, masks, n_classes=2, class_names=["background", "grain"],
    ...                               width=4, max_epochs=2, batch_size=2, device="cpu", threads=1)
    >>> history["epoch"].tolist(), model.training_info["role"], model.training
    ([1, 2], 'baseline', False)
    """
    if len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class_names for n_classes={n_classes}")
    aug = check_params(augment_params)
    device, amp_dtype = _setup(device, bf16)
    with num_threads(threads), _deterministic(device):
        x, y = _tensors(images, masks, n_classes, device)
        train_idx, val_idx = split_indices(len(x), val_fraction, seed)
        torch.manual_seed(seed)
        model = build_network(arch, n_classes, width).to(device)
        history, best_epoch = _fit(model, x, y, train_idx, val_idx, epochs=max_epochs, patience=patience,
                                   batch_size=batch_size, lr=lr, aug=aug, seed=seed, amp_dtype=amp_dtype)
    model.eval()
    model.class_names = list(class_names)
    model.training_info = _info(
        history, best_epoch, amp_dtype, device, role="baseline", n_classes=n_classes, seed=seed,
        split_seed=seed, val_fraction=val_fraction, n_images=len(x), max_epochs=max_epochs,
        patience=patience, batch_size=batch_size, lr=lr, augment=aug,
    )
    return model, history


def fit_member(baseline_path, images: np.ndarray, masks: np.ndarray, *, epochs: int, seed: int,
               batch_size: int = 8, lr: float = 1e-3, augment_params: dict | None = None,
               device: str = "auto", bf16: bool | str = "auto",
               threads: int | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """Fine-tune the baseline at ``baseline_path`` for ``epochs`` epochs with its own ``seed``.

    The held-out split is the baseline's (its ``split_seed`` and
    ``val_fraction``), so no member trains on it; ``seed`` drives the batch
    order and the augmentation. The last epoch's weights are kept: a member
    is one trajectory, not a selection. Same seed, same data and device give
    identical weights. Members fine-tuned from one baseline with different
    seeds make the ensemble of paper 000 [1]_.

    Parameters
    ----------
    baseline_path : path
        The baseline's checkpoint (:func:`rotdyn.networks.save_model`).
    images, masks : ndarray
        The baseline's training set.
    epochs, seed : int
        Fine-tuning epochs; the member's seed.
    batch_size, lr, augment_params, device, bf16, threads
        As for :func:`fit_baseline`.

    Returns
    -------
    model, history
        As :func:`fit_baseline`, with ``training_info["role"] == "member"``.

    References
    ----------
    .. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
       M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
       System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
       Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914

    Examples
    --------
    Two members with one seed are identical, with another seed not:

    >>> import os, tempfile, torch
    >>> from rotdyn.networks import save_model
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    >>> masks = (images > 0.5).astype(np.uint8)
    >>> baseline, _ = fit_baseline(images, masks, n_classes=2, class_names=["background", "grain"],
    ...                            width=4, max_epochs=1, batch_size=2, device="cpu", threads=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "baseline.pt")
    >>> save_model(baseline, path)
    >>> a, b, c = (fit_member(path, images, masks, epochs=1, seed=seed, batch_size=2, device="cpu",
    ...                       threads=1)[0] for seed in (1, 1, 2))
    >>> bool(torch.equal(a.head.weight, b.head.weight)), bool(torch.equal(a.head.weight, c.head.weight))
    (True, False)
    """
    device, amp_dtype = _setup(device, bf16)
    model, meta = load_model(baseline_path, device)
    n_classes = meta["n_classes"]
    aug = check_params(augment_params)
    with num_threads(threads), _deterministic(device):
        x, y = _tensors(images, masks, n_classes, device)
        if meta.get("n_images") not in (None, len(x)):
            log.warning("%s was trained on %s images, fine-tuning on %d: the held-out split differs",
                        baseline_path, meta["n_images"], len(x))
        split_seed, val_fraction = meta.get("split_seed", seed), meta.get("val_fraction", 0.2)
        train_idx, val_idx = split_indices(len(x), val_fraction, split_seed)
        torch.manual_seed(seed)
        history, best_epoch = _fit(model, x, y, train_idx, val_idx, epochs=epochs, patience=None,
                                   batch_size=batch_size, lr=lr, aug=aug, seed=seed, amp_dtype=amp_dtype)
    model.eval()
    model.class_names = list(meta["class_names"])
    model.training_info = _info(
        history, best_epoch, amp_dtype, device, role="member", n_classes=n_classes, seed=seed,
        split_seed=split_seed, val_fraction=val_fraction, n_images=len(x), epochs=epochs,
        batch_size=batch_size, lr=lr, augment=aug, baseline=os.path.basename(str(baseline_path)),
        baseline_val_loss=meta.get("val_loss"),
    )
    return model, history


def _save(model, history, job) -> None:
    with atomic_path(job.output.history) as tmp:
        history.to_csv(tmp, index=False)
    save_model(model, job.output.model)


def run_baseline(job) -> None:
    """Entry of rule ``train_baseline``: the baseline, trained until the held-out loss stops improving.

    ``job.input[0]`` is the training set, ``job.params.train`` the ``train``
    config section; ``job.output`` has ``model`` and ``history``.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``params.train`` needs arch, width, max_epochs, patience, batch_size,
        lr, val_fraction, augment and seed; a job with ``resources.gpu``
        trains on a GPU when there is one.

    Examples
    --------
    >>> import os, tempfile, numpy as np, xarray as xr
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    >>> data = xr.Dataset({"images": (("sample", "y", "x"), images),
    ...                    "masks": (("sample", "y", "x"), (images > 0.5).astype(np.uint8))},
    ...                   attrs={"class_names": "background,grain", "n_classes": 2})
    >>> write_netcdf(data, os.path.join(folder, "train.nc"))
    >>> train = {"arch": "dilnet", "width": 4, "max_epochs": 2, "patience": 2, "batch_size": 2, "lr": 1e-3,
    ...          "val_fraction": 0.25, "seed": 0, "augment": {"flip": True}, "member_epochs": 1}
    >>> run_baseline(job("train_baseline", input=[os.path.join(folder, "train.nc")], params={"train": train},
    ...                  output={"model": os.path.join(folder, "baseline.pt"),
    ...                          "history": os.path.join(folder, "baseline_history.csv")}))
    >>> len(open(os.path.join(folder, "baseline_history.csv")).read().splitlines())  # header + 2 epochs
    3
    """
    p = dict(job.params.train)
    data = load_training_set(job.input[0])
    model, history = fit_baseline(
        data["images"], data["masks"], n_classes=data["n_classes"], class_names=data["class_names"],
        arch=p["arch"], width=p["width"], max_epochs=p["max_epochs"], patience=p["patience"],
        batch_size=p["batch_size"], lr=p["lr"], val_fraction=p["val_fraction"],
        augment_params=p["augment"], seed=p["seed"], threads=job.threads, device=device(job),
    )
    log.info("baseline: %d epochs, best held-out loss %.4f", len(history), history.val_loss.min())
    _save(model, history, job)


def run_member(job) -> None:
    """Entry of rule ``train_member``: one member fine-tuned from the baseline with seed ``job.params.seed``.

    ``job.input`` has ``data`` (the training set) and ``baseline``.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``params.train`` needs member_epochs, batch_size, lr and augment;
        ``params.seed`` is the member's seed, ``wildcards.member`` its name;
        ``output`` has ``model`` and ``history``.

    Examples
    --------
    >>> import os, tempfile, numpy as np, xarray as xr
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).random((4, 16, 16), dtype=np.float32)
    >>> data = xr.Dataset({"images": (("sample", "y", "x"), images),
    ...                    "masks": (("sample", "y", "x"), (images > 0.5).astype(np.uint8))},
    ...                   attrs={"class_names": "background,grain", "n_classes": 2})
    >>> write_netcdf(data, os.path.join(folder, "train.nc"))
    >>> train = {"arch": "dilnet", "width": 4, "max_epochs": 2, "patience": 2, "batch_size": 2, "lr": 1e-3,
    ...          "val_fraction": 0.25, "seed": 0, "augment": {"flip": True}, "member_epochs": 1}
    >>> run_baseline(job("train_baseline", input=[os.path.join(folder, "train.nc")], params={"train": train},
    ...                  output={"model": os.path.join(folder, "baseline.pt"),
    ...                          "history": os.path.join(folder, "baseline_history.csv")}))
    >>> run_member(job("train_member", input={"data": os.path.join(folder, "train.nc"),
    ...                                       "baseline": os.path.join(folder, "baseline.pt")},
    ...                params={"train": train, "seed": 1}, wildcards={"member": "1"},
    ...                output={"model": os.path.join(folder, "member_1.pt"),
    ...                        "history": os.path.join(folder, "member_1_history.csv")}))
    >>> from rotdyn.networks import load_model
    >>> meta = load_model(os.path.join(folder, "member_1.pt"))[1]
    >>> meta["role"], meta["seed"], meta["baseline"]
    ('member', 1, 'baseline.pt')
    """
    p = dict(job.params.train)
    data = load_training_set(job.input.data)
    model, history = fit_member(
        job.input.baseline, data["images"], data["masks"], epochs=p["member_epochs"], seed=job.params.seed,
        batch_size=p["batch_size"], lr=p["lr"], augment_params=p["augment"], threads=job.threads,
        device=device(job),
    )
    log.info("member %s: %d epochs, last held-out loss %.4f", job.wildcards.member,
             len(history), history.val_loss.iloc[-1] if len(history) else float("nan"))
    _save(model, history, job)
