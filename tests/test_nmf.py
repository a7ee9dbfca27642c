"""Tests of rotdyn.nmf: factorisation contract, component order, transition frame and its uncertainty."""
import numpy as np
import xarray as xr

from rotdyn.kde import kde_maps
from rotdyn.nmf import change_point, nmf_maps
from rotdyn.simulate import simulate_rods
from rotdyn.store import write_netcdf


def bump(grid, centre, sd):
    return np.exp(-0.5 * ((grid - centre) / sd) ** 2)


def synthetic_kde(frames, share_b, seed=0, empty=()):
    """kde.nc-like maps: a mixture of two bumps, ``share_b(frame)`` of the second, plus noise."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(-1, 2, 120)
    a, b = bump(grid, 0.0, 0.15), bump(grid, 1.0, 0.15)
    a, b = a / np.trapezoid(a, grid), b / np.trapezoid(b, grid)
    s = share_b(frames)[:, None]
    d = (1 - s) * a + s * b + np.abs(rng.normal(0, 0.1, (frames.size, grid.size)))
    d /= np.trapezoid(d, grid, axis=1)[:, None]
    count = np.full(frames.size, 30)
    for f in empty:
        d[frames == f] = 0
        count[frames == f] = 0
    return xr.Dataset({"density_z1": (("frame", "z1_grid"), d), "count": ("frame", count)},
                      coords={"frame": frames, "z1_grid": grid}, attrs={"bandwidth_z1": 0.1})


def test_switch_at_frame_37(tmp_path):
    frames = np.arange(10, 70)  # the movie's numbering does not start at 0
    kde = synthetic_kde(frames, lambda f: np.where(f < 37, 0.2, 0.75), empty=(20, 55))
    out = nmf_maps(kde)
    assert out["weights_z1"].dims == ("component", "z1_grid") and out.sizes["component"] == 2
    assert out["endmembers_z1"].dims == ("component", "frame")
    assert bool(out["has_transition_z1"])
    assert abs(float(out["transition_frame_z1"]) - 37) <= 2
    assert float(out["transition_uncertainty_z1"]) <= 2
    assert out["transition_low_z1"] <= out["transition_frame_z1"] <= out["transition_high_z1"]
    assert float(out["transition_score_z1"]) > 0.8
    # each weight is a density; component 0 (the early one) is the bump at 0
    grid = out["z1_grid"].values
    np.testing.assert_allclose(np.trapezoid(out["weights_z1"], grid, axis=1), 1.0)
    e = out["endmembers_z1"]
    assert float(e.sel(component=0, frame=slice(10, 30)).mean()) > float(e.sel(component=0, frame=slice(45, 69)).mean())
    # empty frames are left out: NaN endmembers, no residual profile
    assert np.isnan(e.sel(frame=[20, 55])).all() and np.isfinite(e.sel(frame=[19, 21])).all()
    assert np.isnan(out["step_residual_z1"].sel(frame=[20, 55])).all()
    assert 0 <= float(out["reconstruction_error_z1"]) < 0.5
    best = frames[np.nanargmin(out["step_residual_z1"].values)]
    assert best == out["transition_frame_z1"].item()
    assert out.attrs["n_components"] == 2 and out.attrs["kde_bandwidth_z1"] == 0.1
    write_netcdf(out, tmp_path / "nmf.nc")
    back = xr.open_dataset(tmp_path / "nmf.nc")
    assert bool(back["has_transition_z1"]) and float(back["transition_frame_z1"]) == float(out["transition_frame_z1"])


def test_stationary_movie_has_no_transition():
    frames = np.arange(60)
    out = nmf_maps(synthetic_kde(frames, lambda f: np.full(f.shape, 0.4), seed=1, empty=(0, 1, 2, 30)))
    assert not bool(out["has_transition_z1"])
    assert float(out["transition_score_z1"]) < 0.5
    assert np.isnan(float(out["transition_frame_z1"])) and np.isnan(float(out["transition_uncertainty_z1"]))


def test_empty_frames_alone_make_no_transition():
    # a gap of empty frames between two stationary halves must not look like a step
    frames = np.arange(60)
    out = nmf_maps(synthetic_kde(frames, lambda f: np.full(f.shape, 0.4), seed=2, empty=range(25, 35)))
    assert not bool(out["has_transition_z1"])


def test_change_point_known_step():
    rng = np.random.default_rng(0)
    frames = np.arange(100, 180)
    x = np.where(frames < 140, 0.0, 1.0) + rng.normal(0, 0.2, frames.size)
    cp = change_point(x, frames)
    assert cp["has_transition"] and cp["frame"] == 140 and cp["low"] <= 140 <= cp["high"]
    assert cp["uncertainty"] <= 3 and cp["score"] > 0.7
    # noisier: wider interval, still containing the truth
    wide = change_point(np.where(frames < 140, 0.0, 1.0) + rng.normal(0, 0.35, frames.size), frames)
    assert wide["uncertainty"] >= cp["uncertainty"] and wide["low"] <= 140 <= wide["high"]
    # a constant series and too short a series: no transition
    assert not change_point(np.ones(30), np.arange(30))["has_transition"]
    assert np.isnan(change_point(np.arange(5.0), np.arange(5))["score"])
    # a step inside the first min_segment frames is not a candidate
    assert not np.isfinite(change_point(np.r_[0.0, np.ones(20)], np.arange(21), min_segment=3)["profile"][:3]).any()


def test_simulated_rods_transition():
    # 6 variants before frame 30, 4 from it on (the demo movie's settings)
    sim = simulate_rods(size=128, frames=60, count=24, transition_frame=30, seed=0)
    truth = sim.truth
    rng = np.random.default_rng(3)
    n = len(truth)
    angle = np.mod(truth["angle"].to_numpy() + rng.normal(0, np.radians(3), n) + np.pi, 2 * np.pi) - np.pi
    latents = xr.Dataset(
        {"angle": ("particle", angle), "frame": ("particle", truth["frame"].to_numpy()),
         "dx": ("particle", rng.normal(0, 0.3, n)), "dy": ("particle", rng.normal(0, 0.3, n)),
         "z": (("particle", "latent"), rng.normal(0, 1, (n, 2)))}, coords={"latent": [1, 2]})
    out = nmf_maps(kde_maps(latents, np.arange(60)), variables=["angle", "z1"])
    assert bool(out["has_transition_angle"])
    assert abs(float(out["transition_frame_angle"]) - 30) <= 5
    assert float(out["transition_uncertainty_angle"]) <= 5
    assert out["transition_low_angle"] <= 30 <= out["transition_high_angle"]
    assert not bool(out["has_transition_z1"])  # random content latents: no change
