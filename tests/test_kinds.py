"""Particle kinds and contrast: settings per kind, planning checks, and a mixed run with the real Snakemake.

The mixed run holds a rods movie, the same movie with inverted contrast twice
(``contrast: dark`` from the sample sheet, and ``auto``), and a simulated atoms
movie of kind ``atoms``: two ensembles, each trained once.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from rotdyn.kinds import kind_settings, merge, movie_kind
from rotdyn.simulate import simulate_atoms, simulate_rods
from workflow_helpers import TINY, assert_same_results, copy_workflow, jobs, snakemake

ATOMS_TINY = ("particles:\n  kinds:\n    atoms:\n      training_set:\n        simulate:\n"
              "          frames: 4\n          size: 64\n")


def _config_with(workflow, text: str) -> list[str]:
    """--configfile arguments: the tiny settings, the tiny atoms and ``text`` (one flag takes every file)."""
    (workflow / "kinds.yaml").write_text(ATOMS_TINY)
    (workflow / "extra.yaml").write_text(text)
    return [*TINY, "kinds.yaml", "extra.yaml"]


def _sheet(workflow, rows: list[str]) -> None:
    (workflow / "config" / "movies.tsv").write_text("movie\tparticles\tcontrast\n" + "".join(r + "\n" for r in rows))


def _rods(seed: int) -> np.ndarray:
    return simulate_rods(size=64, frames=6, count=6, transition_frame=3, seed=seed).frames


def _atoms_movie(path) -> None:
    np.save(path, simulate_atoms(size=64, frames=4, seed=5).frames)


# ------------------------------------------------------------------ settings
def test_a_kind_overrides_the_global_sections_key_by_key():
    config = {"particles": {"default": "rods", "kinds": {"rods": {}, "atoms": {"locate": {"min_area": 4},
                                                                              "contrast": "auto",
                                                                              "link": {"memory": 5}}}},
              "training_set": {"tile": 64, "source": "auto"}, "train": {"members": 3, "width": 16},
              "locate": {"threshold": 0.5, "min_area": 10, "split": "valley"}, "patches": {"size": 24},
              "rvae": {"epochs": 60}, "link": {"search_range": 21, "memory": 3}}
    atoms, rods = kind_settings(config, "atoms"), kind_settings(config, "rods")
    assert atoms["locate"] == {"threshold": 0.5, "min_area": 4, "split": "valley"}
    assert atoms["link"] == {"search_range": 21, "memory": 5} and rods["link"] == config["link"]
    assert rods["locate"] == config["locate"] and atoms["train"] == rods["train"] == config["train"]
    assert (atoms["contrast"], rods["contrast"]) == ("auto", "bright")
    assert atoms["training_set"]["set"] == "atoms" and config["training_set"] == {"tile": 64, "source": "auto"}
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    assert movie_kind(config, {"particles": "atoms"}) == "atoms" and movie_kind(config, {}) == "rods"
    with pytest.raises(ValueError, match="movie 'm1': particles='cubes' is not a configured kind"):
        movie_kind(config, {"particles": "cubes"}, "m1")


@pytest.fixture
def workflow(tmp_path):
    return copy_workflow(tmp_path / "wf")


@pytest.mark.parametrize("text, words", [
    # a rods key under a kind whose simulator is atoms: planning stops and names the key
    ("particles:\n  kinds:\n    atoms:\n      training_set:\n        simulate:\n          length: 16\n",
     ["particles.kinds.atoms.training_set.simulate", "has no parameter 'length'"]),
    ("particles:\n  kinds:\n    rods:\n      locate:\n        threshold: 2\n", ["threshold", "Error validating"]),
    ("particles:\n  default: cubes\n", ["particles.default is 'cubes'"]),
    ("particles:\n  kinds:\n    spheres:\n      training_set:\n        simulate:\n          contrast: dark\n",
     ["particles.kinds.spheres", "bright particles"]),
])
def test_bad_kind_settings_stop_planning_naming_the_key(workflow, text, words):
    result = snakemake(workflow, "-n", *_config_with(workflow, text), check=False)
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "Job stats" not in message
    for word in words:
        assert word in message


def test_an_unknown_kind_in_the_sample_sheet_stops_planning(workflow):
    np.save(workflow / "resources" / "movies" / "m1.npy", _rods(1))
    _sheet(workflow, ["m1\tcubes\t"])
    result = snakemake(workflow, "-n", *TINY, check=False)
    assert result.returncode != 0
    assert "movie 'm1': particles='cubes' is not a configured kind" in result.stdout + result.stderr


def test_a_config_of_the_last_release_still_plans_with_warnings(workflow):
    old = "training_set:\n  set: rods\n  simulate:\n    kind: rods\n    length: 18.0\n"
    result = snakemake(workflow, "-n", *_config_with(workflow, old))
    message = result.stdout + result.stderr
    assert "training_set.simulate is deprecated" in message and "training_set.set ('rods') is no longer used" in message
    assert "Job stats" in message


# ------------------------------------------------------------------ the mixed run
@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory):
    """A finished run on four movies of two kinds. Read only: clone it."""
    workflow = copy_workflow(tmp_path_factory.mktemp("mixed") / "wf")
    movies = workflow / "resources" / "movies"
    rods = _rods(10)
    np.save(movies / "rods0.npy", rods)
    np.save(movies / "dark0.npy", -3.0 * rods + 7.0)   # the same rods, dark on a bright background
    np.save(movies / "auto0.npy", -rods)
    _atoms_movie(movies / "atoms0.npy")
    _sheet(workflow, ["dark0\t\tdark", "auto0\t\tauto", "atoms0\tatoms\t"])
    result = snakemake(workflow, *_config_with(workflow, "{}\n"))
    return workflow, result


def test_mixed_run_trains_one_ensemble_per_kind(mixed_run):
    workflow, result = mixed_run
    trained = sorted(w for rule, w in jobs(result) if rule in ("training_set", "train_baseline"))
    assert trained == ["kind=atoms", "kind=atoms", "kind=rods", "kind=rods"]
    for kind, classes in (("rods", "background,rod"), ("atoms", "background,carbon,dopant")):
        with xr.open_dataset(workflow / "results" / "training" / f"{kind}.nc") as ds:
            assert ds.attrs["class_names"] == classes
        assert (workflow / "results" / "ensemble" / kind / "member_1.pt").exists()
    summary = json.loads((workflow / "results" / "atoms0" / "summary.json").read_text())
    assert summary["particle_kind"] == "atoms" and summary["settings"]["locate"]["split"] == "distance"
    with xr.open_dataset(workflow / "results" / "atoms0" / "probability.nc") as p:
        assert p["class"].values.tolist() == [1, 2]  # carbon and dopant: the atoms ensemble, not the rods one


def test_dark_particles_are_analysed_as_the_bright_ones(mixed_run):
    workflow, _ = mixed_run
    results = workflow / "results"
    with xr.open_dataset(results / "rods0" / "movie.nc") as bright:
        reference = bright["frames"].values
        assert bright.attrs["contrast"] == "bright"
    for name, setting in (("dark0", "dark"), ("auto0", "auto")):
        with xr.open_dataset(results / name / "movie.nc") as movie:
            assert movie.attrs["contrast"] == "dark" and movie.attrs["contrast_setting"] == setting
            np.testing.assert_allclose(movie["frames"].values, reference, atol=1e-5)
        with xr.open_dataset(results / name / "particles.nc") as p, \
                xr.open_dataset(results / "rods0" / "particles.nc") as ref:
            assert p.sizes["particle"] == ref.sizes["particle"] > 0
            np.testing.assert_allclose(p["x"].values, ref["x"].values, atol=1e-3)
        summary = json.loads((results / name / "summary.json").read_text())
        assert summary["contrast"]["value"] == "dark" and summary["particle_kind"] == "rods"
    log = (results / "logs" / "auto0" / "ingest.log").read_text()
    assert "particles dark (auto:" in log


def test_a_movie_alone_gives_the_results_of_the_mixed_run(mixed_run, tmp_path):
    workflow, _ = mixed_run
    alone = copy_workflow(tmp_path / "alone")
    shutil.copy(workflow / "resources" / "movies" / "atoms0.npy", alone / "resources" / "movies")
    _sheet(alone, ["atoms0\tatoms\t"])
    snakemake(alone, *_config_with(alone, "{}\n"))
    assert not (alone / "results" / "ensemble" / "rods").exists()  # only the kinds some movie uses
    mixed = tmp_path / "mixed_atoms"  # the mixed run's atoms results only
    shutil.copytree(workflow / "results" / "atoms0", mixed / "results" / "atoms0")
    shutil.copytree(workflow / "results" / "training", mixed / "results" / "training",
                    ignore=shutil.ignore_patterns("rods*"))
    for folder in ("ensemble", "rvae"):
        shutil.copytree(workflow / "results" / folder / "atoms", mixed / "results" / folder / "atoms")
    # atoms0's 8 datasets, 2 tables, summary and qc; the training set; 3 ensemble and 1 rVAE histories
    assert assert_same_results(alone, mixed) >= 17


def test_changing_one_kind_reruns_only_its_ensemble_and_movies(mixed_run, tmp_path):
    workflow = shutil.copytree(mixed_run[0], tmp_path / "wf", symlinks=True)
    change = "particles:\n  kinds:\n    atoms:\n      train:\n        member_epochs: 2\n"
    ran = jobs(snakemake(workflow, "-n", *_config_with(workflow, change)))
    assert {w for rule, w in ran if rule.startswith("train")} == {"kind=atoms, member=0", "kind=atoms, member=1"}
    assert {w.split("=")[1] for rule, w in ran if w.startswith("movie=")} == {"atoms0"}
    # one key of one kind in an extra config file: that key changes and nothing else
    change = "particles:\n  kinds:\n    rods:\n      locate:\n        threshold: 0.6\n"
    ran = jobs(snakemake(workflow, "-n", *_config_with(workflow, change)))
    assert not any(rule.startswith("train") or rule in ("ingest", "segment") for rule, _ in ran)
    assert {w for rule, w in ran if rule == "locate"} == {"movie=rods0", "movie=dark0", "movie=auto0"}
    # a kind's own linking: only its movies' tracks (and what reads them) are made again
    change = "particles:\n  kinds:\n    atoms:\n      link:\n        memory: 1\n"
    ran = jobs(snakemake(workflow, "-n", *_config_with(workflow, change)))
    assert ("link", "movie=atoms0") in ran and {w for _, w in ran if w.startswith("movie=")} == {"movie=atoms0"}
    assert not any(rule in ("ingest", "segment", "locate", "patches", "encode") for rule, _ in ran)


def test_a_movie_of_a_third_kind_trains_only_that_kinds_ensemble(mixed_run, tmp_path):
    workflow = shutil.copytree(mixed_run[0], tmp_path / "wf", symlinks=True)
    np.save(workflow / "resources" / "movies" / "cells0.npy", np.zeros((3, 48, 48), np.float32))
    _sheet(workflow, ["dark0\t\tdark", "auto0\t\tauto", "atoms0\tatoms\t", "cells0\tcells\tbright"])
    ran = jobs(snakemake(workflow, "-n", *_config_with(workflow, "{}\n")))
    assert {w for rule, w in ran if rule in ("training_set", "train_baseline", "train_member")} == \
        {"kind=cells", "kind=cells, member=0", "kind=cells, member=1"}
    assert {w for rule, w in ran if w.startswith("movie=")} == {"movie=cells0"}
