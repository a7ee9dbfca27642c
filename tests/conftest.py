"""Shared fixtures: one real local run of the workflow on two small movies."""
import shutil

import pytest

from workflow_helpers import TINY, copy_workflow, rods_movie, snakemake


@pytest.fixture(scope="session")
def two_movies_run(tmp_path_factory):
    """A finished local run (tiny settings) on rods0.npy and rods1.npy. Read only: clone it."""
    workflow = copy_workflow(tmp_path_factory.mktemp("two_movies") / "wf")
    for i in range(2):
        rods_movie(workflow / "resources" / "movies" / f"rods{i}.npy", seed=10 + i)
    snakemake(workflow, *TINY)
    return workflow


@pytest.fixture
def finished_run(two_movies_run, tmp_path):
    """A private copy of the finished run (timestamps and Snakemake's records kept)."""
    return shutil.copytree(two_movies_run, tmp_path / "wf", symlinks=True)
