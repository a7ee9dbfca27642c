"""Acceptance figures of the rVAE (issue 4, item 6) on the simulated rods movie.

Simulates the demo's rods movie (config/config.yaml ``simulate.rods``), cuts a
window around every rod at its TRUE position (``rotdyn.fit_rvae.
simulated_windows``: the segmentation is left out, ``benchmarks/demo.py``
scores the whole chain), trains the rVAE with the workflow's ``rvae``
settings and prints, against the true rod angles:

* median absolute error of the latent angle after the best global offset and
  sign, on the full circle (acceptance: <= 10 deg) and modulo 180 deg (axis),
  and the share of rods turned by 180 deg (head and tail swapped);
* the offsets' spread, sd of dx and dy in px (acceptance: below 1 px);
* peaks of the angle histogram before and after the transition frame
  (acceptance: six and four);
* the median epoch time.

Cases: frame windows with the polarity search (the defaults), frame windows
without it (``rvae.polarity: false``, the state before), and smoothed masks,
a head-tail symmetric stand-in for probability windows (axis only; the polarity
search off, as config/config.yaml advises for such windows).

    python benchmarks/rvae_acceptance.py           # all three cases (about 8 min on 2 cores)
    python benchmarks/rvae_acceptance.py --quick   # the default case only
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from rotdyn.encode import encode_windows as encode
from rotdyn.evaluate.rvae import angle_accuracy, angle_peaks, simulated_windows
from rotdyn.fit_rvae import fit
from rotdyn.settings import rvae_fit_settings
from rotdyn.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]


def score(sim, windows, truth, options: dict) -> dict:
    """Train on ``windows``, encode them, and score against ``truth``."""
    start = time.perf_counter()
    model, history = fit(windows, device="cpu", threads=2, **options)
    wall = time.perf_counter() - start
    enc = encode(model, windows)
    acc = angle_accuracy(enc["angle"], truth["angle"])
    frame = truth["frame"].to_numpy()
    transition = int(sim.params["transition_frame"])
    return dict(acc, dx_sd=float(enc["dx_px"].std()), dy_sd=float(enc["dy_px"].std()),
                peaks_before=angle_peaks(enc["angle"][frame < transition]),
                peaks_after=angle_peaks(enc["angle"][frame >= transition]),
                epoch_s=float(history["seconds"].median()), wall_s=wall)


def report(name: str, r: dict) -> None:
    print(f"{name}: angle median error {r['median_error_deg']:.1f} deg full circle (sign {r['sign']:+d}), "
          f"{r['median_axis_error_deg']:.1f} deg axis; head-tail flipped {r['flipped_fraction']:.1%} of {r['n']}")
    print(f"  offsets sd dx {r['dx_sd']:.2f} px, dy {r['dy_sd']:.2f} px; angle histogram peaks "
          f"{r['peaks_before']} before / {r['peaks_after']} after the transition; "
          f"epoch {r['epoch_s']:.2f} s (median), fit {r['wall_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the default case only")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rods = {k: v for k, v in config["simulate"]["rods"].items() if k not in ("pixel_size_nm", "frame_interval_s")}
    sim = simulate("rods", **rods)
    options = rvae_fit_settings(config["rvae"], "frames")
    size = config["patches"]["size"]
    print(f"rods movie: {rods['frames']} frames of {rods['size']} px, transition at frame "
          f"{sim.params['transition_frame']}; windows of {size} px at the true positions; rvae settings "
          + ", ".join(f"{k}={v}" for k, v in options.items()))
    frames, truth = simulated_windows(sim, "frames", size=size)
    cases = [("frames, polarity search (default)", frames, {})]
    if not args.quick:
        cases += [("frames, no polarity search", frames, {"polarity": False})]
        masks, _ = simulated_windows(sim, "labels", size=size)
        cases += [("smoothed masks (head-tail symmetric), bernoulli, no polarity search", masks,
                   {"likelihood": "bernoulli", "polarity": False})]
    for name, windows, extra in cases:
        report(name, score(sim, windows, truth, {**options, **extra}))


if __name__ == "__main__":
    main()
