"""Augmentation: geometry shared by image and mask, intensities on images only, seeded."""
import numpy as np
import pytest
import torch

from rotdyn.augment import augment, gaussian_blur, rotate

ALL = dict(rotate=True, flip=True, scale=0.15, gaussian_noise=0.2, poisson_noise=50.0, blur=1.5,
           gamma=0.3, contrast=0.3)


def _batch(seed=0, n=4, size=24, n_labels=3):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, size, size, generator=g)
    masks = torch.randint(0, n_labels, (n, size, size), generator=g)
    return images, masks


def _blobs(n=6, size=48, seed=0):
    """Masks of a few discs and bars, and images equal to them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.int64)
    for mask in masks:
        for _ in range(3):
            cy, cx = rng.uniform(8, size - 8, 2)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(3, 6) ** 2] = 1
        mask[int(rng.integers(5, size - 5)), 4 : size - 4] = 1  # a one-pixel bar
    masks = torch.from_numpy(masks)
    return masks[:, None].float(), masks


def test_rotation_by_90_degrees_is_rot90():
    images, masks = _batch()
    out_images, out_masks = rotate(images, masks, 90.0)
    assert torch.allclose(out_images, torch.rot90(images, 1, dims=(-2, -1)), atol=1e-5)
    assert torch.equal(out_masks, torch.rot90(masks, 1, dims=(-2, -1)))


def test_all_off_is_identity():
    images, masks = _batch()
    out_images, out_masks = augment(images, masks, {}, torch.Generator().manual_seed(0))
    assert torch.equal(out_images, images) and torch.equal(out_masks, masks)
    off = dict(rotate=False, flip=False, scale=0, gaussian_noise=0, poisson_noise=0, blur=0, gamma=0, contrast=0)
    out_images, out_masks = augment(images, masks, off, torch.Generator().manual_seed(0))
    assert torch.equal(out_images, images) and torch.equal(out_masks, masks)


def test_masks_stay_integer_labels():
    images, masks = _batch()
    out_images, out_masks = augment(images, masks, ALL, torch.Generator().manual_seed(3))
    assert out_masks.dtype == masks.dtype and out_masks.shape == masks.shape
    assert set(out_masks.unique().tolist()) <= set(masks.unique().tolist())
    assert out_images.shape == images.shape and torch.isfinite(out_images).all()


def test_image_and_mask_stay_aligned():
    images, masks = _blobs()
    geometry = dict(rotate=True, flip=True, scale=0.2)
    for seed in range(3):
        out_images, out_masks = augment(images, masks, geometry, torch.Generator().manual_seed(seed))
        inner = (slice(None), slice(3, -3), slice(3, -3))
        agree = ((out_images[:, 0] > 0.5) == (out_masks == 1))[inner].float().mean()
        assert agree > 0.98
        assert not torch.equal(out_masks, masks)  # something did move


def test_deterministic_under_the_generator():
    images, masks = _batch()
    a = augment(images, masks, ALL, torch.Generator().manual_seed(7))
    b = augment(images, masks, ALL, torch.Generator().manual_seed(7))
    c = augment(images, masks, ALL, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_intensity_changes_leave_masks_alone():
    images, masks = _batch()
    params = dict(gaussian_noise=0.3, poisson_noise=20.0, blur=2.0, gamma=0.5, contrast=0.5)
    out_images, out_masks = augment(images, masks, params, torch.Generator().manual_seed(0))
    assert torch.equal(out_masks, masks)
    assert not torch.allclose(out_images, images)


def test_blur_keeps_mean_and_smooths():
    images, _ = _batch()
    blurred = gaussian_blur(images, torch.full((4,), 2.0))
    assert torch.allclose(blurred.mean(), images.mean(), atol=0.02)
    assert blurred.std() < 0.5 * images.std()
    assert torch.allclose(gaussian_blur(images, torch.zeros(4)), images, atol=1e-6)


def test_unknown_parameter_is_an_error():
    images, masks = _batch()
    with pytest.raises(ValueError, match="rotation"):
        augment(images, masks, {"rotation": True}, torch.Generator())
