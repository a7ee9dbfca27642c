"""Acceptance figures of the segmentation chain (issue: movie to particles; issue 13: crowded rods).

Accuracy: for simulated movies with ground truth, the detection precision and
recall (matching within 3 px), centroid RMSE, median orientation error (axis,
modulo 180 deg), recall of touching rods, per-class scores on atoms; and on
crowded rods from an independent generator (``tests/other_generator.py``,
rods 22 x 6.5 px with a raised disc head that overlap and cross), the recall
by nearest-neighbour distance. Speed: the ensemble training time, and
inference frames per second on 512 x 512 frames. Settings are the workflow's
(config/config.yaml, the ``rods`` and ``atoms`` kinds); the crowded case
sets only the rods' length and width in the rods kind's training simulation,
as a user would.

    python benchmarks/segmentation.py                   # demo-sized movies
    python benchmarks/segmentation.py --quick           # smaller, for a quick look
    python benchmarks/segmentation.py --case crowded    # one case (name starts with it)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from math import nan
from pathlib import Path

import yaml

from rotdyn.evaluate.segmentation import evaluate_movie, evaluate_segmentation, time_inference
from rotdyn.kinds import CALIBRATION_KEYS, kind_settings
from rotdyn.networks import load_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the independent generator of crowded rods lives with the tests
from other_generator import crowded_rods  # noqa: E402

# ------------------------------------------------------------------ accuracy
#: The crowded movie: rods 22 x 6.5 px, 50 in 256 x 256 px; every frame an independent
#: draw (large steps and turns), so the close pairs of different frames are different pairs.
CROWDED = {"count": 50, "size": 256, "length": 22.0, "width": 6.5, "step": 40.0, "turn": 3.0, "seed": 11}
NN_BINS = (0.0, 11.0, 20.0, 30.0, float("inf"))  # px; < 11 = closer than half a rod length


def settings(kind: dict) -> tuple[dict, dict, int, int]:
    """fit_baseline parameters, locate parameters, members, member epochs of a kind's settings."""
    t = kind["train"]
    train = {key: t[key] for key in ("arch", "width", "max_epochs", "patience", "batch_size", "lr",
                                      "val_fraction", "seed")}
    train["augment_params"] = t["augment"]
    return train, dict(kind["locate"]), t["members"], t["member_epochs"]


def training_params(kind: dict, **simulate) -> dict:
    """:func:`rotdyn.training_set.from_simulation` parameters of a kind's training set, ``simulate`` keys over."""
    ts = kind["training_set"]
    sim = {k: v for k, v in {**ts["simulate"], **simulate}.items() if k not in (*CALIBRATION_KEYS, "kind")}
    keys = ("tile", "flatten", "normalize", "separate_touching", "centres")
    return {**{k: ts[k] for k in keys if k in ts}, **sim}


def cases(config: dict, quick: bool) -> dict:
    """The simulated movies to score: rods at the demo's noise and noisier, and atoms."""
    rods_kind, atoms_kind = kind_settings(config, "rods"), kind_settings(config, "atoms")
    rods = {k: v for k, v in config["simulate"]["rods"].items() if k not in CALIBRATION_KEYS}
    frames = 12 if quick else rods["frames"]
    training = training_params(rods_kind)
    return {
        f"rods, noise {rods['noise']}": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2},
                                         training, rods_kind),
        "rods, noise 0.25": ("rods", {**rods, "frames": frames, "transition_frame": frames // 2, "noise": 0.25},
                             {**training, "noise": 0.25}, rods_kind),
        "atoms": ("atoms", {"size": 128, "frames": 6 if quick else 20, "seed": 0},
                  training_params(atoms_kind, frames=12), atoms_kind),
    }


def score_simulated(config: dict, quick: bool, threads: int, folder: Path, only: str = "") -> Path | None:
    """Score every simulated case; returns the folder of the last ensemble trained (for the speed part)."""
    print(f"{'case':18} {'prec':>6} {'recall':>6} {'rmse px':>7} {'orient':>7} {'touch':>6} "
          f"{'train s':>8} {'seg s':>6}")
    last = None
    for name, (kind, movie, training, kind_cfg) in cases(config, quick).items():
        if not name.startswith(only):
            continue
        train, locate_params, members, member_epochs = settings(kind_cfg)
        last = folder / name.replace(" ", "_").replace(",", "")
        s = evaluate_segmentation(kind, last, movie=movie, training=training, train=train,
                                  locate_params=locate_params, members=members, member_epochs=member_epochs,
                                  threads=threads)
        if kind == "atoms":
            s["orientation_error_deg"] = nan  # round: no orientation to score
        print(f"{name:18} {s['precision']:6.3f} {s['recall']:6.3f} {s['rmse']:7.3f} "
              f"{s.get('orientation_error_deg', nan):7.2f} {s.get('touching_recall', nan):6.3f} "
              f"{s['train_seconds']:8.1f} {s['segment_seconds']:6.1f}")
        for key in sorted(k for k in s if k.startswith(("precision_class", "recall_class"))):
            print(f"    {key}: {s[key]:.3f}")
    return last


def score_crowded(config: dict, quick: bool, threads: int, folder: Path) -> dict:
    """Crowded, crossing rods of the independent generator; precision, recall and recall by neighbour distance."""
    kind = kind_settings(config, "rods")
    train, locate_params, members, member_epochs = settings(kind)
    frames, truth = crowded_rods(frames=4 if quick else 12, **CROWDED)
    training = training_params(kind, length=CROWDED["length"], width=CROWDED["width"])
    s = evaluate_movie(frames, truth, folder, kind="rods", training=training, train=train,
                       locate_params=locate_params, members=members, member_epochs=member_epochs,
                       threads=threads, neighbour_distance=CROWDED["length"] / 2, bins=NN_BINS)
    print(f"\ncrowded rods (tests/other_generator.py: {CROWDED['count']} rods {CROWDED['length']:g} x "
          f"{CROWDED['width']:g} px in {CROWDED['size']} px frames, {s['frames']} frames), training: "
          f"{', '.join(f'{k} {v}' for k, v in sorted(training.items()))}; locate split {locate_params['split']}")
    print(f"precision {s['precision']:.3f}, recall {s['recall']:.3f}, centroid RMSE {s['rmse']:.2f} px, "
          f"orientation {s['orientation_error_deg']:.2f} deg; training {s['train_seconds']:.0f} s")
    print("recall by nearest-neighbour distance:")
    for row in s["recall_by_neighbour"].itertuples():
        print(f"    {row.low:4.0f} - {row.high:<4.0f} px  {row.recall:6.3f}  ({row.n} rods)")
    return s


def main() -> None:
    """Command line: score every case, then time inference on 512 x 512 frames."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", default="", help="score only the cases whose name starts with this")
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    train, _, members, member_epochs = settings(kind_settings(config, "rods"))
    print(f"ensemble: {train['arch']} width {train['width']}, {members} members x {member_epochs} epochs")
    with tempfile.TemporaryDirectory() as tmp:
        folder = score_simulated(config, args.quick, args.threads, Path(tmp), args.case)
        if "crowded".startswith(args.case) or args.case.startswith("crowded"):
            score_crowded(config, args.quick, args.threads, Path(tmp) / "crowded")
            folder = folder or Path(tmp) / "crowded"
        # ------------------------------------------------------------------ speed
        models = [load_model(p)[0] for p in sorted(folder.glob("member_*.pt"))]
        fps = time_inference(models, shape=(512, 512), n_frames=4 if args.quick else 16, batch_size=4)
        print(f"inference, 512 x 512 frames, {len(models)} members: {fps:.2f} frames/s on this CPU")


if __name__ == "__main__":
    main()
