"""bfloat16 inside the tiled rVAE decoder: detection, the choice, numerics against float64, training.

Tolerances are in units of bfloat16's unit roundoff U = 2**-8 (8 significant
bits). The bfloat16 decoder rounds its inputs, weights, both activations and
its output once each; these errors have random signs, so output and
gradients land about 1 U from the exact values (measured: output 1.1 U rms,
weight gradients 0.7-1.0 U, latent gradient 1.7 U). The bounds below allow
2-3 U: loose enough for any draw of the data, far below what would change
training (float32: below 1e-3 U for the output, 1e-2 U for the gradients).
"""
from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rotdyn.fit_rvae import fit
from rotdyn.networks import cpu_has_fast_bf16
from rotdyn.rvae import RVAE, kernel

sys.path.insert(0, str(Path(__file__).parent))
from test_rvae import _headed_rods  # noqa: E402  (demo-like rods windows with a head, noise sd 0.1)

U = 2.0**-8


def _cpuinfo_flags() -> set[str] | None:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_fast_bf16_detection_agrees_with_the_cpu_flags():
    flags = _cpuinfo_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags on this system")
    native = bool(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})
    assert cpu_has_fast_bf16() == native, sorted(f for f in flags if "bf16" in f or "amx" in f)


def test_auto_precision_follows_the_cpu_and_the_work_per_window():
    fast = cpu_has_fast_bf16()
    big = RVAE(24, hidden=128, precision="auto")  # 576 px x 128^2: 9.4 M multiply-adds per window
    small = RVAE(8, hidden=16, precision="auto")  # 64 px x 16^2: 16 k, fixed costs win
    assert big.decoder_dtype() == (torch.bfloat16 if fast else torch.float32)
    assert small.decoder_dtype() == torch.float32
    assert RVAE(24, precision="auto", tiled=False).decoder_dtype() == torch.float32  # measured for the tiled one
    assert kernel.auto_dtype("cuda", 576, 128) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # asked for: bfloat16 whatever the option
        assert small.decoder_dtype() == RVAE(24, precision="float32").decoder_dtype() == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        RVAE(8, precision="half")


def _decoder_case(precision: str, fused: bool, monkeypatch):
    """Decoder output, -log p(x | z) and its gradients for fixed latents of rods windows, in ``precision``."""
    x = torch.as_tensor(_headed_rods(n=11, size=24, seed=0)[0])
    torch.manual_seed(0)
    base = RVAE(24, tile_pixels=2000)  # 3 windows per tile: several tiles and a short one
    with torch.no_grad():
        q = base.encode(x)
        latent = q["mean"] + q["sd"] * torch.randn(q["mean"].shape, generator=torch.Generator().manual_seed(3))
    model = RVAE(24, tile_pixels=2000, precision="float32" if precision == "float64" else precision)
    model.load_state_dict(base.state_dict())
    if precision == "float64":  # the reference: the plain decoder in float64
        model, latent, x = model.double(), latent.double(), x.double()
    if not fused:
        monkeypatch.setattr(kernel, "_fused", lambda dtype: False)
    latent.requires_grad_(True)
    raw = model.decoder_raw(latent)
    loss = model.nll(x, raw).mean()
    loss.backward()
    grads = {n: p.grad.double() for n, p in model.named_parameters() if p.grad is not None}
    grads["latent"] = latent.grad.double()
    monkeypatch.undo()
    return raw.detach().double(), loss.item(), grads


@pytest.mark.parametrize("fused", [True, False], ids=["onednn-tanh", "matmul-then-tanh"])
def test_bf16_decoder_output_and_gradients_match_float64(fused, monkeypatch):
    ref_raw, ref_loss, ref_grads = _decoder_case("float64", True, monkeypatch)
    errors = {}
    for precision in ("float32", "bfloat16"):
        raw, loss, grads = _decoder_case(precision, fused, monkeypatch)
        assert raw.dtype == torch.float64 and grads.keys() == ref_grads.keys()
        rms = float((raw - ref_raw).pow(2).mean().sqrt() / ref_raw.pow(2).mean().sqrt())
        peak = float((raw - ref_raw).abs().max() / ref_raw.abs().max())
        grad = {n: float((g - ref_grads[n]).norm() / ref_grads[n].norm()) for n, g in grads.items()}
        errors[precision] = (rms, peak, abs(loss / ref_loss - 1), grad)
    rms, peak, loss_err, grad = errors["bfloat16"]
    assert rms <= 2 * U and peak <= 4 * U and loss_err <= 1e-3
    for name, err in grad.items():
        assert err <= 3 * U, (name, err)
    f_rms, _, _, f_grad = errors["float32"]
    assert f_rms <= 1e-3 * U and max(f_grad.values()) <= 1e-2 * U
    # and the bfloat16 path really computed in bfloat16 (no silent float32)
    assert rms > 100 * f_rms and grad["second.weight"] > 100 * f_grad["second.weight"]


def test_autocast_runs_the_tiled_decoder_in_bf16():
    torch.manual_seed(0)
    model = RVAE(24)
    latent = torch.randn(5, model.n_latent)
    with torch.no_grad():
        model.precision = "bfloat16"
        want = model.decoder_raw(latent)
        model.precision = "float32"
        full = model.decoder_raw(latent)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model.decoder_raw(latent)
    assert got.dtype == torch.float32 and torch.equal(got, want) and not torch.equal(got, full)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training under autocast: gradients reach the encoder
        loss = model.negative_elbo(torch.rand(5, 24, 24))["loss"].mean()
    loss.backward()
    assert model.second.weight.grad.dtype == torch.float32 and model.features[1].weight.grad.abs().sum() > 0
    assert model.second.weight.dtype == torch.float32  # master weights untouched


def test_fit_in_bf16_ends_within_1_percent_of_float32():
    """Same seed, same data: the test loss after training, and how far training moved it."""
    windows = _headed_rods(n=160, size=24, seed=0)[0]
    opts = dict(epochs=12, lr=1e-3, batch_size=16, seed=0, threads=1, device="cpu", hidden=64)
    histories = {}
    for precision in ("float32", "bfloat16"):
        model, histories[precision] = fit(windows, precision=precision, **opts)
        assert model.training_info["precision"] == model.precision == precision
    f32, bf16 = (histories[p]["test_loss"].to_numpy() for p in ("float32", "bfloat16"))
    assert not np.array_equal(f32, bf16)  # different arithmetic
    drop = f32[0] - f32[-1]
    assert drop > 0.05 * abs(f32[0])  # it trained
    assert abs(bf16[-1] - f32[-1]) <= 0.01 * abs(f32[-1])
    assert abs(bf16[-1] - f32[-1]) <= 0.05 * drop  # and differs by little of what training gained


def test_precision_is_resolved_logged_recorded_and_part_of_the_checkpoint_key(tmp_path, caplog):
    windows = np.random.default_rng(0).random((12, 8, 8), dtype=np.float32)
    opts = dict(epochs=2, hidden=16, batch_size=4, device="cpu", threads=1, checkpoint=tmp_path / "c.ckpt")
    with caplog.at_level(logging.INFO, logger="rotdyn.fit_rvae"):
        model, _ = fit(windows, precision="auto", **opts)
    assert model.training_info["precision"] == "float32"  # 8 x 8 x 16^2: too little work for bfloat16
    assert "decoder in float32 (precision auto" in caplog.text
    model, _ = fit(windows, precision="bfloat16", **opts)
    assert model.training_info["precision"] == "bfloat16" and model.precision == "bfloat16"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rotdyn.fit_rvae"):
        fit(windows, precision="float32", **{**opts, "epochs": 3})  # a bfloat16 checkpoint is another fit
    assert "does not match" in caplog.text and "resuming" not in caplog.text
    with pytest.raises(ValueError, match="precision must be one of"):
        fit(windows, precision="fp8", **opts)
    assert math.isfinite(model.training_info["final_test_loss"])
