"""Network shapes, any-size frames, probabilities and checkpoints."""
import pytest
import torch

from rotdyn.networks import (
    DilNet,
    autocast_dtype,
    build_network,
    fuse_batchnorm,
    group_members,
    inference_network,
    load_model,
    max_pool2,
    pad_multiple,
    pick_device,
    predict_proba,
    probabilities,
    save_model,
    stem,
)


@pytest.mark.parametrize("arch", ["dilnet", "unet"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_any_frame_size_is_kept(arch, n_classes):
    torch.manual_seed(0)
    model = build_network(arch, n_classes, width=4)
    p = predict_proba(model, torch.randn(2, 1, 127, 93))
    assert p.shape == (2, n_classes, 127, 93)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, 127, 93), atol=1e-5)
    assert ((p >= 0) & (p <= 1)).all()
    assert not torch.is_inference_mode_enabled()


def test_dilnet_structure():
    net = DilNet(1, 1, width=8)
    rates = [m.dilation[0] for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.dilation[0] > 1]
    assert rates == [2, 4, 6, 2, 4, 6]
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert not pools  # the single pooling is functional, in forward
    assert net.cascade1.layers[0][0].in_channels == 8 and net.cascade2.layers[-1][0].out_channels == 16
    assert net.head.out_channels == 1


def test_build_network_rejects_unknown_arch():
    with pytest.raises(ValueError, match="resnet"):
        build_network("resnet", 2)


def test_probabilities_binary_and_multiclass():
    logits = torch.tensor([[[[0.0, 2.0]]]])
    p = probabilities(logits, 2)
    s = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(p[0, :, 0, 1], torch.tensor([1 - s, s]))
    p3 = probabilities(torch.randn(1, 3, 4, 4), 3)
    assert torch.allclose(p3.sum(1), torch.ones(1, 4, 4))


def test_pad_multiple_reflects_and_crops():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded = pad_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 8)
    assert torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[0, 0, 3, :5], x[0, 0, 1])  # reflection, not zeros
    assert pad_multiple(x[..., :1, :1], 8).shape == (1, 1, 8, 8)  # too small to reflect


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_network("dilnet", 3, width=4)
    model.train()
    model(torch.randn(4, 1, 16, 16))  # move the BatchNorm running statistics off their defaults
    path = tmp_path / "m.pt"
    save_model(model, path, {"class_names": ["background", "rod", "disc"], "epochs": 3})
    loaded, meta = load_model(path)
    assert meta["arch"] == "dilnet" and meta["n_classes"] == 3 and meta["width"] == 4
    assert meta["class_names"] == ["background", "rod", "disc"] and meta["epochs"] == 3
    x = torch.randn(2, 1, 20, 24)
    assert torch.equal(predict_proba(model, x), predict_proba(loaded, x))
    assert not list(tmp_path.glob(".*part"))


def test_save_requires_class_names(tmp_path):
    with pytest.raises(ValueError, match="class_names"):
        save_model(build_network("unet", 2, width=4), tmp_path / "m.pt", {})


def test_devices_and_precision():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert autocast_dtype("cpu", False) is None
    assert autocast_dtype("cpu", True) == torch.bfloat16
    with pytest.raises(ValueError):
        autocast_dtype("cpu", "maybe")


def _with_statistics(model, seed):
    """``model`` in eval mode with BatchNorm running statistics moved off their defaults."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 24, 24) * 2 + 1)
    return model.eval()


@pytest.mark.parametrize(("arch", "n_classes"), [("dilnet", 2), ("unet", 3)])
def test_grouped_network_equals_members_one_by_one(arch, n_classes):
    members = [_with_statistics(build_network(arch, n_classes, width=4), seed) for seed in range(3)]
    grouped = group_members(members)
    x = torch.randn(2, 1, 21, 26)
    with torch.no_grad():
        one_by_one = torch.cat([m(x) for m in members], dim=1)
        together = grouped(x)
    assert grouped.members == 3 and together.shape == one_by_one.shape
    assert torch.allclose(together, one_by_one, atol=1e-5, rtol=1e-5)
    assert (one_by_one[:, 0] - one_by_one[:, -1]).abs().max() > 1e-3  # members differ: the order matters


def test_group_members_rejects_mixed_members():
    with pytest.raises(ValueError, match="member 1"):
        group_members([build_network("dilnet", 2, width=4), build_network("dilnet", 2, width=8)])
    with pytest.raises(ValueError, match="no ensemble members"):
        group_members([])


def test_fused_batchnorm_keeps_outputs():
    model = _with_statistics(build_network("dilnet", 3, width=4), seed=1)
    fused = fuse_batchnorm(model)
    x = torch.randn(2, 1, 20, 18)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is left alone


def test_inference_network_bfloat16_keeps_the_image_precise():
    members = [_with_statistics(build_network("dilnet", 2, width=4), seed) for seed in range(2)]
    x = torch.rand(2, 1, 16, 16)
    fast = inference_network(members, torch.bfloat16)
    assert stem(fast)[0].dtype == torch.bfloat16 and stem(fast)[1].in_channels == 2
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in fast.parameters())
    with torch.no_grad():
        logits = fast(x)
        reference = torch.cat([m(x) for m in members], dim=1)
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - reference).abs().max() < 0.05 * reference.abs().max()


def test_grouped_network_is_not_saved(tmp_path):
    grouped = group_members([build_network("dilnet", 2, width=4) for _ in range(2)])
    with pytest.raises(ValueError, match="one by one"):
        save_model(grouped, tmp_path / "m.pt", {"class_names": ["background", "rod"]})


def test_max_pool2_equals_max_pool2d_with_and_without_autograd():
    x = torch.randn(2, 3, 8, 10).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(max_pool2(x), torch.nn.functional.max_pool2d(x, 2))
        assert torch.equal(max_pool2(x.bfloat16()), torch.nn.functional.max_pool2d(x.bfloat16(), 2))
    x.requires_grad_(True)
    max_pool2(x).sum().backward()  # training takes the autograd path
    assert x.grad.sum() == 2 * 3 * 4 * 5
