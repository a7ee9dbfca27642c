"""Synthetic movies: the truth must describe exactly what was rendered."""
import dataclasses

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage
from skimage.measure import regionprops

from rotdyn.simulate import TRUTH_COLUMNS, RodParams, simulate, simulate_atoms, simulate_rods, to_dataset
from rotdyn.simulate.geometry import segment_distance

ROD = dict(size=96, frames=30, count=14, transition_frame=15, death_rate=0.03, seed=3)
ATOM = dict(size=64, frames=12, spacing=6.0, dopants=4, vacancies=5, hole_start_radius=3.0,
            hole_growth=1.0, seed=5)


@pytest.fixture(scope="module")
def rods():
    return simulate_rods(**ROD)


@pytest.fixture(scope="module")
def clean_rods():
    # Same seed: the same rods (noise is drawn after the dynamics), without any noise.
    return simulate_rods(**ROD, noise=0.0, tilt=0.0)


@pytest.fixture(scope="module")
def atoms():
    return simulate_atoms(**ATOM)


def head_dir(angle):
    """Head direction in array coordinates (dx_col, dy_row) under the project convention."""
    return np.cos(angle), -np.sin(angle)


def circ_diff(a, b, period):
    """Smallest difference of two angles modulo ``period``."""
    return np.abs((np.asarray(a) - b + period / 2) % period - period / 2)


def check_truth_matches_masks(sim):
    truth = sim.truth
    assert list(truth.columns[:6]) == TRUTH_COLUMNS
    t, r, c = truth.frame.to_numpy(), np.rint(truth.y).astype(int), np.rint(truth.x).astype(int)
    np.testing.assert_array_equal(sim.instances[t, r, c], truth.id)
    np.testing.assert_array_equal(sim.labels[t, r, c], truth["class"])
    for f, rows in truth.groupby("frame"):
        ids = np.unique(sim.instances[f])
        assert set(ids[ids > 0]) == set(rows.id)
        assert np.all((sim.labels[f] > 0) == (sim.instances[f] > 0))
    # Mask centroids sit on the truth positions (both shapes are symmetric about them).
    for f in np.unique(t)[:: max(1, len(np.unique(t)) // 4)]:
        rows = truth[truth.frame == f].set_index("id")
        for p in regionprops(sim.instances[f]):
            cy, cx = p.centroid
            assert abs(cx - rows.x[p.label]) < 0.5 and abs(cy - rows.y[p.label]) < 0.5


def test_rod_truth_matches_masks(rods):
    check_truth_matches_masks(rods)
    assert rods.frames.dtype == np.float32 and rods.labels.dtype == np.uint8
    assert rods.instances.dtype == np.int32 and rods.class_names == ["background", "rod"]
    assert np.all((rods.truth.angle >= -np.pi) & (rods.truth.angle < np.pi))


def test_rod_mask_orientation_and_area(rods):
    length, width = ROD.get("length", 16.0), ROD.get("width", 5.0)
    area = np.pi * (width / 2) ** 2 + (length - width) * width
    for f in (0, 10, 20, 29):
        rows = rods.truth[rods.truth.frame == f].set_index("id")
        for p in regionprops(rods.instances[f]):
            # skimage orientation: angle from the row axis; axis angle here = orientation + pi/2 (mod pi).
            assert circ_diff(p.orientation + np.pi / 2, rows.angle[p.label], np.pi) < np.deg2rad(3)
            assert abs(p.area - area) < 0.1 * area


def test_rod_head_is_brighter(clean_rods):
    sim = clean_rods
    assert sim.frames.min() >= 0 and sim.frames.max() <= 1.0 + 1e-6
    for row in sim.truth[sim.truth.frame.isin([0, 29])].itertuples():
        mask = sim.instances[row.frame] == row.id
        rr, cc = np.nonzero(mask)
        w = sim.frames[row.frame][mask]
        ux, uy = head_dir(row.angle)
        # Relative to the mask centroid, so pixelation of the mask cannot fake a shift.
        s = (cc - cc.mean()) * ux + (rr - rr.mean()) * uy
        assert np.sum(w * s) / w.sum() > 0.15  # intensity centroid lies toward the head


def test_subpixel_position_changes_image():
    a = simulate_rods(size=48, frames=1, count=1, noise=0, tilt=0, pair_fraction=0, seed=1).frames[0]
    b = simulate_rods(size=48, frames=1, count=1, noise=0, tilt=0, pair_fraction=0, seed=1,
                      lattice_angle=0.25 + 1e-3).frames[0]
    assert 0 < np.abs(a - b).max() < 0.1
    assert 0 < np.mean((a > 0) & (a < 0.5)) # anti-aliased edge pixels exist


def test_six_variants_then_four(rods):
    truth, empty = rods.truth, 0
    before, after = truth[truth.frame < 15], truth[truth.frame >= 15]
    assert sorted(before.variant.unique()) == [0, 1, 2, 3, 4, 5]
    assert sorted(after.variant.unique()) == [1, 2, 4, 5]
    assert not np.any(after.variant % 3 == empty)
    variant_angle = 0.25 + truth.variant * np.pi / 3
    assert np.all(circ_diff(truth.angle, variant_angle, 2 * np.pi) < 5 * 0.05)
    # Six angle-histogram peaks before, four after: bins around each variant angle.
    centres = 0.25 + np.arange(6) * np.pi / 3
    def peaks(a):
        return [int(np.sum(circ_diff(a, c, 2 * np.pi) < 0.2)) for c in centres]
    assert all(n > 0 for n in peaks(before.angle))
    assert [n > 0 for n in peaks(after.angle)] == [False, True, True, False, True, True]


def test_other_empty_direction_and_no_transition():
    sim = simulate_rods(size=96, frames=6, count=14, transition_frame=3, empty_direction=2, seed=2)
    after = sim.truth[sim.truth.frame >= 3]
    assert sorted(after.variant.unique()) == [0, 1, 3, 4]
    never = simulate_rods(size=96, frames=6, count=14, transition_frame=6, seed=2)
    assert sorted(never.truth[never.truth.frame == 5].variant.unique()) == [0, 1, 2, 3, 4, 5]


def test_births_deaths_and_count(rods):
    truth = rods.truth
    first, last = truth.groupby("id").frame.min(), truth.groupby("id").frame.max()
    assert (first > 0).sum() >= 3  # births
    assert (last < ROD["frames"] - 1).sum() >= 3  # deaths
    per_frame = truth.groupby("frame").size()
    assert abs(per_frame.mean() - ROD["count"]) < 0.25 * ROD["count"]
    assert per_frame.min() >= 0.6 * ROD["count"]
    # An id is one continuous life: never reused after it disappears.
    spans = truth.groupby("id").frame.agg(["min", "max", "size"])
    assert np.all(spans["max"] - spans["min"] + 1 == spans["size"])


def sampled_gaps(rows, length, width):
    """Edge-to-edge distances from each capsule to its nearest other, by dense sampling of the axes."""
    s = np.linspace(-(length - width) / 2, (length - width) / 2, 150)[None, :, None]
    centre = rows[["x", "y"]].to_numpy()[:, None, :]
    pts = centre + s * np.stack(head_dir(rows.angle.to_numpy()), -1)[:, None, :]
    gaps = np.full(len(rows), np.inf)
    for i in range(len(rows)):
        d = np.linalg.norm(pts[i][None, :, None] - pts[:, None], axis=-1).min(axis=(1, 2))
        d[i] = np.inf
        gaps[i] = d.min() - width
    return gaps


def test_touching_pairs_and_no_overlap(rods):
    truth = rods.truth
    assert truth.touching.mean() > 0.1
    gaps = []
    for f in (0, 14, 15, 29):
        rows = truth[truth.frame == f]
        g = sampled_gaps(rows, 16.0, 5.0)
        np.testing.assert_array_equal(rows.touching, g < 2.0)
        gaps.append(g)
    gaps = np.concatenate(gaps)
    assert gaps.min() >= 0.5 - 0.02  # min_gap between capsules
    assert np.sum(np.abs(gaps - 0.75) < 0.02) >= 4  # side-by-side pairs, 0.75 px apart


def test_segment_distance_against_sampling():
    rng = np.random.default_rng(0)
    p1, q1, p2, q2 = rng.uniform(0, 10, (4, 60, 2))
    s = np.linspace(0, 1, 200)[:, None, None]
    a, b = p1 + s * (q1 - p1), p2 + s * (q2 - p2)
    brute = np.min(np.linalg.norm(a[:, None] - b[None], axis=-1), axis=(0, 1))
    d = segment_distance(p1, q1, p2, q2)
    assert np.all(d <= brute + 1e-9) and np.all(brute - d < 0.1)


def test_determinism():
    a, b = simulate_rods(size=64, frames=5, count=6, seed=7), simulate_rods(size=64, frames=5, count=6, seed=7)
    c = simulate_rods(size=64, frames=5, count=6, seed=8)
    for name in ("frames", "labels", "instances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.truth.equals(b.truth) and a.params == b.params
    assert not np.array_equal(a.frames, c.frames) and not a.truth.equals(c.truth)
    x, y = simulate_atoms(**ATOM), simulate_atoms(**{**ATOM, "seed": 6})
    np.testing.assert_array_equal(x.frames, simulate_atoms(**ATOM).frames)
    assert not np.array_equal(x.frames, y.frames)
    again = simulate(**a.params)  # params hold everything needed, kind included
    np.testing.assert_array_equal(again.frames, a.frames)


def test_afm_noise_statistics():
    noise, line = 0.1, 0.08
    sim = simulate_rods(size=128, frames=6, count=8, noise=noise, line_noise=line, tilt=0.4, seed=4)
    yy, xx = np.mgrid[:128, :128]
    line_sd, white_sd, tilts = [], [], []
    for f in range(sim.frames.shape[0]):
        bg = ~ndimage.binary_dilation(sim.labels[f] > 0, iterations=2)
        img = sim.frames[f].astype(float)
        design = np.stack([xx[bg], yy[bg], np.ones(bg.sum())], 1)
        coef = np.linalg.lstsq(design, img[bg], rcond=None)[0]
        tilts.append(np.hypot(*coef[:2]) * 127)
        res = np.where(bg, img - (coef[0] * xx + coef[1] * yy + coef[2]), np.nan)
        medians = np.nanmedian(res, axis=1)
        line_sd.append(np.std(medians))
        res -= medians[:, None]
        white_sd.append(np.nanstd(res))
    assert abs(np.mean(white_sd) - noise) < 0.1 * noise
    assert abs(np.mean(line_sd) - line) < 0.25 * line
    assert abs(np.mean(tilts) - 0.4) < 0.1  # plane of the requested amplitude across the frame
    assert sim.params["line_noise"] == line
    assert simulate_rods(size=64, frames=1, count=1, noise=0.2).params["line_noise"] == pytest.approx(0.1)


def test_atom_truth_matches_masks(atoms):
    check_truth_matches_masks(atoms)
    assert atoms.class_names == ["background", "carbon", "dopant"]
    assert np.allclose(atoms.truth.angle, 0.2)
    r = atoms.params["label_radius"]
    assert atoms.truth.x.min() >= r and atoms.truth.x.max() <= 63 - r


def test_honeycomb_geometry():
    sim = simulate_atoms(size=64, frames=1, dopants=0, vacancies=0, hole_start_radius=0.0,
                         hole_growth=0.0, jitter=0.0, lattice_angle=0.2)
    xy = sim.truth[["x", "y"]].to_numpy()
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    order = np.sort(d, axis=1)[:, 1:5]
    inner = np.all((xy > 10) & (xy < 53), axis=1)
    # Three neighbours at `spacing`, the next at sqrt(3) * spacing.
    assert np.allclose(order[inner, :3], 6.0) and np.allclose(order[inner, 3], 6.0 * np.sqrt(3))
    # Bonds point along lattice_angle + 90 deg (mod 60 deg) as displayed (y up).
    i, j = np.nonzero((np.abs(d - 6.0) < 0.01) & inner[:, None])
    bond = np.arctan2(-(xy[j, 1] - xy[i, 1]), xy[j, 0] - xy[i, 0])
    assert np.all(circ_diff(bond, 0.2 + np.pi / 2, np.pi / 3) < 1e-6)


def test_atom_dopants_and_hole(atoms):
    truth = atoms.truth
    dop = truth[truth["class"] == 2].groupby("frame").size()
    assert len(dop) == ATOM["frames"] and np.all(dop == ATOM["dopants"])
    assert truth.loc[truth["class"] == 2].id.nunique() == ATOM["dopants"]
    n = truth.groupby("frame").size()
    assert n.iloc[-1] < n.iloc[0] - 10 and np.all(np.diff(n.to_numpy()[::4]) < 0)
    for f, rows in truth.groupby("frame"):
        radius = ATOM["hole_start_radius"] + ATOM["hole_growth"] * f
        dist = np.hypot(rows.x - 31.5, rows.y - 31.5)
        assert dist.min() > radius - 1
    # Dopants are brighter in the movie.
    f0 = truth[truth.frame == 0]
    val = atoms.frames[0][np.rint(f0.y).astype(int), np.rint(f0.x).astype(int)]
    assert np.median(val[f0["class"] == 2]) > 1.5 * np.median(val[f0["class"] == 1])


def test_atom_vacancies():
    base = dict(ATOM, jitter=0.0, hole_start_radius=0.0, hole_growth=0.0)
    full = simulate_atoms(**{**base, "vacancies": 0})
    holey = simulate_atoms(**{**base, "vacancies": 7})
    missing = set(full.truth[full.truth.frame == 0].id) - set(holey.truth[holey.truth.frame == 0].id)
    assert len(missing) == 7
    assert len(full.truth[full.truth.frame == 0]) - len(holey.truth[holey.truth.frame == 0]) == 7
    spots = full.truth[(full.truth.frame == 0) & full.truth.id.isin(missing)]
    r, c = np.rint(spots.y).astype(int), np.rint(spots.x).astype(int)
    assert np.all(holey.frames[:, r, c].mean(0) < 0.3) and np.all(holey.labels[0, r, c] == 0)


def test_atom_poisson_noise_scales_with_dose():
    base = dict(size=48, frames=40, jitter=0.0, hole_start_radius=0.0, hole_growth=0.0,
                gaussian_noise=0.0, dopants=0, vacancies=0)
    for dose in (20.0, 200.0):
        sim = simulate_atoms(**base, dose=dose)
        mean, var = sim.frames.mean(0), sim.frames.var(0, ddof=1)
        bright = mean > 0.5
        assert sim.frames[:, bright].mean() == pytest.approx(mean[bright].mean())
        assert var[bright].sum() / mean[bright].sum() * dose == pytest.approx(1.0, rel=0.15)
    read = simulate_atoms(**{**base, "dose": 1e7, "gaussian_noise": 0.05})
    dark = read.frames.mean(0) < 0.01
    assert read.frames[:, dark].std() == pytest.approx(0.05, rel=0.1)


@pytest.mark.parametrize("kind", ["rods", "atoms"])
def test_to_dataset_round_trip(kind, tmp_path):
    params = dict(ROD, frames=4) if kind == "rods" else dict(ATOM, frames=3)
    sim = simulate(kind, **params)
    ds = to_dataset(sim, pixel_size_nm=0.5, frame_interval_s=2.0)
    ds.to_netcdf(tmp_path / "movie.nc")
    with xr.open_dataset(tmp_path / "movie.nc") as back:
        back.load()
    for name, dtype in (("frames", np.float32), ("labels", np.uint8), ("instances", np.int32)):
        assert back[name].dims == ("frame", "y", "x") and back[name].dtype == dtype
        np.testing.assert_array_equal(back[name].values, getattr(sim, name))
    np.testing.assert_array_equal(back.frame.values, np.arange(len(sim.frames)))
    np.testing.assert_array_equal(back.x.values, np.arange(sim.frames.shape[2]))
    assert back.attrs["pixel_size_nm"] == 0.5 and back.attrs["frame_interval_s"] == 2.0
    assert back.attrs["modality"] == {"rods": "AFM (simulated)", "atoms": "STEM (simulated)"}[kind]
    assert back.attrs["kind"] == kind and back.attrs["class_names"] == ",".join(sim.class_names)
    for name, value in sim.params.items():
        if name != "kind":
            assert back.attrs[f"sim_{name}"] == value


def test_to_dataset_casts_bools():
    sim = simulate_rods(size=48, frames=1, count=1)
    sim = dataclasses.replace(sim, params={**sim.params, "flag": True})
    assert to_dataset(sim, 1.0, 1.0).attrs["sim_flag"] == 1
    with pytest.raises(ValueError, match="pixel_size_nm"):
        to_dataset(sim, 0.0, 1.0)


@pytest.mark.parametrize("func, kwargs, name", [
    (simulate_rods, dict(size=0), "size"),
    (simulate_rods, dict(size=20), "size"),
    (simulate_rods, dict(frames=0), "frames"),
    (simulate_rods, dict(frames=2.5), "frames"),
    (simulate_rods, dict(count=-1), "count"),
    (simulate_rods, dict(width=0), "width"),
    (simulate_rods, dict(length=3.0), "length"),
    (simulate_rods, dict(noise=-0.1), "noise"),
    (simulate_rods, dict(transition_frame=-1), "transition_frame"),
    (simulate_rods, dict(empty_direction=3), "empty_direction"),
    (simulate_rods, dict(death_rate=1.5), "death_rate"),
    (simulate_rods, dict(pair_fraction=2.0), "pair_fraction"),
    (simulate_rods, dict(pair_gap=0.1), "pair_gap"),
    (simulate_rods, dict(angle_memory=1.2), "angle_memory"),
    (simulate_rods, dict(lattice_angle="flat"), "lattice_angle"),
    (simulate_rods, dict(seed=True), "seed"),
    (simulate_atoms, dict(spacing=0), "spacing"),
    (simulate_atoms, dict(dopants=-1), "dopants"),
    (simulate_atoms, dict(dopants=100000), "dopants"),
    (simulate_atoms, dict(dose=0), "dose"),
    (simulate_atoms, dict(label_radius=4.0), "label_radius"),
    (simulate_atoms, dict(gaussian_noise=-1), "gaussian_noise"),
])
def test_bad_parameters(func, kwargs, name):
    with pytest.raises(ValueError, match=name):
        func(**kwargs)


def test_unknown_kind():
    with pytest.raises(ValueError, match="'blobs'"):
        simulate("blobs")


def test_rod_params_are_the_one_source():
    import inspect

    names = [f.name for f in dataclasses.fields(RodParams)]
    sim = simulate_rods(size=48, frames=1, count=1)
    assert list(sim.params) == ["kind", *names]
    assert list(inspect.signature(simulate_rods).parameters) == names
    assert RodParams(count=2, death_rate=0.5).birth_rate == 1.0
    with pytest.raises(TypeError, match="colour"):
        simulate_rods(colour="red")
    with pytest.raises(TypeError):
        simulate_rods(128, 60, 24, 16.0, 5.0, 0.15, 30, 0, 0.25)  # lattice_angle is keyword-only
