"""Incremental reruns and crash safety, with the real Snakemake on a finished two-movie run.

Each test works on its own copy of the run (tests/conftest.py). What a rerun
would do is read off Snakemake's own dry run; adding a movie and the crash
tests run for real.
"""
import functools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from workflow_helpers import ROOT, SNAKEMAKE, TINY, jobs, rods_movie, snakemake

PER_MOVIE = {"ingest", "segment", "locate", "patches", "fit_rvae", "encode", "rvae_figures", "qc", "qc_figure",
             "kde", "nmf", "dynamics_figures", "link", "maps", "summary"}
AFTER_RVAE = {"fit_rvae", "encode", "rvae_figures", "qc", "qc_figure", "kde", "nmf", "dynamics_figures", "link",
              "maps", "summary"}


def dry_run(workflow, *args):
    """Snakemake's plan; ``args`` may hold a --configfile of their own (see :func:`config`)."""
    return snakemake(workflow, "-n", *(() if "--configfile" in args else TINY), *args)


def config(workflow, text: str) -> list[str]:
    """--configfile arguments for the tiny settings plus ``text`` (one flag: a second would replace the first)."""
    (workflow / "extra.yaml").write_text(text)
    return [*TINY, "extra.yaml"]


def mtimes(workflow, pattern: str) -> dict:
    return {p: p.stat().st_mtime_ns for p in (workflow / "results").glob(pattern)}


def test_second_run_has_nothing_to_do(two_movies_run):
    assert "Nothing to be done" in (r := dry_run(two_movies_run)).stdout + r.stderr


def test_adding_a_movie_runs_only_its_chain(finished_run):
    ensemble, others = mtimes(finished_run, "ensemble/rods/*.pt"), mtimes(finished_run, "rods[01]/*")
    rods_movie(finished_run / "resources" / "movies" / "rods2.npy", seed=12)
    result = snakemake(finished_run, *TINY)
    ran = jobs(result)
    assert {rule for rule, _ in ran} == PER_MOVIE | {"all"}
    assert all(w == "movie=rods2" or w == "kind=rods, model=rods2" for rule, w in ran if rule != "all")
    assert mtimes(finished_run, "ensemble/rods/*.pt") == ensemble  # not retrained
    assert mtimes(finished_run, "rods[01]/*") == others
    with xr.open_dataset(finished_run / "results" / "rods2" / "particles.nc") as particles:
        assert particles.sizes["particle"] > 0


def test_touching_one_movie_reruns_only_its_chain(finished_run):
    os.utime(finished_run / "resources" / "movies" / "rods0.npy")
    # Files under --max-checksum-file-size (1 MB) are compared by checksum: a
    # touch alone changes nothing. Real movies are larger; this one is made to count as such.
    assert "Nothing to be done" in (r := dry_run(finished_run)).stdout + r.stderr
    ran = jobs(dry_run(finished_run, "--max-checksum-file-size", "1000"))
    assert {rule for rule, _ in ran} == PER_MOVIE | {"all"}
    assert {w for rule, w in ran if rule != "all"} == {"movie=rods0", "kind=rods, model=rods0"}
    # New content (a re-exported movie) reruns its chain whatever its size.
    rods_movie(finished_run / "resources" / "movies" / "rods1.npy", seed=21)
    assert {w for rule, w in jobs(dry_run(finished_run)) if rule != "all"} == {"movie=rods1", "kind=rods, model=rods1"}


def test_an_rvae_parameter_reruns_the_rvae_and_what_follows_only(finished_run):
    ran = jobs(dry_run(finished_run, *config(finished_run, "rvae:\n  epochs: 4\n  threads: 1\n")))
    assert {rule for rule, _ in ran} == AFTER_RVAE | {"all"}
    assert planned_count(ran, "fit_rvae") == 2
    # "auto" is resolved before Snakemake compares params: spelling out its values for frame windows changes
    # nothing, nor does the order of the keys (this file puts likelihood first)
    same = config(finished_run, "rvae:\n  likelihood: gaussian\n  polarity: true\n  epochs: 3\n  threads: 1\n")
    assert "Nothing to be done" in (r := dry_run(finished_run, *same)).stdout + r.stderr


def test_raising_the_ensemble_size_trains_only_the_new_member(finished_run):
    extra = config(finished_run, "train:\n  width: 8\n  max_epochs: 3\n  patience: 2\n  members: 3\n"
                                 "  member_epochs: 1\n  threads: 1\n")
    ran = jobs(dry_run(finished_run, *extra))
    assert [w for rule, w in ran if rule.startswith("train")] == ["kind=rods, member=2"]
    assert {rule for rule, _ in ran} == (PER_MOVIE - {"ingest"}) | {"train_member", "all"}


# The entry module of every rule, written out here rather than read from the stage
# map, so that the rerun tests below do not take their expectations from the code under test.
ENTRIES = {
    "simulate": "rotdyn.simulate", "ingest": "rotdyn.ingest", "training_set": "rotdyn.training_set",
    "train_baseline": "rotdyn.train", "train_member": "rotdyn.train", "segment": "rotdyn.segment",
    "locate": "rotdyn.locate", "patches": "rotdyn.patches", "fit_rvae": "rotdyn.fit_rvae",
    "encode": "rotdyn.encode", "rvae_figures": "rotdyn.figures.rvae", "kde": "rotdyn.kde", "nmf": "rotdyn.nmf",
    "dynamics_figures": "rotdyn.figures.dynamics", "link": "rotdyn.link", "maps": "rotdyn.figures.maps",
    "summary": "rotdyn.summary", "qc": "rotdyn.qc", "qc_figure": "rotdyn.figures.qc",
}


def imported_at_run_time(workflow, module: str) -> set[str]:
    """The rotdyn modules a fresh interpreter holds after importing ``module`` from ``workflow``'s sources.

    Asked before any edit, every run's copy holds the checkout's sources unchanged (``copy_workflow``
    copies them; :func:`_same_sources` checks), so the answer is computed once per module, from the
    checkout: a fresh interpreter per module and question took about 4 minutes of the suite.
    """
    assert _same_sources(workflow), f"{workflow}/src differs from {ROOT}/src: ask before editing it"
    return set(_imported(module))


def _same_sources(workflow) -> bool:
    ours, theirs = ROOT / "src" / "rotdyn", Path(workflow) / "src" / "rotdyn"
    files = sorted(p.relative_to(ours) for p in ours.rglob("*.py"))
    return files == sorted(p.relative_to(theirs) for p in theirs.rglob("*.py")) and all(
        (ours / f).read_bytes() == (theirs / f).read_bytes() for f in files)


@functools.cache
def _imported(module: str) -> frozenset[str]:
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); import importlib, rotdyn; "
            f"assert rotdyn.__file__.startswith({str(ROOT)!r}), rotdyn.__file__; "
            f"importlib.import_module({module!r}); "
            "print(' '.join(m for m in sys.modules if m == 'rotdyn' or m.startswith('rotdyn.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return frozenset(out.split())


def test_the_entry_modules_are_those_the_stage_map_names():
    from rotdyn.stages import STAGES

    assert {rule: stage.module for rule, stage in STAGES.items()} == ENTRIES


def test_each_stage_hashes_exactly_what_python_imports_for_it():
    """The static import closure behind each rerun key equals what importing the entry module loads."""
    from rotdyn.stages import stage_modules

    for rule, entry in ENTRIES.items():
        assert set(stage_modules(rule)) == imported_at_run_time(ROOT, entry), rule


@pytest.mark.parametrize("module", ["movies", "nmf", "networks", "store", "ingest", "simulate"])
def test_editing_a_module_reruns_exactly_the_stages_that_import_it(finished_run, module):
    # What should rerun, derived without the stage map: the rules whose entry module pulls in the edited
    # file when Python imports it, and everything Snakemake's own DAG puts after them.
    users = sorted(rule for rule, entry in ENTRIES.items()
                   if f"rotdyn.{module}" in imported_at_run_time(finished_run, entry))
    expected = ({rule for rule, _ in jobs(dry_run(finished_run, "--forcerun", *users))} if users else set())
    source = finished_run / "src" / "rotdyn" / f"{module}.py"
    if not source.exists():  # a package (rotdyn.simulate): edit its __init__
        source = source.with_suffix("") / "__init__.py"
    with open(source, "a") as fh:
        fh.write(f"\n# an edit to {module}\n")
    result = dry_run(finished_run)
    ran = {rule for rule, _ in jobs(result)}
    assert ran == expected, f"editing {module}.py: planned {sorted(ran)}, expected {sorted(expected)}"
    # and the edit itself is why they rerun: Snakemake names a changed code param for the first of them
    # (it does not look at the params of jobs that rerun anyway for new inputs)
    assert code_changed(result) <= set(users) and bool(code_changed(result)) == bool(ran)
    if not users:
        assert "Nothing to be done" in result.stdout + result.stderr


def code_changed(result) -> set[str]:
    """Rules that a dry run reruns because their params changed (here: the ``code`` hash), from its Reasons."""
    lines = (result.stdout + result.stderr).splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "params have changed since last execution:":
            return {rule.strip() for rule in lines[i + 1].split(",")}
    return set()


def test_expected_users_are_not_empty_where_a_stage_runs_the_module(finished_run):
    """Guards the derivation above: the edits in the test reach real stages."""
    users = {module: {rule for rule, entry in ENTRIES.items()
                      if f"rotdyn.{module}" in imported_at_run_time(finished_run, entry)}
             for module in ("nmf", "networks", "ingest")}
    assert "nmf" in users["nmf"] and "ingest" not in users["nmf"]
    assert {"train_baseline", "train_member", "segment"} <= users["networks"]
    assert users["ingest"] == {"ingest"}


def planned_count(ran, rule):
    return sum(r == rule for r, _ in ran)


# ------------------------------------------------------------------ crashes
def start(workflow, *args) -> subprocess.Popen:
    """Snakemake in a session of its own, so that one signal reaches it and every job."""
    args = args or tuple(TINY)
    return subprocess.Popen([*SNAKEMAKE, "--cores", "2", *args], cwd=workflow, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """SIGKILL the run's whole process group (a power cut) as soon as ``ready()`` holds."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"the moment to kill never came:\n{proc.communicate()[0]}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_while_writing_a_netcdf_recovers_and_never_reads_the_half(finished_run):
    rods_movie(finished_run / "resources" / "movies" / "rods0.npy", seed=20)
    results = finished_run / "results" / "rods0"
    part = results / ".probability.nc.part.nc"
    proc = start(finished_run)
    kill_when(proc, lambda: part.exists() and part.stat().st_size > 0)
    assert list((finished_run / ".snakemake" / "locks").glob("*.lock")), "a killed run leaves its lock"
    # The half-written file never took the final name; what came after it was not run on it.
    assert not (results / "probability.nc").exists()
    assert part.exists()

    result = snakemake(finished_run, *TINY)  # no --unlock, no cleaning by hand
    log = result.stdout + result.stderr
    assert "removed the lock left by a run that was killed" in log
    assert not part.exists() and not list(results.glob(".*.part*"))
    with xr.open_dataset(results / "probability.nc") as prob:
        assert prob["mean"].sizes["frame"] == 6 and np.isfinite(prob["mean"].values).all()
    assert "Nothing to be done" in (r := dry_run(finished_run)).stdout + r.stderr


def test_killed_in_the_middle_of_training_resumes_from_its_checkpoint(finished_run):
    extra = config(finished_run, "rvae:\n  epochs: 40\n  checkpoint_every: 5\n  threads: 1\n")
    log = finished_run / "results" / "logs" / "rvae" / "rods" / "rods0.log"

    def mid_training():
        text = log.read_text() if log.exists() else ""
        done = [int(e) for e in re.findall(r"rvae epoch (\d+)/40", text)]
        return bool(done) and max(done) >= 12

    proc = start(finished_run, *extra)
    kill_when(proc, mid_training)
    model = finished_run / "results" / "rvae" / "rods" / "rods0"
    assert (model / "checkpoint.pt").exists()
    assert not (model / "model.pt").exists(), "an interrupted fit must not leave a model"

    snakemake(finished_run, *extra)
    resumed = re.search(r"resuming from \S+ at epoch (\d+)", log.read_text())
    assert resumed and int(resumed.group(1)) >= 10
    history = pd.read_csv(model / "history.csv")
    assert history.epoch.tolist() == list(range(1, 41)) and np.isfinite(history.test_loss).all()
    assert not (model / "checkpoint.pt").exists()
    assert "Nothing to be done" in (r := dry_run(finished_run, *extra)).stdout + r.stderr
