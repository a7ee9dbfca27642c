"""Writing results so that nothing half-written ever looks complete.

Every stage writes through :func:`write_netcdf` (or :func:`atomic_path` for
other formats): the data go to a temporary name beside the target and are
renamed into place only when complete, so a killed job leaves no file that a
later run could mistake for a finished one.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    The temporary name is fixed (``.<name>.part<suffix>``), so the leftover of
    a job killed outright is overwritten, then renamed away, by its rerun
    (Snakemake never runs two jobs for one output at once).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (its folder is created).

    Returns
    -------
    contextlib.AbstractContextManager
        Entering it yields the temporary path (see Yields).

    Yields
    ------
    pathlib.Path
        The temporary path to write to.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("a,b")
    ...     tmp.name, target.exists()
    ('.table.csv.part.csv', False)
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('a,b', ['table.csv'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the suffix: some writers (Pillow, matplotlib) choose the format by it.
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plain(value, nan=None):
    """``value`` with numpy/torch scalars, arrays and containers as plain Python types.

    For JSON and for ``torch.load(weights_only=True)``, which refuses numpy
    objects (and numpy floats pass ``isinstance(x, float)``, so they are
    converted first). Anything else unknown becomes its text.

    Parameters
    ----------
    value : object
        A scalar, array, tensor, list, tuple or dict (converted recursively).
    nan : object, optional
        What a non-finite float becomes: ``None`` (the default, as JSON wants)
        or, say, ``float("nan")``.

    Returns
    -------
    object
        Made of ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None`` only.

    Examples
    --------
    >>> import numpy as np
    >>> plain({"a": np.float32(0.5), 1: np.arange(2), "b": (np.bool_(True), float("nan"))})
    {'a': 0.5, '1': [0, 1], 'b': [True, None]}
    """
    if isinstance(value, dict):
        return {str(k): plain(v, nan) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, nan) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy and torch
        return plain(value.tolist(), nan)
    if isinstance(value, float) and not np.isfinite(value):
        return nan
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def attr_value(value):
    """``value`` as a NetCDF attribute: bools as 0/1, numpy scalars as Python ones, else text.

    What is NetCDF-specific on top of :func:`plain`: NetCDF has no boolean
    attribute, keeps NaN (JSON does not), and takes arrays as they are; any
    other container is stored as its text.

    Parameters
    ----------
    value : object
        A scalar, array or anything with a text form.

    Returns
    -------
    int, float, str or numpy.ndarray

    Examples
    --------
    >>> attr_value(True), attr_value(np.float32(0.5)), attr_value(float("nan")), attr_value((1, 2))
    (1, 0.5, nan, '(1, 2)')
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        value = plain(value, nan=float("nan"))
    return value if isinstance(value, (str, int, float)) else str(value)


def provenance(**params) -> dict:
    """Attributes every result carries: workflow version, time, parameters (None left out).

    Parameters
    ----------
    **params
        Settings to record, as :func:`attr_value` stores them.

    Returns
    -------
    dict
        ``rotdyn_version``, ``created`` (UTC, ISO 8601) and the parameters.

    Examples
    --------
    >>> attrs = provenance(grid_points=np.int64(181), drift=False, seed=None)
    >>> attrs["grid_points"], attrs["drift"], "seed" in attrs, sorted(attrs)[:2]
    (181, 0, False, ['created', 'drift'])
    """
    attrs = {
        "rotdyn_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    attrs.update({key: attr_value(value) for key, value in params.items() if value is not None})
    return attrs


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, compress: bool = True) -> None:
    """Write ``ds`` to NetCDF-4 at ``path`` atomically (temporary name, then rename).

    Parameters
    ----------
    ds : xr.Dataset
        The result.
    path : str or os.PathLike
        Where to write it (the folder is created).
    compress : bool
        zlib level 1 for numeric variables of two or more dimensions.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "out.nc"
    >>> write_netcdf(xr.Dataset({"v": (("y", "x"), np.eye(2))}), path)
    >>> with xr.open_dataset(path) as back:
    ...     back["v"].values.tolist(), back["v"].encoding["zlib"]
    ([[1.0, 0.0], [0.0, 1.0]], True)
    """
    encoding = {}
    if compress:
        for name, var in ds.data_vars.items():
            if var.ndim >= 2 and var.dtype.kind in "fiu":
                encoding[name] = {"zlib": True, "complevel": 1}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
