"""Training sets for the segmentation ensemble: labelled frames or simulated ones.

Every training set is one xarray Dataset, whatever its origin:

* ``images(sample, y, x)`` float32 -- preprocessed exactly as movies are
  (optional AFM flattening, then per-frame normalisation, both by
  :mod:`rotdyn.preprocess`), so the networks see the intensities at training
  that they will see at inference;
* ``masks(sample, y, x)`` uint8 -- integer class per pixel, 0 = background;
* optionally ``centres(sample, y, x)`` uint8 -- 1 on a disc at every particle's
  centre (simulated sets with ``centres``); the trainers read it as one more
  class, ``"centre"``, drawn over the others (:func:`training_arrays`), while
  ``masks`` keeps whole particles for anything that measures them;
* per-sample coordinates ``source`` (file or simulation), ``frame`` (frame of
  that source) and ``y0, x0`` (the tile's top-left pixel in that frame);
* attrs ``class_names`` (comma-joined, background first), ``n_classes``,
  ``origin`` (``"labels: <folder>"`` or ``"simulated <kind>"``), ``flatten``,
  ``normalize``, ``tile`` and, for simulated sets, ``sim_<name>`` for every
  simulation parameter.

Frames are preprocessed whole and only then cut into ``tile`` x ``tile``
samples (see :func:`tile_starts`), because normalisation is per frame at
inference too.

Pairing rules of a labelled folder (:func:`pair_files`)
-------------------------------------------------------
Files end in ``.tif``, ``.tiff``, ``.png`` or ``.npy`` (other files, e.g. a
README, are ignored). Either

* flat: ``<name>.<ext>`` is the image and ``<name>_mask.<ext>`` its mask
  (``_masks``, ``_label`` and ``_labels`` work too, any letter case); image
  and mask may have different extensions; or
* sub-folders ``images/`` and ``masks/`` (or ``labels/``), the image and the
  mask having the same name up to the extension.

Images are 2-D, colour (a trailing axis of 2-4 samples: grey+alpha, RGB(A);
colour becomes BT.709 luminance as in :mod:`rotdyn.formats`) or 3-D stacks of
frames ``(frame, y, x)``, paired with a mask of the same frames and size.
Masks are binary (0/1, or 0/255 which becomes 0/1) or integer class labels
0..C-1 (e.g. carbon vs silicon; two overlapping layers are classes too); a
palette PNG mask gives its palette indices.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from .contracts import CENTRE_CLASS
from .formats import MovieReadError, natural_key, read_image, read_mask
from .kinds import CALIBRATION_KEYS, simulator_params
from .preprocess import NORMALIZE_METHODS, preprocess
from .simulate import simulate
from .store import attr_value, provenance, write_netcdf
from .survey import measure

log = logging.getLogger(__name__)

SUFFIXES = (".tif", ".tiff", ".png", ".npy")
MASK_TAGS = ("_mask", "_masks", "_label", "_labels")
SOURCES = ("auto", "labels", "simulate")
# Kinds whose frames are AFM-like height maps: flatten="auto" flattens only these.
AFM_KINDS = ("rods",)
# Calibration keys that sit beside the simulation parameters in the workflow config.


class TrainingSetError(ValueError):
    """A training set cannot be built; the message names the file or folder.

    Parameters
    ----------
    message : str
        What is wrong, starting with the file or folder concerned.

    Examples
    --------
    >>> try:
    ...     pair_files("no/such/folder")
    ... except TrainingSetError as exc:
    ...     print(exc)
    no/such/folder: no such folder of labelled images
    """


# ----------------------------------------------------------------------------- pairing


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES)


def _by_stem(files: list[Path]) -> dict[str, Path]:
    """Files keyed by name without extension; two files with one stem are ambiguous."""
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise TrainingSetError(f"{f}: same name as {out[f.stem].name}; keep one file per image or mask")
        out[f.stem] = f
    return out


def _mask_stem(stem: str) -> str | None:
    """The image stem a mask file belongs to, or None if ``stem`` names no mask."""
    lower = stem.lower()
    for tag in sorted(MASK_TAGS, key=len, reverse=True):  # "_labels" before "_label"
        if lower.endswith(tag) and len(stem) > len(tag):
            return stem[: -len(tag)]
    return None


def _match(images: dict[str, Path], masks: dict[str, Path], mask_name: str) -> list[tuple[Path, Path]]:
    """Pairs of equal key; any image without mask or mask without image is an error.

    ``mask_name`` formats the expected mask path from ``key`` and ``ext`` for the message.
    """
    for key, path in images.items():
        if key not in masks:
            expected = mask_name.format(key=key, ext=path.suffix)
            raise TrainingSetError(f"{path}: image without a mask (expected {expected})")
    for key, path in masks.items():
        if key not in images:
            raise TrainingSetError(f"{path}: mask without an image (expected an image named {key!r})")
    return sorted(((images[k], masks[k]) for k in images), key=lambda pair: natural_key(pair[0].name))


def pair_files(folder: str | Path) -> list[tuple[Path, Path]]:
    """``(image, mask)`` file pairs of a labelled folder, in natural order.

    See the module docstring for the rules.

    Parameters
    ----------
    folder : the labelled folder.

    Returns
    -------
    list of (image path, mask path).

    Raises
    ------
    TrainingSetError naming the file for an image without mask, a mask without
    image, two files of one name, and naming the folder when it holds no pairs.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("f10.npy", "f10_mask.npy", "f2.npy", "f2_labels.npy"):
    ...     np.save(d / name, np.zeros((4, 4)))
    >>> [(image.name, mask.name) for image, mask in pair_files(d)]
    [('f2.npy', 'f2_labels.npy'), ('f10.npy', 'f10_mask.npy')]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingSetError(f"{folder}: no such folder of labelled images")
    if (folder / "images").is_dir():
        mask_dir = next((folder / d for d in ("masks", "labels") if (folder / d).is_dir()), None)
        if mask_dir is None:
            raise TrainingSetError(f"{folder}: has images/ but no masks/ (or labels/) folder beside it")
        pairs = _match(_by_stem(_image_files(folder / "images")), _by_stem(_image_files(mask_dir)),
                       f"{mask_dir}/{{key}}{{ext}}")
    else:
        images, masks = [], {}
        for f in _image_files(folder):
            key = _mask_stem(f.stem)
            if key is None:
                images.append(f)
            else:
                masks.setdefault(key, []).append(f)
        for key, files in masks.items():
            if len(files) > 1:
                raise TrainingSetError(f"{files[1]}: a second mask for {key!r} (also {files[0].name})")
        pairs = _match(_by_stem(images), {k: v[0] for k, v in masks.items()}, f"{folder}/{{key}}_mask{{ext}}")
    if not pairs:
        raise TrainingSetError(f"{folder}: no image/mask pairs ({'/'.join(SUFFIXES)}) found")
    return pairs


def has_labels(folder: str | Path) -> bool:
    """True if ``folder`` exists and holds image files (at its top or in ``images/``).

    Parameters
    ----------
    folder : a labelled set's folder, ``<labels_root>/<set>``.

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> has_labels(d), has_labels(d / "missing")
    (False, False)
    >>> (d / "images").mkdir()
    >>> np.save(d / "images" / "a.npy", np.zeros((4, 4)))
    >>> has_labels(d)
    True
    """
    folder = Path(folder)
    return any(d.is_dir() and _image_files(d) for d in (folder, folder / "images"))


# ----------------------------------------------------------------------------- reading


def read_pair(image_path: str | Path, mask_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An image and its mask as ``(frame, y, x)`` float32 images and uint8 class labels.

    Read by :func:`rotdyn.formats.read_image` / :func:`rotdyn.formats.read_mask`;
    masks stored as 0/255 become 0/1.

    Parameters
    ----------
    image_path : str or Path
        The image (any format :func:`rotdyn.formats.read_image` reads).
    mask_path : str or Path
        Its mask of integer class labels (0 background), same shape.

    Returns
    -------
    image : ndarray
        ``(frame, y, x)`` float32.
    mask : ndarray
        ``(frame, y, x)`` uint8 class labels.

    Raises
    ------
    TrainingSetError naming the file: unreadable, not integer labels 0..255,
    or a mask whose shape differs from the image's.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> np.save(d / "a.npy", np.arange(4.0).reshape(2, 2))
    >>> np.save(d / "a_mask.npy", np.array([[0, 255], [255, 0]], np.uint8))
    >>> image, mask = read_pair(d / "a.npy", d / "a_mask.npy")
    >>> image.tolist(), mask.dtype, mask.tolist()
    ([[[0.0, 1.0], [2.0, 3.0]]], dtype('uint8'), [[[0, 1], [1, 0]]])
    """
    image_path, mask_path = Path(image_path), Path(mask_path)
    try:
        image, mask = read_image(image_path), read_mask(mask_path)
    except MovieReadError as exc:
        raise TrainingSetError(str(exc)) from exc
    mask = _labels(mask, mask_path)
    if image.shape != mask.shape:
        raise TrainingSetError(f"{mask_path}: mask shape {mask.shape} (frame, y, x) differs from "
                               f"image {image_path.name} {image.shape}")
    return image, mask


def _labels(mask: np.ndarray, path: Path) -> np.ndarray:
    """Validated integer labels 0..255 as uint8 (0/255 -> 0/1)."""
    if mask.dtype.kind == "f":
        if not np.all(np.isfinite(mask)):
            raise TrainingSetError(f"{path}: mask has non-finite values (NaN or inf)")
        if np.any(mask != np.round(mask)):
            bad = mask[mask != np.round(mask)][0]
            raise TrainingSetError(f"{path}: mask has non-integer values (e.g. {bad}); "
                                   "expected integer class labels 0..C-1")
    lo, hi = mask.min(), mask.max()
    if lo < 0:
        raise TrainingSetError(f"{path}: mask has negative label {lo}; expected class labels 0..C-1")
    if hi == 255 and np.all((mask == 0) | (mask == 255)):
        return (mask == 255).astype(np.uint8)  # binary mask saved as 0/255
    if hi > 255:
        raise TrainingSetError(f"{path}: mask has label {int(hi)}: more than 255 classes do not fit "
                               "the uint8 masks (labels 0..255)")
    return mask.astype(np.uint8)


# ----------------------------------------------------------------------------- tiling


def tile_starts(n: int, tile: int) -> np.ndarray:
    """Start offsets of tiles of length ``tile`` covering an axis of length ``n``.

    ``ceil(n / tile)`` tiles spread evenly from 0 to ``n - tile``, so they
    overlap as little and as evenly as possible and the last one is flush
    with the border. An axis not longer than ``tile`` has one tile at 0
    (padded, see :func:`tiles`).


    Parameters
    ----------
    n : axis length, px.
    tile : tile side, px.

    Returns
    -------
    int array of start offsets.

    Examples
    --------
    >>> tile_starts(300, 128).tolist(), tile_starts(256, 128).tolist(), tile_starts(50, 128).tolist()
    ([0, 86, 172], [0, 128], [0])
    """
    if n <= tile:
        return np.zeros(1, dtype=int)
    count = -(-n // tile)
    return np.round(np.linspace(0, n - tile, count)).astype(int)


def _pad(stack: np.ndarray, tile: int) -> np.ndarray:
    """Reflect-pad ``(frame, y, x)`` at the bottom/right up to ``tile`` in y and x."""
    py, px = max(tile - stack.shape[1], 0), max(tile - stack.shape[2], 0)
    if not (py or px):
        return stack
    return np.pad(stack, ((0, 0), (0, py), (0, px)), mode="reflect")


def tiles(images: np.ndarray, masks: np.ndarray, tile: int):
    """Cut ``(frame, y, x)`` images and masks into ``tile`` x ``tile`` samples.

    Axes shorter than ``tile`` are reflect-padded at the bottom/right, the
    mask exactly like the image: a padded pixel's label is that of the pixel
    whose intensity it copies, so image and labels stay consistent (a
    constant 0 pad would label mirrored particles as background).

    Parameters
    ----------
    images, masks : (frame, y, x) arrays of one shape.
    tile : sample side, px.

    Returns
    -------
    images, masks : (sample, tile, tile) arrays
    frame, y0, x0 : (sample,) int, the frame and top-left pixel of each tile

    Examples
    --------
    >>> images = np.arange(3 * 5, dtype=np.float32).reshape(1, 3, 5)
    >>> img, msk, frame, y0, x0 = tiles(images, (images > 7).astype(np.uint8), 4)
    >>> img.shape, x0.tolist(), img[0, 3].tolist(), msk[0, 3].tolist()
    ((2, 4, 4), [0, 1], [5.0, 6.0, 7.0, 8.0], [0, 0, 0, 1])
    """
    ys, xs = tile_starts(images.shape[1], tile), tile_starts(images.shape[2], tile)
    images, masks = _pad(images, tile), _pad(masks, tile)
    index = [(t, y, x) for t in range(len(images)) for y in ys for x in xs]
    frame, y0, x0 = (np.array(v, dtype=np.int64) for v in zip(*index))
    img = np.stack([images[t, y : y + tile, x : x + tile] for t, y, x in index])
    msk = np.stack([masks[t, y : y + tile, x : x + tile] for t, y, x in index])
    return img, msk, frame, y0, x0


# ----------------------------------------------------------------------------- shared


def _check_tile(tile) -> int:
    try:
        ok = not isinstance(tile, bool) and float(tile).is_integer() and int(tile) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TrainingSetError(f"tile={tile!r}: must be a positive integer")
    return int(tile)


def _check_normalize(method: str) -> str:
    if method not in NORMALIZE_METHODS:
        raise TrainingSetError(f"normalize={method!r}: choose one of {', '.join(NORMALIZE_METHODS)}")
    return method


def _resolve_flatten(flatten, kind: str | None) -> bool:
    """``flatten`` as a bool; ``"auto"`` flattens AFM-like simulations only.

    Labelled files (TIFF/PNG/NPY) are never an AFM format, so ``"auto"``
    matches how rotdyn preprocesses such movies: no flattening.
    """
    if flatten == "auto":
        return kind in AFM_KINDS
    if isinstance(flatten, (bool, np.bool_)):
        return bool(flatten)
    raise TrainingSetError(f"flatten={flatten!r}: must be true, false or 'auto'")


def _prepare(frames: np.ndarray, flatten: bool, normalize: str) -> np.ndarray:
    """The movie preprocessing (rotdyn.preprocess), without drift correction or frame range."""
    return preprocess(frames, flatten_afm=flatten, normalize_method=normalize)[0]


def _dataset(images, masks, source, frame, y0, x0, class_names, attrs, centres=None) -> xr.Dataset:
    """Assemble the output Dataset (see the module docstring)."""
    n, ny, nx = images.shape
    data = {"images": (("sample", "y", "x"), np.asarray(images, np.float32)),
            "masks": (("sample", "y", "x"), np.asarray(masks, np.uint8))}
    if centres is not None:
        data["centres"] = (("sample", "y", "x"), np.asarray(centres, np.uint8))
    ds = xr.Dataset(
        data,
        coords={"sample": np.arange(n), "y": np.arange(ny), "x": np.arange(nx),
                "source": ("sample", np.asarray(source, dtype=str)),
                "frame": ("sample", frame), "y0": ("sample", y0), "x0": ("sample", x0)},
    )
    ds.attrs.update(provenance(class_names=",".join(class_names), n_classes=len(class_names),
                               n_samples=n, **attrs))
    return ds


def _class_names(given, max_label: int, where: str) -> list[str]:
    """Given names checked against the labels, else background, class1, ... (at least 2 classes)."""
    if given is None:
        return ["background"] + [f"class{i}" for i in range(1, max(max_label, 1) + 1)]
    names = [str(n) for n in given]
    if any("," in n for n in names):
        raise TrainingSetError(f"class_names={names}: names must not contain commas")
    if len(names) <= max_label:
        raise TrainingSetError(f"{where}: mask label {max_label} but only {len(names)} class_names {names} "
                               "(background first)")
    return names


# ----------------------------------------------------------------------------- the two sources


def from_labels(folder: str | Path, *, tile: int = 128, flatten=False, normalize: str = "percentile",
                class_names=None) -> xr.Dataset:
    """Training set from a folder of labelled image/mask pairs.

    Parameters
    ----------
    folder : folder of pairs (see the module docstring for the pairing rules).
    tile : side of the square samples, px; larger frames are tiled with
        overlap (:func:`tile_starts`), smaller ones reflect-padded (:func:`tiles`).
    flatten : AFM flattening before normalisation (True/False; ``"auto"`` = False,
        as for any non-AFM file format). Set True for exported AFM height maps.
    normalize : per-frame normalisation method of :func:`rotdyn.preprocess.normalize`.
    class_names : name of each label value, background first; None =
        ``["background", "class1", ...]`` up to the largest label found.

    Raises
    ------
    TrainingSetError naming the file (or the folder) for any problem.


    Returns
    -------
    xarray.Dataset as described in the module docstring.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> np.save(d / "a.npy", np.arange(16.0).reshape(4, 4))
    >>> np.save(d / "a_mask.npy", np.eye(4, dtype=np.uint8) * 2)
    >>> ds = from_labels(d, tile=4, normalize="minmax", class_names=["background", "rod", "dimer"])
    >>> ds.sizes["sample"], float(ds.images.max()), ds.masks.values[0, 1].tolist(), ds.attrs["class_names"]
    (1, 1.0, [0, 2, 0, 0], 'background,rod,dimer')
    """
    folder = Path(folder)
    tile, normalize = _check_tile(tile), _check_normalize(normalize)
    flat = _resolve_flatten(flatten, None)
    parts, max_label, max_file = [], 0, None
    for image_path, mask_path in pair_files(folder):
        image, mask = read_pair(image_path, mask_path)
        if mask.max() > max_label:
            max_label, max_file = int(mask.max()), mask_path
        img, msk, frame, y0, x0 = tiles(_prepare(image, flat, normalize), mask, tile)
        name = image_path.relative_to(folder).as_posix()
        parts.append((img, msk, [name] * len(img), frame, y0, x0))
    names = _class_names(class_names, max_label, str(max_file or folder))
    img, msk, source, frame, y0, x0 = (np.concatenate(p) for p in zip(*parts))
    log.info("%s: %d pairs -> %d samples of %d px", folder, len(parts), len(img), tile)
    attrs = dict(origin=f"labels: {folder}", flatten=int(flat), normalize=normalize, tile=tile,
                 n_files=len(parts))
    return _dataset(img, msk, source, frame, y0, x0, names, attrs)


def contact_pixels(instances: np.ndarray) -> np.ndarray:
    """Pixels of an instance that are 8-adjacent to a pixel of a different instance.

    Works on the last two axes of ``instances`` (0 = background). Removing
    all of them leaves no two instances 8-adjacent: a kept pixel touching
    another instance's kept pixel would itself be a contact pixel.


    Parameters
    ----------
    instances : (..., Y, X) integer instance ids.

    Returns
    -------
    bool array of the same shape.

    Examples
    --------
    >>> inst = np.array([[1, 1, 0, 0],
    ...                  [1, 1, 2, 2]])
    >>> contact_pixels(inst).astype(int).tolist()
    [[0, 1, 0, 0], [0, 1, 1, 0]]
    """
    inst = np.asarray(instances)
    out = np.zeros(inst.shape, dtype=bool)
    ny, nx = inst.shape[-2:]
    # Right, down, down-right, down-left: each neighbour pair once.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a_rows, b_rows = slice(0, ny - dy), slice(dy, ny)
        a_cols, b_cols = (slice(0, nx - dx), slice(dx, nx)) if dx >= 0 else (slice(-dx, nx), slice(0, nx + dx))
        a, b = inst[..., a_rows, a_cols], inst[..., b_rows, b_cols]
        touch = (a > 0) & (b > 0) & (a != b)
        out[..., a_rows, a_cols] |= touch
        out[..., b_rows, b_cols] |= touch
    return out




def centre_radius(truth) -> float:
    """Radius (px) of the centre discs of :func:`centre_discs`: a third of the particles' width.

    A third of the width keeps the discs of side-by-side rods (centres one
    width apart) a third of a width apart, and of two rods crossing at 60
    degrees or more with centres 4 px apart still mostly separate. Uses the
    truth's ``width`` (rods, cells) or ``diameter`` column, else 1.5 px.

    Parameters
    ----------
    truth : DataFrame
        The simulation's ground truth, one row per particle (sizes in px).

    Returns
    -------
    float
        The disc radius (px), at least 1.

    Examples
    --------
    >>> import pandas as pd
    >>> centre_radius(pd.DataFrame({"width": [6.0, 6.0]})), centre_radius(pd.DataFrame({"x": [1.0]}))
    (2.0, 1.5)
    """
    for column in ("width", "diameter"):
        if column in truth and len(truth):
            return max(1.0, float(np.median(truth[column])) / 3)
    return 1.5


def centre_discs(truth, shape, radius: float) -> np.ndarray:
    """Discs of ``radius`` px around every particle's centre, one frame at a time, as instance ids.

    Where two discs overlap, a pixel belongs to the nearer centre, so
    :func:`contact_pixels` finds the line between them.

    Parameters
    ----------
    truth : DataFrame
        ``frame, x, y`` per particle (x the column, y the row, px).
    shape : (T, H, W)
        The movie's shape.
    radius : float
        Disc radius, px; a pixel is in a disc when its centre lies within it.

    Returns
    -------
    int32 array of ``shape``: 0 outside every disc, else 1 + the row's position in ``truth``.

    Examples
    --------
    Two centres 2.1 px apart: the discs of radius 1.5 overlap and column 2 goes to the nearer one.

    >>> import pandas as pd
    >>> discs = centre_discs(pd.DataFrame({"frame": 0, "x": [1.0, 3.1], "y": [1.0, 1.0]}), (1, 3, 6), 1.5)
    >>> discs[0].tolist()
    [[1, 1, 1, 2, 2, 0], [1, 1, 1, 2, 2, 0], [1, 1, 1, 2, 2, 0]]
    """
    ids = np.zeros(shape, dtype=np.int32)
    nearest = np.full(shape, np.inf)
    _, ny, nx = shape
    offsets = np.arange(-int(np.ceil(radius)), int(np.ceil(radius)) + 1)
    for i, (frame, x, y) in enumerate(truth[["frame", "x", "y"]].itertuples(index=False), start=1):
        rows, cols = int(round(y)) + offsets, int(round(x)) + offsets
        rows, cols = rows[(rows >= 0) & (rows < ny)], cols[(cols >= 0) & (cols < nx)]
        d2 = (rows[:, None] - y) ** 2 + (cols[None, :] - x) ** 2
        box = np.ix_(rows, cols)
        mine = (d2 <= radius ** 2) & (d2 < nearest[int(frame)][box])
        nearest[int(frame)][box] = np.where(mine, d2, nearest[int(frame)][box])
        ids[int(frame)][box] = np.where(mine, i, ids[int(frame)][box])
    return ids


def from_simulation(kind: str, *, frames: int = 24, separate_touching: bool = True, centres: bool = False,
                    flatten="auto", normalize: str = "percentile", tile: int = 128, **sim_params) -> xr.Dataset:
    """Training set of simulated frames (:func:`rotdyn.simulate.simulate`) and their labels.

    Parameters
    ----------
    kind : "rods" or "atoms".
    frames : number of simulated frames.
    separate_touching : set the contact pixels of touching instances
        (:func:`contact_pixels`) to background, so touching particles are
        split by a thin background line in the target and the network learns
        to leave a valley between them (the usual trick for touching nuclei).
        For the default rods (24 frames, seed 0) this removes 696 of 41,054
        foreground pixels (1.7 %; 0.18 % of all pixels, about 29 per frame),
        along the 0.75 px gaps of the side-by-side pairs (seeds 1 and 2: 3.4
        and 2.6 %); the default atoms never touch, so nothing is removed.
    centres : add the variable ``centres``: a disc (:func:`centre_radius`)
        around every particle's true centre, also where the centre lies
        under another particle; with ``separate_touching``, discs that
        touch are parted by a line, as the particles are. The trainers read
        it as one more class, ``"centre"`` (:func:`training_arrays`), and
        :func:`rotdyn.locate.locate` seeds one particle per centre, which
        splits crossing and overlapping particles that no valley separates.
    flatten : True/False, or "auto" = only for AFM-like kinds (rods).
    normalize : per-frame normalisation method, as for movies.
    tile : sample side, px; frames are tiled/padded as in :func:`from_labels`
        (the default 128 px simulation gives one sample per frame).
    **sim_params : further parameters of the simulation (size, count, seed, ...).

    The attrs hold every resolved simulation parameter as ``sim_<name>``, and
    ``removed_contact_pixels`` / ``removed_contact_fraction`` (of the
    foreground) for the separation.


    Returns
    -------
    xarray.Dataset as described in the module docstring.

    Examples
    --------
    >>> ds = from_simulation("rods", frames=2, size=48, count=3, tile=48, seed=1)
    >>> ds.sizes["sample"], ds.attrs["class_names"], ds.attrs["flatten"], ds.attrs["sim_count"]
    (2, 'background,rod', 1, 3)
    >>> sorted(np.unique(ds.masks.values).tolist())
    [0, 1]
    """
    tile, normalize = _check_tile(tile), _check_normalize(normalize)
    flat = _resolve_flatten(flatten, kind)
    try:
        sim = simulate(kind, frames=frames, **sim_params)
    except TypeError as exc:  # an unknown parameter name
        raise TrainingSetError(f"simulate {kind}: {exc}") from exc
    masks = sim.labels.copy()
    removed = contact_pixels(sim.instances) if separate_touching else np.zeros(masks.shape, bool)
    masks[removed] = 0
    foreground = int(np.count_nonzero(sim.labels))
    prepared = _prepare(sim.frames, flat, normalize)
    img, msk, frame, y0, x0 = tiles(prepared, masks, tile)
    centre_tiles = None
    if centres:
        radius = centre_radius(sim.truth)
        discs = centre_discs(sim.truth, masks.shape, radius)
        apart = contact_pixels(discs) if separate_touching else np.zeros(masks.shape, bool)
        centre_tiles = tiles(prepared, ((discs > 0) & ~apart).astype(np.uint8), tile)[1]
    attrs = dict(origin=f"simulated {kind}", flatten=int(flat), normalize=normalize, tile=tile,
                 separate_touching=int(bool(separate_touching)), centres=int(bool(centres)),
                 removed_contact_pixels=int(removed.sum()),
                 removed_contact_fraction=float(removed.sum() / foreground) if foreground else 0.0)
    attrs.update(_sim_attrs(sim.params))
    log.info("simulated %s: %d frames -> %d samples; %d contact pixels removed",
             kind, len(sim.frames), len(img), attrs["removed_contact_pixels"])
    if centres:
        attrs["centre_radius"] = radius
    return _dataset(img, msk, [f"simulated {kind}"] * len(img), frame, y0, x0, sim.class_names, attrs,
                    centre_tiles)


def _sim_attrs(params: dict) -> dict:
    """``sim_<name>`` for every parameter, as NetCDF-storable values (bools as ints)."""
    return {f"sim_{name}": attr_value(value) for name, value in params.items() if value is not None}


# ----------------------------------------------------------------------------- config entry point


def training_set(config: dict, labels_root: str | Path = "resources/training") -> xr.Dataset:
    """The training set a workflow config describes.

    ``config`` keys: ``set`` (name), ``source`` ("auto" | "labels" |
    "simulate"; default auto), ``tile`` (128), ``flatten`` ("auto" | true |
    false), ``normalize`` ("percentile"), ``separate_touching`` (true),
    ``centres`` (false; simulated sets only: the centre class, see
    :func:`from_simulation`),
    ``class_names`` (labels only; optional) and ``simulate`` (``kind`` plus
    simulation parameters; ``pixel_size_nm`` / ``frame_interval_s`` there are
    calibration, not simulation, and are ignored). "auto" uses the labels in
    ``<labels_root>/<set>/`` when that folder holds image files, else
    simulates. The attrs gain ``set`` and ``source`` (the one used).


    Parameters
    ----------
    config : the ``training_set`` config section, as above.
    labels_root : folder of the labelled sets.

    Returns
    -------
    xarray.Dataset of :func:`from_labels` or :func:`from_simulation`.

    Raises
    ------
    TrainingSetError for a missing name, an unknown source or a missing labels folder.

    Examples
    --------
    >>> config = {"set": "demo", "tile": 48, "simulate": {"kind": "rods", "frames": 1, "size": 48,
    ...                                                    "count": 2, "pixel_size_nm": 0.5}}
    >>> ds = training_set(config, labels_root="no/labels/here")
    >>> ds.attrs["set"], ds.attrs["source"], "sim_pixel_size_nm" in ds.attrs
    ('demo', 'simulate', False)
    """
    if "set" not in config:
        raise TrainingSetError("training set config has no 'set' (its name)")
    name, source = str(config["set"]), config.get("source", "auto")
    if source not in SOURCES:
        raise TrainingSetError(f"training set {name!r}: source={source!r}; choose one of {', '.join(SOURCES)}")
    folder = Path(config.get("labels") or Path(labels_root) / name)
    if source == "auto":
        source = "labels" if has_labels(folder) else "simulate"
    common = dict(tile=config.get("tile", 128), flatten=config.get("flatten", "auto"),
                  normalize=config.get("normalize", "percentile"))
    if source == "labels":
        if not folder.is_dir():
            raise TrainingSetError(f"training set {name!r}: source is 'labels' but the folder {folder} does not exist")
        ds = from_labels(folder, class_names=config.get("class_names"), **common)
        if config.get("centres"):
            log.warning("training set %r: centres: true needs each particle's centre, which labelled masks do "
                        "not give; no centre class (use a locate split other than 'centre')", name)
    else:
        sim = {k: v for k, v in (config.get("simulate") or {}).items() if k not in CALIBRATION_KEYS}
        kind = sim.pop("kind", "rods")
        ds = from_simulation(kind, separate_touching=config.get("separate_touching", True),
                             centres=config.get("centres", False), **common, **sim)
    ds.attrs.update(set=name, source=source)
    if source == "simulate" and config.get("measured"):
        ds.attrs.update({f"measured_{k}" if k != "from" else "measured_from": v for k, v in config["measured"].items()})
    return ds


def load_training_set(path) -> dict:
    """Arrays and classes of a written training set, as the trainers take them.

    Parameters
    ----------
    path : a training set NetCDF file (:func:`run`'s output).

    Returns
    -------
    dict with ``images`` (float32), ``masks`` (uint8), ``class_names`` (list) and ``n_classes``.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "set.nc"
    >>> write_netcdf(from_simulation("atoms", frames=1, size=32, dopants=1, vacancies=1, tile=32), path)
    >>> data = load_training_set(path)
    >>> data["images"].shape, data["masks"].dtype, data["class_names"], data["n_classes"]
    ((1, 32, 32), dtype('uint8'), ['background', 'carbon', 'dopant'], 3)
    """
    with xr.open_dataset(path) as ds:
        return training_arrays(ds)


def training_arrays(ds: xr.Dataset) -> dict:
    """Images, targets and classes of a training set, as the trainers take them.

    A set with ``centres`` gets one more class, ``"centre"`` (the last
    label), drawn over the particles' classes where ``centres`` is 1.

    Parameters
    ----------
    ds : a training set (:func:`from_simulation`, :func:`from_labels`).

    Returns
    -------
    dict with ``images`` (float32), ``masks`` (uint8), ``class_names`` (list) and ``n_classes``.

    Examples
    --------
    >>> ds = from_simulation("rods", frames=1, size=48, count=2, tile=48, centres=True, seed=1)
    >>> data = training_arrays(ds)
    >>> data["class_names"], data["n_classes"], sorted(np.unique(data["masks"]).tolist())
    (['background', 'rod', 'centre'], 3, [0, 1, 2])
    >>> int((data["masks"] == 2).sum()) == int(ds["centres"].sum()), int(ds["masks"].max())
    (True, 1)
    """
    masks = ds["masks"].values.astype(np.uint8)
    names = ds.attrs["class_names"].split(",")
    if "centres" in ds:
        masks = np.where(ds["centres"].values > 0, len(names), masks).astype(np.uint8)
        names = [*names, CENTRE_CLASS]
    return {"images": ds["images"].values.astype(np.float32), "masks": masks, "class_names": names,
            "n_classes": len(names)}


def with_measured_sizes(settings: dict, keys: list, movie_path=None) -> dict:
    """``settings`` with the simulation's unset ``keys`` taken from a movie's measured sizes.

    The ingest stage measures them (:func:`rotdyn.survey.measure`) into the
    movie's attrs ``measured_<key>``; keys it could not measure keep the
    simulator's defaults. The measurement's own bias (a phase-contrast halo
    and the blur narrow a cell at half height, for instance) is removed
    through the simulator (:func:`calibrate`). Each value used is logged and
    recorded in the training set's attrs as ``measured_<key>`` with
    ``measured_from``.

    Parameters
    ----------
    settings : dict
        The kind's ``training_set`` settings (``simulate`` among them).
    keys : list of str
        The simulator keys the kind leaves unset (:func:`rotdyn.kinds.unset_sizes`).
    movie_path : path or None
        The kind's first ``movie.nc``; None (or no ``keys``): ``settings`` unchanged.

    Returns
    -------
    dict
        ``settings`` with the sizes in ``simulate`` and a ``measured`` entry.

    Examples
    --------
    >>> import tempfile, os
    >>> movie = os.path.join(tempfile.mkdtemp(), "movie.nc")
    >>> xr.Dataset(attrs={"measured_length": 20.0, "measured_width": 6.0}).to_netcdf(movie)
    >>> settings = {"simulate": {"kind": "rods", "size": 96, "count": 10, "seed": 0}}
    >>> filled = with_measured_sizes(settings, ["length", "width"], movie)
    >>> abs(filled["simulate"]["length"] - 20) < 1.5, filled["measured"]["from"] == movie
    (True, True)
    >>> with_measured_sizes(settings, [], movie) is settings
    True
    """
    if not keys or not movie_path:
        return settings
    with xr.open_dataset(movie_path) as movie:
        attrs = dict(movie.attrs)
    sim = dict(settings.get("simulate") or {})
    measured = {key: float(attrs[f"measured_{key}"]) for key in keys if f"measured_{key}" in attrs}
    sizes = calibrate(sim, measured)
    sim.update(simulator_params(sim.get("kind", "rods"), sizes))
    log.info("simulated training particles as measured on %s: %s", movie_path,
             ", ".join(f"{k} {v:.3g} (read {measured[k]:.3g})" for k, v in sizes.items())
             or "nothing measured, simulator defaults")
    return {**settings, "simulate": sim, "measured": {**sizes, "from": str(movie_path)}}


# The probe of calibrate() holds particles apart: it measures the estimator's bias on the kind's look,
# not on crowding (crossing rods and side-by-side pairs in small frames read up to twice as long).
PROBE_APART = {"rods": {"placement": "lattice", "pair_fraction": 0.0}}
# Atoms' noise is read against their height in the mean of the probe's frames: enough of them to find the atoms
# at a dose of a few counts per atom.
PROBE_FRAMES = {"atoms": 20}


def calibrate(sim: dict, measured: dict, frames: int = 3) -> dict:
    """Measured sizes corrected for the measurement's bias, by measuring the simulator's particles the same way.

    A short movie is simulated with the measured values (and the kind's own
    optics, halo, noise; particles kept apart, :data:`PROBE_APART`), measured
    again, and each size corrected by the difference (noise by the ratio): one
    step of a fixed-point iteration that makes the simulation *read* like the
    movie. ``length_sd`` is kept as read.

    Parameters
    ----------
    sim : dict
        The kind's training simulation settings (``kind`` and the simulator's parameters; calibration keys ignored).
    measured : dict
        Sizes measured on the movie (``length``, ``width``, ``diameter`` in px, ``noise``, ``length_sd``).
    frames : int
        Frames of the probe movie.

    Returns
    -------
    dict
        ``measured`` with each size corrected (by one step, bounded to 0.5-2 times the measured value); unchanged
        where the probe could not be measured.

    Examples
    --------
    >>> sizes = calibrate({"kind": "rods", "size": 96, "count": 10, "seed": 0}, {"length": 20.0, "width": 6.0})
    >>> abs(sizes["length"] - 20) < 1.5, abs(sizes["width"] - 6) < 1
    (True, True)

    Crowded training frames (rods that cross, in a small frame) do not bias the probe:

    >>> crowded = {"kind": "rods", "size": 96, "count": 12, "placement": "independent", "seed": 1}
    >>> abs(calibrate(crowded, {"length": 22.8, "width": 6.4})["length"] - 22.8) < 1.5
    True
    """
    keys = [key for key in measured if key != "length_sd"]
    if not keys:
        return dict(measured)
    params = {k: v for k, v in sim.items() if k not in CALIBRATION_KEYS}
    kind = params.pop("kind", "rods")
    params.update(simulator_params(kind, measured), frames=max(frames, PROBE_FRAMES.get(kind, 0)),
                  seed=int(params.get("seed", 0)) + 7919)  # not a training seed
    params.update(PROBE_APART.get(kind, {}))
    probe = preprocess(simulate(kind, **params).frames, normalize_method="percentile")[0]
    read = measure(probe, kind, keys)
    out = dict(measured)
    for key in keys:
        if key not in read or read[key] <= 0:
            continue
        value = measured[key] * measured[key] / read[key] if key == "noise" else 2 * measured[key] - read[key]
        out[key] = float(min(max(value, 0.5 * measured[key]), 2 * measured[key]))  # one bounded step
    return out


def run(job) -> None:
    """Entry of rule ``training_set``: labelled or simulated frames -> ``results/training/<kind>.nc``.

    ``job.params.settings`` is the particle kind's ``training_set`` settings
    (:func:`rotdyn.kinds.kind_settings`; ``set`` is the kind's name),
    ``job.params.labels_root`` the folder of labelled sets, ``job.params.measure``
    the simulator keys the kind leaves unset, taken from the sizes measured on
    ``job.input.movie`` (:func:`with_measured_sizes`).


    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``params`` as above, ``wildcards.kind`` the kind, ``output[0]`` the training set (.nc).

    Examples
    --------
    >>> import tempfile
    >>> from rotdyn.jobs import job
    >>> out = Path(tempfile.mkdtemp()) / "demo.nc"
    >>> settings = {"set": "demo", "tile": 48, "simulate": {"kind": "rods", "frames": 2, "size": 48, "count": 2}}
    >>> run(job("training_set", output=[str(out)], wildcards={"kind": "demo"},
    ...         params={"settings": settings, "labels_root": str(out.parent / "labels")}))
    >>> with xr.open_dataset(out) as ds:
    ...     ds.sizes["sample"], ds.attrs["source"], int(ds.attrs["sim_frames"])
    (2, 'simulate', 2)
    """
    keys = list(getattr(job.params, "measure", None) or [])
    movie = getattr(job.input, "movie", None) if keys else None
    movie = movie[0] if isinstance(movie, list) and movie else movie  # Snakemake gives a list for a function's
    settings = with_measured_sizes(dict(job.params.settings), keys, movie or None)
    ds = training_set(settings, labels_root=job.params.labels_root)
    log.info("training set %s: %d tiles, classes %s (%s)", job.wildcards.kind,
             ds.sizes["sample"], ds.attrs["class_names"], ds.attrs["origin"])
    write_netcdf(ds, job.output[0])
