"""Tests of rotdyn.patches: centring, edges, index back into particles.nc, adapters."""
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from rotdyn.locate import locate
from rotdyn.patches import _one_frame_cache, extract_patches, from_frames, from_probability
from rotdyn.store import write_netcdf

H, W = 40, 50


def particles(frame, x, y, cls=None, **attrs):
    n = len(x)
    return xr.Dataset(
        {"frame": ("particle", np.asarray(frame, np.int64)), "x": ("particle", np.asarray(x, float)),
         "y": ("particle", np.asarray(y, float)),
         "class": ("particle", np.ones(n, np.int64) if cls is None else np.asarray(cls, np.int64))},
        coords={"particle": np.arange(n)}, attrs={"source": "movie.tif", **attrs})


def marked_movie(parts, frames=(10, 11)):
    """A movie with value (index + 1) at each particle's rounded position in its frame."""
    data = np.zeros((len(frames), H, W), np.float32)
    for i, (f, x, y) in enumerate(zip(parts.frame.values, parts.x.values, parts.y.values)):
        data[list(frames).index(f), int(np.floor(y + 0.5)), int(np.floor(x + 0.5))] = i + 1
    return xr.Dataset({"frames": (("frame", "y", "x"), data)},
                      coords={"frame": list(frames), "y": np.arange(H), "x": np.arange(W)})


@pytest.mark.parametrize("size", [7, 8, 24])
def test_centre_pixel_is_the_particle(size):
    parts = particles([10, 11, 10], [20.4, 25.5, 30.6], [15.2, 20.0, 19.5])
    out = extract_patches(from_frames(marked_movie(parts)), parts, size=size, source="frames")
    assert out.sizes == {"particle": 3, "py": size, "px": size}
    assert out["patches"].dtype == np.float32
    centre = out["patches"].values[:, size // 2, size // 2]
    assert centre.tolist() == [1, 2, 3]
    assert out["patches"].sel(py=0, px=0).values.tolist() == [1, 2, 3]  # offsets: 0 at the particle
    if size < 10:  # small windows hold no neighbour
        assert out["patches"].values.sum() == 6
    assert out.attrs["size"] == size and out.attrs["edge"] == "drop"
    assert out.attrs["patch_source"] == "frames" and out.attrs["source"] == "movie.tif"


def test_drop_and_pad_at_the_edges():
    # Inside, 2 px from the left border, on the bottom border, right next to the right border.
    parts = particles([10, 10, 11, 11], [25, 2, 20, W - 1], [20, 20, H - 1, 10])
    movie = marked_movie(parts)
    dropped = extract_patches(from_frames(movie), parts, size=9, edge="drop")
    assert dropped["particle_index"].values.tolist() == [0]
    padded = extract_patches(from_frames(movie), parts, size=9, edge="pad")
    assert padded.sizes["particle"] == 4
    assert padded["padded"].values.tolist() == [0, 1, 1, 1]
    p = padded["patches"].values
    assert p[:, 4, 4].tolist() == [1, 2, 3, 4]
    assert (p[1, :, :2] == 0).all()       # two columns left of the image are zeros
    assert (p[2, 5:, :] == 0).all()       # four rows below the image are zeros
    assert extract_patches(from_frames(movie), parts, size=5, edge="drop").sizes["particle"] == 2


def test_pad_is_the_background_of_each_frame():
    # Mid-grey frames (0.3 and 0.6 with noise) and a dark-rimmed bright particle at the left border: the pad
    # is each frame's median, as dark as nothing in the frame; a probability map's pad stays 0.
    rng = np.random.default_rng(0)
    data = np.stack([level + 0.02 * rng.standard_normal((H, W)) for level in (0.3, 0.6)]).astype(np.float32)
    data[:, 18:23, 0:4] = 1.0
    movie = xr.Dataset({"frames": (("frame", "y", "x"), data)}, coords={"frame": [10, 11]})
    parts = particles([10, 11], [1, 1], [20, 20])
    p = extract_patches(from_frames(movie), parts, size=9, edge="pad", source="frames")["patches"].values
    for window, frame in zip(p, data):
        assert (window[:, :3] == np.float32(np.median(frame))).all()  # the three columns left of the image
        assert window[:, 3:].min() > np.median(frame) - 0.1  # and nothing darker came from the image
    prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), data[:, None])},
                      coords={"frame": [10, 11], "class": [1]})
    q = extract_patches(from_probability(prob), parts, size=9, edge="pad")["patches"].values
    assert (q[:, :, :3] == 0).all()


def test_index_back_into_particles_after_drops(tmp_path):
    x = [1, 20, 48, 30, 10, 25]
    y = [20, 20, 20, 2, 30, 12]
    parts = particles([10, 11, 10, 11, 10, 11], x, y)
    write_netcdf(parts, tmp_path / "particles.nc")
    with xr.open_dataset(tmp_path / "particles.nc") as stored:
        out = extract_patches(from_frames(marked_movie(parts)), stored, size=11)
    kept = [1, 4, 5]
    assert out["particle"].values.tolist() == kept
    assert out["particle_index"].values.tolist() == kept
    assert out["x"].values.tolist() == [x[i] for i in kept]
    assert out["frame"].values.tolist() == [11, 10, 11]
    assert out["patches"].values[:, 5, 5].tolist() == [i + 1 for i in kept]


def test_probability_source_picks_the_class():
    mean = np.zeros((2, 2, H, W), np.float32)
    mean[0, 0, 10, 10] = 0.3   # frame 4, class 1
    mean[0, 1, 10, 10] = 0.9   # frame 4, class 5
    mean[1, 0, 20, 30] = 0.6   # frame 5, class 1
    prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean)},
                      coords={"frame": [4, 5], "class": [1, 5], "y": np.arange(H), "x": np.arange(W)})
    parts = particles([4, 5, 4], [10, 30, 10], [10, 20, 10], cls=[5, 1, 1])
    out = extract_patches(from_probability(prob), parts, size=5)
    assert out["patches"].values[:, 2, 2] == pytest.approx([0.9, 0.6, 0.3])
    assert out["class"].values.tolist() == [5, 1, 1]


def test_one_frame_cache_reads_each_frame_once():
    reads = []
    get = _one_frame_cache(lambda f: reads.append(f) or np.full((2, 2), f))
    for f in [3, 3, 3, 4, 4, 3]:
        assert get(f)[0, 0] == f
    assert reads == [3, 4, 3]


def test_empty_particles():
    parts = particles([], [], [])
    out = extract_patches(from_frames(marked_movie(particles([10], [5], [5]))), parts, size=6, edge="pad")
    assert out.sizes == {"particle": 0, "py": 6, "px": 6}
    assert {"patches", "particle_index", "frame", "x", "y", "class", "padded"} <= set(out.data_vars)
    assert out["frame"].dtype == np.int64 and out["patches"].dtype == np.float32


def test_bad_arguments():
    parts = particles([10], [5], [5])
    movie = from_frames(marked_movie(parts))
    with pytest.raises(ValueError, match="edge"):
        extract_patches(movie, parts, edge="wrap")
    with pytest.raises(ValueError, match="size"):
        extract_patches(movie, parts, size=0)


def test_located_particles_sit_in_the_middle_of_their_windows():
    yy, xx = np.mgrid[:H, :W]
    blob = (np.hypot(xx - 20.3, yy - 18.6) <= 4).astype(np.float32)
    prob = xr.Dataset({"mean": (("frame", "class", "y", "x"), blob[None, None]),
                       "variance": (("frame", "class", "y", "x"), 0 * blob[None, None])},
                      coords={"frame": [0], "class": [1], "y": np.arange(H), "x": np.arange(W)})
    out = extract_patches(from_probability(prob), locate(prob), size=13)
    p = out["patches"].values[0]
    assert p[6, 6] == 1 and p.sum() == blob.sum()
    # Centred on the window's centre pixel, up to the sub-pixel remainder of the centroid.
    x, y = float(out.x[0]), float(out.y[0])
    assert ndimage.center_of_mass(p) == pytest.approx((6 + y - round(y), 6 + x - round(x)), abs=1e-6)
