"""Tests of rotdyn.locate: conventions, accuracy against simulated truth, edge cases, scoring."""
import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage
from skimage.measure import regionprops

from rotdyn.evaluate.segmentation import close_neighbours, detection_scores, match
from rotdyn.locate import COLUMNS, LOCATE_DEFAULTS, axis_angle_from_skimage, locate, locate_frame, particle_mass
from rotdyn.simulate import simulate_atoms, simulate_rods
from rotdyn.store import write_netcdf


# ------------------------------------------------------------------ helpers
def _axis_coords(shape, x, y, angle_deg, n=8):
    """Supersampled (along-axis, across-axis) coordinates of every pixel, project convention."""
    a = np.radians(angle_deg)
    sub = (np.arange(n) + 0.5) / n - 0.5
    rows = (np.arange(shape[0])[:, None] + sub[None, :]).reshape(-1, 1)
    cols = (np.arange(shape[1])[:, None] + sub[None, :]).reshape(1, -1)
    ux, uy = np.cos(a), -np.sin(a)  # direction a as (dx_col, dy_row)
    s = (cols - x) * ux + (rows - y) * uy
    t = -(cols - x) * uy + (rows - y) * ux
    return s, t, n


def _coverage(inside, shape, n):
    """Fraction of each pixel covered: a probability map with an anti-aliased edge."""
    return inside.reshape(shape[0], n, shape[1], n).mean(axis=(1, 3)).astype(np.float32)


def ellipse(shape, x, y, major, minor, angle_deg):
    s, t, n = _axis_coords(shape, x, y, angle_deg)
    return _coverage((2 * s / major) ** 2 + (2 * t / minor) ** 2 <= 1, shape, n)


def capsule(shape, x, y, length, width, angle_deg):
    s, t, n = _axis_coords(shape, x, y, angle_deg)
    d = np.hypot(np.clip(np.abs(s) - (length - width) / 2, 0, None), t)
    return _coverage(d <= width / 2, shape, n)


def prob_dataset(mean, classes=(1,), frames=None, **attrs):
    """A probability.nc-like Dataset from mean maps (T, C, H, W); variance = mean / 10."""
    mean = np.asarray(mean, np.float32)
    T, C, H, W = mean.shape
    dims = ("frame", "class", "y", "x")
    return xr.Dataset(
        {"mean": (dims, mean), "variance": (dims, mean / 10)},
        coords={"frame": np.arange(T) if frames is None else np.asarray(frames), "class": list(classes),
                "class_name": ("class", [f"c{c}" for c in classes]), "y": np.arange(H), "x": np.arange(W)},
        attrs={"pixel_size_nm": 0.5, **attrs})


def smoothed_labels(labels, classes, sigma):
    """'Perfect network': each class mask, Gaussian-smoothed, as (T, C, H, W) probabilities."""
    return np.stack([[ndimage.gaussian_filter((frame == c).astype(np.float32), sigma) for c in classes]
                     for frame in labels])


def axis_error_deg(a, b):
    return np.degrees(np.abs(np.mod(a - b + np.pi / 2, np.pi) - np.pi / 2))


def one(mean, **params):
    """locate_frame on a single-class 2-D map (variance = mean / 10)."""
    mean = np.asarray(mean, np.float32)[None]
    return locate_frame(mean, mean / 10, [1], **params)


# ------------------------------------------------------------------ conventions
@pytest.mark.parametrize("angle", [0, 30, 60, 90, 135])
def test_ellipse_orientation_centroid_and_axes(angle):
    x, y = 31.3, 28.7
    table = one(ellipse((64, 64), x, y, 24, 10, angle))
    assert len(table) == 1
    p = table.iloc[0]
    assert axis_error_deg(p.orientation, np.radians(angle)) < 1
    assert 0 <= p.orientation < np.pi
    assert abs(p.x - x) < 0.1 and abs(p.y - y) < 0.1
    assert p.major_axis == pytest.approx(24, abs=0.6)
    assert p.minor_axis == pytest.approx(10, abs=0.6)
    assert p.eccentricity == pytest.approx(np.sqrt(1 - (10 / 24) ** 2), abs=0.02)


@pytest.mark.parametrize("angle", [0, 30, 60, 90, 135])
def test_capsule_orientation(angle):
    table = one(capsule((64, 64), 30.6, 33.2, 20, 6, angle))
    assert len(table) == 1
    assert axis_error_deg(table.orientation[0], np.radians(angle)) < 1
    assert abs(table.x[0] - 30.6) < 0.1 and abs(table.y[0] - 33.2) < 0.1


def test_skimage_orientation_conversion():
    # A diagonal line rising to the right on screen: column up, row down -> 45 deg.
    image = np.zeros((30, 30), int)
    k = np.arange(-10, 11)
    image[15 - k, 15 + k] = 1
    assert np.degrees(axis_angle_from_skimage(regionprops(image)[0].orientation)) == pytest.approx(45)
    image = np.zeros((30, 30), int)
    image[15 + k, 15 + k] = 1  # falling to the right -> 135 deg
    assert np.degrees(axis_angle_from_skimage(regionprops(image)[0].orientation)) == pytest.approx(135)
    image = np.zeros((30, 30), int)
    image[15, 5:25] = 1  # horizontal -> 0, not pi
    assert axis_angle_from_skimage(regionprops(image)[0].orientation) == pytest.approx(0)


# ------------------------------------------------------------------ accuracy on simulations
@pytest.fixture(scope="module")
def rods():
    return simulate_rods(size=128, frames=6, noise=0.15, seed=3)


def test_perfect_network_rods(rods):
    # Smoothed masks leave only shallow valleys (saddles ~0.92) between touching rods:
    # the fixed-threshold cores split them; the trained ensemble's deeper valleys suit "valley".
    prob = prob_dataset(smoothed_labels(rods.labels, [1], sigma=1.0))
    found = locate(prob, split="probability").to_dataframe()
    scores = detection_scores(found, rods.truth)
    assert scores["precision"] >= 0.97 and scores["recall"] >= 0.97
    assert scores["rmse"] <= 0.5
    assert scores["orientation_error_deg"] <= 3
    assert rods.truth["touching"].sum() > 20  # the test means something
    assert scores["touching_recall"] >= 0.9
    assert scores["close_recall"] >= 0.9


def test_touching_rods_need_the_split(rods):
    prob = prob_dataset(smoothed_labels(rods.labels, [1], sigma=1.0))
    merged = detection_scores(locate(prob, split="none").to_dataframe(), rods.truth)
    assert merged["touching_recall"] < 0.8


def test_atoms_two_classes():
    sim = simulate_atoms(size=96, frames=3)
    prob = prob_dataset(smoothed_labels(sim.labels, [1, 2], sigma=0.7), classes=[1, 2])
    # Atom discs (radius 1.8 px) cover ~10 px: min_area must come down from the rod default.
    found = locate(prob, split="distance", min_area=4).to_dataframe()
    scores = detection_scores(found, sim.truth.drop(columns="angle"))
    for c in (1, 2):
        assert scores[f"precision_class_{c}"] >= 0.97
        assert scores[f"recall_class_{c}"] >= 0.97


def test_valley_split_keeps_dented_rods_whole_and_splits_touching_ones():
    shape = (48, 64)
    dented = capsule(shape, 32, 24, 24, 6, 20)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    along = (xx - 32) * np.cos(np.radians(20)) - (yy - 24) * np.sin(np.radians(20))
    dented = dented * (1 - 0.18 * np.exp(-(along**2) / 4))  # noise-like dip across the middle
    assert len(one(dented)) == 1  # the dip (0.18 deep) is shallower than min_valley
    assert len(one(dented, split="probability")) == 2  # cores above 0.9 cut it in two
    pair = np.maximum(capsule(shape, 32, 21, 30, 7, 0), capsule(shape, 32, 27, 30, 7, 0))
    pair = pair * (1 - 0.45 * np.exp(-((yy - 24) ** 2) / 2))  # touching, with the valley the network leaves
    assert len(one(pair, split="none")) == 1
    found = one(pair)
    # (the valley lowers the inner weights, so the weighted centroids sit a little outwards)
    assert len(found) == 2 and sorted(found.y) == pytest.approx([21, 27], abs=0.6)


@pytest.mark.parametrize("angle", [0, 35, 90])
def test_neck_split_parts_cells_end_to_end_and_keeps_long_cells_whole(angle):
    """Two 18 x 6 px cells in a chain, 2 px apart (a dividing pair: the probability stays high across the septum, only
    the width narrows to 3 px) are two particles; a 36 x 6 px cell of even width, or one bent a little, is one."""
    shape = (64, 64)
    a = np.radians(angle)
    ux, uy = np.cos(a), -np.sin(a)
    ends = [(32 - 10 * ux, 32 - 10 * uy), (32 + 10 * ux, 32 + 10 * uy)]
    chain = np.maximum(*(capsule(shape, x, y, 18, 6, angle) for x, y in ends))
    chain = np.maximum(chain, capsule(shape, 32, 32, 6, 3, angle))  # the septum: a 3 px wide neck, no valley
    assert len(one(chain)) == 1  # no probability valley: the valley split keeps the chain whole
    cells = one(chain, split="neck", min_neck=0.75)
    assert len(cells) == 2
    found = sorted(zip(cells.x, cells.y))
    assert np.allclose(found, sorted(ends), atol=1.0) and (cells.major_axis < 22).all()
    assert len(one(capsule(shape, 32, 32, 36, 6, angle), split="neck", min_neck=0.75)) == 1
    bent = np.maximum(capsule(shape, *ends[0], 23, 6, angle + 8), capsule(shape, *ends[1], 23, 6, angle - 8))
    assert len(one(bent, split="neck", min_neck=0.75)) == 1


def _cells_with_a_t_pair(shape=(96, 128)):
    """Six single 20 x 7 px cells (one of them 30 px long) and a T of two 20 x 7 px cells, one's end against the
    other's side: the contact is wider than either cell, so no neck and no valley part them. Returns the map and
    the T's two cell centres."""
    singles = [(20, 15, 0), (60, 15, 30), (100, 15, 90), (20, 75, 150), (100, 75, 60), (60, 80, 0)]
    lengths = [20, 20, 20, 20, 20, 30]
    pair = [(50, 40, 0), (50, 50.5, 90)]  # the top bar x 40-60 at y 40; the stem y 40.5-60.5 at x 50
    cells = [capsule(shape, x, y, n, 7, a) for (x, y, a), n in zip(singles, lengths)]
    cells += [capsule(shape, x, y, 20, 7, a) for x, y, a in pair]
    return np.maximum.reduce(cells), [(x, y) for x, y, _ in pair]


def test_max_area_ratio_cuts_cells_in_contact_that_no_neck_parts():
    frame, pair = _cells_with_a_t_pair()
    plain = one(frame, split="neck", min_neck=0.75)
    assert len(plain) == 7  # the T is one particle of twice a cell's area
    cut = one(frame, split="neck", min_neck=0.75, max_area_ratio=1.65)
    assert len(cut) == 8 and cut.area.max() < 1.65 * np.median(cut.area)
    near = [np.hypot(cut.x - x, cut.y - y).min() for x, y in pair]
    assert max(near) < 3.0, near  # each of the two cells found within 3 px of its centre
    assert (cut.major_axis > 27).sum() == 1  # the long single cell (1.5 x the median area) is left whole
    # too few particles in a frame for a typical area: nothing is cut
    few = np.where(np.arange(frame.shape[1]) < 70, frame, 0)[:60]
    assert len(one(few, split="neck", min_neck=0.75, max_area_ratio=1.65)) == len(one(few, split="neck", min_neck=0.75))


def test_distance_split_separates_overlapping_discs():
    yy, xx = np.mgrid[:40, :40]
    blob = ((np.hypot(xx - 15, yy - 20) < 5) | (np.hypot(xx - 24, yy - 20) < 5)).astype(np.float32)
    assert len(one(blob, split="none")) == 1
    split = one(blob, split="distance", min_distance=3)
    assert len(split) == 2
    assert sorted(split.x.round()) == [15, 24]


def _crossing(shape=(48, 64), first=(30, 24, 0), second=(34, 26, 60)):
    """Two 24 x 6 capsules crossing (x, y, angle of each), as one probability map, and their centre discs."""
    body = np.maximum(capsule(shape, *first[:2], 24, 6, first[2]), capsule(shape, *second[:2], 24, 6, second[2]))
    centres = np.maximum(ellipse(shape, *first[:2], 4, 4, 0), ellipse(shape, *second[:2], 4, 4, 0))
    return np.clip(body - centres, 0, 1), centres  # softmax classes: a centre pixel is no body pixel


def test_centre_split_separates_crossing_rods_that_no_valley_parts():
    body, centres = _crossing()
    assert len(one(body + centres)) == 1  # an X without a valley: one particle for the valley split
    found = locate_frame(body[None], body[None] / 10, [1], centres, split="centre")
    assert len(found) == 2
    found = found.sort_values("x")
    # x, y come from the centre probability, not from the lopsided halves the watershed draws
    assert found.x.tolist() == pytest.approx([30, 34], abs=0.1)
    assert found.y.tolist() == pytest.approx([24, 26], abs=0.1)
    assert found["class"].tolist() == [1, 1] and found.area.sum() == (body + centres > 0.5).sum()
    # A rod whose centre the ensemble missed is still one particle, centred on its own pixels.
    lone = capsule((48, 64), 30.3, 20.0, 24, 6, 0)
    table = locate_frame(lone[None], lone[None] / 10, [1], np.zeros_like(lone), split="centre")
    assert len(table) == 1 and table.x[0] == pytest.approx(30.3, abs=0.1)


def test_centre_class_read_from_the_probability_file():
    body, centres = _crossing()
    mean = np.stack([body, centres])[None]
    prob = prob_dataset(mean, classes=[1, 2]).assign_coords(class_name=("class", ["rod", "centre"]))
    found = locate(prob, split="centre").to_dataframe()
    assert len(found) == 2 and set(found["class"]) == {1}  # the centre class is no particle class
    merged = locate(prob).to_dataframe()  # other splits: centre pixels count as the rod's, one X
    assert len(merged) == 1 and merged.area[0] == (body + centres > 0.5).sum()
    with pytest.raises(ValueError, match="training_set.centres"):
        locate(prob_dataset(mean[:, :1]), split="centre")


def test_faint_particle_without_a_core_is_still_found():
    table = one(0.7 * ellipse((40, 40), 20, 20, 16, 6, 45))  # never above marker_threshold
    assert len(table) == 1
    assert 0.65 < table.mean_probability[0] <= 0.7  # the soft edge lowers the mean a little


def test_pixel_class_is_the_most_probable_foreground_class():
    mean = np.zeros((2, 30, 30), np.float32)
    mean[0, 5:15, 5:15] = 0.6   # class 3 alone
    mean[0, 18:26, 18:26] = 0.55
    mean[1, 18:26, 18:26] = 0.9  # class 7 wins here
    table = locate_frame(mean, mean / 10, [3, 7])
    assert sorted(zip(table["class"], table["area"])) == [(3, 100), (7, 64)]
    assert table.set_index("class").mean_variance[7] == pytest.approx(0.09)


def test_a_particle_split_between_two_classes_is_still_a_particle():
    mean = np.zeros((2, 30, 30), np.float32)
    mean[:, 10:16, 10:16] = [[[0.3]], [[0.35]]]  # neither class reaches 0.5; a particle does (0.65)
    mean[:, 20:24, 20:24] = 0.2                  # 0.4 of anything: background
    table = locate_frame(mean, mean / 10, [1, 2], min_area=4)
    assert table[["class", "area"]].values.tolist() == [[2, 36]]


# ------------------------------------------------------------------ filters and flags
def test_area_filter_and_measured_values():
    image = np.zeros((50, 50), np.float32)
    image[5:7, 5:8] = 0.8       # 6 px
    image[20:24, 20:25] = 0.8   # 20 px
    image[30:45, 30:45] = 0.8   # 225 px
    table = one(image, min_area=10, max_area=100)
    assert table["area"].tolist() == [20]
    p = table.iloc[0]
    assert (p.x, p.y) == (22, 21.5)
    assert p.mean_probability == pytest.approx(0.8) and p.mean_variance == pytest.approx(0.08)
    assert len(one(image, min_area=10)) == 2


def test_touches_edge():
    image = np.zeros((40, 40), np.float32)
    image[0:4, 10:15] = 1      # on the top border
    image[1:5, 25:30] = 1      # one row in
    image[20:24, 35:40] = 1    # on the right border
    image[20:24, 15:20] = 1    # well inside
    table = one(image).sort_values(["y", "x"])
    assert table.touches_edge.tolist() == [True, False, False, True]
    table = one(image, edge_margin=2).sort_values(["y", "x"])
    assert table.touches_edge.tolist() == [True, True, False, True]
    assert not one(image, edge_margin=0).touches_edge.any()


def test_bad_parameters():
    image = np.ones((1, 10, 10), np.float32)
    with pytest.raises(ValueError, match="split"):
        locate_frame(image, image, [1], split="magic")
    with pytest.raises(ValueError, match="marker_threshold"):
        locate_frame(image, image, [1], split="probability", threshold=0.6, marker_threshold=0.5)
    with pytest.raises(ValueError, match="min_valley"):
        locate_frame(image, image, [1], min_valley=1.5)
    with pytest.raises(ValueError, match="min_neck must be > 0 px"):
        locate_frame(image, image, [1], split="neck", min_neck=0)
    with pytest.raises(ValueError, match="max_area_ratio must be > 1"):
        locate_frame(image, image, [1], max_area_ratio=0.9)
    with pytest.raises(ValueError, match="len"):
        locate_frame(image, image, [1, 2])
    with pytest.raises(TypeError, match="unknown locate parameters: \\['thresold'\\]"):
        locate(prob_dataset(image[None]), thresold=0.5)


def test_defaults_are_locate_frames_signature():
    # one source: the keyword defaults of locate_frame, which locate records in its attrs
    assert LOCATE_DEFAULTS["threshold"] == 0.5 and LOCATE_DEFAULTS["split"] == "valley"
    assert "mean" not in LOCATE_DEFAULTS and LOCATE_DEFAULTS["max_area"] is None


# ------------------------------------------------------------------ the movie
def test_locate_records_frames_attrs_and_parameters():
    maps = np.stack([ellipse((40, 40), 20 + k, 20, 16, 6, 30) for k in range(3)])[:, None]
    out = locate(prob_dataset(maps, frames=[7, 8, 9], source="movie.tif"), min_area=5)
    assert out["frame"].values.tolist() == [7, 8, 9]
    assert np.allclose(out["x"].values, [20, 21, 22], atol=0.05)
    assert out.attrs["source"] == "movie.tif" and out.attrs["pixel_size_nm"] == 0.5
    assert out.attrs["min_area"] == 5 and out.attrs["split"] == "valley"
    assert out.attrs["max_area"] == "none"
    assert out["touches_edge"].dtype == np.int8


def test_blank_and_nan_frames_warn_once(caplog):
    maps = np.zeros((3, 1, 40, 40), np.float32)
    maps[0, 0] = ellipse((40, 40), 20, 20, 16, 6, 30)
    maps[2] = np.nan
    with caplog.at_level(logging.WARNING, logger="rotdyn.locate"):
        out = locate(prob_dataset(maps, frames=[5, 6, 7], source="movie.tif"))
    assert out["frame"].values.tolist() == [5]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "[6, 7]" in warnings[0].getMessage() and "movie.tif" in warnings[0].getMessage()


def test_zero_particles_give_a_valid_dataset(tmp_path, caplog):
    out = locate(prob_dataset(np.zeros((2, 2, 20, 20)), classes=[1, 2]))
    assert out.sizes["particle"] == 0
    assert set(out.data_vars) == {"frame", *COLUMNS}
    assert out["frame"].dtype == np.int64 and out["class"].dtype == np.int64
    assert out["x"].dtype == np.float64 and out["touches_edge"].dtype == np.int8
    write_netcdf(out, tmp_path / "particles.nc")
    with xr.open_dataset(tmp_path / "particles.nc") as back:
        assert back.sizes["particle"] == 0
        assert set(back.data_vars) == set(out.data_vars)
        assert back["touches_edge"].dtype == np.int8


def _spots(heights, size=64, sd=1.5):
    """A frame of Gaussian spots of the given heights on a background of 1, their centres, and their masks."""
    yy, xx = np.mgrid[:size, :size]
    centres = [(12.0 + 13 * k, 20.0 + 7 * (k % 2)) for k in range(len(heights))]
    frame = 1.0 + sum(h * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sd ** 2))
                      for h, (x, y) in zip(heights, centres))
    masks = [((xx - x) ** 2 + (yy - y) ** 2 <= 9).astype(np.float32) for x, y in centres]
    return frame, np.array(centres), masks


def test_particle_mass_is_trackpys():
    trackpy = pytest.importorskip("trackpy")
    frame, centres, _ = _spots([2.0, 5.0, 10.0, 20.0])
    theirs = trackpy.locate(frame, 9, percentile=0).sort_values("x")
    ours = particle_mass(frame, centres[:, 0], centres[:, 1], 9)
    assert ours[0] < 12 and ours[3] > 110  # heights 2 and 20
    np.testing.assert_allclose(ours, theirs["mass"].to_numpy(), rtol=0.02, atol=1.0)  # trackpy rounds to 8 bits
    np.testing.assert_allclose(particle_mass(frame, centres[:, 0], centres[:, 1], 9, scale=4.0), 4 * ours)
    with pytest.raises(ValueError, match="odd integer"):
        particle_mass(frame, [10.0], [10.0], 8)


def test_min_mass_leaves_dim_particles_out_in_the_movies_units(caplog):
    frame, centres, masks = _spots([2.0, 5.0, 10.0, 20.0])
    prob = prob_dataset(np.stack(masks).max(axis=0)[None, None], frames=[3], source="movie.tif")
    normalised = (frame - 1.0) / 20.0  # as ingest stores it: 20 of the movie's units are one unit of frames
    movie = xr.Dataset({"frames": (("frame", "y", "x"), normalised[None].astype(np.float32)),
                        "intensity_scale": ("frame", [20.0])}, coords={"frame": [3]})
    every = locate(prob, movie, min_area=5, mass_diameter=9)
    expected = particle_mass(frame, every["x"].values, every["y"].values, 9)
    np.testing.assert_allclose(every["mass"].values, expected, rtol=1e-4)  # normalisation undone
    with caplog.at_level(logging.INFO, logger="rotdyn.locate"):
        bright = locate(prob, movie, min_area=5, mass_diameter=9, min_mass=float(np.sort(expected)[1]) + 1)
    assert sorted(bright["x"].values.round().tolist()) == [38.0, 51.0]  # the two bright spots
    assert bright.attrs["min_mass"] > 0 and bright.attrs["mass_diameter"] == 9
    assert any("2 of 4 particles have mass" in r.getMessage() for r in caplog.records)
    assert "mass" not in locate(prob, movie, min_area=5)  # only when asked for
    with pytest.raises(ValueError, match="needs mass_diameter"):
        locate(prob, movie, min_mass=10.0)
    with pytest.raises(ValueError, match="needs the movie"):
        locate(prob, mass_diameter=9)


def test_round_trip_through_netcdf(tmp_path):
    maps = np.stack([ellipse((40, 40), 20, 20, 16, 6, 30)])[:, None]
    prob = prob_dataset(maps, frames=[3])
    write_netcdf(prob, tmp_path / "probability.nc")
    with xr.open_dataset(tmp_path / "probability.nc") as lazy:
        out = locate(lazy)
    write_netcdf(out, tmp_path / "particles.nc")
    with xr.open_dataset(tmp_path / "particles.nc") as back:
        xr.testing.assert_allclose(back.load(), out)


# ------------------------------------------------------------------ scoring
def test_match_is_optimal_and_respects_max_distance():
    truth = pd.DataFrame({"frame": [0, 0, 1], "x": [0.0, 2.5, 5.0], "y": [0.0, 0.0, 5.0]})
    # Greedy nearest-first would pair 10 with truth 0 (1.2 px) and leave 11 and truth 1
    # 4.1 px apart, unmatched; the optimum matches both. Frame 1's detection is 4 px off.
    detected = pd.DataFrame({"frame": [0, 0, 1, 2], "x": [1.2, -1.6, 9.0, 0.0], "y": [0.0, 0.0, 5.0, 0.0]},
                            index=[10, 11, 12, 13])
    m = match(detected, truth, max_distance=3.0)
    pairs = m[(m.detected >= 0) & (m.truth >= 0)].sort_values("truth")
    assert pairs[["detected", "truth"]].values.tolist() == [[11, 0], [10, 1]]
    assert pairs.distance.tolist() == pytest.approx([1.6, 1.3])
    assert sorted(m[m.truth < 0].detected) == [12, 13]
    assert m[m.detected < 0].truth.tolist() == [2]


def test_detection_scores_known_answers():
    truth = pd.DataFrame({"frame": [0, 0, 0, 1], "x": [10.0, 16.0, 50.0, 10.0], "y": [10.0, 10.0, 50.0, 10.0],
                          "angle": [0.1, np.pi + 0.2, -np.pi / 2, 1.0], "class": [1, 1, 2, 2],
                          "touching": [True, True, False, False], "length": 8.0})
    detected = pd.DataFrame({"frame": [0, 0, 1, 1], "x": [10.0, 50.0, 11.0, 30.0], "y": [10.0, 52.0, 10.0, 30.0],
                             "orientation": [0.1 + np.radians(2), np.pi / 2, 1.0 - np.radians(4), 0.0],
                             "class": [1, 2, 1, 2]})
    s = detection_scores(detected, truth)
    assert (s["n_detected"], s["n_truth"], s["n_matched"]) == (4, 4, 3)
    assert s["precision"] == s["recall"] == 0.75
    assert s["rmse"] == pytest.approx(np.sqrt((0 + 4 + 1) / 3))
    assert s["orientation_error_deg"] == pytest.approx(2)   # errors 2, 0, 4
    assert s["n_close"] == 2 and s["close_recall"] == 0.5   # 6 px apart < 1.2 * 8
    assert s["touching_recall"] == 0.5
    assert s["precision_class_1"] == 0.5 and s["recall_class_1"] == 0.5  # frame-1 match has the wrong class
    assert s["precision_class_2"] == 0.5 and s["recall_class_2"] == 0.5


def test_detection_scores_empty_and_explicit_neighbour_distance():
    truth = pd.DataFrame({"frame": [0, 0], "x": [0.0, 5.0], "y": [0.0, 0.0]})
    empty = pd.DataFrame({"frame": pd.Series(dtype=int), "x": pd.Series(dtype=float),
                          "y": pd.Series(dtype=float)})
    s = detection_scores(empty, truth, neighbour_distance=4)
    assert s["recall"] == 0 and np.isnan(s["precision"]) and np.isnan(s["rmse"])
    assert s["n_close"] == 0 and np.isnan(s["close_recall"])
    assert close_neighbours(truth, 6).tolist() == [True, True]
