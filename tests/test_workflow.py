"""The real Snakemake on a temporary copy of the workflow."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from rotdyn.rvae import load_rvae
from workflow_helpers import TINY, copy_workflow, movie, planned, snakemake


@pytest.fixture
def workflow(tmp_path):
    return copy_workflow(tmp_path / "wf")


def test_dry_run_plans_one_ingest_per_movie(workflow):
    movies = workflow / "resources" / "movies"
    np.save(movies / "alpha.npy", movie())
    np.savez(movies / "beta.npz", frames=movie(seed=1))
    frames = movies / "gamma"
    frames.mkdir()
    import imageio.v3 as iio
    for i, frame in enumerate(movie(n=3, seed=2)):
        iio.imwrite(frames / f"f{i}.png", (frame * 255).astype(np.uint8))
    counts = planned(snakemake(workflow, "-n"))
    assert counts["ingest"] == 3 and counts["segment"] == 3 and counts["patches"] == 3
    # One ensemble for all movies: one baseline, one job per member.
    assert counts["train_baseline"] == 1 and counts["train_member"] == 3
    # One rVAE per movie by default; one pooled over all movies when asked.
    assert counts["fit_rvae"] == 3 and counts["encode"] == 3 and counts["summary"] == 3
    (workflow / "pooled.yaml").write_text("rvae:\n  scope: pooled\n")
    pooled = planned(snakemake(workflow, "-n", "--configfile", "pooled.yaml"))
    assert pooled["fit_rvae"] == 1 and pooled["encode"] == 3


def test_bad_movie_skipped_good_one_completes_then_nothing_to_do(workflow):
    movies = workflow / "resources" / "movies"
    good = movie(n=6)
    np.save(movies / "good.npy", good)
    (movies / "bad.tif").write_bytes(b"\x00\x01 definitely not a TIFF " * 50)
    (workflow / "config" / "movies.tsv").write_text(
        "movie\tpixel_size_nm\tfirst_frame\tlast_frame\tnormalize\ngood\t0.8\t1\t4\tnone\n")

    first = snakemake(workflow, "movies")
    out = workflow / "results" / "good" / "movie.nc"
    with xr.open_dataset(out) as ds:
        np.testing.assert_array_equal(ds.frames.values, good[1:5])
        assert ds.attrs["pixel_size_nm"] == 0.8
    assert not (workflow / "results" / "bad").exists()
    log = first.stdout + first.stderr
    assert log.count("skipping") == 1 and "bad.tif" in log

    second = snakemake(workflow, "movies")
    assert "Nothing to be done" in second.stdout + second.stderr

    # An edit to the science a stage runs reruns that stage (its code hash is a param).
    with open(workflow / "src" / "rotdyn" / "preprocess.py", "a") as fh:
        fh.write("\n# a change in the science\n")
    assert planned(snakemake(workflow, "-n", "movies")) == {"ingest": 1, "movies": 1}


def test_demo_runs_through_patches_then_nothing_to_do(workflow):
    result = snakemake(workflow, *TINY)
    assert "built-in demo" in result.stdout + result.stderr
    results = workflow / "results"
    truth = pd.read_csv(results / "simulated" / "rods" / "truth.csv")
    with xr.open_dataset(results / "demo_rods" / "movie.nc") as ds:
        assert ds.sizes["frame"] == truth.frame.max() + 1
        assert ds.attrs["modality"].startswith("AFM") and ds.attrs["flatten"] == 1
    for member in range(2):
        history = pd.read_csv(results / "ensemble" / "rods" / f"member_{member}_history.csv")
        assert len(history) == 1 and np.isfinite(history.val_loss).all()
    with xr.open_dataset(results / "demo_rods" / "probability.nc") as prob:
        assert prob["mean"].dims == ("frame", "class", "y", "x")
        assert float(prob["mean"].min()) >= 0 and float(prob["mean"].max()) <= 1
    with xr.open_dataset(results / "demo_rods" / "particles.nc") as particles, \
            xr.open_dataset(results / "demo_rods" / "patches.nc") as patches:
        assert particles.sizes["particle"] > 0
        index = patches.particle_index.values
        np.testing.assert_array_equal(patches.frame.values, particles.frame.values[index])
        patches_n = patches.sizes["particle"]
    with xr.open_dataset(results / "demo_rods" / "latents.nc") as latents:
        assert latents.sizes["particle"] == patches_n
        assert np.all((latents.angle >= -np.pi) & (latents.angle < np.pi))
    _, meta = load_rvae(results / "rvae" / "rods" / "demo_rods" / "model.pt")
    assert (meta["config"]["likelihood"], meta["config"]["polarity"]) == ("gaussian", True)  # auto, frames
    tracks = pd.read_csv(results / "demo_rods" / "tracks.csv")
    assert {"frame", "x", "y", "particle", "angle", "z1", "z2"} <= set(tracks.columns)
    summary = json.loads((results / "demo_rods" / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["particles"] == patches_n
    assert summary["settings"]["rvae"]["polarity"] is True and summary["settings"]["patches"]["source"] == "frames"
    assert summary["tracks"] == tracks.particle.nunique()
    assert set(summary["transition_frame"]) == {"angle", "dx", "dy", "z1", "z2"}
    for name, why in summary["transition_reason"].items():  # a reason exactly where there is no transition
        assert (why is None) == (summary["transition_frame"][name] is not None), (name, why)
    figures = results / "demo_rods" / "figures"
    for name in ("rvae_manifold.png", "latent_histograms.png", "angle_vs_latents.png", "rvae_history.png",
                 "dynamics/angle.png", "tracks.png", "latent_angle.gif"):
        assert (figures / name).stat().st_size > 1000, name
    second = snakemake(workflow, *TINY)
    assert "Nothing to be done" in second.stdout + second.stderr
    snakemake(workflow, *TINY, "--report", "report.html")
    report = (workflow / "report.html").read_text(errors="replace")
    assert "Latent manifold of the rotationally invariant VAE" in report and "summary.json" in report


def test_blank_and_nan_frames_finish_with_empty_tables(workflow):
    frames = np.zeros((4, 32, 40), np.float32)
    frames[1] = np.nan
    frames[2] = 5.0
    np.save(workflow / "resources" / "movies" / "blank.npy", frames)
    (workflow / "probability_windows.yaml").write_text("patches:\n  source: probability\n")
    snakemake(workflow, *TINY, "probability_windows.yaml")  # one --configfile flag: a second would replace it
    results = workflow / "results" / "blank"
    with xr.open_dataset(results / "particles.nc") as particles, xr.open_dataset(results / "patches.nc") as patches:
        assert particles.sizes["particle"] == 0 and patches.sizes["particle"] == 0
        assert set(particles.data_vars) >= {"x", "y", "orientation", "area", "class"}
    for stage in ("ingest", "segment"):
        log = (workflow / "results" / "logs" / "blank" / f"{stage}.log").read_text()
        assert "WARNING" in log and "blank" in log and "[0, 1, 2, 3]" in log
    # nothing to train on: the untrained model still takes the "auto" settings of probability windows
    _, meta = load_rvae(workflow / "results" / "rvae" / "rods" / "blank" / "model.pt")
    assert (meta["config"]["likelihood"], meta["config"]["polarity"]) == ("bernoulli", False)


@pytest.mark.parametrize("override, key", [
    ("preprocess:\n  flaten: true\n", "flaten"),
    ("simulate:\n  rods:\n    pixel_size_nm: 1.0\n    frame_interval_s: 1.0\n    frames: many\n", "frames"),
    ("demo: cubes\n", "demo"),
    ("rvae:\n  polarity: sometimes\n", "polarity"),
])
def test_schema_rejects_bad_config_naming_the_key(workflow, override, key):
    (workflow / "bad.yaml").write_text(override)
    result = snakemake(workflow, "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "Error validating config" in message and key in message
    assert "Job stats" not in message


def test_lint_is_clean(workflow):
    result = snakemake(workflow, "--lint", check=False)
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_are_valid_and_keep_the_workflow_defaults(workflow, profile):
    np.save(workflow / "resources" / "movies" / "alpha.npy", movie())
    result = snakemake(workflow, "-n", "--profile", f"profiles/{profile}", cores=None)
    log = result.stdout + result.stderr
    assert planned(result)["ingest"] == 1 and "profiles/default" in log
    if profile == "slurm":  # partitions and GPUs as the profile asks
        assert re.search(r"rule train_baseline:(?:\n.*)*?resources: .*slurm_partition=gpu.*gpu=1", log)
        assert re.search(r"rule ingest:(?:\n.*)*?resources: .*slurm_partition=cpu", log)
