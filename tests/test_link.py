"""Tests of rotdyn.link (trackpy linking, memory, drift, nm radius, track summaries) and its link scores."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rotdyn.evaluate.tracks import link_scores
from rotdyn.link import estimate_drift, estimate_track_drift, latents_table, link, search_range_px, track_summary
from rotdyn.simulate import simulate_rods


@pytest.fixture(scope="module")
def rods():
    """Simulated rod truth and detections = truth positions + 0.2 px noise."""
    truth = simulate_rods(size=128, frames=30, count=20, diffusion=0.3, seed=2).truth
    rng = np.random.default_rng(2)
    det = truth[["frame", "x", "y", "angle"]].copy()
    det[["x", "y"]] += rng.normal(0, 0.2, (len(det), 2))
    return truth, det


def table(rows):
    """frame, x, y, track table from (frame, x, y, track) tuples."""
    return pd.DataFrame(rows, columns=["frame", "x", "y", "track"])


# ----------------------------------------------------------------- link_scores on hand-made tables
def truth_two_particles(frames=4):
    """Particle id 7 at x = 0 and id 9 at x = 50, frames 0..frames-1."""
    return pd.DataFrame([(f, i, x, 0.0) for f in range(frames) for i, x in ((7, 0.0), (9, 50.0))],
                        columns=["frame", "id", "x", "y"])


def test_link_scores_perfect_and_unmatched():
    truth = truth_two_particles()
    tracks = table([(f, x + 0.5, 0.0, p) for f in range(4) for p, x in ((0, 0.0), (1, 50.0))]
                   + [(2, 25.0, 0.0, 5), (3, 25.0, 0.0, 5)])  # a false detection, linked: not matched, not counted
    s = link_scores(tracks, truth)
    assert s["recall"] == 1 and s["precision"] == 1
    assert (s["true_links"], s["predicted_links"], s["correct_links"]) == (6, 6, 6)
    assert (s["matched"], s["detections"], s["truth_points"]) == (8, 10, 8)


def test_link_scores_id_switch():
    truth = truth_two_particles()
    # from frame 2 on the two tracks swap particles: links 1->2 of both tracks are wrong
    tracks = table([(f, 0.0, 0.0, 0 if f < 2 else 1) for f in range(4)]
                   + [(f, 50.0, 0.0, 1 if f < 2 else 0) for f in range(4)])
    s = link_scores(tracks, truth)
    assert (s["true_links"], s["predicted_links"], s["correct_links"]) == (6, 6, 4)
    assert s["recall"] == pytest.approx(4 / 6) and s["precision"] == pytest.approx(4 / 6)


def test_link_scores_broken_track_and_gap():
    truth = truth_two_particles()
    # id 7's track breaks between frames 1 and 2; id 9 is not detected in frame 2, its track bridges the gap
    tracks = table([(0, 0, 0, 0), (1, 0, 0, 0), (2, 0, 0, 3), (3, 0, 0, 3),
                    (0, 50, 0, 1), (1, 50, 0, 1), (3, 50, 0, 1)])
    s = link_scores(tracks, truth)
    # true links: id 7: 3; id 9 among matched appearances: 0-1, 1-3 -> 2 (the missed detection is not a link error)
    assert (s["true_links"], s["predicted_links"], s["correct_links"]) == (5, 4, 4)
    assert s["recall"] == pytest.approx(4 / 5) and s["precision"] == 1


def test_link_scores_far_detection_is_unmatched():
    truth = truth_two_particles(2)
    tracks = table([(0, 0, 0, 0), (1, 0, 4.0, 0), (0, 50, 0, 1), (1, 50, 0, 1)])  # 4 px off > max_distance
    s = link_scores(tracks, truth, max_distance=3.0)
    assert (s["true_links"], s["correct_links"], s["matched"]) == (1, 1, 3)
    assert link_scores(tracks, truth, max_distance=5.0)["true_links"] == 2


# ----------------------------------------------------------------- linking
def test_link_simulated_rods(rods):
    truth, det = rods
    tracks = link(det)  # paper defaults: 21 px, memory 3
    assert {"frame", "x", "y", "angle", "track", "particle"} <= set(tracks.columns)
    assert tracks["track"].dtype == np.int64 and len(tracks) == len(det)
    # trackpy's "particle" is an alias of the track id, with the same values
    np.testing.assert_array_equal(tracks["particle"], tracks["track"])
    assert tracks["frame"].is_monotonic_increasing
    assert set(tracks.index) == set(det.index)
    np.testing.assert_array_equal(tracks.loc[det.index, "x"], det["x"])
    s = link_scores(tracks, truth)
    assert s["recall"] >= 0.98 and s["precision"] >= 0.98
    assert s["true_links"] > 400


def test_memory_bridges_a_gap(rods):
    truth, det = rods
    # a lone rod present throughout and kept whole by plain linking (pair flips swap partners' places)
    whole = link(det).assign(id=truth["id"]).groupby("id")["track"].nunique() == 1
    stats = truth.groupby("id").agg(first=("frame", "min"), last=("frame", "max"), touching=("touching", "any"))
    rod = int(stats[(stats["first"] == 0) & (stats["last"] == 29) & ~stats["touching"] & whole].index[0])
    gone = (truth["id"] == rod) & truth["frame"].isin([10, 11])  # missing for 2 frames
    with_gap = det[~gone.to_numpy()]
    rod_rows = (truth["id"] == rod).to_numpy()[~gone.to_numpy()]
    ids = link(with_gap, memory=3)["track"].loc[with_gap.index[rod_rows]]
    assert ids.nunique() == 1
    ids = link(with_gap, memory=0)["track"].loc[with_gap.index[rod_rows]]
    assert ids.nunique() == 2


def test_drift(rods):
    truth, det = rods
    drifting = det.assign(x=det["x"] + 3.0 * det["frame"])  # 3 px per frame to the right
    moved = truth.assign(x=truth["x"] + 3.0 * truth["frame"])
    plain = link_scores(link(drifting, search_range=2.0, memory=0), moved)
    assert plain["recall"] < 0.1
    tracks = link(drifting, search_range=2.0, memory=0, drift=True, drift_search_range=5.0)
    s = link_scores(tracks, moved)
    assert s["recall"] >= 0.98 and s["precision"] >= 0.98
    # the original positions are kept; the drift is reported per frame
    np.testing.assert_array_equal(tracks.loc[det.index, "x"], drifting["x"])
    per_frame = tracks.groupby("frame")["drift_x"].first()
    assert per_frame.loc[0] == 0
    assert per_frame.loc[29] / 29 == pytest.approx(3.0, abs=0.2)
    assert np.abs(np.diff(per_frame.to_numpy()) - 3.0).max() < 0.5
    assert np.abs(tracks["drift_y"]).max() < 1.0
    np.testing.assert_array_equal(tracks["particle"], tracks["track"])
    d = estimate_track_drift(drifting, 5.0)
    assert list(d.index) == list(range(30)) and list(d.columns) == ["x", "y"]
    with pytest.warns(DeprecationWarning, match="estimate_track_drift"):
        pd.testing.assert_frame_equal(estimate_drift(drifting, 5.0), d)


def test_search_range_px():
    assert search_range_px(8.2, 8.2 / 21) == pytest.approx(21.0)
    assert search_range_px(10, 0.5) == 20
    for bad in ((0, 1), (1, 0), (-1, 1), (float("nan"), 1)):
        with pytest.raises(ValueError):
            search_range_px(*bad)


def test_empty_and_bad_input():
    empty = pd.DataFrame({"frame": pd.Series(dtype=int), "x": pd.Series(dtype=float),
                          "y": pd.Series(dtype=float), "z1": pd.Series(dtype=float)})
    out = link(empty)
    assert {"track", "particle"} <= set(out.columns) and out.empty and "z1" in out.columns
    assert {"track", "particle", "drift_x", "drift_y"} <= set(link(empty, drift=True).columns)
    summary = track_summary(out, ["angle"])
    assert summary.empty and "angular_velocity" in summary.columns
    with pytest.raises(ValueError):
        link(pd.DataFrame({"frame": [0], "x": [1.0]}))
    with pytest.raises(ValueError):
        link(pd.DataFrame({"frame": [0, 1], "x": [1.0, np.nan], "y": [0.0, 0.0]}))


# ----------------------------------------------------------------- summaries
def test_track_summary_angular_velocity_across_the_wrap():
    frames = np.arange(30)
    angle = np.mod(2.5 + 0.3 * frames + np.pi, 2 * np.pi) - np.pi  # crosses +-pi several times
    rows = pd.DataFrame({"frame": frames, "x": 10 + 0.1 * frames, "y": 5.0, "angle": angle,
                         "z1": np.linspace(0, 1, 30), "track": 4})
    lone = pd.DataFrame({"frame": [3], "x": [50.0], "y": [50.0], "angle": [np.pi - 0.01], "z1": [2.0],
                         "track": [8]})
    tracks = pd.concat([rows.sample(frac=1, random_state=0), lone])  # unsorted input
    s = track_summary(tracks, ["angle", "z1"])
    assert list(s["track"]) == [4, 8]
    r = s.set_index("track")
    assert r.loc[4, "angular_velocity"] == pytest.approx(0.3)
    assert s.attrs["angular_velocity_units"] == "rad/frame"
    assert (r.loc[4, "first_frame"], r.loc[4, "last_frame"], r.loc[4, "length"]) == (0, 29, 30)
    assert r.loc[4, "x_mean"] == pytest.approx(10 + 0.1 * 14.5) and r.loc[4, "z1_mean"] == pytest.approx(0.5)
    assert r.loc[4, "z1_var"] == pytest.approx(np.var(np.linspace(0, 1, 30), ddof=1))
    assert np.isnan(r.loc[8, "angular_velocity"]) and r.loc[8, "length"] == 1
    assert r.loc[8, "angle_mean"] == pytest.approx(np.pi - 0.01) and r.loc[8, "angle_var"] == pytest.approx(0)
    # seconds: 0.3 rad per 0.5 s frame
    fast = track_summary(tracks, ["angle"], frame_interval_s=0.5)
    assert fast.set_index("track").loc[4, "angular_velocity"] == pytest.approx(0.6)
    assert fast.attrs["angular_velocity_units"] == "rad/s"
    # rotating the other way, with a gap of 2 frames
    back = rows.assign(angle=np.mod(1.0 - 0.3 * frames + np.pi, 2 * np.pi) - np.pi).drop(index=[12, 13])
    assert track_summary(back, ["angle"])["angular_velocity"].iloc[0] == pytest.approx(-0.3)
    # a table from before the track column (trackpy's "particle" only) reads the same
    old = track_summary(tracks.rename(columns={"track": "particle"}), ["angle", "z1"])
    pd.testing.assert_frame_equal(old, s)


def test_circular_mean_of_a_track_at_pi():
    tracks = pd.DataFrame({"frame": [0, 1, 2, 3], "x": 0.0, "y": 0.0, "track": 0,
                           "angle": [np.pi - 0.05, -np.pi + 0.05, np.pi - 0.05, -np.pi + 0.05]})
    r = track_summary(tracks, ["angle"]).iloc[0]
    assert abs(np.mod(r["angle_mean"], 2 * np.pi) - np.pi) < 1e-9
    assert r["angle_var"] < 0.01
    assert abs(r["angular_velocity"]) < 0.05


def test_latents_table_links():
    n = 6
    latents = xr.Dataset(
        {"angle": ("particle", np.linspace(-1, 1, n)), "frame": ("particle", [0, 0, 1, 1, 2, 2]),
         "x": ("particle", [0.0, 30, 1, 31, 2, 32]), "y": ("particle", np.zeros(n)),
         "z": (("particle", "latent"), np.arange(2 * n, dtype=float).reshape(n, 2)),
         "z_sd": (("particle", "latent"), np.ones((n, 2))),
         "particle_index": ("particle", np.arange(n) + 100)},
        coords={"particle": np.arange(n), "latent": [1, 2]})
    t = latents_table(latents)
    assert t.index.name == "detection"
    assert {"angle", "frame", "x", "y", "z1", "z2", "z1_sd", "z2_sd", "particle_index"} <= set(t.columns)
    np.testing.assert_array_equal(t["z2"], np.arange(1, 2 * n, 2))
    tracks = link(t, search_range=5)
    assert tracks.groupby("track")["x"].apply(lambda x: x.max() - x.min()).max() == 2
    s = track_summary(tracks, ["angle", "z1"])
    assert len(s) == 2 and set(s["length"]) == {3}


def test_duplicate_index_labels_are_kept(rods):
    _, det = rods
    dup = det.set_axis(np.zeros(len(det), dtype=int))  # e.g. concatenated per-frame tables
    for drift in (False, True):
        out = link(dup, drift=drift)
        assert len(out) == len(det) and (out.index == 0).all()
        np.testing.assert_array_equal(np.sort(out["x"].to_numpy()), np.sort(det["x"].to_numpy()))


@pytest.mark.parametrize("spacing, side, search_range, stop", [
    # 100 particles 2 px apart, search range 5 px: trackpy's exact subnetwork solver gives up (more than
    # 30 candidates); the radius shrinks to a fifth of itself
    (2.0, 10, 5.0, "1 px"),
    # an HS-AFM protein lattice, units 4 px apart, at the default 21 px: a fifth of the radius (4.2 px)
    # still reaches every neighbour, so the radius shrinks to half the spacing instead
    (4.0, 12, 21.0, "2 px"),
])
def test_crowded_subnetwork_too_large_for_trackpy_links_with_a_shrinking_radius(caplog, spacing, side, search_range,
                                                                                  stop):
    rows, cols = np.mgrid[:side, :side] * spacing
    step = 0.05 * spacing  # each particle moves this far per frame
    det = pd.concat([pd.DataFrame({"frame": t, "x": cols.ravel() + step * t, "y": rows.ravel()}) for t in range(3)],
                    ignore_index=True)
    with caplog.at_level("WARNING", logger="rotdyn.link"):
        tracks = link(det, search_range=search_range, memory=0)
    assert f"shrinking down to {stop}" in caplog.text
    assert tracks["track"].nunique() == side * side
    np.testing.assert_allclose(tracks.groupby("track")["x"].agg(lambda x: np.ptp(x.to_numpy())), 2 * step, atol=1e-9)
