"""Ensemble segmentation of a movie, streamed to NetCDF batch by batch.

Every frame goes through every ensemble member; the per-class probabilities
are reduced to their mean over members (the segmentation) and their
population variance (the uncertainty), as in paper 000 [1]_. Frames are
read lazily and results written as they come, so a movie never has to fit in
memory. :class:`FastEnsemble` runs the members for inference (BatchNorm fused,
bfloat16 where the CPU computes it natively, frames shared out among worker
threads); :func:`ensemble_proba` runs them one by one, as the reference.

References
----------
.. [1] S. V. Kalinin, S. Zhang, M. Valletti, H. Pyles, D. Baker, J. J. De Yoreo,
   M. Ziatdinov, "Disentangling Rotational Dynamics and Ordering Transitions in a
   System of Self-Organizing Protein Nanorods via Rotationally Invariant Latent
   Representations", ACS Nano 15, 6471-6480 (2021). doi:10.1021/acsnano.0c08914
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import netCDF4
import numpy as np
import torch
import xarray as xr
from torch import nn

from .jobs import device
from .networks import (
    autocast_dtype,
    cpu_has_fast_bf16,
    inference_network,
    load_model,
    model_device,
    num_threads,
    pick_device,
    predict_proba,
)
from .store import atomic_path, attr_value, provenance

log = logging.getLogger(__name__)


def load_ensemble(model_paths: list, device: str | torch.device = "cpu") -> tuple[list[nn.Module], dict]:
    """Load every member once; returns ``(models, meta of the first)``.

    All members must agree on ``n_classes`` and ``class_names``.

    Parameters
    ----------
    model_paths : list of path
        Checkpoints from :func:`rotdyn.networks.save_model`.
    device : str or torch.device
        Where the models go.

    Returns
    -------
    models : list of nn.Module
        In eval mode.
    meta : dict
        The first member's.

    Raises
    ------
    ValueError
        For no paths, or members with different classes.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from rotdyn.networks import build_network, save_model
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"member_{i}.pt") for i in range(2)]
    >>> for seed, path in enumerate(paths):
    ...     _ = torch.manual_seed(seed)
    ...     save_model(build_network("dilnet", 2, width=4), path, {"class_names": ["background", "rod"]})
    >>> models, meta = load_ensemble(paths)
    >>> len(models), meta["class_names"]
    (2, ['background', 'rod'])
    """
    if not model_paths:
        raise ValueError("no ensemble members given")
    models, first = [], None
    for path in model_paths:
        model, meta = load_model(path, device)
        if first is None:
            first = meta
        elif (meta["n_classes"], list(meta["class_names"])) != (first["n_classes"], list(first["class_names"])):
            raise ValueError(
                f"{path}: classes {meta['class_names']} differ from {model_paths[0]}: {first['class_names']}"
            )
        models.append(model)
    return models, first


def clean_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames ready for inference, and a boolean per frame that is unusable.

    A frame without finite pixels or without contrast is unusable (and set to
    zeros here); NaN pixels in other frames take the frame's median, which
    the networks see as background.

    Parameters
    ----------
    frames : array_like
        ``(N, H, W)``.

    Returns
    -------
    frames : ndarray
        float32, a copy.
    bad : ndarray of bool
        ``(N,)``.

    Examples
    --------
    >>> import numpy as np
    >>> frames, bad = clean_frames([[[1.0, np.nan], [3.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]])
    >>> frames[0].tolist(), bad.tolist()
    ([[1.0, 3.0], [3.0, 4.0]], [False, True])
    """
    frames = np.array(frames, dtype=np.float32)
    bad = np.zeros(len(frames), dtype=bool)
    for i, frame in enumerate(frames):
        finite = np.isfinite(frame)
        if not finite.any() or np.nanmax(frame) == np.nanmin(frame):
            bad[i] = True
            frame[:] = 0
        elif not finite.all():
            frame[~finite] = np.median(frame[finite])
    return frames, bad


def ensemble_proba(models: list[nn.Module], x: torch.Tensor,
                   amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance over ``models`` of the class probabilities of ``x``.

    ``x`` is ``(B, 1, H, W)``; both results are ``(B, n_classes, H, W)``
    float32 on the first model's device. Welford's update keeps one
    member's output in memory at a time and avoids the cancellation of
    ``E[p^2] - E[p]^2``.

    Parameters
    ----------
    models : list of nn.Module
        The members (:func:`load_ensemble`).
    x : Tensor
        ``(B, 1, H, W)`` images, on any device.
    amp_dtype : torch.dtype or None
        See :func:`rotdyn.networks.autocast_dtype`.

    Returns
    -------
    mean, variance : Tensor

    Examples
    --------
    Two identical members agree perfectly:

    >>> import torch
    >>> from rotdyn.networks import build_network
    >>> model = build_network("dilnet", 2, width=4)
    >>> mean, variance = ensemble_proba([model, model], torch.rand(1, 1, 16, 16))
    >>> mean.shape, float(variance.max()), bool(torch.allclose(mean.sum(dim=1), torch.ones(1)))
    (torch.Size([1, 2, 16, 16]), 0.0, True)
    """
    x = x.to(model_device(models[0]))  # one transfer for all members
    mean = m2 = None
    for k, model in enumerate(models, start=1):
        p = predict_proba(model, x, amp_dtype)
        if mean is None:
            mean, m2 = p.clone(), torch.zeros_like(p)
            continue
        p = p.to(mean.device)
        delta = p - mean
        mean += delta / k
        m2 += delta * (p - mean)
    return mean, (m2 / len(models)).clamp_min_(0)


def member_statistics(logits: torch.Tensor, members: int, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance over members of the class probabilities, from grouped logits.

    Parameters
    ----------
    logits : Tensor
        ``(B, members * n_out, H, W)``, member ``m``'s logits in channels
        ``m * n_out .. (m + 1) * n_out - 1`` (:func:`rotdyn.networks.group_members`).
    members, n_classes : int
        Members; classes including the background (2: one logit each).

    Returns
    -------
    mean, variance : Tensor
        ``(B, n_classes, H, W)`` float32.

    Examples
    --------
    Two members, one sure of the particle (logit 20), one undecided (logit 0):

    >>> import torch
    >>> mean, variance = member_statistics(torch.tensor([20.0, 0.0]).reshape(1, 2, 1, 1), 2, 2)
    >>> [round(v, 3) for v in mean.flatten().tolist()], round(float(variance[0, 1]), 4)
    ([0.25, 0.75], 0.0625)
    """
    logits = logits.float().contiguous().unflatten(1, (members, -1))  # planes, not interleaved channels
    p = torch.sigmoid(logits[:, :, 0]) if n_classes == 2 else torch.softmax(logits, dim=2)
    # sums over the few members slice by slice: torch.var_mean over a short
    # middle axis was measured 300x slower than these element-wise passes
    mean = sum(p[:, m] for m in range(members)) / members
    variance = sum((p[:, m] - mean) ** 2 for m in range(members)) / members
    if n_classes == 2:
        return torch.stack([1 - mean, mean], dim=1), torch.stack([variance, variance], dim=1)
    return mean, variance


class FastEnsemble:
    """The ensemble prepared for fast inference; call it on images for the mean and variance over members.

    Each member becomes one inference network
    (:func:`rotdyn.networks.inference_network`: BatchNorm fused into the
    convolutions, channels-last, bfloat16 where fast); ``grouped=True`` makes
    all members one network of grouped convolutions instead. Precision
    follows :func:`rotdyn.networks.autocast_dtype`: with ``bf16="auto"``,
    bfloat16 only on CPUs that compute it natively (AMX or AVX512-BF16,
    detected at run time) and on CUDA, float32 elsewhere.

    On a CPU, frames go through the networks ``frames_per_pass`` at a time
    (feature maps of 32 MB and more come fresh from the kernel for every
    layer, and zeroing their pages was measured to cost more than the
    convolutions), shared out among up to ``workers`` threads, which split
    ``threads`` among them for their layers: with 2 threads and 2 frames or
    more, two workers of one thread each, so no thread waits for another at
    every layer (on a busy machine such waits cost more than the layers).

    In float32 the results equal :func:`ensemble_proba` over the members one
    by one to float precision; in bfloat16 the mean stays within 0.02 of
    float32 (the image itself enters as two bfloat16 channels, its high and
    low part).

    Parameters
    ----------
    models : list of nn.Module
        The members (:func:`load_ensemble`), on one device.
    bf16 : bool or "auto"
        See :func:`rotdyn.networks.autocast_dtype`.
    grouped : bool
        One grouped network for all members, rather than one network each.
    threads : int or None
        CPU threads in all (None: ``torch.get_num_threads()``).
    workers : int or None
        At most this many frames at once, each on its own thread (None: ``threads``;
        1: one frame at a time with all threads inside each layer).
    frames_per_pass : int
        Frames per forward pass on a CPU (on a GPU, the whole call is one pass).

    Attributes
    ----------
    settings : dict
        What was chosen, for logs and file attributes.

    Examples
    --------
    >>> import torch
    >>> from rotdyn.networks import build_network
    >>> members = [build_network("dilnet", 2, width=4).eval() for _ in range(3)]
    >>> x = torch.rand(4, 1, 16, 16)
    >>> with FastEnsemble(members, bf16=False, threads=2) as fast:
    ...     mean, variance = fast(x)
    >>> ref_mean, ref_variance = ensemble_proba(members, x)
    >>> bool(torch.allclose(mean, ref_mean, atol=1e-5) and torch.allclose(variance, ref_variance, atol=1e-5))
    True
    >>> fast.settings["precision"], fast.settings["workers"]
    ('float32', 2)
    """

    def __init__(self, models: list[nn.Module], bf16: bool | str = "auto", grouped: bool = False,
                 threads: int | None = None, workers: int | None = None, frames_per_pass: int = 1):
        if not models:
            raise ValueError("no ensemble members given")
        self.device = model_device(models[0])
        self.n_classes, self.members = models[0].n_classes, len(models)
        self.dtype = autocast_dtype(self.device, bf16) or torch.float32
        groups = [models] if grouped else [[m] for m in models]
        self.networks = [inference_network(group, self.dtype) for group in groups]
        cpu = self.device.type == "cpu"
        self.threads = max(1, int(threads or torch.get_num_threads()))
        self.workers = min(self.threads, max(1, int(workers or self.threads))) if cpu else 1
        self.frames_per_pass = max(1, int(frames_per_pass))
        self._pool = None
        self.settings = {
            "precision": str(self.dtype).replace("torch.", ""),
            "device": self.device.type,
            "cpu_fast_bf16": cpu_has_fast_bf16(),
            "image": "float32" if self.dtype == torch.float32 else "high and low parts, two channels",
            "members": "one grouped network" if grouped else "one network each",
            "batchnorm": "fused into the convolutions",
            "memory_format": "channels_last",
            "threads": self.threads if cpu else "n/a",
            "workers": self.workers,
            "frames_per_pass": self.frames_per_pass if cpu else "batch",
        }

    def describe(self) -> str:
        """:attr:`settings` as one line, for a log or a file attribute.

        Returns
        -------
        str

        Examples
        --------
        >>> from rotdyn.networks import build_network
        >>> fast = FastEnsemble([build_network("dilnet", 2, width=4).eval()], bf16=False, threads=1)
        >>> fast.describe().split("; ")[:2]
        ['precision: float32', 'device: cpu']
        """
        return "; ".join(f"{key}: {value}" for key, value in self.settings.items())

    def _statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():  # per thread: workers need their own
            logits = torch.cat([net(x) for net in self.networks], dim=1)
            return member_statistics(logits, self.members, self.n_classes)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and population variance ``(B, n_classes, H, W)`` float32 for images ``x`` ``(B, 1, H, W)``."""
        x = x.to(device=self.device, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
        if self.device.type != "cpu":
            return self._statistics(x)
        chunks = x.split(self.frames_per_pass)
        workers = min(self.workers, len(chunks))
        with num_threads(max(1, self.threads // workers)):  # the threads each worker's layers use
            if workers == 1:
                parts = [self._statistics(chunk) for chunk in chunks]
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rotdyn-segment")
                parts = list(self._pool.map(self._statistics, chunks))
        return torch.cat([m for m, _ in parts]), torch.cat([v for _, v in parts])

    def close(self) -> None:
        """Stop the worker threads (a later call starts them again).

        Examples
        --------
        >>> import torch
        >>> from rotdyn.networks import build_network
        >>> fast = FastEnsemble([build_network("dilnet", 2, width=4).eval()], bf16=False, threads=2)
        >>> x = torch.rand(2, 1, 16, 16)
        >>> _ = fast(x)  # two frames, two workers: the threads start
        >>> fast.close()
        >>> fast(x)[0].shape  # they start again
        torch.Size([2, 2, 16, 16])
        >>> fast.close()
        """
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _create_output(nc: netCDF4.Dataset, movie: xr.Dataset, class_names: list[str], attrs: dict) -> None:
    """Dimensions, coordinates and the empty ``mean``/``variance`` variables of the output file."""
    n_fg = len(class_names) - 1
    ny, nx = movie.sizes["y"], movie.sizes["x"]
    for dim, size in (("frame", movie.sizes["frame"]), ("class", n_fg), ("y", ny), ("x", nx)):
        nc.createDimension(dim, size)
    for name in ("frame", "y", "x"):
        var = nc.createVariable(name, movie[name].dtype, (name,))
        var[:] = movie[name].values
        var.setncatts({k: attr_value(v) for k, v in movie[name].attrs.items()})
    # non-index coordinates along frames (e.g. time) travel with the results
    extra = [name for name, c in movie.coords.items() if c.dims == ("frame",) and name != "frame"]
    for name in extra:
        var = nc.createVariable(name, movie[name].dtype, ("frame",))
        var[:] = movie[name].values
        var.setncatts({k: attr_value(v) for k, v in movie[name].attrs.items()})
    labels = nc.createVariable("class", "i4", ("class",))
    labels[:] = np.arange(1, n_fg + 1)
    labels.long_name = "class label in the training masks (0, the background, is not stored)"
    names = nc.createVariable("class_name", str, ("class",))
    names[:] = np.array(class_names[1:], dtype=object)
    described = {
        "mean": "ensemble mean of the class probability",
        "variance": "ensemble population variance of the class probability",
    }
    for name, long_name in described.items():
        var = nc.createVariable(name, "f4", ("frame", "class", "y", "x"), zlib=True, complevel=1,
                                chunksizes=(1, n_fg, ny, nx))
        var.long_name = long_name
        var.coordinates = " ".join(["class_name", *extra])
    nc.setncatts({k: attr_value(v) for k, v in attrs.items()})


def segment_movie(movie_path, model_paths: list, out_path, *, batch_size: int = 4, device: str = "auto",
                  threads: int | None = None, bf16: bool | str = "auto") -> None:
    """Segment every frame of ``movie_path`` with the ensemble ``model_paths`` into ``out_path``.

    Frames without finite pixels or contrast get probability 0 and variance 0
    and are reported in one warning; NaN pixels elsewhere take the frame's median.

    Parameters
    ----------
    movie_path : path
        NetCDF with ``frames(frame, y, x)``, as written by the ingest stage.
    model_paths : list of path
        Checkpoints from :func:`rotdyn.networks.save_model`, one per member.
    out_path : path
        NetCDF with ``mean`` and ``variance`` ``(frame, class, y, x)`` float32
        for the foreground classes 1..C-1, coordinates ``frame``, ``class``,
        ``class_name``, ``y``, ``x`` (and ``time`` if the movie has it), and the
        movie's attributes plus the ensemble's.
    batch_size : int
        Frames read and written per step (on a CPU the worker threads take
        them one at a time; on a GPU they are one forward pass).
    device, threads, bf16
        See :func:`rotdyn.networks.pick_device` and
        :func:`rotdyn.networks.autocast_dtype`; CPU threads (None: torch's
        thread count), shared out by :class:`FastEnsemble`. Attributes
        ``precision`` and ``inference`` of the output record what ran.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from rotdyn.networks import build_network, save_model
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"member_{i}.pt") for i in range(2)]
    >>> for seed, path in enumerate(paths):
    ...     _ = torch.manual_seed(seed)
    ...     save_model(build_network("dilnet", 2, width=4), path, {"class_names": ["background", "rod"]})
    >>> import numpy as np, xarray as xr
    >>> from rotdyn.store import write_netcdf
    >>> frames = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    >>> frames[2] = 0  # no contrast: unusable
    >>> write_netcdf(xr.Dataset({"frames": (("frame", "y", "x"), frames)}, coords={"frame": [0, 1, 2]}),
    ...              os.path.join(folder, "movie.nc"))
    >>> segment_movie(os.path.join(folder, "movie.nc"), paths, os.path.join(folder, "probability.nc"),
    ...               device="cpu", threads=1)
    >>> with xr.open_dataset(os.path.join(folder, "probability.nc")) as prob:
    ...     prob["mean"].shape, prob["class_name"].values.tolist(), float(prob["variance"][:2].max()) > 0
    ((3, 1, 16, 16), ['rod'], True)
    """
    device = pick_device(device)
    models, meta = load_ensemble(model_paths, device)
    class_names = list(meta["class_names"])
    bad_frames = []
    with num_threads(threads), FastEnsemble(models, bf16, threads=threads) as ensemble, \
            xr.open_dataset(movie_path, cache=False) as movie:
        frames = movie["frames"]
        # ingest's verdict on the raw frames (saturated ones look fine by now)
        unusable = movie["usable"].values == 0 if "usable" in movie else np.zeros(movie.sizes["frame"], bool)
        attrs = {
            **movie.attrs,
            **provenance(
                movie=os.path.basename(str(movie_path)),
                n_members=len(models),
                members=",".join(os.path.basename(str(p)) for p in model_paths),
                archs=",".join(sorted({m.arch for m in models})),
                precision=ensemble.settings["precision"],
                inference=ensemble.describe(),
                variance="population variance over members",
            ),
        }
        with atomic_path(out_path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            _create_output(nc, movie, class_names, attrs)
            for start in range(0, movie.sizes["frame"], batch_size):
                stop = min(start + batch_size, movie.sizes["frame"])
                batch, bad = clean_frames(frames.isel(frame=slice(start, stop)).values)
                bad |= unusable[start:stop]
                mean = np.zeros((stop - start, len(class_names) - 1, *batch.shape[1:]), np.float32)
                var = np.zeros_like(mean)
                if not bad.all():
                    m, v = ensemble(torch.from_numpy(batch[~bad])[:, None])
                    mean[~bad], var[~bad] = m[:, 1:].cpu().numpy(), v[:, 1:].cpu().numpy()
                nc["mean"][start:stop] = mean
                nc["variance"][start:stop] = var
                bad_frames.extend(movie["frame"].values[start:stop][bad].tolist())
    if bad_frames:
        log.warning("%s: frames %s are unusable (no finite pixels, no contrast or saturated); their probabilities "
                    "are set to 0",
                    movie_path, bad_frames)
    log.info("segmented %s with %d members into %s (%s precision; %s)", movie_path, len(models), out_path,
             ensemble.settings["precision"], ensemble.describe())


def run(job) -> None:
    """Entry of rule ``segment``: every frame of ``job.input.movie`` through ``job.input.members``.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input`` has ``movie`` and ``members`` (a list); ``output[0]`` is
        the probability maps; ``params.batch_size`` frames per pass; a job
        with ``resources.gpu`` runs on a GPU when there is one.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from rotdyn.networks import build_network, save_model
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"member_{i}.pt") for i in range(2)]
    >>> for seed, path in enumerate(paths):
    ...     _ = torch.manual_seed(seed)
    ...     save_model(build_network("dilnet", 2, width=4), path, {"class_names": ["background", "rod"]})
    >>> import numpy as np, xarray as xr
    >>> from rotdyn.store import write_netcdf
    >>> frames = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    >>> frames[2] = 0  # no contrast: unusable
    >>> write_netcdf(xr.Dataset({"frames": (("frame", "y", "x"), frames)}, coords={"frame": [0, 1, 2]}),
    ...              os.path.join(folder, "movie.nc"))
    >>> from rotdyn.jobs import job
    >>> run(job("segment", input={"movie": os.path.join(folder, "movie.nc"), "members": paths},
    ...         output=[os.path.join(folder, "probability.nc")], params={"batch_size": 2}))
    >>> with xr.open_dataset(os.path.join(folder, "probability.nc")) as prob:
    ...     int(prob.attrs["n_members"]), float(prob["mean"][2].max())  # the blank frame: probability 0
    (2, 0.0)
    """
    segment_movie(job.input.movie, list(job.input.members), job.output[0], batch_size=job.params.batch_size,
                  threads=job.threads, device=device(job))
