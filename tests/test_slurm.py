"""The workflow through a real one-node SLURM cluster on localhost (tests/slurm_cluster.py).

Needs root and the SLURM daemons (installed with apt when missing), as on CI;
elsewhere it skips and says why. With ROTDYN_REQUIRE_SLURM=1 (set by .ci/run)
it fails instead of skipping.
"""
import os
import re
import subprocess
from collections import Counter

import pytest
import yaml

from slurm_cluster import LocalSlurm, install, missing_reason
from workflow_helpers import ROOT, TINY, assert_same_results, copy_workflow, jobs, rods_movie, snakemake

GPU_RULES = {"train_baseline", "train_member", "segment", "fit_rvae"}


def _unavailable(reason: str):
    if os.environ.get("ROTDYN_REQUIRE_SLURM") == "1":
        pytest.fail(f"no local SLURM, but ROTDYN_REQUIRE_SLURM=1: {reason}")
    pytest.skip(f"no local SLURM: {reason}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if (reason := missing_reason()):
        _unavailable(reason)
    try:
        install()
    except (OSError, subprocess.CalledProcessError) as exc:
        _unavailable(f"could not install it: {exc}")
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as slurm:
        yield slurm


def submitted_as(comment: str, names) -> str:
    """The rule or group a SLURM job ran, from the executor's comment ``rule_<name>[_...]``."""
    found = [n for n in names if comment == f"rule_{n}" or comment.startswith(f"rule_{n}_")]
    assert found, f"SLURM job {comment!r} is none of {sorted(names)}"
    return max(found, key=len)  # train_member, not train


def test_two_movies_through_sbatch_equal_a_local_run(cluster, two_movies_run, tmp_path):
    workflow = copy_workflow(tmp_path / "wf")
    for i in range(2):
        rods_movie(workflow / "resources" / "movies" / f"rods{i}.npy", seed=10 + i)
    result = snakemake(workflow, "--profile", "profiles/slurm", "--slurm-status-command", "squeue",
                       "--slurm-init-seconds-before-status-checks", "1", *TINY,
                       cores=None, env=cluster.env(), timeout=1800)
    ran = [(rule, w) for rule, w in jobs(result) if rule != "all"]  # `all` only collects: run locally
    groups = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["groups"]
    # One sbatch per job, except each movie's grouped jobs, which go as one.
    expected = Counter(rule for rule, _ in ran if rule not in groups)
    expected.update({group: 2 for group in set(groups.values())})

    submitted = cluster.jobs()
    names = [submitted_as(job["Comment"], expected) for job in submitted]
    assert Counter(names) == expected
    for name, job in zip(names, submitted):
        assert job["JobState"] == "COMPLETED", job
        assert job["Partition"] == ("gpu" if name in GPU_RULES else "cpu"), (name, job["Partition"])
        assert ("gpu:1" in (job.get("TresPerJob") or "")) == (name in GPU_RULES), (name, job)

    # Per movie 8 datasets, 2 tables, summary and qc; the training set, 3 ensemble and 2 rVAE histories.
    assert assert_same_results(two_movies_run, workflow) >= 30
    again = snakemake(workflow, "-n", *TINY, env=cluster.env())
    assert "Nothing to be done" in again.stdout + again.stderr
