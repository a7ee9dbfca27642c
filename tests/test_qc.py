"""The self-check stage: each failure built on purpose trips its check, a good run trips none.

Real parts throughout: simulated rods with their truth, a real (small) ensemble
trained on bright rods, real rVAE fits, the stages' own functions. Where a
check only needs particles, probability.nc is made from the simulation's label
masks (a known answer); the inverted-contrast and unlike-particles cases run the real networks.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from rotdyn import qc
from rotdyn.encode import encode_windows, latents_dataset
from rotdyn.figures import qc as qc_figures
from rotdyn.fit_rvae import fit
from rotdyn.jobs import job
from rotdyn.locate import locate
from rotdyn.networks import save_model
from rotdyn.patches import extract_patches, from_frames
from rotdyn.preprocess import preprocess
from rotdyn.segment import segment_movie
from rotdyn.simulate import simulate
from rotdyn.store import write_netcdf
from rotdyn.train import fit_baseline, fit_member
from rotdyn.training_set import from_simulation

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the project (a worktree under wt/ looks one level further up)
ASD = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.exists()),
           ROOT.parent / "shared") / "data" / "hsafm" / "asd_sample_0.asd"
RODS = dict(length=10.0, width=4.0, noise=0.15)  # the kind's particles: training set and good movies
TRAIN = {"val_fraction": 0.2, "seed": 0}
LOCATE = {"threshold": 0.5, "min_area": 10}
WINDOW = 16
# rVAE settings that learn the rods' rotation in 100 epochs on ~90 windows (measured: R 0.94, reconstruction
# error 0.40; 60 epochs gave R 0.80, 80 gave 0.90; batches of 16 or lr 1e-3 had not started turning by then)
RVAE = dict(batch_size=8, lr=2e-3, hidden=64, seed=0, device="cpu", threads=1)
# one thread: two that share the cores with other jobs are several times slower (tests/test_fit_rvae.py)
KNOBS = dict(arch="dilnet", width=8, batch_size=4, lr=3e-3, device="cpu", bf16=False, threads=1)
AUG = dict(rotate=True, flip=True)


@pytest.fixture(scope="module")
def kind(tmp_path_factory):
    """The kind 'rods': its training set (bright rods) and a two-member ensemble trained on it."""
    folder = tmp_path_factory.mktemp("kind")
    data = from_simulation("rods", frames=16, size=64, count=6, tile=64, seed=1, **RODS)
    write_netcdf(data, folder / "training.nc")
    images, masks = data["images"].values, data["masks"].values
    # trained until it is sure of its own kind (~5 s): members of a weaker baseline disagree everywhere alike,
    # and the disagreement check has nothing to tell apart
    baseline, _ = fit_baseline(images, masks, n_classes=2, class_names=["background", "rod"], max_epochs=60,
                               patience=8, augment_params=AUG, **TRAIN, **KNOBS)
    save_model(baseline, folder / "baseline.pt")
    members = []
    for seed in (1, 2):
        member, _ = fit_member(folder / "baseline.pt", images, masks, epochs=2, seed=seed, augment_params=AUG,
                               **{k: v for k, v in KNOBS.items() if k not in ("arch", "width")})
        save_model(member, folder / f"member_{seed}.pt")
        members.append(str(folder / f"member_{seed}.pt"))
    return {"training": str(folder / "training.nc"), "members": members}


# ------------------------------------------------------------------ building runs
def write_movie(folder: Path, sim, sign: float = 1.0) -> Path:
    """movie.nc as ingest writes it: AFM flattening and per-frame normalisation (``sign`` -1: dark rods)."""
    frames, _, bad = preprocess(sign * sim.frames, flatten_afm=True, normalize_method="percentile")
    usable = np.ones(len(frames), np.uint8)
    usable[bad] = 0
    n, ny, nx = frames.shape
    folder.mkdir(parents=True, exist_ok=True)
    ds = xr.Dataset({"frames": (("frame", "y", "x"), frames), "usable": ("frame", usable)},
                    coords={"frame": np.arange(n), "y": np.arange(ny), "x": np.arange(nx)},
                    attrs={"source": f"{folder.name}.npy"})
    write_netcdf(ds, folder / "movie.nc")
    return folder / "movie.nc"


def probability_from_masks(folder: Path, sim) -> None:
    """probability.nc from the simulation's label masks (smoothed like a network's output; no disagreement)."""
    mean = np.stack([ndimage.gaussian_filter((lab > 0).astype(np.float32), 0.7) for lab in sim.labels])[:, None]
    ds = xr.Dataset({"mean": (("frame", "class", "y", "x"), mean),
                     "variance": (("frame", "class", "y", "x"), np.zeros_like(mean))},
                    coords={"frame": np.arange(len(mean)), "class": [1], "class_name": ("class", ["rod"])})
    write_netcdf(ds, folder / "probability.nc")


def windows_and_latents(folder: Path, epochs: int, size: int = WINDOW, **rvae) -> None:
    """particles.nc, patches.nc and latents.nc from probability.nc, with an rVAE fitted for ``epochs``."""
    with xr.open_dataset(folder / "probability.nc") as prob:
        particles = locate(prob, **LOCATE)
    write_netcdf(particles, folder / "particles.nc")
    with xr.open_dataset(folder / "movie.nc") as movie:
        patches = extract_patches(from_frames(movie), particles, size=size, source="frames")
    write_netcdf(patches, folder / "patches.nc")
    encode_to(folder, patches, epochs, **rvae)


def encode_to(folder: Path, patches: xr.Dataset, epochs: int, name: str = "latents.nc", **rvae) -> None:
    windows = patches["patches"].values
    model, _ = fit(windows, epochs=epochs, **{**RVAE, **rvae})
    write_netcdf(latents_dataset(encode_windows(model, windows), patches, model), folder / name)


def run_qc(folder: Path, kind: dict, latents: str = "latents.nc", contrast: str = "bright") -> dict:
    qc.run(job("qc", input={"movie": str(folder / "movie.nc"), "probability": str(folder / "probability.nc"),
                            "particles": str(folder / "particles.nc"), "patches": str(folder / "patches.nc"),
                            "latents": str(folder / latents), "training": kind["training"],
                            "members": kind["members"]},
               output=[str(folder / "qc.json")], wildcards={"movie": folder.name},
               params={"train": TRAIN, "locate": LOCATE, "kind": "rods", "contrast": contrast}))
    with open(folder / "qc.json") as f:
        return json.load(f)


def checks(report: dict) -> dict:
    return {c["name"]: c for c in report["checks"]}


def tripped(report: dict) -> list[str]:
    return [c["name"] for c in report["checks"] if not c["ok"]]


@pytest.fixture(scope="module")
def good_run(kind, tmp_path_factory):
    """A small run as it should go: bright rods like the training ones, the real ensemble, a trained rVAE."""
    folder = tmp_path_factory.mktemp("good") / "good"
    sim = simulate("rods", size=96, frames=8, count=12, seed=5, **RODS)
    write_movie(folder, sim)
    segment_movie(folder / "movie.nc", kind["members"], folder / "probability.nc", device="cpu", threads=1)
    windows_and_latents(folder, epochs=100)
    return folder, sim


# ------------------------------------------------------------------ end to end
def test_good_run_trips_nothing(good_run, kind, caplog):
    folder, sim = good_run
    with caplog.at_level(logging.WARNING, logger="rotdyn.qc"):
        report = run_qc(folder, kind)
    assert tripped(report) == [] and report["warnings"] == [] and not caplog.records
    assert report["movie"] == "good" and report["kind"] == "rods" and report["bad_frames"] == []
    assert [c["name"] for c in report["checks"]] == ["particle_count", "frames", "coverage", "size", "disagreement",
                                                     "border", "reconstruction", "angle", "held_out"]
    assert all(set(c) >= {"name", "value", "threshold", "ok", "message"} for c in report["checks"])
    # the series against the truth: the tiny ensemble merges a touching pair or two per frame
    truth = sim.truth.groupby("frame").size().to_numpy()
    assert report["frames"] == list(range(8))
    assert (np.abs(np.array(report["particles_per_frame"]) - truth) <= 0.2 * truth).all()
    c = checks(report)
    truth_share = (sim.labels > 0).mean()  # 12 rods of ~10 x 4 px in 96 x 96 px: ~0.05
    assert abs(c["coverage"]["value"] - truth_share) < 0.3 * truth_share
    assert 0.7 < c["size"]["value"] < 1.4 and c["angle"]["value"] > 0.9
    assert c["reconstruction"]["value"] < 0.7  # measured 0.47-0.51
    assert -0.1 < c["held_out"]["value"] < 0.1  # measured 0.008: held-out windows fit as well as the rest
    with xr.open_dataset(folder / "latents.nc") as lat:
        assert np.isfinite(lat["reconstruction_error"].values).all()

    qc_figures.run(job("qc_figure", input={"qc": str(folder / "qc.json"), "particles": str(folder / "particles.nc"),
                                           "training": kind["training"]},
                       output=[str(folder / "figures" / "qc.png")], params={"locate": LOCATE}))
    assert (folder / "figures" / "qc.png").read_bytes()[:4] == b"\x89PNG"


def test_inverted_contrast_trips_coverage_with_the_contrast_setting(kind, tmp_path, caplog):
    """Dark rods on a bright background through the ensemble trained on bright rods (real networks)."""
    folder = tmp_path / "dark"
    write_movie(folder, simulate("rods", size=96, frames=6, count=12, seed=6, **RODS), sign=-1.0)
    segment_movie(folder / "movie.nc", kind["members"], folder / "probability.nc", device="cpu", threads=1)
    windows_and_latents(folder, epochs=0)
    with caplog.at_level(logging.WARNING, logger="rotdyn.qc"):
        report = run_qc(folder, kind)
    coverage = checks(report)["coverage"]
    assert not coverage["ok"] and coverage["value"] > 0.5
    assert "is the contrast inverted" in coverage["message"]
    assert "set contrast: dark for this movie (sample sheet column `contrast`)" in coverage["message"]
    assert "particles.kinds.rods.contrast" in coverage["message"]
    assert coverage["message"] in report["warnings"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(coverage["message"] in m and m.startswith("dark: ") for m in logged)


def test_untrained_or_frozen_rvae_trips_angle_and_reconstruction(good_run, kind):
    folder, _ = good_run
    with xr.open_dataset(folder / "patches.nc") as patches:
        encode_to(folder, patches.load(), epochs=0, name="untrained.nc")
    report = run_qc(folder, kind, latents="untrained.nc")
    assert tripped(report) == ["reconstruction", "angle"]
    c = checks(report)
    assert c["reconstruction"]["value"] > 1  # worse than each window's mean
    assert "more rvae.epochs" in c["reconstruction"]["message"] and c["angle"]["value"] < 0.5
    assert "the rVAE did not learn rotation" in c["angle"]["message"]

    # a latent angle that never moves, on the same particles
    with xr.open_dataset(folder / "latents.nc") as lat:
        frozen = lat.load().assign(angle=lat["angle"] * 0 + 0.3)
    write_netcdf(frozen, folder / "frozen.nc")
    angle = checks(run_qc(folder, kind, latents="frozen.nc"))["angle"]
    assert angle["message"].startswith("latent angle nearly constant while particle orientations spread over")


def test_rvae_that_memorised_a_few_windows_trips_held_out(good_run, kind):
    """One frame's windows, drilled for many epochs: the held-out ones are reconstructed far worse."""
    folder, _ = good_run
    with xr.open_dataset(folder / "patches.nc") as patches:
        first = patches.load().isel(particle=patches["frame"].values == 0)
    encode_to(folder, first, epochs=1500, name="memorised.nc", batch_size=4, hidden=128)
    held_out = checks(run_qc(folder, kind, latents="memorised.nc"))["held_out"]
    assert not held_out["ok"] and held_out["value"] > 0.5  # measured 1.07 (the good run: 0.008)
    assert "it memorised its windows" in held_out["message"] and "rvae.scope: pooled" in held_out["message"]
    with xr.open_dataset(folder / "memorised.nc") as lat:
        assert f"its {lat.attrs['rvae_n_train']} training windows" in held_out["message"]


def test_particles_twice_the_training_size_trip_the_size_check(kind, tmp_path):
    folder = tmp_path / "big"
    sim = simulate("rods", size=128, frames=4, count=8, seed=7, **{**RODS, "length": 20.0, "width": 8.0})
    write_movie(folder, sim)
    probability_from_masks(folder, sim)
    windows_and_latents(folder, epochs=0, size=32)
    size = checks(run_qc(folder, kind))["size"]
    assert not size["ok"] and size["value"] > 3  # area: (20 x 8) / (10 x 4) = 4
    assert "training_set.simulate.length/width of kind 'rods'" in size["message"]
    assert "particles.kinds.rods.training_set.simulate.length" in size["message"]


def test_particles_unlike_the_training_ones_trip_the_disagreement_check(kind, tmp_path, caplog):
    """Rods twice as long and wide as the training ones through the real networks: the members disagree on
    them several times as much as on held-out training frames (measured with this fixture's ensemble: 6-9x;
    rods like the training ones 1.0x)."""
    folder = tmp_path / "unlike"
    write_movie(folder, simulate("rods", size=128, frames=6, count=8, seed=7, **{**RODS, "length": 20.0,
                                                                                  "width": 8.0}))
    segment_movie(folder / "movie.nc", kind["members"], folder / "probability.nc", device="cpu", threads=1)
    windows_and_latents(folder, epochs=0, size=32)
    with caplog.at_level(logging.WARNING, logger="rotdyn.qc"):
        report = run_qc(folder, kind)
    disagreement = checks(report)["disagreement"]
    assert not disagreement["ok"] and disagreement["value"] > 4
    assert disagreement["message"].startswith("the movie looks unlike the training frames: the ensemble members "
                                              "disagree")
    assert "particles.kinds.rods.training_set.simulate" in disagreement["message"]
    assert disagreement["message"] in report["warnings"]
    assert any(disagreement["message"] in r.getMessage() for r in caplog.records)


def test_windows_dropped_at_a_small_movies_border_trip_that_check(kind, tmp_path):
    folder = tmp_path / "small"
    sim = simulate("rods", size=40, frames=4, count=4, seed=8, **RODS)
    write_movie(folder, sim)
    probability_from_masks(folder, sim)
    windows_and_latents(folder, epochs=0, size=26)  # only particles within 7 px of the centre keep a window
    with xr.open_dataset(folder / "particles.nc") as parts, xr.open_dataset(folder / "patches.nc") as patches:
        n, kept = parts.sizes["particle"], patches.sizes["particle"]
        centred = ((np.abs(np.floor(parts["x"].values + 0.5) - 20) <= 7)
                   & (np.abs(np.floor(parts["y"].values + 0.5) - 20) <= 7)).sum()
        assert kept == centred and patches.attrs["n_particles"] == n
        assert patches.attrs["n_dropped"] == n - kept and patches.attrs["dropped_fraction"] == (n - kept) / n
    border = checks(run_qc(folder, kind))["border"]
    assert not border["ok"] and border["value"] == pytest.approx((n - kept) / n) and border["value"] > 0.5
    assert "dropped at the border: set patches.edge: pad or a smaller patches.size (now 26 px)" in border["message"]


# ------------------------------------------------------------------ frames and counts
def test_blank_saturated_and_streaked_frames_are_bad_frames():
    sim = simulate("rods", size=64, frames=16, count=6, seed=3, **RODS)
    raw = sim.frames.copy()
    rng = np.random.default_rng(0)
    raw[5] = 1.0                                                        # blank: no contrast
    raw[9] = np.repeat(rng.normal(0, 3, (64, 1)), 64, axis=1) + rng.normal(0, 0.05, (64, 64))  # tip lost
    raw[12, :40] = raw[12].max() * 50                                   # saturated plateau
    frames, _, blank = preprocess(raw, flatten_afm=True, normalize_method="percentile")
    usable = np.ones(16, np.uint8)
    usable[blank] = 0
    check, bad = qc.check_frames([qc.frame_features(f) for f in frames], usable, np.arange(16) + 100)
    assert bad == [105, 109, 112] and check["value"] == 3 and not check["ok"]
    assert "105, 109, 112" in check["message"] and "last_frame" not in check["message"]
    # a trailing block of bad frames: the message says where to cut; a blank frame is blank without `usable`
    check, bad = qc.check_frames([qc.frame_features(f) for f in frames[:10]])
    assert bad == [5, 9] and "set last_frame: 8" in check["message"]

    # the bad frames' odd particle counts are not a second warning; an odd count in a good frame still is
    counts = np.array([6] * 16)
    counts[[5, 9, 12]] = [0, 40, 25]
    count, _, bad, outliers = qc.count_and_frame_checks(counts, [qc.frame_features(f) for f in frames], usable,
                                                        np.arange(16))
    assert bad == [5, 9, 12] and count["ok"] and outliers == []
    counts[2] = 30
    count, _, _, outliers = qc.count_and_frame_checks(counts, [qc.frame_features(f) for f in frames], usable,
                                                      np.arange(16))
    assert not count["ok"] and outliers == [2] and "median 6 per frame" in count["message"]


@pytest.mark.skipif(not ASD.exists(), reason=f"real HS-AFM movie absent ({ASD})")
def test_real_afm_frames_where_the_tip_lost_the_surface():
    from rotdyn.ingest import load_movie

    movie = load_movie(ASD, {"flatten": "auto", "normalize": "percentile", "drift_correction": False,
                             "drift_reference": "previous", "first_frame": 0, "last_frame": None})
    features = [qc.frame_features(f) for f in movie["frames"].values]
    check, bad = qc.check_frames(features, movie["usable"].values, movie["frame"].values)
    assert bad == list(range(22, 32))  # the data's README: clean up to 21, then the tip loses the surface
    assert "set last_frame: 21" in check["message"]


def test_particle_count_outliers_and_no_particles():
    counts = np.array([20, 22, 19, 21, 0, 20, 23, 60, 21, 18])
    check, outliers = qc.check_particle_counts(counts, np.arange(10) * 2)
    assert outliers == [8, 14] and check["value"] == 2 and "frames 8, 14 have" in check["message"]
    check, outliers = qc.check_particle_counts(counts[[0, 1, 2, 3, 5, 6, 8, 9]])  # Poisson-like scatter
    assert check["ok"] and outliers == []
    check, _ = qc.check_particle_counts(np.zeros(5))
    assert not check["ok"] and "no particles found" in check["message"]


# ------------------------------------------------------------------ the pure checks
def test_instance_sizes_of_training_masks_match_the_simulated_rods():
    sim = simulate("rods", size=96, frames=3, count=10, seed=2, pair_fraction=0.0, **RODS)
    sizes = qc.instance_sizes(sim.labels, min_area=10)
    assert len(sizes) >= 15 and set(sizes["class"]) == {1}
    # a 10 x 4 px capsule: area 10 * 4 - (4 - pi) * 2^2 ~ 36.6 px, ellipse major axis ~ 10.5 px
    assert 30 <= sizes["area"].median() <= 42 and 9 <= sizes["major_axis"].median() <= 12


def test_particle_variance_and_disagreement():
    mean = np.zeros((2, 1, 4, 4))
    variance = np.full_like(mean, 0.5)
    mean[0, 0, :2] = 0.9
    variance[0, 0, :2] = 0.01
    assert qc.particle_variance(mean, variance, 0.5) == pytest.approx((0.08, 8))
    assert not qc.check_disagreement(0.04, 0.01)["ok"] and qc.check_disagreement(0.02, 0.01)["ok"]
    assert qc.check_disagreement(3e-4, 1e-6)["ok"]  # both negligible: the floor
    assert qc.check_disagreement(np.nan, 0.01)["note"] == "no particle pixels to compare"


def test_angle_check_follows_orientation_up_to_a_constant_and_skips_round_particles():
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, np.pi, 300)
    ecc = np.full(300, 0.95)
    head = theta + np.pi * rng.integers(0, 2, 300) - 1.0  # head direction: the axis, either end, + a constant
    assert qc.check_angle(head, theta, ecc)["value"] == pytest.approx(1.0)
    random = qc.check_angle(rng.uniform(-np.pi, np.pi, 300), theta, ecc)
    assert not random["ok"] and random["value"] < 0.2 and "does not follow" in random["message"]
    assert qc.check_angle(np.zeros(300), np.full(300, 0.4), ecc)["note"].startswith("orientations too alike")
    assert qc.check_angle(head, theta, np.full(300, 0.5))["ok"]
    # colloids: pixelation makes a fifth of the discs look elongated, at random angles: a round kind, skipped
    colloids = np.where(rng.random(300) < 0.22, 0.85, 0.4)
    skipped = qc.check_angle(rng.uniform(-np.pi, np.pi, 300), theta, colloids)
    assert skipped["ok"] and skipped["value"] is None and skipped["note"].startswith("mostly round particles (2")
