"""The new simulated kinds (cells, spheres), crossing rods, low-dose and bright-field atoms,
the shared imaging effects and the parameter tables: values against known answers."""
import dataclasses
import inspect

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import regionprops
from test_simulate import check_truth_matches_masks, circ_diff

from rotdyn.simulate import (KINDS, ParameterError, check_params, parameter_names, simulate, simulate_cells,
                             simulate_rods, simulate_spheres, to_dataset)
from rotdyn.simulate.geometry import axes, point_segment_distance, segment_distance
from rotdyn.simulate.imaging import line_jitter, psf_kernel

# Every optical effect off: the clean object on a zero background.
CLEAN = dict(noise=0.0, blur=0.0, halo=0.0, illumination=0.0, texture=0.0, level=0.0)


# ------------------------------------------------------------------ cells
@pytest.fixture(scope="module")
def cells():
    return simulate_cells(size=96, frames=12, count=8, length=16.0, length_sd=3.0, width=5.0, seed=4)


def test_cell_truth_matches_masks(cells):
    check_truth_matches_masks(cells)
    assert cells.class_names == ["background", "cell"] and cells.truth.id.nunique() == 8
    for f in (0, 11):
        rows = cells.truth[cells.truth.frame == f].set_index("id")
        for p in regionprops(cells.instances[f]):
            length = rows.length[p.label]
            area = np.pi * 2.5 ** 2 + (length - 5.0) * 5.0
            assert abs(p.area - area) < 0.1 * area
            assert circ_diff(p.orientation + np.pi / 2, rows.angle[p.label], np.pi) < np.deg2rad(4)


def test_cell_lengths_follow_the_distribution():
    lengths = np.concatenate([
        simulate_cells(size=200, frames=1, count=50, length=12.0, length_sd=3.0, width=4.0, seed=s,
                       **CLEAN).truth.length.to_numpy() for s in range(3)])
    assert len(lengths) == 150
    assert abs(lengths.mean() - 12.0) < 0.75 and abs(lengths.std() - 3.0) < 0.5
    assert lengths.min() >= 4.5  # truncated at width + 0.5


def test_cells_swim_along_their_heading_and_rotate():
    sim = simulate_cells(size=128, frames=30, count=4, speed=0.8, speed_sd=0.2, turning=0.0, rotation=0.05,
                         diffusion=0.0, seed=2, **CLEAN)
    t = sim.truth.sort_values(["id", "frame"])
    step = t.groupby("id")[["x", "y"]].diff().dropna()
    nxt = t.loc[step.index]
    expect = np.stack([np.cos(nxt.angle), -np.sin(nxt.angle)], 1) * nxt.speed.to_numpy()[:, None]
    swam = np.all(np.abs(step.to_numpy() - expect) < 1e-9, axis=1)
    assert swam.mean() > 0.8  # the rest bounced off an edge or a neighbour
    turn = t.groupby("id").angle.diff().loc[step.index][swam]
    assert np.allclose(circ_diff(turn, 0.05, 2 * np.pi), 0, atol=1e-9)


def test_default_cells_look_like_phase_contrast():
    sim = simulate_cells(size=96, frames=2, count=5, seed=1)
    f, lab = sim.frames[0], sim.labels[0] > 0
    bg = ~ndimage.binary_dilation(lab, iterations=6)
    ring = ndimage.binary_dilation(lab, iterations=3) & ~ndimage.binary_dilation(lab, iterations=1)
    level = np.median(f[bg])
    assert abs(level - 0.8) < 0.1
    assert np.median(f[lab]) > level + 0.6 and np.median(f[ring]) < level - 0.15  # bright body, dark halo


# ---------------------------------------------------------------- spheres
def test_sphere_truth_matches_masks_and_dark_contrast():
    sim = simulate_spheres(size=64, frames=6, count=8, diameter=5.0, seed=3)
    check_truth_matches_masks(sim)
    assert sim.truth.angle.isna().all() and (sim.truth.diameter == 5.0).all()
    f, lab = sim.frames[0], sim.labels[0] > 0
    assert f[lab].mean() < np.median(f[~lab]) - 0.3


def test_spheres_beyond_the_focus_depth_are_drawn_but_not_labelled():
    every = simulate_spheres(size=96, frames=3, count=30, seed=4)
    focused = simulate_spheres(size=96, frames=3, count=30, seed=4, focus_depth=1.0)
    assert np.array_equal(every.frames, focused.frames)  # the same picture: only what counts as a particle differs
    out = focused.truth[focused.truth.defocus > 1.0]
    assert 0 < len(out) < len(focused.truth) and (out["class"] == 0).all()
    assert (focused.truth[focused.truth.defocus <= 1.0]["class"] == 1).all() and (every.truth["class"] == 1).all()
    for row in out.itertuples():  # no label at the centre of a sphere out of focus, as there is without a depth
        y, x = int(round(row.y)), int(round(row.x))
        assert focused.labels[row.frame, y, x] == 0 and every.labels[row.frame, y, x] == 1


def test_spheres_diffuse_with_the_set_step():
    sim = simulate_spheres(size=128, frames=40, count=20, diffusion=0.5, seed=5, **CLEAN)
    t = sim.truth.sort_values(["id", "frame"])
    step = t.groupby("id")[["x", "y"]].diff().dropna().to_numpy()
    assert len(step) == 20 * 39
    assert np.mean(np.sum(step ** 2, 1)) == pytest.approx(2 * 0.5 ** 2, rel=0.1)  # 2-D MSD per frame
    assert np.abs(step.mean(0)).max() < 0.06  # no drift


@pytest.mark.parametrize("sigma", [1.5, 2.5])
def test_blurred_disc_width_matches_the_psf(sigma):
    """A disc of radius R blurred by a Gaussian of sd s has variance R^2/4 + s^2 (+1/12 px^2 of pixels) per axis."""
    sim = simulate_spheres(size=48, frames=1, count=1, diameter=4.0, defocus=0.0, contrast="bright",
                           seed=0, **{**CLEAN, "blur": sigma})
    img, row = sim.frames[0].astype(float), sim.truth.iloc[0]
    yy, xx = np.mgrid[:48, :48]
    w = img / img.sum()
    cx, cy = (w * xx).sum(), (w * yy).sum()
    assert abs(cx - row.x) < 0.05 and abs(cy - row.y) < 0.05  # blur moves nothing
    var = ((w * (xx - cx) ** 2).sum() + (w * (yy - cy) ** 2).sum()) / 2
    assert np.sqrt(var) == pytest.approx(np.sqrt(2.0 ** 2 / 4 + sigma ** 2 + 1 / 12), rel=0.03)


def test_airy_psf_has_its_dark_ring_and_gaussian_core():
    k = psf_kernel(2.0, "airy")
    c = k.shape[0] // 2
    profile = k[c, c:] / k[c, c]
    first_min = int(np.argmin(profile[:10]))
    assert abs(first_min - 2.9 * 2.0) <= 0.6  # first dark ring at 2.9 sigma
    half = np.interp(0.5, profile[:first_min][::-1], np.arange(first_min)[::-1])
    assert 2 * half == pytest.approx(2.355 * 2.0, rel=0.08)  # central lobe as wide as the Gaussian's


# ----------------------------------------------------------------- imaging
def test_dark_contrast_is_the_bright_movie_reflected_about_the_background():
    """With every effect on (halo, PSF, illumination, texture, noise, scan jitter), bright + dark = 2 x empty."""
    base = dict(size=64, frames=3, count=4, length=14.0, length_sd=2.0, seed=6, line_jitter=0.3, line_noise=0.02)
    bright = simulate_cells(**base).frames.astype(float)
    dark = simulate_cells(**base, contrast="dark").frames.astype(float)
    empty = simulate_cells(**{**base, "count": 0}).frames.astype(float)
    assert np.abs(bright - empty).max() > 0.5
    np.testing.assert_allclose(bright + dark, 2 * empty, atol=1e-5)
    rods = dict(size=64, frames=2, count=5, noise=0.0, line_noise=0.0, tilt=0.0, level=1.0, seed=2)
    up, down = simulate_rods(**rods).frames, simulate_rods(**rods, contrast="dark").frames
    np.testing.assert_allclose(up + down, 2.0, atol=1e-6)


def test_effects_leave_the_particles_alone():
    plain = simulate_cells(size=64, frames=3, count=4, length=14.0, seed=9, **CLEAN)
    looked = simulate_cells(size=64, frames=3, count=4, length=14.0, seed=9, blur=2.0, psf="airy", texture=0.3)
    assert plain.truth.equals(looked.truth) and np.array_equal(plain.labels, looked.labels)


def test_halo_sign_and_place():
    rims = {}
    for halo in (-2.0, 0.0, 2.0):
        sim = simulate_cells(size=80, frames=1, count=4, length=16.0, seed=1,
                             **{**CLEAN, "level": 1.0, "blur": 1.0, "halo": halo})
        f, lab = sim.frames[0], sim.labels[0] > 0
        ring = ndimage.binary_dilation(lab, iterations=3) & ~ndimage.binary_dilation(lab)
        rims[halo] = f[ring].mean() - 1.0
        assert f[lab].mean() > 1.5
    assert rims[-2.0] < -0.2 and rims[2.0] > 0.25 and 0 < rims[0.0] < 0.1  # dark rim, bright rim, blur only
    assert rims[2.0] - rims[0.0] == pytest.approx(rims[0.0] - rims[-2.0], rel=1e-4)  # linear in the amplitude


def test_illumination_is_a_smooth_field_within_the_amplitude():
    sim = simulate_cells(size=64, frames=2, count=0, **{**CLEAN, "level": 2.0, "illumination": 0.2})
    field = sim.frames / 2.0
    np.testing.assert_allclose(field[0], field[1])
    assert field.min() == pytest.approx(0.8, abs=1e-5) and field.max() == pytest.approx(1.2, abs=1e-5)
    y, x = np.mgrid[:64, :64] / 63.0
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1).reshape(-1, 6)
    residual = field[0].ravel() - design @ np.linalg.lstsq(design, field[0].ravel(), rcond=None)[0]
    assert np.abs(residual).max() < 1e-5  # a quadratic


def test_texture_sd_and_correlation_length():
    sim = simulate_spheres(size=128, frames=2, count=0, **{**CLEAN, "level": 1.0, "texture": 0.1},
                           texture_length=3.0)
    tex = sim.frames[0].astype(float) - 1.0
    np.testing.assert_allclose(sim.frames[0], sim.frames[1])  # static
    assert tex.std() == pytest.approx(0.1, rel=1e-4)
    for lag, expect in ((3, np.exp(-1 / 4)), (6, np.exp(-1))):
        r = np.mean([np.corrcoef(tex[:, :-lag].ravel(), tex[:, lag:].ravel())[0, 1],
                     np.corrcoef(tex[:-lag].ravel(), tex[lag:].ravel())[0, 1]])
        assert abs(r - expect) < 0.08


def test_scan_noise():
    ramp = np.broadcast_to(np.arange(64.0), (20, 64, 64))
    shifted = line_jitter(ramp, 0.3, np.random.default_rng(0))
    shift = (shifted - ramp)[..., 4:-4]
    assert np.allclose(shift, shift[..., :1])  # one shift per scan line
    assert shift[..., 0].std() == pytest.approx(0.3, rel=0.05)
    # Atoms with the lattice gone (all in the hole): the image is the row offsets alone.
    sim = simulate("atoms", size=64, frames=10, dopants=0, vacancies=0, hole_start_radius=200.0,
                   gaussian_noise=0.0, line_noise=0.1)
    rows = sim.frames.astype(float)
    assert np.allclose(rows, rows[..., :1]) and rows[..., 0].std() == pytest.approx(0.1, rel=0.1)


# ------------------------------------------------------------------- rods
def test_independent_rods_cross_and_the_top_one_owns_the_pixels():
    sim = simulate_rods(size=96, frames=3, count=30, placement="independent", seed=3)
    truth = sim.truth
    assert (truth.visible < 0.9).any() and truth.touching.mean() > 0.3
    grid = np.stack(np.meshgrid(np.arange(96.0), np.arange(96.0)), -1)  # (row, col, (x, y))
    for f in range(3):
        rows = truth[truth.frame == f].reset_index(drop=True)
        p, q = axes(rows[["x", "y"]].to_numpy(), rows.angle.to_numpy(), (16.0 - 5.0) / 2)
        d = segment_distance(p[:, None], q[:, None], p[None], q[None])
        np.fill_diagonal(d, np.inf)
        if f == 0:
            assert (d == 0).sum() >= 2  # axes that cross
            assert np.sum(np.abs(d - 5.75) < 0.01) >= 2  # side-by-side pairs kept (width + pair_gap)
        order = {i: k for k, i in enumerate(rows.id)}
        for k, row in rows.iterrows():
            alone = point_segment_distance(grid, p[k], q[k]) <= 2.5  # the rod's own capsule
            owner = sim.instances[f][alone]
            assert np.all(owner > 0) and row.visible == pytest.approx(np.mean(owner == row.id))
            assert all(order[i] > k for i in np.unique(owner[owner != row.id]))  # covered by later rods only
    lattice = simulate_rods(size=96, frames=4, count=14, seed=3)
    assert (lattice.truth.visible == 1.0).all()


# ------------------------------------------------------------------ atoms
def test_low_dose_atoms_have_poisson_statistics():
    base = dict(size=48, frames=60, jitter=0.0, hole_start_radius=0.0, hole_growth=0.0, gaussian_noise=0.0,
                dopants=0, vacancies=0)
    for dose, background in ((1.0, "dark"), (10.0, "dark"), (10.0, "bright")):
        sim = simulate("atoms", **base, dose=dose, background=background)
        counts = sim.frames.astype(float) * dose
        assert np.allclose(counts, np.round(counts), atol=1e-3)  # whole counts
        mean, var = counts.mean(0), counts.var(0, ddof=1)
        assert var.sum() / mean.sum() == pytest.approx(1.0, rel=0.06)  # Poisson: variance = mean
        if dose == 1.0:
            # 2 pi sigma^2 = 9 counts per atom at dose 1, times the honeycomb's 4 / (3 sqrt(3) a^2) atoms per px^2.
            expect = 2 * np.pi * 1.2 ** 2 * 4 / (3 * np.sqrt(3) * 6.0 ** 2)
            assert counts[:, 8:-8, 8:-8].mean() == pytest.approx(expect, rel=0.05)
    bright = simulate("atoms", **{**base, "frames": 4}, dose=50.0, background="bright")
    at = bright.truth[bright.truth.frame == 0]
    centre = bright.frames[:, np.rint(at.y).astype(int), np.rint(at.x).astype(int)].mean()
    assert np.median(bright.frames) > centre + 0.7  # atoms are dips in a bright background


# --------------------------------------------------------- parameter tables
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_table_per_kind(kind):
    table = KINDS[kind].params
    names = [f.name for f in dataclasses.fields(table)]
    assert parameter_names(kind) == names and len(set(names)) == len(names)
    func = {"rods": simulate_rods, "cells": simulate_cells, "spheres": simulate_spheres}.get(kind)
    if func is not None:
        assert list(inspect.signature(func).parameters) == names
    small = check_params(kind, {"size": 48, "frames": 2, **({} if kind == "atoms" else {"count": 3})})
    assert list(small) == ["kind", *names]
    sim = simulate(**small) if kind != "atoms" else simulate(**{**small, "dopants": 1, "vacancies": 1})
    assert sim.params == ({**small, "dopants": 1, "vacancies": 1} if kind == "atoms" else small)
    assert sim.class_names == list(KINDS[kind].class_names)
    ds = to_dataset(sim, 1.0, 1.0)
    assert ds.attrs["modality"] == KINDS[kind].modality and ds.attrs["sim_contrast" if kind != "atoms"
                                                                        else "sim_background"] in ("bright", "dark")


def test_check_params_names_the_kind_and_the_problem():
    with pytest.raises(ValueError, match=r"simulate kind 'atoms' has no parameter 'length' \(its parameters: size, "):
        check_params("atoms", {"length": 16.0})
    with pytest.raises(ValueError, match="simulate kind 'spheres': diameter must be >= 1.0"):
        check_params("spheres", {"diameter": 0.2})
    with pytest.raises(ParameterError, match=r"simulate kind 'cells': contrast must be one of \['bright', 'dark'\], "
                                             "got 'grey'"):
        check_params("cells", {"contrast": "grey"})
    with pytest.raises(ValueError, match="placement must be one of"):
        check_params("rods", {"placement": "random"})
    with pytest.raises(ValueError, match="was given kind='rods'"):
        check_params("cells", {"kind": "rods"})
    with pytest.raises(ValueError, match="unknown kind 'blobs'"):
        parameter_names("blobs")
    with pytest.raises(TypeError, match="has no parameter 'colour'"):  # also a TypeError, as Python's own
        simulate("cells", colour="red")
    assert check_params("cells", {"kind": "cells"})["halo"] == -2.5
    assert check_params("atoms", {"atom_sigma": 1.0})["label_radius"] == 1.5
