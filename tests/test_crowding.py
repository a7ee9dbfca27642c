"""Crowded and crossing rods are found one by one (issue 13 item 3), on movies of another generator.

Real training on rotdyn's simulated rods (independent placement, so they overlap and cross, and
the centre class), scored on ``tests/other_generator.py`` movies, which share no code with the
training simulation. ``benchmarks/segmentation.py`` prints the full-size figures.
"""
import json

import numpy as np
import pytest
import xarray as xr
from other_generator import crowded_rods
from workflow_helpers import TINY, copy_workflow, snakemake

from rotdyn.evaluate.segmentation import detection_scores, evaluate_movie
from rotdyn.locate import locate

LENGTH, WIDTH = 22.0, 6.5
TRAIN = {"arch": "dilnet", "width": 16, "max_epochs": 40, "patience": 6, "batch_size": 8, "lr": 1e-3,
         "val_fraction": 0.2, "seed": 0,
         "augment_params": {"rotate": True, "flip": True, "scale": 0.1, "gaussian_noise": 0.1, "blur": 1.0,
                            "gamma": 0.2, "contrast": 0.2}}
# The rods kind's training simulation with the movie's rod size set, as a user would.
TRAINING = {"frames": 24, "size": 128, "length": LENGTH, "width": WIDTH, "noise": 0.2, "seed": 1, "tile": 64,
            "placement": "independent", "centres": True}
LOCATE = {"threshold": 0.5, "split": "centre", "min_valley": 0.1, "smooth": 0.5, "min_centre": 0.3, "min_area": 10}


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """Four independent crowded frames (50 rods in 256 x 256 px), the ensemble's maps and the scores."""
    frames, truth = crowded_rods(count=50, size=256, frames=4, length=LENGTH, width=WIDTH, step=40.0, turn=3.0,
                                 seed=21)
    folder = tmp_path_factory.mktemp("crowded")
    scores = evaluate_movie(frames, truth, folder, kind="rods", training=TRAINING, train=TRAIN,
                            locate_params=LOCATE, members=2, member_epochs=3, threads=2,
                            neighbour_distance=LENGTH / 2)
    with xr.open_dataset(folder / "probability.nc") as prob:
        return truth, scores, prob.load()


def test_crowded_crossing_rods_found_one_by_one(crowded):
    truth, s, _ = crowded
    bins = s["recall_by_neighbour"].set_index("low")
    assert bins.loc[0, "n"] >= 40 and s["n_close"] == bins.loc[0, "n"]  # enough rods closer than half a length
    assert s["precision"] >= 0.93 and s["recall"] >= 0.93, s
    assert s["close_recall"] >= 0.80, s
    assert bins.loc[20, "recall"] >= 0.97 and bins.loc[30, "recall"] >= 0.97, bins  # apart: all found
    assert s["rmse"] <= 1.0, s


def test_the_centre_class_is_what_splits_them(crowded):
    truth, s, prob = crowded
    # The same maps without the centre markers (the centre class counts as rod): crossing rods stay merged.
    valley = detection_scores(locate(prob, split="valley").to_dataframe(), truth, neighbour_distance=LENGTH / 2)
    assert valley["close_recall"] < s["close_recall"] - 0.2, (valley, s)
    assert list(prob["class_name"].values) == ["rod", "centre"]
    assert np.isfinite(s["rmse"])


def test_crowded_rods_kind_through_the_workflow(tmp_path):
    """The shipped ``crowded_rods`` kind with the real Snakemake: sizes measured, the centre class made,
    learnt and used, on a crowded movie of the other generator (tiny settings: the wiring, not the accuracy)."""
    frames, truth = crowded_rods(count=12, size=96, frames=4, length=LENGTH, width=WIDTH, step=20.0, turn=3.0,
                                 seed=5)
    workflow = copy_workflow(tmp_path / "wf")
    np.save(workflow / "resources" / "movies" / "crowd.npy", frames)
    (workflow / "config" / "movies.tsv").write_text("movie\tparticles\tcontrast\ncrowd\tcrowded_rods\t\n")
    (workflow / "crowded.yaml").write_text(
        "particles:\n  kinds:\n    crowded_rods:\n      training_set:\n        simulate:\n"
        "          frames: 6\n          size: 96\n          count: 12\n")
    snakemake(workflow, *TINY, "crowded.yaml")
    results = workflow / "results"
    with xr.open_dataset(results / "training" / "crowded_rods.nc") as ds:
        assert ds.attrs["centres"] == 1 and int(ds["centres"].sum()) > 0
        # length and width left unset by the kind: measured on the movie (rods 22 x 6.5 px)
        assert abs(ds.attrs["sim_length"] - LENGTH) < 0.2 * LENGTH and abs(ds.attrs["sim_width"] - WIDTH) < 0.3 * WIDTH
    with xr.open_dataset(results / "crowd" / "probability.nc") as prob:
        assert list(prob["class_name"].values) == ["rod", "centre"]
    with xr.open_dataset(results / "crowd" / "particles.nc") as p:
        assert p.sizes["particle"] > 0 and set(p["class"].values.tolist()) == {1}  # a centre is no particle
    summary = json.loads((results / "crowd" / "summary.json").read_text())
    assert summary["particle_kind"] == "crowded_rods" and summary["settings"]["locate"]["split"] == "centre"
