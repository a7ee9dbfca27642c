"""Movie discovery, the sample sheet and per-movie settings."""
import json
import re
import unicodedata
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import xarray as xr

from rotdyn.ingest import load_movie
from rotdyn.movies import MOVIE_NAME, discover, movie_names, movie_settings, read_sample_sheet, safe_name
from workflow_helpers import copy_workflow, jobs, snakemake

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
    assert {name: path.name for name, path in found.movies.items()} == {
        "a-movie": "a-movie.npy", "odd": "_odd.npy", "b_movie": "b_movie.npy", "b_movie_2": "b_movie.npz"}
    reasons = {path.split("/")[-1]: why for path, why in found.skipped.items()}
    assert set(reasons) == {"broken.tif", "notes.txt"}
    assert "broken.tif" in reasons["broken.tif"]  # the reader's message names the file


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


def test_intensity_scale_undoes_the_normalisation(tmp_path):
    raw = np.random.default_rng(1).normal(100.0, 7.0, (4, 12, 16))
    np.save(tmp_path / "m.npy", raw)
    ds = load_movie(tmp_path / "m.npy", movie_settings(DEFAULTS, {"normalize": "percentile"}))
    scale = ds["intensity_scale"].values
    assert np.allclose(scale, [np.subtract(*np.percentile(f, (99.5, 0.5))) for f in raw])
    differences = (ds.frames.values - ds.frames.values[:, :1, :1]) * scale[:, None, None]
    np.testing.assert_allclose(differences, raw - raw[:, :1, :1], atol=1e-3)  # the movie's own units again


@pytest.mark.parametrize("contrast", ["bright", "dark"])
def test_ingest_of_a_long_movie_holds_a_few_chunks_not_the_movie(tmp_path, contrast):
    """A plain TIFF stack is read and written 16 frames at a time: numpy's peak allocation stays a
    small share of the movie, and the frames equal the whole-movie preprocessing (drift, flattening on)."""
    import tracemalloc

    from rotdyn.ingest import write_movie
    from rotdyn.preprocess import invert, preprocess

    from scipy import ndimage

    rng = np.random.default_rng(7)
    scene = ndimage.gaussian_filter(rng.normal(size=(48, 48)), 2) * 10 + np.linspace(0, 3, 48)[None, :]
    movie = (scene + rng.normal(0, 0.1, (600, 48, 48))).astype(np.float32)  # a static scene: drift ~0
    movie[5] = np.nan
    path = tmp_path / "long.tif"
    with tifffile.TiffWriter(path) as tif:
        for frame in movie:
            tif.write(frame, contiguous=True)
    settings = movie_settings({**DEFAULTS, "flatten": True, "normalize": "percentile", "drift_correction": True,
                               "contrast": contrast})
    tracemalloc.start()
    write_movie(path, settings, tmp_path / "movie.nc", chunk=16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.25 * movie.nbytes  # the movie: 5.5 MB; measured 0.9 MB, a few copies of a 16-frame chunk
    whole, shifts, bad = preprocess(movie, flatten_afm=True, normalize_method="percentile", drift_correction=True)
    whole = invert(whole, "percentile") if contrast == "dark" else whole
    with xr.open_dataset(tmp_path / "movie.nc") as ds:
        np.testing.assert_array_equal(ds["frames"].values, whole)
        np.testing.assert_array_equal(ds["shift_y"].values, shifts[:, 0])
        assert np.flatnonzero(ds["usable"].values == 0).tolist() == bad.tolist() == [5]
        assert ds.attrs["contrast"] == contrast


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


def test_average_frames_column_reaches_movie_nc_and_the_log(tmp_path, caplog):
    from rotdyn.ingest import write_movie
    from rotdyn.preprocess import preprocess

    sheet = tmp_path / "movies.tsv"
    sheet.write_text("movie\taverage_frames\na\t5\nb\t0\n")
    with pytest.raises(ValueError, match="movie 'b', column 'average_frames'"):
        read_sample_sheet(sheet, schema=SCHEMA)
    sheet.write_text("movie\taverage_frames\na\t5\n")
    row = read_sample_sheet(sheet, schema=SCHEMA)["a"]
    assert row == {"average_frames": 5}
    movie = np.random.default_rng(0).normal(size=(12, 16, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", movie)
    settings = movie_settings({**DEFAULTS, "frame_interval_s": 0.5}, row)
    with caplog.at_level("INFO", logger="rotdyn.ingest"):
        write_movie(tmp_path / "a.npy", settings, tmp_path / "movie.nc", chunk=4)
    assert "dynamics faster than 5 frames (2.5 s) are blurred" in caplog.text
    with xr.open_dataset(tmp_path / "movie.nc") as ds:
        assert ds.attrs["average_frames"] == 5 and ds.sizes["frame"] == 12
        np.testing.assert_allclose(ds["frames"].values, preprocess(movie, normalize_method="none", average=5)[0])
    write_movie(tmp_path / "a.npy", movie_settings(DEFAULTS), tmp_path / "plain.nc", chunk=4)
    with xr.open_dataset(tmp_path / "plain.nc") as ds:  # off by default: the frames as read
        assert ds.attrs["average_frames"] == 1 and ds["frames"].values.tobytes() == movie.tobytes()


# ------------------------------------------------------------------ any name a microscope writes

@pytest.mark.parametrize("stem, name", [
    ("Tethered cell", "Tethered_cell"),
    ("2021-03-30 Pos2", "2021-03-30_Pos2"),
    ("préparé", "prepare"),
    (unicodedata.normalize("NFD", "préparé"), "prepare"),  # decomposed, as macOS writes names
    ("Größe", "Grosse"),
    ("Ørsted æble œuf Łódź", "Orsted_aeble_oeuf_Lodz"),
    ("5µm\tscan  (2)", "5um_scan_2"),
    ("  __.-x+y ", "x+y"),
    ("run.2.", "run.2"),
    ("細胞", "movie"),
    ("", "movie"),
])
def test_safe_name(stem, name):
    assert safe_name(stem) == name
    assert re.fullmatch(MOVIE_NAME, safe_name(stem))  # the Snakefile's wildcard constraint


def _tiff(path: Path, n: int) -> None:
    tifffile.imwrite(path, _stack(n), photometric="minisblack")  # n frames, never read as colour planes


def _frames_folder(folder: Path, n: int) -> None:
    folder.mkdir()
    for i, frame in enumerate(_stack(n) / _stack(n).max()):
        iio.imwrite(folder / f"f{i}.png", (frame * 255).astype(np.uint8))


def _awkward_movies(folder: Path) -> dict[str, int]:
    """Real files under names microscopes write: file name -> frames written (all different)."""
    iio.imwrite(folder / "Tethered cell.gif", (np.random.default_rng(0).random((3, 16, 20)) * 255).astype(np.uint8))
    _tiff(folder / "2021-03-30 Pos2.tif", 4)
    _tiff(folder / "préparé.tif", 2)
    np.save(folder / "Größe.npy", _stack(5))
    _frames_folder(folder / "Pos 3 frames", 6)
    np.save(folder / "細胞.npy", _stack(7))
    return {"Tethered cell.gif": 3, "2021-03-30 Pos2.tif": 4, "préparé.tif": 2, "Größe.npy": 5,
            "Pos 3 frames": 6, "細胞.npy": 7}


def test_any_file_name_is_analysed_under_its_safe_name(tmp_path):
    written = _awkward_movies(tmp_path)
    found = discover(tmp_path)
    expected = {"Tethered cell.gif": "Tethered_cell", "2021-03-30 Pos2.tif": "2021-03-30_Pos2",
                "préparé.tif": "prepare", "Größe.npy": "Grosse", "Pos 3 frames": "Pos_3_frames", "細胞.npy": "movie"}
    assert {path.name: name for name, path in found.movies.items()} == expected
    assert found.skipped == {} and found.clashes == {}
    assert found.renamed == {str(tmp_path / file): name for file, name in expected.items()}
    notes = found.notes()
    assert len(notes) == 6 and all(level == "info" for level, _ in notes)
    assert ("info", f"{tmp_path / '2021-03-30 Pos2.tif'} -> 2021-03-30_Pos2 (results/2021-03-30_Pos2/)") in notes
    for name, path in found.movies.items():  # each name reads its own file
        assert load_movie(path, movie_settings(DEFAULTS)).sizes["frame"] == written[path.name]


def test_names_that_clash_are_all_kept_with_stable_suffixes(tmp_path):
    for i, file in enumerate(["a b.npy", "a_b.npy", "x.npy", "x_2.npy", "training.npy"]):
        np.save(tmp_path / file, _stack(i + 1))
    np.savez(tmp_path / "X.npz", frames=_stack(6))
    _tiff(tmp_path / "a  b.tif", 7)
    _tiff(tmp_path / "x.tif", 8)
    _frames_folder(tmp_path / "a b", 9)  # a folder of frames with a space clashes too
    found = discover(tmp_path)
    # A name that is already safe stays (a_b, x_2, X); the rest get _2, _3 ... in order of their paths.
    # Names differ in more than case (X.npz took "x"), and results/training/ is the workflow's own.
    assert {path.name: name for name, path in found.movies.items()} == {
        "a  b.tif": "a_b_2", "a b": "a_b_3", "a b.npy": "a_b_4", "a_b.npy": "a_b", "x.npy": "x_3", "x.tif": "x_4",
        "x_2.npy": "x_2", "X.npz": "X", "training.npy": "training_2"}
    frames = {name: load_movie(path, movie_settings(DEFAULTS)).sizes["frame"] for name, path in found.movies.items()}
    assert frames == {"a_b": 2, "a_b_2": 7, "a_b_3": 9, "a_b_4": 1, "x_2": 4, "x_3": 3, "x_4": 8, "X": 6,
                      "training_2": 5}  # each name reads its own file
    paths = [tmp_path / p.name for p in found.movies.values()]
    assert movie_names(paths[::-1]) == movie_names(paths)  # the listing order changes nothing
    warnings = [text for level, text in found.notes() if level == "warning"]
    ab = ", ".join(str(tmp_path / f) for f in ("a  b.tif", "a b", "a b.npy", "a_b.npy"))
    assert f"{ab} all make the name 'a_b'; analysed as a_b_2, a_b_3, a_b_4, a_b" in warnings
    x = ", ".join(str(tmp_path / f) for f in ("X.npz", "x.npy", "x.tif"))
    assert f"{x} all make the name 'X'; analysed as X, x_3, x_4" in warnings
    assert any("training.npy: 'training' is a folder the workflow writes" in text for text in warnings)
    assert len(warnings) == 3


def test_sheet_row_by_safe_name_or_original_stem(tmp_path):
    movies = tmp_path / "movies"
    movies.mkdir()
    _tiff(movies / "2021-03-30 Pos2.tif", 6)
    np.savez(movies / "my data.npz", a=_stack(2), b=_stack(3))
    np.save(movies / "x.npy", _stack(1))
    _tiff(movies / "x.tif", 5)
    sheet_file = tmp_path / "movies.tsv"
    sheet_file.write_text("movie\tpixel_size_nm\tfirst_frame\tchannel\n"
                          "2021-03-30 Pos2\t0.5\t1\t\n"  # the file's stem ...
                          "2021-03-30_Pos2\t\t2\t\n"  # ... and the movie's name: the name's row wins, whole
                          "my data\t\t\tb\n"
                          "x\t1.5\t\t\n"  # the name of x.npy, the stem of x.tif (x_2): both
                          "ghost\t2\t\t\n")
    sheet = read_sample_sheet(sheet_file)
    found = discover(movies, sheet=sheet)
    assert sorted(found.movies) == ["2021-03-30_Pos2", "my_data", "x", "x_2"]
    settings = {name: movie_settings(DEFAULTS, found.sheet_row(sheet, name)) for name in found.movies}
    pos2 = load_movie(found.movies["2021-03-30_Pos2"], settings["2021-03-30_Pos2"])
    assert pos2.frame.values.tolist() == [2, 3, 4, 5] and "pixel_size_nm" not in pos2.attrs
    assert load_movie(found.movies["my_data"], settings["my_data"]).sizes["frame"] == 3  # channel b, not a
    assert settings["x"]["pixel_size_nm"] == settings["x_2"]["pixel_size_nm"] == 1.5
    assert found.unused_rows(sheet) == ["ghost"]
    # a row that names no movie gets a "did you mean" hint when one is close
    assert found.closest("2021-03-30-Pos_2") == "2021-03-30_Pos2" and found.closest("ghost") is None
    # The probe reads the channel through the stem's row too: a channel the file lacks leaves it out.
    sheet["my data"]["channel"] = "nope"
    skipped = discover(movies, sheet=sheet).skipped
    assert list(skipped) == [str(movies / "my data.npz")] and "channel 'nope' not found" in skipped[str(movies / "my data.npz")]
    # A sheet typed composed (NFC) finds a file name written decomposed (NFD), as on macOS.
    np.save(movies / unicodedata.normalize("NFD", "préparé.npy"), _stack(4))
    found = discover(movies, sheet={"préparé": {"first_frame": 3}})
    assert found.sheet_row({"préparé": {"first_frame": 3}}, "prepare") == {"first_frame": 3}


def test_original_name_kept_in_movie_nc_and_carried_downstream(tmp_path):
    from rotdyn.ingest import run
    from rotdyn.jobs import job
    from rotdyn.kde import kde_maps
    from rotdyn.nmf import nmf_maps

    path = tmp_path / "préparé 1.tif"
    _tiff(path, 3)
    run(job("ingest", input=[str(path)], output=[str(tmp_path / "movie.nc")],
            params={"settings": movie_settings(DEFAULTS, {"pixel_size_nm": 0.4})}))
    with xr.open_dataset(tmp_path / "movie.nc") as movie:
        attrs = dict(movie.attrs)
    assert attrs["original_name"] == "préparé 1.tif" and attrs["source_path"] == str(path.resolve())
    # kde and nmf write their own attrs; they carry the movie's (the other stages copy all attrs).
    latents = xr.Dataset({"frame": ("particle", [0, 0, 1, 2]), "angle": ("particle", [0.1, 0.2, 1.0, 1.1])},
                         attrs={**attrs, "grid_points": -1})
    kde = kde_maps(latents, [0, 1, 2], grid_points=36, bandwidth=0.3)
    nmf = nmf_maps(kde)
    for ds in (kde, nmf):
        assert ds.attrs["original_name"] == "préparé 1.tif" and ds.attrs["source_path"] == str(path.resolve())
        assert ds.attrs["source"] == str(path) and ds.attrs["pixel_size_nm"] == 0.4
    assert kde.attrs["grid_points"] == 36  # only the movie's attrs are carried, not every latents attr


def test_snakemake_plans_awkward_names_and_ingests_one(tmp_path):
    workflow = copy_workflow(tmp_path / "wf")
    movies = workflow / "resources" / "movies"
    _tiff(movies / "2021-03-30 Pos2.tif", 4)
    np.save(movies / "a b.npy", _stack(2))
    np.save(movies / "a_b.npy", _stack(3))
    _frames_folder(movies / "Pos 3 frames", 3)
    _tiff(movies / "préparé.tif", 2)
    iio.imwrite(movies / "Tethered cell.gif", (np.random.default_rng(0).random((3, 16, 20)) * 255).astype(np.uint8))
    (workflow / "config" / "movies.tsv").write_text("movie\tpixel_size_nm\n2021-03-30 Pos2\t0.7\n")
    dry = snakemake(workflow, "-n")
    planned = {rule: sorted(w for r, w in jobs(dry) if r == rule) for rule in ("ingest", "summary")}
    names = [f"movie={name}" for name in ("2021-03-30_Pos2", "Pos_3_frames", "Tethered_cell", "a_b", "a_b_2",
                                          "prepare")]
    assert planned == {"ingest": names, "summary": names}
    log = dry.stdout + dry.stderr
    assert "rotdyn: resources/movies/2021-03-30 Pos2.tif -> 2021-03-30_Pos2 (results/2021-03-30_Pos2/)" in log
    assert ("rotdyn: resources/movies/a b.npy, resources/movies/a_b.npy all make the name 'a_b'; "
            "analysed as a_b_2, a_b") in log
    snakemake(workflow, "results/2021-03-30_Pos2/movie.nc")  # a real ingest of the file with a space
    with xr.open_dataset(workflow / "results" / "2021-03-30_Pos2" / "movie.nc") as ds:
        assert ds.sizes["frame"] == 4 and ds.attrs["pixel_size_nm"] == 0.7  # the sheet's row by the file's stem
        assert ds.attrs["original_name"] == "2021-03-30 Pos2.tif"
        assert ds.attrs["source_path"] == str((movies / "2021-03-30 Pos2.tif").resolve())
