"""Movie discovery and per-movie settings.

Every supported file (or folder of frames) in the movies folder becomes a
target named after its stem. Files that cannot be read are reported once, by
name and reason, and left out, so one bad movie never stops the others. The
probe reads headers only and its answers are cached by path, size and
modification time, so planning a run over many large movies stays cheap.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .formats import MovieReadError, is_supported, movie_stem, probe_movie

log = logging.getLogger(__name__)

# Movie names become path components under results/: no slashes, no leading dot.
MOVIE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
_IGNORED = {"readme", "readme.md", "readme.txt", ".gitkeep"}

# Settings a sample sheet may give per movie, and their types.
SHEET_COLUMNS = {
    "pixel_size_nm": float,
    "frame_interval_s": float,
    "first_frame": int,
    "last_frame": int,
    "channel": str,
    "flatten": str,
    "normalize": str,
    "drift_correction": str,
    "drift_reference": str,
}
# Yes/no columns, compared lower-case.
_SWITCHES = ("flatten", "drift_correction")
# JSON schema of one sheet row: types, allowed values and ranges of SHEET_COLUMNS.
SHEET_SCHEMA = Path(__file__).parents[2] / "config" / "movies.schema.yaml"


@dataclass
class Discovery:
    """Movies found in a folder: name -> path, and the files left out with why.

    Attributes
    ----------
    movies : dict movie name -> path of each readable movie.
    skipped : dict path -> reason, for every file left out.

    Examples
    --------
    >>> found = Discovery()
    >>> found.movies["rods0"] = Path("resources/movies/rods0.npy")
    >>> sorted(found.movies), found.skipped
    (['rods0'], {})
    """

    movies: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _cached_probe(path: Path, cache: dict, channel: str | None) -> str | None:
    """Probe ``path``; return None when readable, else the reason. Uses ``cache``."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{channel}"
    if key not in cache:
        try:
            probe_movie(path, channel=channel)
            cache[key] = None
        except MovieReadError as exc:
            cache[key] = str(exc)
    return cache[key]


def discover(folder: str | os.PathLike, channels: dict[str, str] | None = None,
             cache_file: str | os.PathLike | None = None) -> Discovery:
    """Find the movies in ``folder``; unreadable files are left out with the reason.

    Parameters
    ----------
    folder : the movies folder (``resources/movies``).
    channels : per-movie channel selectors from the sample sheet, used by the probe.
    cache_file : JSON file that remembers probe answers between runs.

    Returns
    -------
    Discovery of the readable movies (by name) and the skipped files (with why).
    A missing folder gives an empty Discovery.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.save(folder / "rods0.npy", np.zeros((2, 8, 8), np.float32))
    >>> _ = (folder / "notes.docx").write_text("not a movie")
    >>> found = discover(folder)
    >>> list(found.movies), [Path(p).name for p in found.skipped]
    (['rods0'], ['notes.docx'])
    """
    folder = Path(folder)
    found = Discovery()
    if not folder.is_dir():
        return found
    channels = channels or {}
    cache = _load_cache(cache_file)
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.lower() in _IGNORED:
            continue
        if not is_supported(path):
            found.skipped[str(path)] = "not a supported movie format"
            continue
        name = movie_stem(path)
        if not re.fullmatch(MOVIE_NAME, name):
            found.skipped[str(path)] = (
                f"name {name!r} is not usable as a result folder; rename it to letters, digits, '_', '-', '.'"
            )
            continue
        if name in found.movies:
            found.skipped[str(path)] = f"same name {name!r} as {found.movies[name].name}; rename one of them"
            continue
        reason = _cached_probe(path, cache, channels.get(name))
        if reason:
            found.skipped[str(path)] = reason
            continue
        found.movies[name] = path
    _save_cache(cache_file, cache)
    return found


def _load_cache(cache_file) -> dict:
    if cache_file is None:
        return {}
    try:
        return json.loads(Path(cache_file).read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache_file, cache: dict) -> None:
    if cache_file is None:
        return
    path = Path(cache_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
    os.replace(tmp, path)


def read_sample_sheet(path: str | os.PathLike, schema: str | os.PathLike | None = None) -> dict[str, dict]:
    r"""Per-movie settings from a tab-separated sample sheet, each row checked against a schema.

    Parameters
    ----------
    path : the sheet. The ``movie`` column names the movie (the file's stem);
        the other columns are any of :data:`SHEET_COLUMNS`. Empty cells mean
        "use the default". Lines starting with ``#`` are comments. A missing
        file is an empty sheet.
    schema : JSON schema (YAML) of one converted row; None = :data:`SHEET_SCHEMA`.

    Returns
    -------
    dict movie -> {column: value} of the non-empty cells, converted to the
    types of :data:`SHEET_COLUMNS` (``flatten`` / ``drift_correction`` lower-cased).

    Raises
    ------
    ValueError naming the file, the movie, the column and the value of any bad cell.

    Examples
    --------
    >>> import tempfile
    >>> sheet = Path(tempfile.mkdtemp()) / "movies.tsv"
    >>> _ = sheet.write_text("movie\tpixel_size_nm\tnormalize\nrods0\t0.5\tzscore\n")
    >>> read_sample_sheet(sheet)
    {'rods0': {'pixel_size_nm': 0.5, 'normalize': 'zscore'}}
    >>> _ = sheet.write_text("movie\tnormalize\nrods0\tfoo\n")
    >>> read_sample_sheet(sheet)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../movies.tsv: movie 'rods0', column 'normalize': 'foo' is not one of ['none', 'percentile', 'minmax', 'zscore']
    """
    path = Path(path)
    if not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False)
    if table.empty:
        return {}
    if "movie" not in table.columns:
        raise ValueError(f"{path}: the sample sheet needs a 'movie' column")
    unknown = sorted(set(table.columns) - set(SHEET_COLUMNS) - {"movie"})
    if unknown:
        raise ValueError(f"{path}: unknown column(s) {unknown}; allowed: movie, {', '.join(SHEET_COLUMNS)}")
    sheet = {}
    for _, row in table.iterrows():
        name = row["movie"].strip()
        if name in sheet:
            raise ValueError(f"{path}: movie {name!r} is listed twice")
        sheet[name] = {col: _convert(path, name, col, cell) for col, cell in row.items()
                       if col != "movie" and cell.strip() != ""}
        _validate_row(path, name, sheet[name], schema or SHEET_SCHEMA)
    return sheet


def _convert(path, movie, column, cell):
    try:
        value = SHEET_COLUMNS[column](cell.strip())
    except ValueError:
        kind = SHEET_COLUMNS[column].__name__
        raise ValueError(f"{path}: movie {movie!r}, column {column!r}: {cell!r} is not a {kind}") from None
    return value.lower() if column in _SWITCHES else value


def _validate_row(path, movie: str, row: dict, schema) -> None:
    """Check one converted row against ``schema``; ValueError naming the cell if it fails."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate({"movie": movie, **row}, str(schema), set_default=False)
    except WorkflowError as exc:  # raised while handling the jsonschema error, which names the cell
        error = exc.__cause__ or exc.__context__
        if not isinstance(error, jsonschema.ValidationError):
            error = None
        if error is None:
            raise ValueError(f"{path}: movie {movie!r}: {exc}") from None
        column = error.absolute_path[0] if error.absolute_path else "movie"
        raise ValueError(f"{path}: movie {movie!r}, column {column!r}: {error.message}") from None


def _as_bool_or_auto(value, key):
    if isinstance(value, bool) or value == "auto":
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    if text == "auto":
        return "auto"
    raise ValueError(f"{key}={value!r}: expected true, false or auto")


def movie_settings(defaults: dict, overrides: dict | None = None) -> dict:
    """Merge the config's preprocessing defaults with one movie's sheet row.

    Parameters
    ----------
    defaults : the config's ``preprocess`` section.
    overrides : the movie's row of :func:`read_sample_sheet` (None: none).

    Returns
    -------
    dict of settings; ``flatten`` becomes True, False or ``"auto"`` and
    ``drift_correction`` True or False (from true/false/yes/no/on/off/1/0).

    Raises
    ------
    ValueError for a ``flatten`` or ``drift_correction`` it cannot read.

    Examples
    --------
    >>> defaults = {"flatten": "auto", "normalize": "percentile", "drift_correction": False}
    >>> movie_settings(defaults, {"flatten": "false", "drift_correction": "yes"})
    {'flatten': False, 'normalize': 'percentile', 'drift_correction': True}
    """
    settings = {**defaults, **(overrides or {})}
    for key in ("flatten", "drift_correction"):
        settings[key] = _as_bool_or_auto(settings[key], key)
    if settings["drift_correction"] == "auto":
        raise ValueError("drift_correction=auto: expected true or false")
    return settings
