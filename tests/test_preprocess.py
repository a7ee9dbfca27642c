"""Preprocessing against known answers: planes, line offsets, sub-pixel drift."""
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from rotdyn.preprocess import (
    apply_drift,
    average_frames,
    bad_frames,
    estimate_drift,
    estimate_frame_drift,
    flatten_frame,
    normalize,
    preprocess,
    preprocess_chunks,
    select_frames,
)


def _particles(shape, rng, n=12, height=2.0, sigma=2.0):
    image = np.zeros(shape)
    ys, xs = rng.uniform(8, shape[0] - 8, n), rng.uniform(8, shape[1] - 8, n)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    for y, x in zip(ys, xs):
        image += height * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return image


def test_flatten_removes_plane_and_line_offsets():
    rng = np.random.default_rng(1)
    shape = (96, 128)
    clean = _particles(shape, rng)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    plane = 5.0 + 0.05 * xx - 0.03 * yy
    lines = rng.normal(0, 0.8, shape[0])[:, None]
    noise = rng.normal(0, 0.02, shape)
    flat = flatten_frame(clean + plane + lines + noise)
    background = clean < 0.01
    # The background comes back flat to within the added noise ...
    assert abs(np.median(flat[background])) < 0.01
    assert np.std(flat[background]) < 0.03
    # ... and the particles keep their height.
    assert np.max(flat) == pytest.approx(np.max(clean), abs=0.1)
    assert np.corrcoef(flat.ravel(), clean.ravel())[0, 1] > 0.99


def _texture(shape, rng):
    return ndimage.gaussian_filter(rng.normal(size=shape), 2.0)


def _shift(image, dy, dx):
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), (dy, dx))).real


@pytest.mark.parametrize("reference", ["previous", "first"])
def test_drift_recovers_known_subpixel_shift(reference):
    rng = np.random.default_rng(2)
    base = _texture((128, 128), rng)
    true = np.array([[0.3 * t, -0.45 * t + 0.1 * t**2] for t in range(6)])
    frames = np.stack([_shift(base, dy, dx) for dy, dx in true]).astype(np.float32)
    shifts = estimate_frame_drift(frames, reference=reference)
    # The registration shift undoes the drift: it is minus the true displacement.
    np.testing.assert_allclose(shifts, -true, atol=0.1)
    registered = apply_drift(frames, shifts)
    inner = (slice(None), slice(10, -10), slice(10, -10))
    assert np.abs(registered - base)[inner].max() < 0.05 * np.abs(base).max()


def test_normalize_methods():
    frame = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    mm = normalize(frame, "minmax")
    assert mm.min() == 0 and mm.max() == 1
    z = normalize(frame, "zscore")
    assert abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1, abs=1e-5)
    pc = normalize(frame, "percentile", percentiles=(10, 90))
    assert pc[0].ravel()[np.argmin(np.abs(frame.ravel() - np.percentile(frame, 10)))] == pytest.approx(0, abs=0.02)
    assert normalize(frame, "none") is not frame and np.array_equal(normalize(frame, "none"), frame)
    with pytest.raises(ValueError, match="normalize"):
        normalize(frame, "sigmoid")


def test_select_frames_inclusive_and_checked():
    frames = np.arange(10)[:, None, None] * np.ones((1, 2, 2))
    assert select_frames(frames, 2, 4)[:, 0, 0].tolist() == [2, 3, 4]
    assert select_frames(frames, 7, -1)[:, 0, 0].tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="first_frame"):
        select_frames(frames, 10)
    with pytest.raises(ValueError, match="last_frame"):
        select_frames(frames, 5, 3)


def test_bad_frames_pass_through_and_are_reported():
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(4, 32, 32)).astype(np.float32)
    frames[1] = np.nan
    frames[2] = 0.0
    out, shifts, bad = preprocess(frames, flatten_afm=True, drift_correction=True, normalize_method="minmax")
    assert bad.tolist() == [1, 2]
    assert np.isnan(out[1]).all() and (out[2] == 0).all()
    assert out[0].min() == 0 and out[3].max() == pytest.approx(1)
    assert np.isfinite(shifts).all()


def test_a_saturated_frame_is_bad_before_flattening_blows_it_up():
    """An AFM frame at the end of its range but for a few pixels: flattening makes float noise of the rest,
    and normalising that noise by its percentile range multiplied the few real pixels by ~1e13."""
    rng = np.random.default_rng(4)
    frames = rng.normal(size=(3, 40, 40)).astype(np.float32)
    frames[1] = -249.3
    frames[1, 5:7, 5:7] = rng.normal(size=(2, 2))  # 4 of 1600 pixels (0.25 %) off the floor
    out, _, bad = preprocess(frames, flatten_afm=True, normalize_method="percentile")
    assert bad.tolist() == [1] and bad_frames(frames).tolist() == [1]
    np.testing.assert_array_equal(out[1], frames[1])  # passed through, not blown up
    frames[1, 5:9, 5:9] = rng.normal(size=(4, 4))  # 1 % off the floor: a frame with a little contrast
    assert bad_frames(frames).tolist() == []


@pytest.mark.parametrize("reference", ["previous", "first"])
def test_chunks_give_the_whole_movies_frames_and_shifts(reference):
    """Drift carried across chunk borders, bad frames on and next to them, a frame range."""
    rng = np.random.default_rng(5)
    scene = _texture((48, 48), rng)
    steps = np.cumsum(rng.normal(0, 0.7, (11, 2)), axis=0)
    frames = np.stack([ndimage.shift(scene, s, order=3, mode="nearest") for s in steps]).astype(np.float32)
    frames += 0.2 * np.arange(48)[None, None, :]  # a tilt for the flattening
    frames[3] = np.nan
    frames[4] = 1.0
    settings = dict(flatten_afm=True, normalize_method="percentile", drift_correction=True,
                    drift_reference=reference, first_frame=1, last_frame=9)
    whole, shifts, bad = preprocess(frames, **settings)
    assert bad.tolist() == [2, 3] and np.abs(shifts).max() > 1
    for chunk in (1, 2, 3, 4):
        parts = list(preprocess_chunks(frames, chunk=chunk, **settings))
        assert [o for o, *_ in parts] == list(range(0, 9, chunk))
        np.testing.assert_array_equal(np.concatenate([f for _, f, *_ in parts]), whole)
        np.testing.assert_array_equal(np.concatenate([s for _, _, s, *_ in parts]), shifts)
        assert np.concatenate([b + o for o, _, _, b, _ in parts]).tolist() == bad.tolist()


ASD = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsafm" / "asd_sample_0.asd"


@pytest.mark.skipif(not ASD.exists(), reason=f"real .asd sample not present at {ASD}")
def test_real_afm_frames_off_the_surface_are_unusable_and_the_rest_normalised():
    from rotdyn.formats import read_movie

    frames = np.asarray(read_movie(ASD).frames, np.float32)
    out, _, bad = preprocess(frames, flatten_afm=True, normalize_method="percentile")
    # frames 27 (99.8 % of pixels at the height floor) and 28 (all of them): the tip off the surface
    assert bad.tolist() == [27, 28]
    good = np.setdiff1d(np.arange(len(frames)), bad)
    assert np.nanmax(np.abs(out[good])) < 20  # was 1e13 in frame 27


def test_estimate_drift_is_a_deprecated_alias():
    rng = np.random.default_rng(3)
    frames = np.stack([_texture((32, 32), rng)] * 2).astype(np.float32)
    with pytest.warns(DeprecationWarning, match="estimate_frame_drift"):
        old = estimate_drift(frames, reference="first")
    np.testing.assert_array_equal(old, estimate_frame_drift(frames, reference="first"))


# ------------------------------------------------------------------ running mean over time

def test_average_frames_is_the_centred_mean_shifted_inside_at_the_ends():
    rng = np.random.default_rng(0)
    movie = rng.normal(size=(9, 6, 7))
    out = average_frames(movie, 5)
    for t in range(9):
        lo = min(max(t - 2, 0), 4)  # n frames always: at the ends the window shifts inside the movie
        np.testing.assert_allclose(out[t], movie[lo:lo + 5].mean(axis=0), rtol=1e-5, atol=1e-6)
    even = average_frames(movie, 4)  # frames t-1 .. t+2
    np.testing.assert_allclose(even[3], movie[2:6].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(even[8], movie[5:9].mean(axis=0), rtol=1e-5, atol=1e-6)
    short = average_frames(movie[:3], 5)  # shorter than the window: its mean, every frame
    np.testing.assert_allclose(short, np.broadcast_to(movie[:3].mean(axis=0), (3, 6, 7)), rtol=1e-5, atol=1e-6)


def test_average_frames_of_one_is_a_no_op_and_lowers_white_noise():
    movie = np.random.default_rng(1).normal(size=(40, 32, 32)).astype(np.float32)
    assert average_frames(movie, 1).tobytes() == movie.tobytes()
    assert abs(average_frames(movie, 9).std(axis=(1, 2)) - 1 / 3).max() < 0.03  # edge frames too
    with pytest.raises(ValueError, match="average_frames=0"):
        average_frames(movie, 0)


def test_average_frames_leaves_out_unusable_frames_and_pixels():
    movie = np.random.default_rng(2).normal(size=(6, 5, 5))
    movie[2] = np.nan
    movie[3, 0, 0] = np.nan
    out = average_frames(movie, 3)
    assert np.isnan(out[2]).all()  # passed through
    np.testing.assert_allclose(out[3, 1:, 1:], movie[3:5, 1:, 1:].mean(axis=0), rtol=1e-5)
    assert out[3, 0, 0] == pytest.approx(movie[4, 0, 0], rel=1e-5)


@pytest.mark.parametrize("average, chunk", [(2, 1), (5, 2), (5, 3), (9, 4), (20, 7), (5, 100)])
def test_averaging_in_chunks_equals_the_whole_movie(average, chunk):
    rng = np.random.default_rng(3)
    scene = ndimage.gaussian_filter(rng.normal(size=(40, 40)), 2)
    movie = np.stack([np.roll(scene, (t // 3, -t // 4), axis=(0, 1)) + rng.normal(0, 0.3, (40, 40))
                      for t in range(17)]).astype(np.float32)
    movie[6] = np.nan
    kwargs = dict(normalize_method="percentile", drift_correction=True, average=average, first_frame=1)
    whole, shifts, bad = preprocess(movie, **kwargs)
    parts = list(preprocess_chunks(movie, chunk=chunk, **kwargs))
    assert [offset for offset, *_ in parts] == np.cumsum([0] + [len(f) for _, f, *_ in parts])[:-1].tolist()
    np.testing.assert_array_equal(np.concatenate([f for _, f, *_ in parts]), whole)
    np.testing.assert_array_equal(np.concatenate([s for _, _, s, *_ in parts]), shifts)
    assert np.concatenate([b + o for o, _, _, b, _ in parts]).tolist() == bad.tolist() == [5]
    assert whole.shape == (16, 40, 40)


def test_averaging_comes_after_the_drift_correction():
    rng = np.random.default_rng(4)
    scene = ndimage.gaussian_filter(rng.normal(size=(48, 48)), 2)
    movie = np.stack([np.roll(scene, (t, 0), axis=(0, 1)) for t in range(7)]).astype(np.float32)
    out, shifts, _ = preprocess(movie, normalize_method="none", drift_correction=True, average=7)
    registered, _, _ = preprocess(movie, normalize_method="none", drift_correction=True)
    np.testing.assert_allclose(shifts[:, 0], -np.arange(7), atol=0.05)
    np.testing.assert_allclose(out[3, 10:-10, 10:-10], registered[:, 10:-10, 10:-10].mean(axis=0), atol=1e-4)
