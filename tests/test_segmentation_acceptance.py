"""Acceptance of the segmentation chain on smaller simulated movies (benchmarks/segmentation.py
prints the full-size figures). Real training, real ensemble, scored against the truth."""
import numpy as np

from rotdyn.evaluate.segmentation import evaluate_segmentation

TRAIN = {"arch": "dilnet", "width": 16, "max_epochs": 30, "patience": 5, "batch_size": 8, "lr": 1e-3,
         "val_fraction": 0.2, "seed": 0,
         "augment_params": {"rotate": True, "flip": True, "scale": 0.1, "gaussian_noise": 0.1, "blur": 1.0,
                            "gamma": 0.2, "contrast": 0.2}}
LOCATE = {"threshold": 0.5, "split": "valley", "min_valley": 0.25, "smooth": 1.0, "min_distance": 3,
          "min_area": 10, "max_area": None, "edge_margin": 1}


def test_rods_found_split_and_oriented(tmp_path):
    # The demo's noise level; 64 px training tiles give more steps for the same time.
    rods = {"length": 16.0, "width": 5.0, "noise": 0.15, "pair_fraction": 0.4}
    s = evaluate_segmentation(
        "rods", tmp_path, movie={**rods, "size": 96, "count": 14, "frames": 8, "transition_frame": 4, "seed": 0},
        training={**rods, "size": 128, "count": 28, "frames": 12, "tile": 64, "seed": 1}, train=TRAIN,
        locate_params=LOCATE, members=2, member_epochs=2, threads=2)
    assert s["precision"] >= 0.95 and s["recall"] >= 0.95, s
    assert s["rmse"] <= 0.8 and s["orientation_error_deg"] <= 5.0, s
    assert s["touching_recall"] >= 0.85, s


def test_atoms_per_class(tmp_path):
    s = evaluate_segmentation(
        "atoms", tmp_path, movie={"size": 96, "frames": 4, "dopants": 8, "seed": 0},
        training={"size": 128, "frames": 10, "tile": 64, "dopants": 10, "seed": 1}, train=TRAIN,
        locate_params={**LOCATE, "split": "distance", "min_area": 4}, members=2, member_epochs=2, threads=2)
    for cls in (1, 2):
        assert s[f"precision_class_{cls}"] >= 0.95 and s[f"recall_class_{cls}"] >= 0.95, s
    assert np.isfinite(s["rmse"]) and s["rmse"] <= 0.8, s
