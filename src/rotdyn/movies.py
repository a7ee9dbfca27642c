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


@dataclass
class Discovery:
    """Movies found in a folder: name -> path, and the files left out with why."""

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
    """Find the movies in ``folder``.

    Parameters
    ----------
    folder : the movies folder (``resources/movies``).
    channels : per-movie channel selectors from the sample sheet, used by the probe.
    cache_file : JSON file that remembers probe answers between runs.
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


def read_sample_sheet(path: str | os.PathLike) -> dict[str, dict]:
    """Per-movie settings from a tab-separated sample sheet.

    The ``movie`` column names the movie (the file's stem); the other columns
    are any of :data:`SHEET_COLUMNS`. Empty cells mean "use the default".
    Lines starting with ``#`` are comments.

    Raises
    ------
    ValueError naming the file, the movie and the column of any bad cell.
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
    return sheet


def _convert(path, movie, column, cell):
    try:
        return SHEET_COLUMNS[column](cell.strip())
    except ValueError:
        kind = SHEET_COLUMNS[column].__name__
        raise ValueError(f"{path}: movie {movie!r}, column {column!r}: {cell!r} is not a {kind}") from None


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
    """Merge the config's preprocessing defaults with one movie's sheet row."""
    settings = {**defaults, **(overrides or {})}
    for key in ("flatten", "drift_correction"):
        settings[key] = _as_bool_or_auto(settings[key], key)
    if settings["drift_correction"] == "auto":
        raise ValueError("drift_correction=auto: expected true or false")
    return settings
