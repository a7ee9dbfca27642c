"""Ensemble segmentation of a movie: streamed output equals the in-memory answer; bad frames."""
import copy
import logging

import numpy as np
import pytest
import torch
import xarray as xr

from rotdyn.evaluate.segmentation import time_inference
from rotdyn.networks import build_network, load_model, predict_proba, save_model
from rotdyn.segment import FastEnsemble, clean_frames, ensemble_proba, load_ensemble, member_statistics, segment_movie
from rotdyn.train import fit_baseline


def discs(n, size=32, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    for mask in masks:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(5, size - 5, 2)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(2.5, 5) ** 2] = 1
    return (masks + rng.normal(0, noise, masks.shape)).astype(np.float32), masks


def write_movie(path, frames):
    n, ny, nx = frames.shape
    ds = xr.Dataset(
        {"frames": (("frame", "y", "x"), frames)},
        coords={"frame": np.arange(n) + 10, "y": np.arange(ny), "x": np.arange(nx)},
        attrs={"pixel_size_nm": 0.5, "frame_interval_s": 2.0, "source": "test.h5"},
    )
    ds = ds.assign_coords(time=("frame", ds.frame.values * 2.0, {"units": "s"}))
    ds.to_netcdf(path)
    return path


def untrained_members(tmp_path, n_classes=3, seeds=(0, 1)):
    paths = []
    names = ["background", "rod", "disc"][:n_classes]
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_network("dilnet", n_classes, width=4)
        model.train()
        model(torch.randn(4, 1, 16, 16))  # non-trivial BatchNorm statistics
        paths.append(tmp_path / f"member{seed}.pt")
        save_model(model, paths[-1], {"class_names": names})
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images, masks = discs(48)
    model, _ = fit_baseline(images, masks, n_classes=2, class_names=["background", "disc"], arch="dilnet",
                            width=8, batch_size=4, lr=3e-3, max_epochs=15, patience=4,
                            augment_params=dict(rotate=True, flip=True), device="cpu", bf16=False, seed=0)
    path = tmp_path_factory.mktemp("models") / "disc.pt"
    save_model(model, path)
    return path


def test_streamed_output_matches_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(7, 20, 26)).astype(np.float32)
    movie = write_movie(tmp_path / "movie.nc", frames)
    paths = untrained_members(tmp_path)
    out = tmp_path / "seg.nc"
    segment_movie(movie, paths, out, batch_size=3, device="cpu", bf16=False)

    models, _ = load_ensemble(paths)
    probs = torch.stack([predict_proba(m, torch.from_numpy(frames)[:, None]) for m in models])
    with xr.open_dataset(out) as seg:
        assert seg["mean"].dims == ("frame", "class", "y", "x") and seg["mean"].dtype == np.float32
        assert seg["class"].values.tolist() == [1, 2]
        assert seg["class_name"].values.tolist() == ["rod", "disc"]
        assert seg["frame"].values.tolist() == list(range(10, 17))
        assert np.allclose(seg["time"].values, seg["frame"].values * 2.0)
        assert seg.attrs["pixel_size_nm"] == 0.5 and seg.attrs["source"] == "test.h5"
        assert seg.attrs["n_members"] == 2 and seg.attrs["members"] == "member0.pt,member1.pt"
        assert "rotdyn_version" in seg.attrs
        np.testing.assert_allclose(seg["mean"].values, probs.mean(0)[:, 1:].numpy(), atol=1e-5)
        np.testing.assert_allclose(seg["variance"].values, probs.var(0, unbiased=False)[:, 1:].numpy(), atol=1e-5)
        assert seg["variance"].values.max() > 1e-4  # the members do differ
    assert not list(tmp_path.glob(".*part"))


def test_bf16_output_is_close(tmp_path):
    frames = np.random.default_rng(1).normal(size=(3, 16, 16)).astype(np.float32)
    movie = write_movie(tmp_path / "movie.nc", frames)
    paths = untrained_members(tmp_path, n_classes=2)
    segment_movie(movie, paths, tmp_path / "a.nc", device="cpu", bf16=False)
    segment_movie(movie, paths, tmp_path / "b.nc", device="cpu", bf16=True)
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        assert b.attrs["precision"] == "bfloat16"
        np.testing.assert_allclose(a["mean"].values, b["mean"].values, atol=0.03)


def test_ensemble_proba_mean_and_population_variance():
    models = [build_network("unet", 2, width=4).eval() for _ in range(3)]
    x = torch.randn(2, 1, 16, 16)
    mean, var = ensemble_proba(models, x)
    probs = torch.stack([predict_proba(m, x) for m in models])
    assert torch.allclose(mean, probs.mean(0), atol=1e-6)
    assert torch.allclose(var, probs.var(0, unbiased=False), atol=1e-6)


def test_members_must_agree_on_classes(tmp_path):
    a = untrained_members(tmp_path, n_classes=3, seeds=(0,))
    model = build_network("dilnet", 3, width=4)
    other = tmp_path / "other.pt"
    save_model(model, other, {"class_names": ["background", "rod", "blob"]})
    with pytest.raises(ValueError, match="other.pt"):
        load_ensemble(a + [other])


def test_trained_model_segments_discs(trained, tmp_path):
    frames, masks = discs(6, size=40, seed=7)
    movie = write_movie(tmp_path / "movie.nc", frames)
    segment_movie(movie, [trained], tmp_path / "seg.nc", batch_size=4, device="cpu", threads=2)
    with xr.open_dataset(tmp_path / "seg.nc") as seg:
        p = seg["mean"].sel({"class": 1}).values
        assert ((p > 0.5) == (masks == 1)).mean() > 0.95
        assert seg["class_name"].values.tolist() == ["disc"]
        assert (seg["variance"].values == 0).all()  # one member: no spread


def test_nan_and_blank_frames(trained, tmp_path, caplog):
    frames, masks = discs(5, seed=3)
    frames[1] = np.nan
    frames[3] = 0.7
    frames[4, :3, :5] = np.nan
    movie = write_movie(tmp_path / "movie.nc", frames)
    with caplog.at_level(logging.WARNING, logger="rotdyn.segment"):
        segment_movie(movie, [trained, trained], tmp_path / "seg.nc", batch_size=2, device="cpu")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("movie.nc" in w and "11" in w and "13" in w for w in warnings)
    with xr.open_dataset(tmp_path / "seg.nc") as seg:
        mean = seg["mean"].values[:, 0]
        assert (mean[[1, 3]] == 0).all() and (seg["variance"].values[[1, 3]] == 0).all()
        assert np.isfinite(mean).all()
        good = [0, 2, 4]
        assert ((mean[good] > 0.5) == (masks[good] == 1)).mean() > 0.95


def test_frames_ingest_found_unusable_are_not_segmented(trained, tmp_path):
    """A saturated frame passes ingest's pixels through (it looks fine here): movie.nc's usable decides."""
    frames, masks = discs(3, seed=4)
    path = tmp_path / "movie.nc"
    with xr.open_dataset(write_movie(tmp_path / "raw.nc", frames)) as movie:
        movie.load().assign(usable=("frame", np.array([1, 0, 1], np.uint8))).to_netcdf(path)
    segment_movie(path, [trained, trained], tmp_path / "seg.nc", device="cpu")
    with xr.open_dataset(tmp_path / "seg.nc") as seg:
        mean = seg["mean"].values[:, 0]
        assert (mean[1] == 0).all() and (mean[0] > 0.5).sum() > 0.5 * (masks[0] == 1).sum()


def test_clean_frames():
    frames = np.ones((2, 4, 4), np.float32)
    frames[1, 0, 0] = np.nan
    frames[1, 1, 1] = 3.0
    cleaned, bad = clean_frames(frames)
    assert bad.tolist() == [True, False] and cleaned[1, 0, 0] == 1.0 and (cleaned[0] == 0).all()
    assert np.isnan(frames[1, 0, 0])  # the input is left alone


def test_time_inference(tmp_path):
    models, _ = load_ensemble(untrained_members(tmp_path, n_classes=2, seeds=(0,)))
    assert time_inference(models, shape=(32, 32), n_frames=2, batch_size=2, bf16=False) > 0


@pytest.mark.parametrize("n_classes", [2, 3])
def test_member_statistics_match_torch(n_classes):
    torch.manual_seed(0)
    n_out = 1 if n_classes == 2 else n_classes
    logits = torch.randn(2, 4 * n_out, 5, 6) * 3
    mean, variance = member_statistics(logits, 4, n_classes)
    per_member = logits.unflatten(1, (4, n_out))
    if n_classes == 2:
        p = torch.sigmoid(per_member[:, :, 0])
        p = torch.stack([1 - p, p], dim=2)
    else:
        p = torch.softmax(per_member, dim=2)
    assert torch.allclose(mean, p.mean(1), atol=1e-6)
    assert torch.allclose(variance, p.var(1, unbiased=False), atol=1e-6)


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_path_float32_equals_members_one_by_one(tmp_path, workers):
    models, _ = load_ensemble(untrained_members(tmp_path, n_classes=3, seeds=(0, 1, 2)))
    x = torch.randn(3, 1, 20, 22)
    before = torch.get_num_threads()
    with FastEnsemble(models, bf16=False, threads=2, workers=workers) as fast:
        mean, variance = fast(x)
    assert torch.get_num_threads() == before
    ref_mean, ref_variance = ensemble_proba(models, x)
    assert fast.settings["precision"] == "float32" and fast.settings["workers"] == workers
    assert torch.allclose(mean, ref_mean, atol=1e-5) and torch.allclose(variance, ref_variance, atol=1e-5)
    assert ref_variance.max() > 1e-4  # the members differ


def test_fast_path_bfloat16_is_close_to_float32(trained):
    model, _ = load_model(trained)
    other = copy.deepcopy(model)
    with torch.no_grad():  # a second, different member
        for p in other.parameters():
            p.mul_(1 + 0.05 * torch.randn_like(p))
    frames, masks = discs(4, size=48, seed=5)
    x = torch.from_numpy(frames)[:, None]
    with FastEnsemble([model, other], bf16=True, threads=2) as fast:
        mean, variance = fast(x)
    ref_mean, ref_variance = ensemble_proba([model, other], x)
    assert fast.settings["precision"] == "bfloat16"
    assert (ref_mean[:, 1] > 0.9).any() and (ref_mean[:, 1] < 0.1).any()  # real maps, not 0.5 everywhere
    assert (mean - ref_mean).abs().max() < 0.02
    assert (variance - ref_variance).abs().max() < 0.02
    assert ((mean[:, 1] > 0.5) == (ref_mean[:, 1] > 0.5)).float().mean() > 0.999


def test_segment_movie_records_the_inference_settings(tmp_path):
    frames = np.random.default_rng(2).normal(size=(3, 16, 16)).astype(np.float32)
    movie = write_movie(tmp_path / "movie.nc", frames)
    segment_movie(movie, untrained_members(tmp_path, n_classes=2), tmp_path / "seg.nc", device="cpu",
                  threads=2, bf16=False)
    with xr.open_dataset(tmp_path / "seg.nc") as seg:
        assert seg.attrs["precision"] == "float32"
        assert "workers: 2" in seg.attrs["inference"] and "batchnorm: fused" in seg.attrs["inference"]
