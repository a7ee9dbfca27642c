"""Tests of rotdyn.formats: every format round-trips known values, in (T, Y, X) order.

Frames are 16 x 20 (non-square, so swapped axes show) with distinct values per
frame, so swapped or reordered frames show too.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import xarray as xr

from rotdyn.formats import (
    SUPPORTED_SUFFIXES,
    Movie,
    MovieReadError,
    is_supported,
    movie_stem,
    natural_key,
    probe_movie,
    read_image,
    read_mask,
    read_movie,
)

T, Y, X = 4, 16, 20
BT709 = np.array([0.2126, 0.7152, 0.0722])
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsafm"
ASD = SHARED / "asd_sample_0.asd"
JPK = SHARED / "sample_0.h5-jpk"


def stack(dtype=np.uint16, n=T, step=1000, offset=0) -> np.ndarray:
    """(n, Y, X) stack whose pixels all differ and whose frames differ by ``step``."""
    base = np.arange(Y * X).reshape(Y, X) % 200
    return np.stack([base + offset + step * t for t in range(n)]).astype(dtype)


def check(movie: Movie, expected: np.ndarray, path, fmt: str, atol: float = 0.0) -> None:
    """Values, layout, dtype and bookkeeping of a read, and agreement with the probe."""
    assert isinstance(movie, Movie)
    assert movie.frames.dtype == np.float32
    assert movie.frames.shape == expected.shape
    np.testing.assert_allclose(movie.frames, expected, atol=atol, rtol=0)
    assert movie.format == fmt
    assert movie.source == str(path)
    assert probe_movie(path) == movie.frames.shape
    json.dumps(movie.metadata)  # must stay serialisable


# ----------------------------------------------------------------------------- TIFF


def test_imagej_tiff_values_and_calibration(tmp_path):
    data = stack()
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.05, 1 / 0.05),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 0.5})
    movie = read_movie(path)
    check(movie, data, path, "tiff")
    assert movie.pixel_size_nm == pytest.approx(50.0)
    assert movie.frame_interval_s == pytest.approx(0.5)
    assert movie.modality == "unknown"
    assert movie.metadata["original_dtype"] == "uint16"


@pytest.mark.parametrize("unit, nm_per_unit", [
    ("nm", 1.0), ("micron", 1e3), ("\\u00B5m", 1e3), ("A", 0.1), ("pm", 1e-3), ("mm", 1e6)])
def test_imagej_units_become_nm(tmp_path, unit, nm_per_unit):
    path = tmp_path / "u.tif"
    tifffile.imwrite(path, stack(n=2), imagej=True, resolution=(4.0, 4.0), metadata={"axes": "TYX", "unit": unit})
    assert read_movie(path).pixel_size_nm == pytest.approx(nm_per_unit / 4.0)


def test_imagej_time_unit(tmp_path):
    path = tmp_path / "ms.tif"
    tifffile.imwrite(path, stack(n=2), imagej=True, metadata={"axes": "TYX", "finterval": 40, "tunit": "ms"})
    assert read_movie(path).frame_interval_s == pytest.approx(0.04)


def test_ome_tiff_calibration(tmp_path):
    data = stack()
    path = tmp_path / "cell.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "TYX", "PhysicalSizeX": 0.05, "PhysicalSizeXUnit": "µm", "TimeIncrement": 250,
        "TimeIncrementUnit": "ms"})
    movie = read_movie(path)
    check(movie, data, path, "tiff")
    assert movie.pixel_size_nm == pytest.approx(50.0)
    assert movie.frame_interval_s == pytest.approx(0.25)


def test_plain_multipage_tiff(tmp_path):
    data = stack(np.float32)
    path = tmp_path / "plain.tiff"
    for frame in data:
        tifffile.imwrite(path, frame, append=True)
    movie = read_movie(path)
    check(movie, data, path, "tiff")
    assert movie.pixel_size_nm is None and movie.frame_interval_s is None


def test_single_image_tiff_is_one_frame(tmp_path):
    data = stack(n=1)[0]
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, data)
    check(read_movie(path), data[None], path, "tiff")


def test_hyperstack_channel_selection(tmp_path):
    data = np.stack([stack(offset=0), stack(offset=50_000, dtype=np.uint32)], axis=1).astype(np.float32)
    path = tmp_path / "tc.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    check(read_movie(path), data[:, 0], path, "tiff")
    second = read_movie(path, channel="1")
    np.testing.assert_array_equal(second.frames, data[:, 1])
    assert second.metadata["channel"] == 1
    assert probe_movie(path, channel=1) == (T, Y, X)
    with pytest.raises(MovieReadError, match=r"tc\.tif.*available: \[0, 1\]"):
        read_movie(path, channel=2)


def test_rgb_tiff_becomes_luminance(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (T, Y, X, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    check(read_movie(path), rgb @ BT709, path, "tiff", atol=1e-3)


def test_tiff_probe_reads_no_pixels(tmp_path, monkeypatch):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, stack(n=6), imagej=True, metadata={"axes": "TYX"})

    def refuse(*args, **kwargs):
        raise AssertionError("the probe decoded pixel data")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", refuse)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", refuse)
    assert probe_movie(path) == (6, Y, X)


# ----------------------------------------------------------------------------- NumPy


@pytest.mark.parametrize("data", [stack(np.int16, step=-300), stack(np.float64)[0], stack(bool)],
                         ids=["3d-int16", "2d-float64", "bool"])
def test_npy(tmp_path, data):
    path = tmp_path / "m.npy"
    np.save(path, data)
    check(read_movie(path), data.reshape(-1, Y, X).astype(np.float32), path, "npy")


def test_npy_rgba_becomes_luminance(tmp_path):
    rgba = np.random.default_rng(2).random((T, Y, X, 4)).astype(np.float32)
    path = tmp_path / "rgba.npy"
    np.save(path, rgba)
    check(read_movie(path), rgba[..., :3] @ BT709, path, "npy", atol=1e-5)


@pytest.mark.parametrize("data, reason", [
    (np.zeros((T, Y, X), np.complex64), "complex"),
    (np.zeros((2, 3, T, Y, X)), "more than 3 dimensions"),
    (np.zeros((0, Y, X)), "no frames"),
    (np.zeros(X), "expected 2-D or 3-D"),
], ids=["complex", "5d", "no-frames", "1d"])
def test_npy_rejected(tmp_path, data, reason):
    path = tmp_path / "bad.npy"
    np.save(path, data)
    for call in (probe_movie, read_movie):
        with pytest.raises(MovieReadError, match=f"bad.npy.*{reason}"):
            call(path)


def test_npz_picks_frames_then_named(tmp_path):
    frames, other = stack(), stack(np.float32, offset=7)
    path = tmp_path / "m.npz"
    np.savez(path, aaa=other, frames=frames, scale=np.array(2.0))
    check(read_movie(path), frames, path, "npz")
    np.testing.assert_array_equal(read_movie(path, channel="aaa").frames, other)
    assert probe_movie(path, channel="aaa") == (T, Y, X)
    with pytest.raises(MovieReadError, match=r"m\.npz.*'nope'.*aaa.*frames"):
        read_movie(path, channel="nope")


def test_npz_without_frames_takes_first_3d(tmp_path):
    movie = stack()
    path = tmp_path / "m.npz"
    np.savez_compressed(path, times=np.arange(T), image=movie[0], movie=movie)
    check(read_movie(path), movie, path, "npz")


# ----------------------------------------------------------------------------- NetCDF / HDF5


def test_netcdf_attrs_and_variable_choice(tmp_path):
    frames = stack(np.float32)
    ds = xr.Dataset({"background": (("t", "y", "x"), frames * 0),
                     "frames": (("t", "y", "x"), frames, {"pixel_size_nm": 0.7, "frame_interval_s": 0.05})},
                    attrs={"modality": "AFM"})
    path = tmp_path / "m.nc"
    ds.to_netcdf(path)
    movie = read_movie(path)
    check(movie, frames, path, "netcdf")
    assert (movie.pixel_size_nm, movie.frame_interval_s, movie.modality) == (0.7, 0.05, "AFM")
    assert read_movie(path, channel="background").frames.max() == 0
    with pytest.raises(MovieReadError, match="available: background.*frames"):
        probe_movie(path, channel="other")


def test_netcdf_dimension_names_fix_orientation(tmp_path):
    frames = stack(np.float32)
    path = tmp_path / "xy.nc"
    xr.Dataset({"movie": (("frame", "x", "y"), frames.transpose(0, 2, 1))}).to_netcdf(path)
    check(read_movie(path), frames, path, "netcdf")


def test_hdf5_first_dataset_named_dataset_and_attrs(tmp_path):
    a, b = stack(), stack(np.float32, offset=3)
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["meta/times"] = np.arange(T)
        f["group/a"] = a
        f["group/b"] = b
        f["group/b"].attrs.update(pixel_size_nm=2.5, frame_interval_s=0.1, modality="EM")
    first = read_movie(path)
    check(first, a, path, "hdf5")
    assert first.metadata["channel"] == "/group/a"
    assert first.pixel_size_nm is None
    named = read_movie(path, channel="/group/b")
    np.testing.assert_array_equal(named.frames, b)
    assert (named.pixel_size_nm, named.frame_interval_s, named.modality) == (2.5, 0.1, "EM")
    assert probe_movie(path, channel="group/b") == (T, Y, X)
    with pytest.raises(MovieReadError, match=r"m\.h5.*'/group/c'.*/group/a.*/group/b"):
        read_movie(path, channel="/group/c")


def test_hdf5_probe_reads_no_pixels(tmp_path, monkeypatch):
    path = tmp_path / "m.hdf5"
    with h5py.File(path, "w") as f:
        f["movie"] = stack()

    def refuse(*args, **kwargs):
        raise AssertionError("the probe read pixel data")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", refuse)
    assert probe_movie(path) == (T, Y, X)


# ----------------------------------------------------------------------------- frames folders, GIF, video


def write_frames(folder: Path, frames, suffix: str, names=None) -> None:
    import imageio.v3 as iio

    folder.mkdir()
    for i, frame in enumerate(frames):
        name = names[i] if names else f"frame_{i + 1}{suffix}"
        if suffix in (".tif", ".tiff"):
            tifffile.imwrite(folder / name, frame)
        else:
            iio.imwrite(folder / name, frame)


def test_png_folder_natural_order(tmp_path):
    frames = np.stack([np.full((Y, X), 10 * (i + 1), np.uint8) for i in range(11)])
    frames[:, 0, 0] = 255  # a pixel that shows a transposed frame
    folder = tmp_path / "pngs"
    write_frames(folder, frames, ".png")  # frame_1 .. frame_11: lexical order would put frame_10 second
    (folder / "notes.txt").write_text("not a frame")
    movie = read_movie(folder)
    check(movie, frames.astype(np.float32), folder, "frames-folder")
    assert movie.metadata["original_dtype"] == "uint8"
    assert is_supported(folder)


def test_tiff_folder_16bit(tmp_path):
    frames = stack(np.uint16, step=5000)
    folder = tmp_path / "tifs"
    write_frames(folder, frames, ".tif")
    check(read_movie(folder), frames.astype(np.float32), folder, "frames-folder")


def test_rgb_png_folder_luminance(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (3, Y, X, 3), dtype=np.uint8)
    folder = tmp_path / "rgb"
    write_frames(folder, rgb, ".png")
    check(read_movie(folder), rgb @ BT709, folder, "frames-folder", atol=1e-3)


def test_jpeg_folder_lossy(tmp_path):
    frames = np.stack([np.tile(np.linspace(20, 80, X), (Y, 1)) + 40 * t for t in range(T)]).astype(np.uint8)
    folder = tmp_path / "jpgs"
    write_frames(folder, frames, ".jpg")
    movie = read_movie(folder)
    assert movie.frames.shape == (T, Y, X) and movie.frames.dtype == np.float32
    assert np.abs(movie.frames - frames).mean() < 3
    assert np.all(np.diff(movie.frames.mean(axis=(1, 2))) > 30)


def test_folder_with_odd_frame_size(tmp_path):
    folder = tmp_path / "odd"
    write_frames(folder, [np.zeros((Y, X), np.uint8)] * 2 + [np.zeros((X, Y), np.uint8)], ".png")
    with pytest.raises(MovieReadError, match="frame_3.png"):
        read_movie(folder)


def test_gif_values_and_interval(tmp_path):
    import imageio.v3 as iio

    frames = stack(np.uint8, step=50)
    path = tmp_path / "m.gif"
    iio.imwrite(path, frames, duration=250, loop=0)
    movie = read_movie(path)
    check(movie, frames.astype(np.float32), path, "gif", atol=1e-3)
    assert movie.frame_interval_s == pytest.approx(0.25)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_lossy_values_order_and_fps(tmp_path, suffix):
    import imageio.v3 as iio

    ny, nx = 32, 48  # whole macroblocks, so the encoder does not resize
    frames = np.stack([np.tile(np.linspace(30, 90, nx), (ny, 1)) + 40 * t for t in range(T)]).astype(np.uint8)
    path = tmp_path / f"m{suffix}"
    iio.imwrite(path, frames, fps=5)
    movie = read_movie(path)
    assert movie.frames.shape == (T, ny, nx) and movie.frames.dtype == np.float32
    assert probe_movie(path) == (T, ny, nx)
    assert np.abs(movie.frames - frames).mean() < 3
    assert np.all(np.diff(movie.frames.mean(axis=(1, 2))) > 30)
    assert movie.frame_interval_s == pytest.approx(0.2)
    assert movie.format == suffix[1:]


# ----------------------------------------------------------------------------- EM (RosettaSciIO)


def test_emd_written_by_rsciio(tmp_path):
    from rsciio.emd import file_writer

    frames = stack(np.float32)
    axes = [dict(name="t", size=T, scale=0.25, offset=0.0, units="s", navigate=True),
            dict(name="y", size=Y, scale=0.5, offset=0.0, units="µm", navigate=False),
            dict(name="x", size=X, scale=0.5, offset=0.0, units="µm", navigate=False)]
    path = tmp_path / "m.emd"
    file_writer(str(path), dict(data=frames, axes=axes, metadata={"General": {"title": "stack"}, "Signal": {}},
                                original_metadata={}))
    movie = read_movie(path)
    check(movie, frames, path, "emd")
    assert movie.pixel_size_nm == pytest.approx(500.0)
    assert movie.frame_interval_s == pytest.approx(0.25)
    assert movie.modality == "EM"
    assert movie.metadata["title"] == "stack"


def test_mrc_voxel_size_in_angstrom(tmp_path):
    mrcfile = pytest.importorskip("mrcfile")
    frames = stack(np.int16, step=-2000)
    folder = tmp_path / "movies"  # rsciio's MRC reader treats "movie" in a path specially
    folder.mkdir()
    path = folder / "m.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(frames)
        mrc.voxel_size = 2.5  # Å
    movie = read_movie(path)
    check(movie, frames.astype(np.float32), path, "mrc")
    assert movie.pixel_size_nm == pytest.approx(0.25)
    assert movie.frame_interval_s is None


@pytest.mark.parametrize("suffix", [".dm3", ".dm4"])
def test_dm_dispatch_and_calibration(tmp_path, monkeypatch, suffix):
    import rsciio.digitalmicrograph as dm

    garbage = tmp_path / f"g{suffix}"
    garbage.write_bytes(b"\x00\x01garbage" * 20)
    with pytest.raises(MovieReadError, match=f"g\\{suffix}: cannot read as {suffix[1:]}"):
        read_movie(garbage)

    frames = stack(np.float32)
    axes = [dict(index_in_array=0, scale=40.0, units="ms", navigate=True),
            dict(index_in_array=1, scale=1.5, units="Å", navigate=False),
            dict(index_in_array=2, scale=1.5, units="Å", navigate=False)]
    signals = [dict(data=np.zeros(7), axes=[{}], metadata={"General": {"title": "spectrum"}}),
               dict(data=frames, axes=axes, metadata={"General": {"title": "movie"}})]
    monkeypatch.setattr(dm, "file_reader", lambda filename, **kw: signals)
    movie = read_movie(garbage)
    check(movie, frames, garbage, suffix[1:])
    assert movie.pixel_size_nm == pytest.approx(0.15)
    assert movie.frame_interval_s == pytest.approx(0.04)
    assert (movie.modality, movie.metadata["channel"]) == ("EM", 1)
    with pytest.raises(MovieReadError, match="available: 0: 'spectrum'.*1: 'movie'"):
        read_movie(garbage, channel="nope")


# ----------------------------------------------------------------------------- AFM (AFMReader), real files


@pytest.mark.skipif(not ASD.exists(), reason=f"real .asd sample not present at {ASD}")
def test_real_asd():
    movie = read_movie(ASD)
    assert movie.frames.shape == (32, 200, 200) and movie.frames.dtype == np.float32
    assert probe_movie(ASD) == (32, 200, 200)
    assert movie.pixel_size_nm == pytest.approx(0.5)
    assert movie.frame_interval_s == pytest.approx(1.0)
    assert (movie.format, movie.modality, movie.metadata["units"]) == ("asd", "AFM", "nm")
    assert np.isfinite(movie.frames).all()
    # AFMReader's TP heights are in nm and all <= 0 (piezo extension sign): about -249 .. 0 here
    assert -300 < movie.frames.min() < movie.frames.max() <= 0
    with pytest.raises(MovieReadError, match=r"asd_sample_0\.asd.*'PH'.*available: \['TP'\]"):
        probe_movie(ASD, channel="PH")


@pytest.mark.skipif(not JPK.exists(), reason=f"real .h5-jpk sample not present at {JPK}")
def test_real_h5jpk():
    movie = read_movie(JPK)
    assert movie.frames.shape == (4, 128, 128) and movie.frames.dtype == np.float32
    assert probe_movie(JPK) == (4, 128, 128)
    assert movie.pixel_size_nm == pytest.approx(1.171875)
    assert movie.frame_interval_s == pytest.approx(3.2)
    assert (movie.format, movie.modality, movie.metadata["channel"]) == ("h5-jpk", "AFM", "height_trace")
    assert 722 < movie.frames.min() < movie.frames.max() < 753  # nm
    assert probe_movie(JPK, channel="phase_trace") == (4, 128, 128)
    with pytest.raises(MovieReadError, match="'height'.*available:.*height_trace"):
        read_movie(JPK, channel="height")


# ----------------------------------------------------------------------------- bad input, names


@pytest.mark.parametrize("name, content", [
    ("garbage.tif", b"\x13\x37 not a tiff at all" * 50),
    ("empty.npy", b""),
    ("text.asd", b"hello, I am a text file\n" * 20),
    ("empty.h5", b""),
    ("garbage.mp4", b"\x00" * 300),
    ("garbage.emd", b"\x00" * 300),
    ("garbage.mrc", b"\x01\x02"),
])
def test_unreadable_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    for call in (probe_movie, read_movie):
        with pytest.raises(MovieReadError, match=name.replace(".", r"\.")) as error:
            call(path)
        # a library's own exception comes with the file's size (a 0-byte or cut file explains itself)
        assert "cannot read as" not in str(error.value) or f"({len(content):,} bytes" in str(error.value)


def test_truncated_netcdf(tmp_path):
    path = tmp_path / "cut.nc"
    xr.Dataset({"frames": (("t", "y", "x"), stack(np.float32))}).to_netcdf(path)
    path.write_bytes(path.read_bytes()[:400])
    for call in (probe_movie, read_movie):
        with pytest.raises(MovieReadError, match=r"cut\.nc"):
            call(path)


def test_truncated_imagej_tiff(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, stack(), imagej=True, metadata={"axes": "TYX"})
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    for call in (probe_movie, read_movie):  # tifffile would silently fall back to the pages it finds
        with pytest.raises(MovieReadError, match=r"cut\.tif.*truncated"):
            call(path)


def test_truncated_files_fail_the_full_read(tmp_path):
    import imageio.v3 as iio

    mrcfile = pytest.importorskip("mrcfile")
    with mrcfile.new(tmp_path / "cut.mrc") as mrc:
        mrc.set_data(stack(np.float32))
    iio.imwrite(tmp_path / "cut.gif", stack(np.uint8, step=50), duration=100)
    for frame in stack():
        tifffile.imwrite(tmp_path / "cut.tiff", frame, append=True, metadata=None)
    for name in ("cut.mrc", "cut.gif", "cut.tiff"):
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
        with pytest.raises(MovieReadError, match=name.replace(".", r"\.")):
            read_movie(path)


def test_corrupt_frame_is_named(tmp_path):
    folder = tmp_path / "frames"
    write_frames(folder, stack(np.uint8, n=3, step=20), ".png")
    (folder / "frame_2.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(MovieReadError, match="frame_2.png"):
        read_movie(folder)


def test_truncated_asd(tmp_path):
    if not ASD.exists():
        pytest.skip(f"real .asd sample not present at {ASD}")
    path = tmp_path / "cut.asd"
    path.write_bytes(ASD.read_bytes()[:100_000])
    for call in (probe_movie, read_movie):
        with pytest.raises(MovieReadError, match=r"cut\.asd.*truncated"):
            call(path)


def test_afmreader_stays_quiet(tmp_path, capfd):
    path = tmp_path / "text.asd"
    path.write_text("not an asd file")
    with pytest.raises(MovieReadError):
        read_movie(path)
    err = capfd.readouterr().err
    assert "read_file_version" not in err and "file version" not in err, err


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(MovieReadError, match="nothing.tif: no such file"):
        read_movie(tmp_path / "nothing.tif")
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(MovieReadError, match="notes.txt: unsupported format"):
        probe_movie(other)


def test_movie_stem():
    assert movie_stem("a/b.h5-jpk") == "b"
    assert movie_stem("x.tif") == "x"
    assert movie_stem("d/cell_3.ome.tif") == "cell_3"
    assert movie_stem("d/run.2.NPY") == "run.2"
    assert movie_stem("d/2021-03-30 Pos2.ome.tif") == "2021-03-30 Pos2"  # kept as on disk; movies.safe_name cleans


def test_is_supported(tmp_path):
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)
    assert ".h5-jpk" in SUPPORTED_SUFFIXES
    for name in ("m.tif", "m.TIFF", "m.h5-jpk", "m.asd", "m.nc", "m.dm4", "m.mrc", "m.mp4"):
        assert is_supported(tmp_path / name), name
    for name in ("m.txt", "m.png", "m.h5jpk", "README"):
        assert not is_supported(tmp_path / name), name
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not is_supported(empty)
    (empty / "notes.txt").write_text("x")
    assert not is_supported(empty)
    (empty / "f1.JPEG").write_bytes(b"")
    assert is_supported(empty)


def test_read_image_and_mask_single_files(tmp_path):
    import imageio.v3 as iio

    rgb = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    iio.imwrite(tmp_path / "c.png", rgb)
    np.testing.assert_allclose(read_image(tmp_path / "c.png"), (rgb @ BT709)[None], rtol=1e-6)
    labels = np.array([[0, 70000], [3, 1]], np.uint32)  # labels keep their dtype and values exactly
    tifffile.imwrite(tmp_path / "m.tif", labels)
    mask = read_mask(tmp_path / "m.tif")
    assert mask.dtype == np.uint32 and mask.tolist() == [labels.tolist()]
    grey_rgb = np.repeat(np.array([[0, 2], [1, 0]], np.uint8)[..., None], 3, axis=-1)
    np.save(tmp_path / "g.npy", np.tile(grey_rgb, (3, 3, 1)))
    assert read_mask(tmp_path / "g.npy").shape == (1, 6, 6)
    np.save(tmp_path / "colour.npy", rgb)
    with pytest.raises(MovieReadError, match="colour.npy: colour mask"):
        read_mask(tmp_path / "colour.npy")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(MovieReadError, match="bad.png: cannot read"):
        read_image(tmp_path / "bad.png")


def test_natural_key_orders_numbers():
    assert sorted(["f10", "F2", "f1"], key=natural_key) == ["f1", "F2", "f10"]
