"""Real (small) training: the baseline learns, early stopping works, members fine-tune reproducibly."""
import numpy as np
import pytest
import torch

from rotdyn.evaluate.segmentation import time_train_step
from rotdyn.networks import load_model, predict_proba, save_model
from rotdyn.train import evaluate, fit_baseline, fit_member, split_indices

KNOBS = dict(arch="dilnet", width=8, batch_size=4, lr=3e-3, device="cpu", bf16=False, threads=2)
AUG = dict(rotate=True, flip=True)


def particles(n, size=32, seed=0, noise=0.3):
    """Images of bright discs (label 1) and bars (label 2) in Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    for mask in masks:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(5, size - 5, 2)
            if rng.random() < 0.5:
                mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(2.5, 4.5) ** 2] = 1
            else:
                a = rng.uniform(0, np.pi)
                along = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
                across = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
                mask[(np.abs(along) <= 6) & (np.abs(across) <= 1.5)] = 2
    images = (masks > 0) + rng.normal(0, noise, masks.shape)
    return images.astype(np.float32), masks


def iou(p, truth):
    return (p & truth).sum() / (p | truth).sum()


@pytest.fixture(scope="module")
def data():
    images, masks = particles(48)
    return images, (masks > 0).astype(np.uint8)


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory):
    images, masks = data
    model, history = fit_baseline(images, masks, n_classes=2, class_names=["background", "particle"],
                                  max_epochs=15, patience=4, augment_params=AUG, seed=0, **KNOBS)
    path = tmp_path_factory.mktemp("models") / "baseline.pt"
    save_model(model, path)
    return model, history, path


def test_baseline_learns(baseline):
    model, history, _ = baseline
    images, masks = particles(16, seed=99)
    p = predict_proba(model, torch.from_numpy(images)[:, None])[:, 1].numpy() > 0.5
    assert iou(p, masks > 0) > 0.8
    assert history.val_loss.min() < 0.5 * history.attrs["initial_val_loss"]
    assert history.train_loss.iloc[-1] < history.train_loss.iloc[0]
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "seconds"]
    assert model.training_info["best_epoch"] == history.val_loss.idxmin() + 1


def test_early_stopping_restores_best_weights(data):
    images, masks = data
    images, masks = images[:16], masks[:16]
    # a large step size makes the held-out loss bounce, so patience=1 must trigger
    model, history = fit_baseline(images, masks, n_classes=2, class_names=["bg", "fg"], max_epochs=40,
                                  patience=1, augment_params={}, seed=3, **{**KNOBS, "lr": 0.05})
    assert len(history) < 40
    best = int(history.val_loss.idxmin()) + 1
    assert len(history) == best + 1 and history.attrs["best_epoch"] == best
    x = torch.from_numpy(images)[:, None]
    y = torch.from_numpy(masks.astype(np.int64))
    _, val_idx = split_indices(len(images), 0.2, 3)
    assert evaluate(model, x, y, val_idx, 4) == pytest.approx(history.val_loss.min(), rel=1e-5)


def test_member_starts_from_baseline_and_is_reproducible(baseline, data):
    model, history, path = baseline
    images, masks = data
    members = [fit_member(path, images, masks, epochs=2, seed=s, augment_params=AUG, **_member_knobs())
               for s in (1, 1, 2)]
    (m1, h1), (m1b, _), (m2, _) = members
    # same weights and held-out split as the baseline's best epoch
    assert h1.attrs["initial_val_loss"] == pytest.approx(history.val_loss.min(), rel=1e-5)
    assert h1.train_loss.iloc[0] < 2 * history.train_loss.min()
    for (k, a), b in zip(m1.state_dict().items(), m1b.state_dict().values()):
        assert torch.equal(a, b), k
    assert any(not torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert m1.training_info["baseline"] == "baseline.pt" and m1.class_names == ["background", "particle"]


def _member_knobs():
    return {k: v for k, v in KNOBS.items() if k not in ("arch", "width")}


def test_save_load_round_trip_of_trained_model(baseline, tmp_path):
    model, _, path = baseline
    loaded, meta = load_model(path)
    assert meta["class_names"] == ["background", "particle"] and meta["role"] == "baseline"
    assert meta["augment"]["rotate"] is True
    x = torch.from_numpy(particles(3, size=40, seed=5)[0])[:, None]
    assert torch.equal(predict_proba(model, x), predict_proba(loaded, x))


def test_three_classes():
    images, masks = particles(48, seed=1, noise=0.2)
    model, history = fit_baseline(images, masks, n_classes=3, class_names=["bg", "disc", "bar"],
                                  max_epochs=15, patience=4, augment_params=AUG, seed=0, **KNOBS)
    test_images, test_masks = particles(16, seed=98, noise=0.2)
    p = predict_proba(model, torch.from_numpy(test_images)[:, None])
    assert p.shape == (16, 3, 32, 32)
    label = p.argmax(1).numpy()
    assert (label == test_masks).mean() > 0.9
    assert iou(label > 0, test_masks > 0) > 0.8


def test_bf16_autocast_still_learns(data):
    images, masks = data
    model, history = fit_baseline(images, masks, n_classes=2, class_names=["bg", "fg"], max_epochs=8,
                                  patience=4, augment_params=AUG, seed=0, **{**KNOBS, "bf16": True})
    assert model.training_info["precision"] == "bfloat16"
    test_images, test_masks = particles(16, seed=99)
    p = predict_proba(model, torch.from_numpy(test_images)[:, None])[:, 1].numpy() > 0.5
    assert iou(p, test_masks > 0) > 0.7


def test_bad_inputs_are_rejected(data):
    images, masks = data
    with pytest.raises(ValueError, match="outside"):
        fit_baseline(images[:4], masks[:4] * 2, n_classes=2, class_names=["a", "b"], max_epochs=1, **KNOBS)
    with pytest.raises(ValueError, match="class_names"):
        fit_baseline(images[:4], masks[:4], n_classes=3, class_names=["a", "b"], max_epochs=1, **KNOBS)


def test_time_train_step():
    assert time_train_step(width=4, shape=(16, 16), batch_size=2, n_steps=1, device="cpu") > 0
