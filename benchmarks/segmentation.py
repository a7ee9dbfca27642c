"""Acceptance figures of the segmentation chain (issue: movie to particles).

Prints, for simulated movies with ground truth, the detection precision and
recall (matching within 3 px), centroid RMSE, median orientation error (axis,
modulo 180 deg), recall of touching rods, per-class scores on atoms, the
ensemble training time, and inference frames per second on 512 x 512 frames.
Settings are the workflow's defaults (config/config.yaml).

    python benchmarks/segmentation.py            # demo-sized movies
    python benchmarks/segmentation.py --quick    # smaller, for a quick look
"""
from __future__ import annotations

import argparse
import tempfile
from math import nan
from pathlib import Path

import yaml

from rotdyn.evaluate.segmentation import evaluate_segmentation, time_inference
from rotdyn.networks import load_model

ROOT = Path(__file__).resolve().parents[1]
ATOMS_LOCATE = {"split": "distance", "min_area": 4, "min_distance": 3}


def settings(config: dict) -> tuple[dict, dict, int, int]:
    """fit_baseline parameters, locate parameters, members, member epochs from the config."""
    t = config["train"]
    train = {key: t[key] for key in ("arch", "width", "max_epochs", "patience", "batch_size", "lr",
                                      "val_fraction", "seed")}
    train["augment_params"] = t["augment"]
    return train, dict(config["locate"]), t["members"], t["member_epochs"]


def cases(config: dict, quick: bool) -> dict:
    """The movies to score: rods at the demo's noise and noisier, and atoms."""
    rods = {k: v for k, v in config["simulate"]["rods"].items() if k not in ("pixel_size_nm", "frame_interval_s")}
    training = dict(config["training_set"]["simulate"])
    training.pop("kind")
    training["tile"] = config["training_set"]["tile"]
    frames = 12 if quick else rods["frames"]
    out = {
        f"rods, noise {rods['noise']}": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2}, training),
        "rods, noise 0.25": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2, "noise": 0.25},
                             {**training, "noise": 0.25}),
        "atoms": ("atoms", {"size": 128, "frames": 6 if quick else 20, "seed": 0},
                  {"frames": 12, "size": 128, "seed": 1, "tile": training["tile"]}),
    }
    return out


def main() -> None:
    """Command line: score every case, then time inference on 512 x 512 frames."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    train, locate_params, members, member_epochs = settings(config)
    print(f"ensemble: {train['arch']} width {train['width']}, {members} members x {member_epochs} epochs")
    print(f"{'case':18} {'prec':>6} {'recall':>6} {'rmse px':>7} {'orient':>7} {'touch':>6} "
          f"{'train s':>8} {'seg s':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kind, movie, training) in cases(config, args.quick).items():
            loc = {**locate_params, **(ATOMS_LOCATE if kind == "atoms" else {})}
            s = evaluate_segmentation(kind, Path(tmp) / name.replace(" ", "_"), movie=movie, training=training,
                                      train=train, locate_params=loc, members=members,
                                      member_epochs=member_epochs, threads=args.threads)
            if kind == "atoms":
                s["orientation_error_deg"] = nan  # round: no orientation to score
            print(f"{name:18} {s['precision']:6.3f} {s['recall']:6.3f} {s['rmse']:7.3f} "
                  f"{s.get('orientation_error_deg', nan):7.2f} {s.get('touching_recall', nan):6.3f} "
                  f"{s['train_seconds']:8.1f} {s['segment_seconds']:6.1f}")
            for key in sorted(k for k in s if k.startswith(("precision_class", "recall_class"))):
                print(f"    {key}: {s[key]:.3f}")
        folder = Path(tmp) / name.replace(" ", "_")
        models = [load_model(p)[0] for p in sorted(folder.glob("member_*.pt"))]
        fps = time_inference(models, shape=(512, 512), n_frames=4 if args.quick else 16, batch_size=4)
        print(f"inference, 512 x 512 frames, {len(models)} members: {fps:.2f} frames/s on this CPU")


if __name__ == "__main__":
    main()
