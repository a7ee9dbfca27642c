"""Movie discovery, the sample sheet and per-movie settings."""
import json
from pathlib import Path

import numpy as np
import pytest

from rotdyn.ingest import load_movie
from rotdyn.movies import discover, movie_settings, read_sample_sheet

DEFAULTS = {
    "flatten": "auto", "normalize": "none", "drift_correction": False, "drift_reference": "previous",
    "first_frame": 0, "last_frame": -1, "pixel_size_nm": None, "frame_interval_s": None, "channel": None,
}


def _stack(n=3, shape=(12, 16)):
    return np.arange(n * shape[0] * shape[1], dtype=np.float32).reshape(n, *shape)


def test_discover_names_skips_and_reasons(tmp_path):
    np.save(tmp_path / "b_movie.npy", _stack())
    np.save(tmp_path / "a-movie.npy", _stack())
    (tmp_path / "broken.tif").write_bytes(b"this is not a tiff at all" * 10)
    (tmp_path / "notes.txt").write_text("not a movie")
    (tmp_path / "README.md").write_text("what goes here")
    (tmp_path / ".hidden.npy").write_bytes(b"")
    np.save(tmp_path / "_odd.npy", _stack())
    np.savez(tmp_path / "b_movie.npz", frames=_stack())
    found = discover(tmp_path)
    assert list(found.movies) == ["a-movie", "b_movie"]
    assert found.movies["b_movie"].name == "b_movie.npy"  # first in sorted order wins
    reasons = {path.split("/")[-1]: why for path, why in found.skipped.items()}
    assert set(reasons) == {"broken.tif", "notes.txt", "_odd.npy", "b_movie.npz"}
    assert "broken.tif" in reasons["broken.tif"]  # the reader's message names the file
    assert "rename" in reasons["_odd.npy"] and "same name" in reasons["b_movie.npz"]


def test_probe_answers_are_cached_by_size_and_mtime(tmp_path):
    movies = tmp_path / "movies"
    movies.mkdir()
    np.save(movies / "m.npy", _stack())
    cache = tmp_path / "cache.json"
    discover(movies, cache_file=cache)
    entries = json.loads(cache.read_text())
    assert len(entries) == 1 and list(entries.values()) == [None]
    (movies / "m.npy").write_bytes(b"garbage now")  # new size and mtime: probed again
    found = discover(movies, cache_file=cache)
    assert found.movies == {} and "m.npy" in next(iter(found.skipped.values()))
    assert len(json.loads(cache.read_text())) == 2


def test_sample_sheet_types_and_errors(tmp_path):
    sheet = tmp_path / "movies.tsv"
    sheet.write_text("# comment\nmovie\tpixel_size_nm\tfirst_frame\tflatten\tchannel\n"
                     "a\t0.5\t2\tfalse\t\nb\t\t\t\tTP\n")
    rows = read_sample_sheet(sheet)
    assert rows == {"a": {"pixel_size_nm": 0.5, "first_frame": 2, "flatten": "false"}, "b": {"channel": "TP"}}
    sheet.write_text("movie\tpixel_size_nm\na\tsmall\n")
    with pytest.raises(ValueError, match=r"movies.tsv: movie 'a', column 'pixel_size_nm': 'small' is not a float"):
        read_sample_sheet(sheet)
    sheet.write_text("movie\tpixelsize\na\t1\n")
    with pytest.raises(ValueError, match="unknown column.*pixelsize"):
        read_sample_sheet(sheet)
    assert read_sample_sheet(tmp_path / "absent.tsv") == {}


def test_movie_settings_merge():
    merged = movie_settings(DEFAULTS, {"flatten": "yes", "first_frame": 3})
    assert merged["flatten"] is True and merged["first_frame"] == 3 and merged["normalize"] == "none"
    assert movie_settings(DEFAULTS)["flatten"] == "auto"
    with pytest.raises(ValueError, match="flatten"):
        movie_settings(DEFAULTS, {"flatten": "maybe"})


def test_load_movie_applies_settings(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, _stack(n=6))
    settings = movie_settings(DEFAULTS, {"first_frame": 2, "last_frame": 4, "pixel_size_nm": 0.7,
                                         "frame_interval_s": 2.0})
    ds = load_movie(path, settings)
    assert ds.frames.shape == (3, 12, 16) and ds.frames.dtype == np.float32
    np.testing.assert_array_equal(ds.frames.values, _stack(n=6)[2:5])
    assert ds.frame.values.tolist() == [2, 3, 4] and ds.time.values.tolist() == [4.0, 6.0, 8.0]
    assert ds.attrs["pixel_size_nm"] == 0.7 and ds.attrs["format"] == "npy" and ds.attrs["flatten"] == 0


SCHEMA = Path(__file__).parents[1] / "config" / "movies.schema.yaml"


@pytest.mark.parametrize("column, cell, message", [
    ("normalize", "foo", "'foo' is not one of ['none', 'percentile', 'minmax', 'zscore']"),
    ("pixel_size_nm", "-1", "-1.0 is less than or equal to the minimum of 0"),
    ("flatten", "maybe", "'maybe' is not one of"),
])
def test_sample_sheet_schema_names_movie_column_value(tmp_path, column, cell, message):
    sheet = tmp_path / "movies.tsv"
    sheet.write_text(f"movie\t{column}\nok\t\nrods0\t{cell}\n")
    with pytest.raises(ValueError) as caught:
        read_sample_sheet(sheet, schema=SCHEMA)
    assert str(caught.value).startswith(f"{sheet}: movie 'rods0', column '{column}': ")
    assert message in str(caught.value)


def test_good_sheet_passes_schema_unchanged(tmp_path):
    sheet = tmp_path / "movies.tsv"
    sheet.write_text("movie\tpixel_size_nm\tframe_interval_s\tfirst_frame\tlast_frame\tchannel\tflatten\t"
                     "normalize\tdrift_correction\tdrift_reference\n"
                     "a\t0.5\t2\t0\t-1\tTP\tauto\tzscore\ttrue\tfirst\n")
    assert read_sample_sheet(sheet, schema=SCHEMA) == {"a": {
        "pixel_size_nm": 0.5, "frame_interval_s": 2.0, "first_frame": 0, "last_frame": -1, "channel": "TP",
        "flatten": "auto", "normalize": "zscore", "drift_correction": "true", "drift_reference": "first"}}


def test_schema_matches_the_code():
    import yaml

    from rotdyn.movies import SHEET_COLUMNS, SHEET_SCHEMA
    from rotdyn.preprocess import DRIFT_REFERENCES, NORMALIZE_METHODS

    assert SHEET_SCHEMA == SCHEMA
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["properties"]) == {"movie", *SHEET_COLUMNS} and schema["additionalProperties"] is False
    assert schema["properties"]["normalize"]["enum"] == list(NORMALIZE_METHODS)
    assert schema["properties"]["drift_reference"]["enum"] == list(DRIFT_REFERENCES)
