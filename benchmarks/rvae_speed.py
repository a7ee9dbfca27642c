"""Speed of the rVAE on this machine: decoder GFLOP/s against plain matmuls, and epochs.

Prints (no asserts):

* float32 matmul GFLOP/s: 2048 x 2048 @ 2048 x 2048, and one shaped like the
  decoder's hidden layer, ``(batch * pixels, 128) @ (128, 128)``;
* decoder forward + backward on one mini-batch, for the tiled decoder
  (``rotdyn.rvae``; CPU default), the plain split-first-layer decoder
  (layer by layer through autograd) and the naive spatial-VAE decoder
  (per-pixel concatenation of coordinates and z). GFLOP/s count the
  decoder's matmul FLOPs, forward + backward = 3 x forward;
* whole training epochs (encoder, decoder, KL, Adam, test ELBO) on synthetic
  windows, per decoder, each in a fresh subprocess with and without
  ``GLIBC_TUNABLES`` raising glibc's mmap/trim thresholds (large blocks
  then come from the reused heap instead of freshly mapped, kernel-zeroed
  pages); the epoch's decoder GFLOP/s as well;
* whether ``torch.compile`` works offline here and what it gives;
* bfloat16 autocast of the decoder matmul against float32 on this CPU.

    python benchmarks/rvae_speed.py             # 13,000 windows of 24 x 24
    python benchmarks/rvae_speed.py --quick     # 1,300 windows

Timings are the best of several repeats: the numbers move by up to 2x with
other load on a shared machine; the ratios (to the matmul measured in the
same run, tiled to naive) are the steadier figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from rotdyn.networks import autocast_dtype, cpu_has_fast_bf16
from rotdyn.evaluate.rvae import naive_decoder_forward
from rotdyn.rvae import RVAE

TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=8589934592"


def timed(fn, repeat: int = 5, warmup: int = 2) -> float:
    """Best (minimum) seconds of ``fn()`` over ``repeat`` calls.

    The minimum, not the median: on a shared virtual machine other tenants
    (CPU steal) only ever add time.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))


def decoder_flops(size: int, hidden: int, images: int) -> float:
    """Decoder matmul FLOPs of forward + backward (3 x forward) for ``images`` windows."""
    pixels = size * size
    forward = 2 * pixels * (2 * hidden + hidden * hidden + hidden)  # first (coords, K=2), second, output
    return 3.0 * forward * images


def matmul_gflops(size: int, hidden: int, batch: int) -> dict:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    square = 2 * 2048**3 / timed(lambda: a @ b) / 1e9
    x, w = torch.randn(batch * size * size, hidden), torch.randn(hidden, hidden)
    out = torch.empty(x.shape[0], hidden)  # preallocated: time the arithmetic, not fresh pages
    shaped = 2 * x.shape[0] * hidden * hidden / timed(lambda: torch.mm(x, w, out=out)) / 1e9
    return {"square": square, "shaped": shaped}


def decoder_step(model: RVAE, impl: str, latent: torch.Tensor):
    """One forward + backward of the decoder alone."""
    lat = latent.clone().requires_grad_(True)
    if impl == "naive":
        out = naive_decoder_forward(model, lat)
    else:
        model.tiled = impl == "tiled"
        out = model.decoder_raw(lat)
    out.square().mean().backward()


def bench_decoder(size: int, hidden: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = RVAE(size, hidden=hidden)
    latent = torch.randn(batch, model.n_latent)
    flops = decoder_flops(size, hidden, batch)
    return {impl: flops / timed(lambda: decoder_step(model, impl, latent), repeat=5) / 1e9
            for impl in ("tiled", "plain", "naive")}


def bench_compile(size: int, hidden: int, batch: int) -> str:
    """torch.compile of the plain decoder (forward + backward), if it works offline."""
    torch.manual_seed(0)
    model = RVAE(size, hidden=hidden, tiled=False)
    latent = torch.randn(batch, model.n_latent)
    flops = decoder_flops(size, hidden, batch)
    try:
        compiled = torch.compile(model.decoder_raw)
        t0 = time.perf_counter()
        lat = latent.clone().requires_grad_(True)
        compiled(lat).square().mean().backward()
        first = time.perf_counter() - t0

        def step():
            lat = latent.clone().requires_grad_(True)
            compiled(lat).square().mean().backward()

        rate = flops / timed(step, repeat=5) / 1e9
        return f"works: {rate:.1f} GFLOP/s (plain decoder), first call {first:.1f} s (compilation)"
    except Exception as exc:  # report, do not fail the benchmark
        return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def bench_bf16(size: int, hidden: int, batch: int) -> dict:
    x, w = torch.randn(batch * size * size, hidden), torch.randn(hidden, hidden)
    fp32 = timed(lambda: x @ w)
    xb, wb = x.bfloat16(), w.bfloat16()
    bf16 = timed(lambda: xb @ wb)
    return {"fp32_ms": fp32 * 1e3, "bf16_ms": bf16 * 1e3, "fast_bf16": cpu_has_fast_bf16(),
            "autocast_auto_cpu": str(autocast_dtype("cpu", "auto"))}


def child_epochs(args) -> None:
    """Run in a subprocess: time training epochs with one decoder implementation."""
    from rotdyn.fit_rvae import fit

    rng = np.random.default_rng(0)
    x = rng.random((args.windows, args.size, args.size), dtype=np.float32)
    torch.set_num_threads(args.threads)
    _, history = fit(x, epochs=args.epochs, batch_size=200, lr=1e-4, seed=0, device="cpu",
                     likelihood="bernoulli", hidden=args.hidden, tiled=args.impl == "tiled")
    seconds = float(history["seconds"].iloc[1:].min() if len(history) > 1 else history["seconds"].iloc[0])
    n_train = int(round(0.75 * args.windows))
    flops = decoder_flops(args.size, args.hidden, n_train) + decoder_flops(args.size, args.hidden,
                                                                           args.windows - n_train) / 3
    print(json.dumps({"seconds": seconds, "gflops": flops / seconds / 1e9}))


def run_child(args, impl: str, tunables: bool) -> dict:
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if tunables:
        env["GLIBC_TUNABLES"] = TUNABLES
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--windows", str(args.windows),
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--size", str(args.size),
           "--hidden", str(args.hidden)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,300 windows instead of 13,000")
    parser.add_argument("--windows", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timing run (the first is dropped)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="tiled", help=argparse.SUPPRESS)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile check")
    args = parser.parse_args()
    if args.windows is None:
        args.windows = 1300 if args.quick else 13000
    if args.child:
        child_epochs(args)
        return
    torch.set_num_threads(args.threads)
    S, H, B = args.size, args.hidden, 200
    print(f"rVAE speed: {S}x{S} windows, hidden {H}, batch {B}, {args.threads} threads, "
          f"torch {torch.__version__}, GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
    mm = matmul_gflops(S, H, B)
    print(f"matmul float32: 2048^3 {mm['square']:.1f} GFLOP/s; decoder-shaped "
          f"({B * S * S},{H})@({H},{H}) into a preallocated output {mm['shaped']:.1f} GFLOP/s")
    dec = bench_decoder(S, H, B)
    for impl, rate in dec.items():
        print(f"decoder fwd+bwd, {impl:5s}: {rate:6.1f} GFLOP/s = {100 * rate / mm['square']:5.1f} % of "
              f"2048^3 matmul, {100 * rate / mm['shaped']:5.1f} % of decoder-shaped matmul")
    print(f"tiled / naive decoder: {dec['tiled'] / dec['naive']:.2f}x; plain split / naive: "
          f"{dec['plain'] / dec['naive']:.2f}x")
    bf = bench_bf16(S, H, B)
    print(f"hidden-layer matmul: float32 {bf['fp32_ms']:.1f} ms, bfloat16 {bf['bf16_ms']:.1f} ms "
          f"(native bf16: {bf['fast_bf16']}; autocast 'auto' on CPU -> {bf['autocast_auto_cpu']})")
    if not args.no_compile:
        print("torch.compile:", bench_compile(S, H, B))
    print(f"training epochs on {args.windows} windows (75/25 split, batch {B}; best of epochs 2..{args.epochs}):")
    for impl in ("tiled", "plain"):
        for tunables in (False, True):
            r = run_child(args, impl, tunables)
            print(f"  {impl:5s} decoder, GLIBC_TUNABLES {'set  ' if tunables else 'unset'}: "
                  f"{r['seconds']:7.2f} s/epoch, decoder {r['gflops']:6.1f} GFLOP/s "
                  f"({100 * r['gflops'] / mm['square']:.0f} % of matmul)")
    print(f"  (GLIBC_TUNABLES={TUNABLES})")


if __name__ == "__main__":
    main()
