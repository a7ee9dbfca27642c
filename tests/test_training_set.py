"""Training sets against known values: written label folders and the simulator's truth."""
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import xarray as xr
from scipy import ndimage

from rotdyn.preprocess import flatten, normalize, preprocess
from rotdyn.simulate import simulate
from rotdyn.store import write_netcdf
from rotdyn.training_set import (
    TrainingSetError,
    centre_discs,
    contact_pixels,
    from_labels,
    from_simulation,
    pair_files,
    tile_starts,
    training_arrays,
    training_set,
)

BT709 = np.array([0.2126, 0.7152, 0.0722])
NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _sample(ds, source, frame=0):
    """The one sample of ``source`` / ``frame`` (for sets without tiling)."""
    hit = np.flatnonzero((ds.source.values == source) & (ds.frame.values == frame))
    assert len(hit) == 1
    return ds.images.values[hit[0]], ds.masks.values[hit[0]]


def _expected(image):
    """What preprocessing does to one 2-D frame by default: percentile normalisation."""
    return normalize(np.asarray(image, np.float32)[None], "percentile")[0]


def _pairs(a, b):
    """Values of 8-neighbour pixel pairs of the last two axes (each pair once)."""
    ny, nx = a.shape[-2:]
    for dy, dx in NEIGHBOURS:
        rows_a, rows_b = slice(0, ny - dy), slice(dy, ny)
        cols_a, cols_b = (slice(0, nx - dx), slice(dx, nx)) if dx >= 0 else (slice(-dx, nx), slice(0, nx + dx))
        yield a[..., rows_a, cols_a], a[..., rows_b, cols_b], b[..., rows_a, cols_a], b[..., rows_b, cols_b]


@pytest.fixture
def folder(tmp_path):
    """PNG (0/255 mask), NPY (0/1 labels) and RGB PNG pairs of 64 x 64, plus a stray README."""
    rng = np.random.default_rng(0)
    d = tmp_path / "set"
    d.mkdir()
    grey = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    mask255 = np.where(rng.random((64, 64)) < 0.3, 255, 0).astype(np.uint8)
    iio.imwrite(d / "a.png", grey)
    iio.imwrite(d / "a_mask.png", mask255)
    height = rng.normal(0, 1, (64, 64)).astype(np.float32)
    labels = (rng.random((64, 64)) < 0.2).astype(np.int64)
    np.save(d / "b.npy", height)
    np.save(d / "b_labels.npy", labels)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb_mask = (rng.random((64, 64)) < 0.5).astype(np.uint8)
    iio.imwrite(d / "c.png", rgb)
    iio.imwrite(d / "c_label.png", rgb_mask)
    (d / "README.md").write_text("not an image")
    return d, dict(grey=grey, mask255=mask255, height=height, labels=labels, rgb=rgb, rgb_mask=rgb_mask)


def test_from_labels_values(folder):
    d, v = folder
    ds = from_labels(d, tile=64)
    assert ds.sizes["sample"] == 3 and list(ds.source.values) == ["a.png", "b.npy", "c.png"]
    image, mask = _sample(ds, "a.png")
    np.testing.assert_allclose(image, _expected(v["grey"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(mask, v["mask255"] // 255)  # 0/255 -> 0/1
    image, mask = _sample(ds, "b.npy")
    np.testing.assert_allclose(image, _expected(v["height"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(mask, v["labels"])
    image, mask = _sample(ds, "c.png")
    np.testing.assert_allclose(image, _expected(v["rgb"] @ BT709), rtol=1e-5, atol=1e-6)  # luminance
    np.testing.assert_array_equal(mask, v["rgb_mask"])
    # Percentile normalisation: 0.5th and 99.5th percentiles at 0 and 1.
    np.testing.assert_allclose(np.percentile(ds.images.values, [0.5, 99.5], axis=(1, 2)), [[0] * 3, [1] * 3],
                               atol=1e-5)
    assert ds.images.dtype == np.float32 and ds.masks.dtype == np.uint8
    assert ds.attrs["class_names"] == "background,class1" and ds.attrs["n_classes"] == 2
    assert ds.attrs["origin"] == f"labels: {d}"
    assert (ds.attrs["tile"], ds.attrs["flatten"], ds.attrs["normalize"]) == (64, 0, "percentile")


def test_from_labels_flatten_uses_preprocess(folder):
    d, v = folder
    yy, xx = np.mgrid[0:64, 0:64]
    np.save(d / "b.npy", v["height"] + 0.2 * xx - 0.1 * yy)  # tilted
    ds = from_labels(d, tile=64, flatten=True, normalize="zscore")
    image, _ = _sample(ds, "b.npy")
    want = preprocess(np.load(d / "b.npy")[None], flatten_afm=True, normalize_method="zscore")[0][0]
    np.testing.assert_allclose(image, want, rtol=1e-6, atol=1e-6)
    assert abs(np.corrcoef(image.ravel(), xx.ravel())[0, 1]) < 0.05  # the tilt is gone
    assert ds.attrs["flatten"] == 1 and ds.attrs["normalize"] == "zscore"


def test_tiles_cover_a_large_image(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(0, 1, (300, 200)).astype(np.float32)
    mask = rng.integers(0, 3, (300, 200)).astype(np.uint8)
    np.save(tmp_path / "big.npy", image)
    np.save(tmp_path / "big_mask.npy", mask)
    ds = from_labels(tmp_path, tile=128)
    assert ds.sizes == {"sample": 6, "y": 128, "x": 128}
    assert sorted(set(ds.y0.values)) == [0, 86, 172] and sorted(set(ds.x0.values)) == [0, 72]
    full = _expected(image)  # normalised whole, then cut
    covered = np.zeros(image.shape, int)
    for img, msk, y0, x0 in zip(ds.images.values, ds.masks.values, ds.y0.values, ds.x0.values):
        np.testing.assert_array_equal(msk, mask[y0 : y0 + 128, x0 : x0 + 128])
        np.testing.assert_array_equal(img, full[y0 : y0 + 128, x0 : x0 + 128])
        covered[y0 : y0 + 128, x0 : x0 + 128] += 1
    assert covered.min() >= 1
    assert ds.attrs["class_names"] == "background,class1,class2"


def test_tile_starts_flush_and_even():
    np.testing.assert_array_equal(tile_starts(300, 128), [0, 86, 172])
    np.testing.assert_array_equal(tile_starts(256, 128), [0, 128])  # no needless overlap
    np.testing.assert_array_equal(tile_starts(128, 128), [0])
    np.testing.assert_array_equal(tile_starts(50, 128), [0])


def test_small_image_reflect_padded(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.normal(0, 1, (100, 60)).astype(np.float32)
    mask = (rng.random((100, 60)) < 0.4).astype(np.uint8)
    np.save(tmp_path / "s.npy", image)
    np.save(tmp_path / "s_mask.npy", mask)
    ds = from_labels(tmp_path, tile=128)
    assert ds.sizes["sample"] == 1
    pad = ((0, 28), (0, 68))
    np.testing.assert_array_equal(ds.masks.values[0], np.pad(mask, pad, mode="reflect"))
    np.testing.assert_array_equal(ds.images.values[0], np.pad(_expected(image), pad, mode="reflect"))
    np.testing.assert_array_equal(ds.masks.values[0][:100, :60], mask)


def test_stack_pair_in_subfolders(tmp_path):
    rng = np.random.default_rng(3)
    stack = rng.normal(0, 1, (3, 64, 64)).astype(np.float32) * np.array([1, 5, 50], np.float32)[:, None, None]
    masks = rng.integers(0, 2, (3, 64, 64)).astype(np.uint8)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "images" / "movie.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "masks" / "movie.tif", masks, photometric="minisblack")
    ds = from_labels(tmp_path, tile=64)
    assert list(ds.frame.values) == [0, 1, 2] and set(ds.source.values) == {"images/movie.tif"}
    for t in range(3):  # each frame normalised on its own
        np.testing.assert_allclose(ds.images.values[t], _expected(stack[t]), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds.masks.values, masks)


def test_multiclass_labels_and_names(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, (64, 64)).astype(np.uint16)
    iio.imwrite(tmp_path / "g.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    iio.imwrite(tmp_path / "g_labels.png", labels)
    ds = from_labels(tmp_path, tile=64, class_names=["background", "carbon", "silicon"])
    np.testing.assert_array_equal(ds.masks.values[0], labels)
    assert ds.attrs["class_names"] == "background,carbon,silicon" and ds.attrs["n_classes"] == 3
    assert from_labels(tmp_path, tile=64).attrs["class_names"] == "background,class1,class2"
    with pytest.raises(TrainingSetError, match="g_labels.png.*label 2"):
        from_labels(tmp_path, tile=64, class_names=["background", "carbon"])


def test_palette_png_mask_gives_indices(tmp_path):
    from PIL import Image

    labels = np.array([[0, 1, 2, 1]] * 4, np.uint8)
    im = Image.fromarray(labels, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)  # black, red, green
    im.save(tmp_path / "p_mask.png")
    iio.imwrite(tmp_path / "p.png", np.arange(16, dtype=np.uint8).reshape(4, 4))
    ds = from_labels(tmp_path, tile=4)
    np.testing.assert_array_equal(ds.masks.values[0], labels)
    assert ds.attrs["n_classes"] == 3


def test_bad_settings():
    with pytest.raises(TrainingSetError, match="tile="):
        from_simulation("rods", tile="big")
    with pytest.raises(TrainingSetError, match="normalize="):
        from_simulation("rods", normalize="max")
    with pytest.raises(TrainingSetError, match="flatten="):
        from_simulation("rods", flatten="yes")


def _write_pair(d, name, image, mask, mask_name=None):
    np.save(d / f"{name}.npy", image)
    np.save(d / (mask_name or f"{name}_mask.npy"), mask)


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("no_mask", r"lonely\.npy: image without a mask"),
        ("no_image", r"orphan_mask\.npy: mask without an image"),
        ("shape", r"x_mask\.npy: mask shape \(1, 32, 16\).*x\.npy"),
        ("fraction", r"x_mask\.npy: mask has non-integer values"),
        ("too_many", r"x_mask\.npy: mask has label 300: more than 255 classes"),
        ("negative", r"x_mask\.npy: mask has negative label"),
        ("two_masks", r"x_(mask|labels)\.npy: a second mask for 'x'"),
    ],
)
def test_errors_name_the_file(tmp_path, case, pattern):
    image, mask = np.zeros((32, 32), np.float32), np.zeros((32, 32), np.uint8)
    _write_pair(tmp_path, "ok", image, mask)
    if case == "no_mask":
        np.save(tmp_path / "lonely.npy", image)
    elif case == "no_image":
        np.save(tmp_path / "orphan_mask.npy", mask)
    elif case == "shape":
        _write_pair(tmp_path, "x", image, mask[:, :16])
    elif case == "fraction":
        _write_pair(tmp_path, "x", image, np.full((32, 32), 0.5))
    elif case == "too_many":
        _write_pair(tmp_path, "x", image, np.full((32, 32), 300, np.uint16))
    elif case == "negative":
        _write_pair(tmp_path, "x", image, np.full((32, 32), -1, np.int16))
    elif case == "two_masks":
        _write_pair(tmp_path, "x", image, mask)
        np.save(tmp_path / "x_labels.npy", mask)
    with pytest.raises(TrainingSetError, match=pattern):
        from_labels(tmp_path, tile=32)


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "README.md").write_text("no images")
    with pytest.raises(TrainingSetError, match=f"{tmp_path}: no image/mask pairs"):
        pair_files(tmp_path)
    with pytest.raises(TrainingSetError, match="nowhere: no such folder"):
        from_labels(tmp_path / "nowhere")
    (tmp_path / "images").mkdir()
    with pytest.raises(TrainingSetError, match="no masks/"):
        pair_files(tmp_path)


def test_contact_pixels_on_known_layout():
    inst = np.zeros((6, 8), np.int32)
    inst[1:3, 1:3] = 1
    inst[3:5, 3:5] = 2  # touches 1 diagonally at (2, 2)-(3, 3)
    inst[1:3, 5:7] = 3  # touches 2 diagonally at (2, 5)-(3, 4); 1 and 3 are apart
    want = np.zeros_like(inst, bool)
    want[2, 2] = want[3, 3] = True
    want[2, 5] = want[3, 4] = True
    np.testing.assert_array_equal(contact_pixels(inst), want)


@pytest.fixture(scope="module")
def rods():
    return simulate("rods", frames=6, seed=1), from_simulation("rods", frames=6, seed=1)


def test_simulated_masks_are_labels_minus_contacts(rods):
    sim, ds = rods
    mask = ds.masks.values
    removed = sim.labels != mask
    assert removed.sum() > 0  # the pairs do touch
    assert np.all(sim.labels[removed] > 0) and np.all(mask[removed] == 0)
    np.testing.assert_array_equal(removed, contact_pixels(sim.instances))
    assert ds.attrs["removed_contact_pixels"] == removed.sum()
    assert ds.attrs["removed_contact_fraction"] == pytest.approx(removed.sum() / (sim.labels > 0).sum())
    # Through the kept foreground, no pixel has an 8-neighbour of another instance ...
    for m_a, m_b, i_a, i_b in _pairs(mask, sim.instances):
        both = (m_a > 0) & (m_b > 0)
        assert np.all(i_a[both] == i_b[both])
    # ... whereas the simulator's own labels have such neighbours.
    assert any(np.any((m_a > 0) & (m_b > 0) & (i_a != i_b)) for m_a, m_b, i_a, i_b in _pairs(sim.labels, sim.instances))


def test_simulated_attrs_and_no_separation(rods):
    sim, ds = rods
    for name, value in sim.params.items():
        assert ds.attrs[f"sim_{name}"] == value
    assert ds.attrs["origin"] == "simulated rods" and ds.attrs["class_names"] == "background,rod"
    assert ds.attrs["flatten"] == 1 and ds.attrs["separate_touching"] == 1
    kept = from_simulation("rods", frames=2, seed=1, separate_touching=False)
    np.testing.assert_array_equal(kept.masks.values, sim.labels[:2])
    assert kept.attrs["removed_contact_pixels"] == 0


def test_centre_class_marks_every_rod_centre_even_under_another_rod():
    params = dict(frames=3, size=96, count=14, length=22.0, width=6.0, placement="independent", seed=4, tile=96)
    sim = simulate("rods", **{k: v for k, v in params.items() if k != "tile"})
    plain, ds = from_simulation("rods", **params), from_simulation("rods", centres=True, **params)
    xr.testing.assert_identical(ds.masks, plain.masks)  # whole rods, for anything that measures them
    assert ds.attrs["class_names"] == "background,rod" and ds.attrs["n_classes"] == 2
    assert ds.attrs["centres"] == 1 and ds.attrs["centre_radius"] == pytest.approx(2.0)
    centre = ds.centres.values == 1
    targets = training_arrays(ds)  # what the networks learn: the centre class drawn over the rods
    assert targets["class_names"] == ["background", "rod", "centre"] and targets["n_classes"] == 3
    np.testing.assert_array_equal(targets["masks"], np.where(centre, 2, plain.masks.values))
    mask = ds.masks.values
    truth = sim.truth.reset_index(drop=True)
    ids = centre_discs(truth, mask.shape, 2.0)
    # Touching discs are parted: no two 8-neighbour centre pixels belong to different rods ...
    for c_a, c_b, i_a, i_b in _pairs(centre, ids):
        assert np.all(i_a[c_a & c_b] == i_b[c_a & c_b])
    assert np.array_equal(centre, (ids > 0) & ~contact_pixels(ids))
    # ... and a rod far enough from every other centre keeps its whole disc: about pi r^2 = 12.6 px, centred on the truth.
    xy = truth[["x", "y"]].to_numpy()
    gap = np.array([np.hypot(*(xy[truth.frame == r.frame] - xy[i]).T)[truth.frame[truth.frame == r.frame].index != i].min()
                    for i, r in truth.iterrows()])
    alone = np.flatnonzero(gap > 6)
    assert len(alone) >= 0.7 * len(truth)
    for i in alone:
        yy, xx = np.nonzero(centre[truth.frame[i]] & (ids[truth.frame[i]] == i + 1))
        assert 11 <= len(yy) <= 15 and abs(xx.mean() - truth.x[i]) < 0.5 and abs(yy.mean() - truth.y[i]) < 0.5
    # Centres under another rod are marked too: the networks learn where a hidden centre lies.
    at = truth.frame, truth.y.round().astype(int), truth.x.round().astype(int)
    hidden = np.flatnonzero(sim.instances[at] != truth.id.to_numpy())
    assert len(np.intersect1d(hidden, alone)) >= 2 and centre[at][np.intersect1d(hidden, alone)].all()


def test_centre_discs_clip_at_the_border():
    import pandas as pd
    discs = centre_discs(pd.DataFrame({"frame": [1], "x": [0.2], "y": [3.0]}), (2, 6, 5), 1.5) > 0
    assert not discs[0].any()
    assert discs[1].sum() == 6 and discs[1, 3, :2].all() and discs[1, 2:5, 0].all()


def test_simulated_images_flattened_then_normalised(rods):
    sim, ds = rods
    images = ds.images.values
    np.testing.assert_array_equal(images, preprocess(sim.frames, flatten_afm=True)[0])
    flat = flatten(sim.frames)
    yy, xx = np.mgrid[0:128, 0:128]
    for t in range(len(images)):
        bg = sim.labels[t] == 0
        # Flattening puts the background at height 0 ...
        assert abs(np.median(flat[t][bg])) < 0.02
        # ... and percentile normalisation maps 0.5th/99.5th percentiles to 0/1, so
        # the background median lands at -lo / (hi - lo) (about 0.26 here), not 0.
        lo, hi = np.percentile(flat[t], [0.5, 99.5])
        assert np.median(images[t][bg]) == pytest.approx(-lo / (hi - lo), abs=0.02)
        np.testing.assert_allclose(np.percentile(images[t], [0.5, 99.5]), [0, 1], atol=1e-5)
        # No tilt left in the background (the raw frames tilt by 0.3 across).
        coef = np.polyfit(xx[bg], images[t][bg], 1)[0], np.polyfit(yy[bg], images[t][bg], 1)[0]
        assert np.hypot(*coef) * 128 < 0.02


def test_simulated_atoms_not_flattened():
    sim = simulate("atoms", frames=2, size=64)
    ds = from_simulation("atoms", frames=2, size=64, tile=64)
    np.testing.assert_array_equal(ds.images.values, normalize(sim.frames))
    np.testing.assert_array_equal(ds.masks.values, np.where(contact_pixels(sim.instances), 0, sim.labels))
    assert ds.attrs["flatten"] == 0 and ds.attrs["n_classes"] == 3
    assert ds.attrs["class_names"] == "background,carbon,dopant" and ds.attrs["sim_size"] == 64


def test_training_set_from_config(tmp_path, folder):
    d, _ = folder
    config = {"set": "demo", "source": "auto", "tile": 64, "flatten": "auto",
              "simulate": {"kind": "rods", "frames": 2, "size": 64, "count": 4, "pixel_size_nm": 0.5}}
    sim = training_set(config, labels_root=tmp_path / "empty")
    assert sim.attrs["source"] == "simulate" and sim.attrs["set"] == "demo"
    assert sim.attrs["sim_size"] == 64 and sim.attrs["sim_frames"] == 2 and "sim_pixel_size_nm" not in sim.attrs
    labelled = training_set({**config, "set": d.name}, labels_root=d.parent)
    assert labelled.attrs["source"] == "labels" and labelled.attrs["origin"] == f"labels: {d}"
    assert labelled.attrs["flatten"] == 0  # auto: TIFF/PNG/NPY are no AFM format
    with pytest.raises(TrainingSetError, match="missing"):
        training_set({**config, "set": "missing", "source": "labels"}, labels_root=tmp_path)
    with pytest.raises(TrainingSetError, match="source='web'"):
        training_set({**config, "source": "web"}, labels_root=tmp_path)


@pytest.mark.parametrize("kind", ["labels", "simulated"])
def test_netcdf_round_trip(tmp_path, folder, kind):
    d, _ = folder
    ds = from_labels(d, tile=48) if kind == "labels" else from_simulation("rods", frames=2, size=64, count=4)
    write_netcdf(ds, tmp_path / "set.nc")
    with xr.open_dataset(tmp_path / "set.nc") as back:
        back = back.load()
    xr.testing.assert_identical(back, ds)
    assert back.images.dtype == np.float32 and back.masks.dtype == np.uint8


def test_unreadable_file_is_a_training_set_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8)))
    (tmp_path / "a_mask.png").write_bytes(b"not a png")
    with pytest.raises(TrainingSetError, match="a_mask.png: cannot read"):
        from_labels(tmp_path, tile=8)


def test_centres_from_config_simulated_only(tmp_path, folder, caplog):
    d, _ = folder
    config = {"set": "demo", "tile": 64, "centres": True,
              "simulate": {"kind": "rods", "frames": 1, "size": 64, "count": 3, "seed": 2}}
    sim = training_set(config, labels_root=tmp_path / "empty")
    assert sim.attrs["centres"] == 1 and int(sim.centres.sum()) > 0
    assert training_arrays(sim)["class_names"] == ["background", "rod", "centre"]
    labelled = training_set({**config, "set": d.name}, labels_root=d.parent)
    assert "centres" not in labelled and "labelled masks do not give" in caplog.text
    assert training_arrays(labelled)["class_names"] == labelled.attrs["class_names"].split(",")


# ------------------------------------------------------------------ atoms' measured noise

def test_atoms_noise_is_measured_unless_given_and_goes_into_their_read_noise(tmp_path):
    from rotdyn.kinds import unset_sizes
    from rotdyn.training_set import with_measured_sizes

    def kind(**simulate):
        return {"name": "atoms", "training_set": {"simulate": {"kind": "atoms", **simulate}}}

    assert unset_sizes(kind()) == ["spacing", "noise"]
    assert unset_sizes(kind(dose=5.0)) == unset_sizes(kind(gaussian_noise=0.5)) == ["spacing"]  # the user's wins
    movie = tmp_path / "movie.nc"
    xr.Dataset(attrs={"measured_noise": 1.6}).to_netcdf(movie)
    settings = {"simulate": {"kind": "atoms", "size": 96, "frames": 4, "seed": 1}}
    filled = with_measured_sizes(settings, ["noise"], movie)
    assert "noise" not in filled["simulate"]
    assert 0.8 < filled["simulate"]["gaussian_noise"] < 3.2  # read 1.6, corrected by one bounded step
    assert filled["measured"]["noise"] == filled["simulate"]["gaussian_noise"]
    training_set({**filled, "set": "atoms", "tile": 48}, labels_root=str(tmp_path))  # the simulator takes it
