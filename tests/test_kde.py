"""Tests of rotdyn.kde: wrapped angle kernel, normalisation, empty frames, peaks, bandwidths, speed."""
import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.signal import argrelmax

from rotdyn.contracts import latent_names
from rotdyn.evaluate.kde import synthetic_latents, time_kde
from rotdyn.kde import joint_density, kde_maps, rule_bandwidth


def make_latents(frame, angle, k=2, seed=0, **extra):
    """A minimal latents.nc for the given per-particle frames and angles."""
    rng = np.random.default_rng(seed)
    frame = np.asarray(frame, np.int64)
    n = frame.size
    data = {"angle": ("particle", np.asarray(angle, float)), "frame": ("particle", frame),
            "dx": ("particle", extra.get("dx", rng.normal(0, 0.5, n))),
            "dy": ("particle", rng.normal(0, 0.5, n)),
            "z": (("particle", "latent"), rng.normal(0, 1, (n, k)))}
    return xr.Dataset(data, coords={"particle": np.arange(n), "latent": np.arange(1, k + 1)},
                      attrs={"frame_interval_s": 0.5})


def wrap(a):
    return np.mod(np.asarray(a) + np.pi, 2 * np.pi) - np.pi


def circular_peaks(density, rel=0.2):
    """Local maxima on the circle above ``rel`` of the maximum."""
    i = argrelmax(density, mode="wrap")[0]
    return int((density[i] > rel * density.max()).sum())


def test_contract_names_and_normalisation():
    lat = make_latents(np.repeat([3, 4, 6], 20), np.random.default_rng(1).uniform(-np.pi, np.pi, 60))
    frames = np.arange(2, 8)
    out = kde_maps(lat, frames)
    assert latent_names(lat) == ["angle", "dx", "dy", "z1", "z2"]
    for name in ("angle", "dx", "dy", "z1", "z2"):
        d = out[f"density_{name}"]
        assert d.dims == ("frame", f"{name}_grid") and d.sizes[f"{name}_grid"] == 181
        assert np.isfinite(out.attrs[f"bandwidth_{name}"])
    np.testing.assert_array_equal(out["frame"], frames)
    np.testing.assert_array_equal(out["count"], [0, 20, 20, 0, 20, 0])
    g = out["angle_grid"].values
    assert g[0] == -np.pi and g[-1] < np.pi
    for f in (3, 4, 6):
        assert out["density_angle"].sel(frame=f).sum() * (g[1] - g[0]) == pytest.approx(1.0)
        assert np.trapezoid(out["density_dx"].sel(frame=f), out["dx_grid"]) == pytest.approx(1.0)
    # empty frames (2, 5, 7: before, between, after the data) are zero columns, not missing ones
    for f in (2, 5, 7):
        assert float(abs(out["density_angle"].sel(frame=f)).sum()) == 0
        assert float(abs(out["density_z2"].sel(frame=f)).sum()) == 0
    assert out.attrs["bandwidth_rule"] == "scott" and out.attrs["frame_interval_s"] == 0.5


def test_peak_wraps_around_pi():
    deg = np.radians
    angles = wrap(np.concatenate([np.full(10, deg(179.0)), np.full(10, deg(-179.0))]))
    out = kde_maps(make_latents(np.zeros(20), angles), [0], bandwidth=0.1, variables=["angle"])
    d = out["density_angle"].sel(frame=0).values
    g = out["angle_grid"].values
    # one peak across the wrap: both ends high, the middle empty, a single maximum on the circle
    assert d[0] > 0.9 * d.max() and d[-1] > 0.9 * d.max()
    assert d[np.argmin(abs(g))] < 1e-6 * d.max()
    assert circular_peaks(d) == 1
    assert abs(wrap(g[np.argmax(d)] - np.pi)) < deg(3)


def test_matches_brute_force_kernels():
    rng = np.random.default_rng(2)
    angles = rng.uniform(-np.pi, np.pi, 30)
    lat = make_latents(np.repeat([0, 1], 15), angles)
    h = 0.3
    out = kde_maps(lat, [0, 1], bandwidth=h, variables=["angle", "dx"])
    g = out["angle_grid"].values
    ref = stats.vonmises.pdf(g[:, None], 1 / h ** 2, loc=angles[None, :15]).mean(1)
    ref /= ref.sum() * (g[1] - g[0])
    np.testing.assert_allclose(out["density_angle"][0], ref, rtol=1e-5, atol=1e-5 * ref.max())
    gx = out["dx_grid"].values
    dx = lat["dx"].values[15:]
    ref = stats.norm.pdf(gx[:, None], dx[None, :], h).mean(1)
    np.testing.assert_allclose(out["density_dx"][1], ref / np.trapezoid(ref, gx), rtol=1e-5, atol=1e-5 * ref.max())


def test_six_then_four_variants():
    rng = np.random.default_rng(3)
    frames, per, T = 40, 60, 20
    variant_angles = 0.25 + np.pi / 3 * np.arange(6)
    frame = np.repeat(np.arange(frames), per)
    # variants dealt evenly; 0 and 3 empty from frame T on
    choice = np.where(frame < T, np.resize(np.arange(6), frame.size), np.resize([1, 2, 4, 5], frame.size))
    angles = wrap(variant_angles[choice] + rng.normal(0, 0.05, frame.size))
    out = kde_maps(make_latents(frame, angles), np.arange(frames), bandwidth=0.12, variables=["angle"])
    peaks = [circular_peaks(out["density_angle"].sel(frame=f).values) for f in range(frames)]
    assert peaks[:T] == [6] * T and peaks[T:] == [4] * (frames - T)


def test_fixed_and_rule_bandwidth_and_shared_grid():
    rng = np.random.default_rng(4)
    frame = np.repeat(np.arange(10), 50)
    dx = rng.normal(np.repeat(np.linspace(-2, 2, 10), 50), 0.3)  # range moves over time
    lat = make_latents(frame, rng.uniform(-np.pi, np.pi, 500), dx=dx)
    rule = kde_maps(lat, np.arange(10), variables=["dx", "angle"])
    fixed = kde_maps(lat, np.arange(10), bandwidth=0.2, variables=["dx", "angle"])
    mixed = kde_maps(lat, np.arange(10), bandwidth={"angle": 0.05}, variables=["dx", "angle"])
    # the rule is computed from the whole movie (scipy's Scott factor)
    assert rule.attrs["bandwidth_dx"] == pytest.approx(np.std(dx, ddof=1) * 500 ** -0.2)
    assert rule.attrs["bandwidth_dx"] == pytest.approx(np.sqrt(stats.gaussian_kde(dx).covariance[0, 0]))
    assert fixed.attrs["bandwidth_dx"] == 0.2 and fixed.attrs["bandwidth_angle"] == 0.2
    assert fixed.attrs["bandwidth_rule"] == "fixed"
    assert mixed.attrs["bandwidth_angle"] == 0.05 and mixed.attrs["bandwidth_dx"] == rule.attrs["bandwidth_dx"]
    # one dx grid for the whole movie, covering every frame's values with a margin
    grid = fixed["dx_grid"].values
    assert grid[0] < dx.min() - 0.5 and grid[-1] > dx.max() + 0.5
    assert grid[0] == pytest.approx(dx.min() - 3 * 0.2)
    means = np.trapezoid(fixed["density_dx"] * fixed["dx_grid"], fixed["dx_grid"], axis=1)
    assert np.all(np.diff(means) > 0)
    with pytest.raises(ValueError):
        kde_maps(lat, np.arange(10), bandwidth="nope")
    with pytest.raises(ValueError):
        kde_maps(lat, np.arange(10), bandwidth=-1.0)


def test_circular_rule_ignores_where_the_cut_is():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 0.2, 400)
    h0 = rule_bandwidth(wrap(a), circular=True)
    h1 = rule_bandwidth(wrap(a + np.pi), circular=True)  # the same cluster across the wrap
    assert h0 == pytest.approx(h1) and h0 == pytest.approx(np.std(a, ddof=1) * 400 ** -0.2, rel=1e-6)
    assert rule_bandwidth(a, "silverman") == pytest.approx(np.std(a, ddof=1) * (400 * 3 / 4) ** -0.2)


def test_no_particles_at_all_and_frames_not_listed():
    lat = make_latents(np.zeros(0), np.zeros(0))
    out = kde_maps(lat, np.arange(5))
    assert out["density_angle"].shape == (5, 181) and float(abs(out["density_angle"]).sum()) == 0
    assert int(out["count"].sum()) == 0
    lat = make_latents([0, 0, 9], [0.0, 0.1, 0.2])  # frame 9 is outside the listed frames
    out = kde_maps(lat, [0, 1], variables=["angle"])
    assert list(out["count"].values) == [2, 0]


def test_joint_density():
    rng = np.random.default_rng(6)
    n = 600
    angle = wrap(np.pi + rng.normal(0, 0.1, n))
    lat = make_latents(np.zeros(n), angle)
    j = joint_density(lat, "angle", "z1", grid=(90, 40))
    assert j.dims == ("z1_grid", "angle_grid") and j.shape == (40, 90)
    area = np.diff(j["angle_grid"][:2]).item() * np.diff(j["z1_grid"][:2]).item()
    assert float(j.sum()) * area == pytest.approx(1.0, rel=2e-2)
    marginal = j.sum("z1_grid").values
    assert circular_peaks(marginal) == 1 and marginal[0] > 0.5 * marginal.max()
    assert j.attrs["bandwidth_z1"] == pytest.approx(np.std(lat["z"][:, 0], ddof=1) * n ** (-1 / 6))


def test_speed():
    t = time_kde(300, 200, repeat=2)
    assert t["particles"] == 60000 and t["variables"] == "angle dx dy z1 z2"
    assert t["seconds"] < 2.0
    out = kde_maps(synthetic_latents(20, 10), np.arange(20))
    assert int(out["count"].sum()) == 200
