"""The rVAE model: geometry and sign conventions, the split decoder, priors, save/load."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rotdyn.evaluate.rvae import naive_decoder_forward
from rotdyn.rvae import RVAE, latent_grid, load_rvae, pixel_grid, render, save_rvae


def _model(size=25, seed=0, **kw):
    torch.manual_seed(seed)
    return RVAE(size, **kw)


def test_pixel_grid_is_centred_on_the_particle_pixel_with_y_up():
    for size in (24, 25):
        g = pixel_grid(size).reshape(size, size, 2).numpy()
        c = size // 2
        assert np.allclose(g[c, c], 0)
        assert g[c, c + 1, 0] > 0 and g[c - 1, c, 1] > 0  # +x right, +y up (toward row 0)
        assert np.isclose(g[c, c + 1, 0], 2 / (size - 1))
    g = pixel_grid(25).numpy()
    assert g.min() == pytest.approx(-1) and g.max() == pytest.approx(1)


@pytest.mark.parametrize("tiled", [True, False])
def test_decoded_angle_rotates_counter_clockwise_as_displayed(tiled):
    # odd size: the particle pixel is the array centre, so np.rot90 turns about it
    model = _model(tiled=tiled)
    z = [[0.4, -0.7]]
    base = render(model, angle=0.0, z=z)[0]
    assert base.std() > 1e-3  # a non-trivial image
    for k in (1, 2, 3):
        turned = render(model, angle=k * math.pi / 2, z=z)[0]
        # np.rot90 rotates counter-clockwise as displayed (row 0 on top)
        np.testing.assert_allclose(turned, np.rot90(base, k), atol=2e-6)
    # and not clockwise
    assert np.abs(render(model, angle=math.pi / 2, z=z)[0] - np.rot90(base, -1)).max() > 1e-3


@pytest.mark.parametrize("tiled", [True, False])
def test_offsets_shift_right_and_down_in_pixels(tiled):
    model = _model(dx_scale=2 / 24, tiled=tiled)  # one latent unit = one pixel for size 25
    assert model.offsets_px(1.0, 2.0) == pytest.approx((1.0, 2.0))
    z = [[0.3, 0.2]]
    base = render(model, z=z)[0]
    moved = render(model, dx=1.0, dy=2.0, z=z)[0]
    # +dx moves content one column right, +dy two rows down
    np.testing.assert_allclose(moved[2:, 1:], base[:-2, :-1], atol=2e-6)
    assert RVAE(24).offsets_px(1.0, -1.0) == pytest.approx((1.15, -1.15))


@pytest.mark.parametrize("latent_dim,translation", [(2, True), (0, False), (3, True)])
@pytest.mark.parametrize("tiled", [True, False])
def test_split_decoder_equals_naive_concatenation(latent_dim, translation, tiled):
    model = _model(size=24, latent_dim=latent_dim, translation=translation, tiled=tiled, tile_pixels=1500)
    latent = torch.randn(9, model.n_latent) * torch.tensor([3.0] + [1.0] * (model.n_latent - 1))
    with torch.no_grad():
        split = model.decoder_raw(latent)
        naive = naive_decoder_forward(model, latent)
    assert split.shape == naive.shape == (9, 24 * 24)
    torch.testing.assert_close(split, naive, rtol=1e-5, atol=1e-6)


def test_tiled_gradients_equal_plain_autograd():
    model = _model(size=24, tile_pixels=2000)  # 3 images per tile: several tiles and a short one
    x = torch.rand(11, 24, 24)
    grads, losses = [], []
    for tiled in (True, False):
        model.tiled = tiled
        model.zero_grad()
        loss = model.negative_elbo(x, generator=torch.Generator().manual_seed(3))["loss"].mean()
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for name, g in grads[1].items():
        torch.testing.assert_close(grads[0][name], g, rtol=1e-4, atol=1e-6 * float(g.abs().max()) + 1e-9)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_tiled_decoder_refuses_stale_buffers(precision):
    model = _model(size=12, tiled=True, precision=precision)
    lat = torch.randn(4, model.n_latent)
    first = model.decoder_raw(lat).sum()
    model.decoder_raw(lat).sum()  # overwrites the saved activations
    with pytest.raises(RuntimeError, match="backward"):
        first.backward()


def test_inference_then_training_works():
    # buffers made under inference_mode must not poison a later training step
    model = _model(size=12)
    render(model, angle=np.linspace(0, 1, 3))
    model.negative_elbo(torch.rand(3, 12, 12))["loss"].sum().backward()
    assert model.second.weight.grad is not None


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
def test_encode_shapes_and_angle_wrapping(encoder):
    model = _model(size=24, encoder=encoder, latent_dim=3)
    q = model.encode(torch.rand(6, 24, 24))
    assert q["mean"].shape == q["sd"].shape == (6, 6)  # angle, dx, dy, 3 z
    assert (q["sd"] > 0).all()
    assert (q["mean"][:, 0] >= -math.pi).all() and (q["mean"][:, 0] <= math.pi).all()
    assert model.forward(torch.rand(2, 24, 24)).shape == (2, 24, 24)
    assert _model(size=24, translation=False, latent_dim=2).n_latent == 3


def test_kl_terms():
    model = _model(size=8, latent_dim=1, rotation_prior="normal", rotation_sd=0.1, translation_sd=0.5)
    # posterior equal to the prior: KL 0
    mean = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    sd = torch.tensor([[0.1, 0.5, 0.5, 1.0]])
    assert model.kl(mean, sd).item() == pytest.approx(0, abs=1e-6)
    # normal rotation prior charges the mean: m^2 / (2 * 0.1^2)
    shifted = mean.clone()
    shifted[0, 0] = 1.0
    assert model.kl(shifted, sd).item() == pytest.approx(50.0, rel=1e-5)
    # uniform on the circle: the mean is free, the sd is held near rotation_sd
    vm = _model(size=8, latent_dim=1, rotation_prior="uniform", translation_sd=0.5)
    assert vm.kl(shifted, sd).item() == pytest.approx(0, abs=1e-6)
    wider = sd.clone()
    wider[0, 0] = 0.3
    assert vm.kl(mean, wider).item() > 0.5
    # z: standard normal KL
    zq = sd.clone()
    zq[0, 3] = 2.0
    assert model.kl(mean, zq).item() == pytest.approx(0.5 * (4 - 1) - math.log(2), rel=1e-5)


def test_likelihoods():
    x = torch.rand(3, 8, 8)
    raw = torch.randn(3, 64)
    bern = _model(size=8, likelihood="bernoulli")
    expected = F.binary_cross_entropy_with_logits(raw, x.reshape(3, -1), reduction="none").sum(1)
    torch.testing.assert_close(bern.nll(x, raw), expected)
    gauss = _model(size=8, likelihood="gaussian", noise_sd=0.2)
    r = x.reshape(3, -1) - raw
    expected = (r**2 / (2 * 0.04) + math.log(0.2) + 0.5 * math.log(2 * math.pi)).sum(1)
    torch.testing.assert_close(gauss.nll(x, raw), expected)
    learned = _model(size=8)
    assert learned.log_noise is not None and learned.noise_sd().item() == pytest.approx(1.0)
    assert bern.noise_sd() is None and bern.log_noise is None


def test_render_and_latent_grid():
    model = _model(size=16, likelihood="bernoulli")
    images = render(model, angle=[0.0, 1.0, 2.0], z=[0.5, 0.5])
    assert images.shape == (3, 16, 16) and images.dtype == np.float32
    assert (images >= 0).all() and (images <= 1).all()  # probabilities
    grid, cols, rows = latent_grid(model, n=4, ranges=((-1, 1), (-3, 3)))
    assert grid.shape == (4, 4, 16, 16)
    assert cols[0] == -1 and cols[-1] == 1 and rows[0] == 3 and rows[-1] == -3  # top row = high z_2
    np.testing.assert_allclose(grid[0, 3], render(model, z=[1.0, 3.0])[0], atol=1e-6)
    one, _, _ = latent_grid(_model(size=16, latent_dim=1), n=5)
    assert one.shape == (1, 5, 16, 16)
    with pytest.raises(ValueError, match="columns"):
        render(model, z=[1.0, 2.0, 3.0])


def test_save_load_round_trip(tmp_path):
    model = _model(size=20, latent_dim=3, likelihood="gaussian", rotation_prior="normal", rotation_sd=0.2)
    with torch.no_grad():
        model.log_noise.fill_(-1.3)
    path = tmp_path / "rvae.pt"
    save_rvae(model, path, meta={"epochs": np.int64(7), "loss": np.float64(1.5), "note": "x"})
    loaded, meta = load_rvae(path)
    assert meta["epochs"] == 7 and meta["loss"] == 1.5 and meta["config"] == model.config
    assert not loaded.training
    x = torch.rand(5, 20, 20)
    model.eval()
    with torch.no_grad():
        for key in ("mean", "sd"):
            assert torch.equal(model.encode(x)[key], loaded.encode(x)[key])
        assert torch.equal(model(x), loaded(x))
    assert loaded.noise_sd().item() == pytest.approx(math.exp(-1.3))


@pytest.mark.parametrize("kwargs", [dict(encoder="resnet"), dict(likelihood="poisson"),
                                    dict(rotation_prior="flat"), dict(rotation_sd=0), dict(noise_sd=-1),
                                    dict(size=1)])
def test_invalid_options(kwargs):
    args = {"size": 12, **kwargs}
    with pytest.raises(ValueError):
        RVAE(**args)


# ------------------------------------------------------------------ polarity
@pytest.mark.parametrize("size", [24, 25])
def test_aligned_undoes_the_decoders_angle_and_offsets(size):
    model = _model(size=size, latent_dim=2)
    torch.manual_seed(1)
    latent = torch.cat([torch.rand(5, 1) * 2 * math.pi - math.pi, torch.randn(5, 4)], 1)
    upright = latent.clone()
    upright[:, :3] = 0  # angle 0, no offsets: the template frame
    turned = upright.clone()
    turned[:, 0] = math.pi
    with torch.no_grad():
        plus, minus = model.aligned(model.decode(latent), latent)
        want_plus, want_minus = model.decoder_raw(upright), model.decoder_raw(turned)
    inner = model.grid.norm(dim=1) < 0.6  # away from the border, where the window ends
    scale = float(want_plus.max() - want_plus.min())
    torch.testing.assert_close(plus[:, inner], want_plus[:, inner], rtol=0, atol=0.02 * scale)
    torch.testing.assert_close(minus[:, inner], want_minus[:, inner], rtol=0, atol=0.02 * scale)


def _headed_rods(n=300, size=24, seed=0):
    """Rods (length 16, width 5) whose head end is 30 % brighter, at random angles and sub-pixel
    positions; half have a brighter, head-less partner 6 px to a random side."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi, np.pi, n)
    shift = rng.uniform(-0.5, 0.5, (n, 2))  # px, (right, down)
    yy, xx = np.mgrid[:size, :size] - size // 2
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        x, y = xx - shift[i, 0], -(yy - shift[i, 1])  # display coordinates, y up
        s = x * np.cos(angle[i]) + y * np.sin(angle[i])  # along the head direction
        t = -x * np.sin(angle[i]) + y * np.cos(angle[i])
        body = lambda t0: np.clip(3 - np.hypot(np.clip(np.abs(s) - 5.5, 0, None), t - t0), 0, 1)  # noqa: E731
        out[i] = body(0) * (0.85 + 0.3 * np.clip(s / 16, -0.5, 0.5))
        if i % 2:
            out[i] = np.maximum(out[i], 1.2 * body(rng.choice([-6, 6])))
    out += 0.1 * rng.standard_normal(out.shape).astype(np.float32)
    return out, angle, shift


def test_fit_polarity_tells_head_from_tail_despite_partners_and_offset_errors():
    from rotdyn.evaluate.rvae import angle_accuracy

    windows, angle, shift = _headed_rods()
    model = _model(size=24, latent_dim=0)
    rng = np.random.default_rng(1)
    # an encoder with the axis right, the end chosen at random, and offsets off by up to 0.4 px
    posterior = np.angle(np.exp(1j * (angle + np.pi * (rng.random(len(angle)) < 0.5))))
    off = (shift + rng.uniform(-0.4, 0.4, shift.shape)) / (model.config["dx_scale"] * 23 / 2)
    latent = torch.as_tensor(np.column_stack([posterior, off]), dtype=torch.float32)
    model.encode = lambda x: {"mean": latent}
    x = torch.as_tensor(windows)
    assert not model.polarity_flip(x, latent).any()  # no reference yet: nothing turned
    assert model.fit_polarity(x, batch_size=len(x)) == 1.0
    resolved = model.resolve_polarity(x, latent)[:, 0].numpy()
    acc = angle_accuracy(resolved, angle)
    assert acc["flipped_fraction"] <= 0.02 and acc["median_error_deg"] < 0.1
    # refitting keeps the reference's sign: the same ends, no jump of pi
    ref = model.polarity_ref.clone()
    assert model.fit_polarity(x, batch_size=len(x)) <= 0.02
    assert torch.dot(model.polarity_ref, ref) > 0
    # switched off: nothing turned even with a reference
    model.config["polarity"] = False
    assert not model.polarity_flip(x, latent).any()


def test_training_loss_decodes_the_resolved_polarity():
    model = _model(size=12, latent_dim=1)
    x = torch.rand(16, 12, 12)
    torch.manual_seed(4)
    model.polarity_ref.copy_(torch.randn(144))
    with torch.no_grad():
        q = model.encode(x)
        eps = torch.randn(q["mean"].shape, generator=torch.Generator().manual_seed(2))
        latent = q["mean"] + q["sd"] * eps
        flip = model.polarity_flip(x, latent)
        assert 0 < int(flip.sum()) < len(x)  # some windows turned, some not
        want = model.nll(x, model.decoder_raw(model.resolve_polarity(x, latent)))
        got = model.negative_elbo(x, generator=torch.Generator().manual_seed(2))["nll"]
    torch.testing.assert_close(got, want)


def test_polarity_reference_is_saved_and_old_files_load(tmp_path):
    model = _model(size=12)
    model.polarity_ref.copy_(torch.linspace(-1, 1, 144))
    save_rvae(model, tmp_path / "new.pt")
    loaded, _ = load_rvae(tmp_path / "new.pt")
    assert torch.equal(loaded.polarity_ref, model.polarity_ref)
    blob = torch.load(tmp_path / "new.pt", weights_only=True)
    del blob["state_dict"]["polarity_ref"]
    del blob["config"]["polarity"]
    torch.save(blob, tmp_path / "old.pt")  # as saved before polarity existed
    old, meta = load_rvae(tmp_path / "old.pt")
    assert not old.polarity_ref.any() and meta["config"] == blob["config"]


def test_old_rotation_prior_name_warns_and_means_uniform(tmp_path):
    with pytest.warns(FutureWarning, match="'vonmises' is deprecated.*'uniform'"):
        old = _model(size=8, rotation_prior="vonmises")
    assert old.config["rotation_prior"] == "uniform"
    new = _model(size=8, rotation_prior="uniform")
    mean, sd = torch.tensor([[2.0, 0.1, 0.2, 0.3, 0.4]]), torch.full((1, 5), 0.3)
    assert old.kl(mean, sd).item() == new.kl(mean, sd).item()
    # a model file written by the last release loads without a warning
    save_rvae(new, tmp_path / "m.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    blob["config"]["rotation_prior"] = "vonmises"
    torch.save(blob, tmp_path / "old.pt")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded, meta = load_rvae(tmp_path / "old.pt")
    assert loaded.config["rotation_prior"] == "uniform" == meta["config"]["rotation_prior"]
