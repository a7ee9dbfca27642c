"""Movie discovery and per-movie settings.

Every supported file (or folder of frames) in the movies folder becomes a
target named after a safe version of its stem (:func:`safe_name`: spaces to
``_``, accents transliterated, other characters dropped), so whatever name a
microscope wrote, the movie is analysed. Files whose safe names coincide all
run, with suffixes ``_2``, ``_3`` (:func:`movie_names`). Files that cannot be
read are reported once, by name and reason, and left out, so one bad movie
never stops the others. The probe reads headers only and its answers are
cached by path, size and modification time, so planning a run over many large
movies stays cheap.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .formats import MovieReadError, is_supported, movie_stem, probe_movie

log = logging.getLogger(__name__)

# Movie names become path components under results/: no slashes, no leading dot.
# Every name safe_name returns matches it (it is the Snakefile's wildcard constraint).
MOVIE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
# Folders under results/ that the workflow itself writes (and the pooled rVAE's
# name): a movie given one of these names would share their paths.
RESERVED_NAMES = ("benchmarks", "ensemble", "logs", "pooled", "rvae", "simulated", "training")
# Letters NFKD does not take apart into a base letter and marks.
_LETTERS = str.maketrans({
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D",
    "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ł": "l", "Ł": "L", "ı": "i", "ħ": "h", "Ħ": "H",
    "µ": "u", "μ": "u", "×": "x",  # 5µm -> 5um, 40×40 -> 40x40
})
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
    "average_frames": int,
    "particles": str,
    "contrast": str,
}
# Yes/no columns, compared lower-case.
_SWITCHES = ("flatten", "drift_correction")
# JSON schema of one sheet row: types, allowed values and ranges of SHEET_COLUMNS.
SHEET_SCHEMA = Path(__file__).parents[2] / "config" / "movies.schema.yaml"


def safe_name(stem: str, empty: str = "movie") -> str:
    """A name usable as a result folder, made from a file's stem.

    Runs of whitespace become ``_``, accented letters lose their accents
    (Unicode NFKD, combining marks dropped; ``ß``, ``æ``, ``ø``, ``µ`` ... by a
    small table), every other character outside letters, digits, ``_``, ``.``,
    ``+``, ``-`` is dropped, and so are leading characters that are not a letter
    or digit and trailing dots.

    Parameters
    ----------
    stem : str
        The file's (or folder's) name without its suffix (:func:`rotdyn.formats.movie_stem`).
    empty : str
        The name of a stem with nothing left.

    Returns
    -------
    str
        A name matching :data:`MOVIE_NAME`.

    Examples
    --------
    >>> safe_name("2021-03-30 Pos2"), safe_name("préparé"), safe_name("Größe"), safe_name("cell (1) 5µm")
    ('2021-03-30_Pos2', 'prepare', 'Grosse', 'cell_1_5um')
    >>> safe_name("_tmp  run#3"), safe_name("細胞")
    ('tmp_run3', 'movie')
    """
    text = unicodedata.normalize("NFKD", stem.strip().translate(_LETTERS))
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = re.sub(r"[^A-Za-z0-9_.+-]", "", re.sub(r"\s+", "_", text))
    text = re.sub(r"^[^A-Za-z0-9]+", "", text).rstrip(".")  # "x." is no folder name on Windows shares
    return text or empty


def movie_names(paths) -> dict[Path, str]:
    """Target name of every movie path: its :func:`safe_name`, made unique.

    Names are compared without case (``X`` and ``x`` would share a folder on
    macOS and Windows). A file whose stem is already safe keeps it; the others
    take their safe name if still free. Files left over get ``_2``, ``_3`` ...,
    in order of their paths, so the names do not depend on the order the files
    were listed in. :data:`RESERVED_NAMES` are never given.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Movie files and folders of frames.

    Returns
    -------
    dict pathlib.Path -> str, in the order of ``paths``.

    Examples
    --------
    >>> names = movie_names(["m/a b.tif", "m/a_b.tif", "m/x.tif", "m/x.npy", "m/training.nc"])
    >>> [names[Path(p)] for p in ("m/a b.tif", "m/a_b.tif", "m/x.npy", "m/x.tif", "m/training.nc")]
    ['a_b_2', 'a_b', 'x', 'x_2', 'training_2']
    """
    paths = [Path(p) for p in paths]
    safe = {path: safe_name(movie_stem(path)) for path in paths}
    taken = {name.casefold() for name in RESERVED_NAMES}
    names, left = {}, []
    for path in sorted(paths, key=lambda p: (safe[p] != movie_stem(p), str(p))):
        if safe[path].casefold() in taken:
            left.append(path)
        else:
            names[path] = safe[path]
            taken.add(safe[path].casefold())
    for path in sorted(left, key=str):
        number = 2
        while f"{safe[path]}_{number}".casefold() in taken:
            number += 1
        names[path] = f"{safe[path]}_{number}"
        taken.add(names[path].casefold())
    return {path: names[path] for path in paths}


@dataclass
class Discovery:
    """Movies found in a folder: name -> path, and the files left out with why.

    Attributes
    ----------
    movies : dict movie name -> path of each readable movie.
    skipped : dict path -> reason, for every file left out.
    renamed : dict path -> movie name, for each movie whose name is not its file's stem.
    clashes : dict safe name -> the paths (sorted) that made it, where two or more did,
        or where the name is one of :data:`RESERVED_NAMES`.

    Examples
    --------
    >>> found = Discovery()
    >>> found.movies["rods0"] = Path("resources/movies/rods0.npy")
    >>> sorted(found.movies), found.skipped
    (['rods0'], {})
    """

    movies: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    clashes: dict[str, list[str]] = field(default_factory=dict)

    def sheet_row(self, sheet: dict[str, dict], name: str) -> dict | None:
        """The sample-sheet row of movie ``name``: the row of that name, else the row of its file's stem.

        A row under the movie's own (safe) name wins: it is unique, while one
        stem may belong to two files (``x.tif``, ``x.npy``), whose row then
        applies to both.

        Parameters
        ----------
        sheet : dict of str to dict
            The sample sheet, one row (dict of settings) per key.
        name : str
            The movie's (safe) name, a key of ``self.movies``.

        Returns
        -------
        dict or None
            The row's settings; None when no row names the movie.

        Examples
        --------
        >>> found = Discovery({"Pos_2": Path("m/Pos 2.tif")})
        >>> found.sheet_row({"Pos 2": {"first_frame": 3}}, "Pos_2")
        {'first_frame': 3}
        >>> found.sheet_row({"Pos 2": {"first_frame": 3}, "Pos_2": {"first_frame": 5}}, "Pos_2")
        {'first_frame': 5}
        """
        return _sheet_row(sheet, name, self.movies.get(name))

    def unused_rows(self, sheet: dict[str, dict], names=()) -> list[str]:
        """Sheet rows that name no movie found (by name or stem) nor any of ``names``.

        Parameters
        ----------
        sheet : dict of str to dict
            The sample sheet, one row per key.
        names : iterable of str
            Other names a row may rightly carry (e.g. simulated movies).

        Returns
        -------
        list of str
            The unused keys, sorted.

        Examples
        --------
        >>> Discovery({"Pos_2": Path("m/Pos 2.tif")}).unused_rows({"Pos 2": {}, "Pos_3": {}, "demo": {}}, ["demo"])
        ['Pos_3']
        """
        known = {*self.movies, *names, *(_nfc(movie_stem(path)) for path in self.movies.values())}
        return sorted(key for key in sheet if key not in known and _nfc(key) not in known)

    def closest(self, key: str) -> str | None:
        """The movie name most like a sheet row ``key`` that names none, for a "did you mean" hint.

        Parameters
        ----------
        key : str
            A sample-sheet row's movie name.

        Returns
        -------
        str or None
            The movie's (safe) name, or None when none is close (:func:`difflib.get_close_matches`).

        Examples
        --------
        >>> found = Discovery({"Bact_5um_x_40__pos3": Path("m/Bact 5µm × 40 – pos#3.tif")})
        >>> found.closest("Bact_5um_x_40_-_pos3"), found.closest("ghost")
        ('Bact_5um_x_40__pos3', None)
        """
        match = difflib.get_close_matches(_nfc(key), list(self.movies), n=1, cutoff=0.6)
        return match[0] if match else None

    def notes(self) -> list[tuple[str, str]]:
        """What planning reports, as (``"info"`` or ``"warning"``, message).

        One line per renamed movie (path -> name), one per clash of names, one per skipped file.

        Returns
        -------
        list of (str, str)
            (level, message) pairs: renames first, then clashes, then skipped files.

        Examples
        --------
        >>> found = Discovery({"a_b": Path("m/a_b.tif"), "a_b_2": Path("m/a b.tif")}, {"m/n.docx": "not a movie"},
        ...                   {"m/a b.tif": "a_b_2"}, {"a_b": ["m/a b.tif", "m/a_b.tif"]})
        >>> for level, text in found.notes():
        ...     print(level, text)
        info m/a b.tif -> a_b_2 (results/a_b_2/)
        warning m/a b.tif, m/a_b.tif all make the name 'a_b'; analysed as a_b_2, a_b
        warning skipping m/n.docx: not a movie
        """
        names = {str(path): name for name, path in self.movies.items()}
        lines = [("info", f"{path} -> {name} (results/{name}/)") for path, name in self.renamed.items()]
        for name, paths in self.clashes.items():
            targets = ", ".join(names.get(path, "skipped") for path in paths)
            if name.casefold() in RESERVED_NAMES:
                lines.append(("warning", f"{', '.join(paths)}: {name!r} is a folder the workflow writes under "
                                         f"results/; analysed as {targets}"))
            else:
                lines.append(("warning", f"{', '.join(paths)} all make the name {name!r}; analysed as {targets}"))
        lines += [("warning", f"skipping {path}: {reason}") for path, reason in self.skipped.items()]
        return lines


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


def discover(folder: str | os.PathLike, sheet: dict[str, dict] | None = None,
             cache_file: str | os.PathLike | None = None) -> Discovery:
    """Find the movies in ``folder``; unreadable files are left out with the reason.

    Parameters
    ----------
    folder : the movies folder (``resources/movies``).
    sheet : the sample sheet (:func:`read_sample_sheet`); its ``channel`` column is used by the probe.
    cache_file : JSON file that remembers probe answers between runs.

    Returns
    -------
    Discovery of the readable movies (by name, :func:`movie_names`) and the
    skipped files (with why). A missing folder gives an empty Discovery.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.save(folder / "rods 0.npy", np.zeros((2, 8, 8), np.float32))
    >>> _ = (folder / "notes.docx").write_text("not a movie")
    >>> found = discover(folder)
    >>> list(found.movies), [Path(p).name for p in found.skipped], [Path(p).name for p in found.renamed]
    (['rods_0'], ['notes.docx'], ['rods 0.npy'])
    """
    folder = Path(folder)
    found = Discovery()
    if not folder.is_dir():
        return found
    candidates = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.lower() in _IGNORED:
            continue
        if is_supported(path):
            candidates.append(path)
        else:
            found.skipped[str(path)] = "not a supported movie format"
    names = movie_names(candidates)
    cache = _load_cache(cache_file)
    for path, name in names.items():
        reason = _cached_probe(path, cache, (_sheet_row(sheet or {}, name, path) or {}).get("channel"))
        if reason:
            found.skipped[str(path)] = reason
            continue
        found.movies[name] = path
        if name != movie_stem(path):
            found.renamed[str(path)] = name
    _save_cache(cache_file, cache)
    found.clashes = _clashes(names)
    return found


def _sheet_row(sheet: dict, name: str, path) -> dict | None:
    """The row of ``name``, else the row of the stem of ``path`` (None: no file)."""
    if name in sheet:
        return sheet[name]
    if path is None:
        return None
    rows = {_nfc(key): row for key, row in sheet.items()}
    return rows.get(_nfc(movie_stem(path)))


def _nfc(text: str) -> str:
    """One form for one name: macOS writes file names decomposed (NFD), editors type them composed.

    Stripped as the sheet's cells are.
    """
    return unicodedata.normalize("NFC", text).strip()


def _clashes(names: dict[Path, str]) -> dict[str, list[str]]:
    """Safe name -> sorted paths, for names made by two or more paths or reserved."""
    groups = {}
    for path in sorted(names, key=str):
        groups.setdefault(safe_name(movie_stem(path)).casefold(), []).append(path)
    return {safe_name(movie_stem(paths[0])): [str(p) for p in paths] for key, paths in groups.items()
            if len(paths) > 1 or key in RESERVED_NAMES}


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
    path : the sheet. The ``movie`` column names the movie: its name (the
        result folder's) or its file's stem as on disk (``Pos 2`` for
        ``Pos 2.tif``; :meth:`Discovery.sheet_row` says which row wins);
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
