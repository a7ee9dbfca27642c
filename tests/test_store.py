"""Atomic writes and stale-lock recovery: what a killed run leaves behind."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from rotdyn.locks import LOCKS, OWNER, recover_stale_lock, record_owner
from rotdyn.store import atomic_path, write_netcdf


def test_atomic_path_renames_on_success_and_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.csv"
    with atomic_path(target) as tmp:
        assert tmp.name == ".out.csv.part.csv" and not target.exists()
        tmp.write_text("a\n1\n")
    assert target.read_text() == "a\n1\n" and not tmp.exists()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "a\n1\n" and not tmp.exists()


def test_leftover_of_a_killed_write_is_replaced(tmp_path):
    target = tmp_path / "movie.nc"
    leftover = tmp_path / ".movie.nc.part.nc"
    leftover.write_bytes(b"\x89HDF half-written")
    write_netcdf(xr.Dataset({"v": ("x", np.arange(3.0))}), target)
    assert not leftover.exists()
    with xr.open_dataset(target) as ds:
        np.testing.assert_array_equal(ds.v.values, [0, 1, 2])


def _lock(workdir):
    (workdir / LOCKS).mkdir(parents=True, exist_ok=True)
    (workdir / LOCKS / "0.output.lock").write_text("results/x.nc\n")


def test_lock_of_a_dead_run_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / OWNER).parent.mkdir(parents=True)
    (tmp_path / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead), "start": "1"}))
    _lock(tmp_path)
    message = recover_stale_lock(tmp_path)
    assert message and dead in message
    assert not list((tmp_path / LOCKS).glob("*.lock"))


@pytest.mark.parametrize("owner", ["alive", "other_host", "reused_pid_is_dead", "no_record"])
def test_other_locks_are_left_alone(tmp_path, owner):
    record_owner(tmp_path)  # this (live) process
    record = json.loads((tmp_path / OWNER).read_text())
    assert record["pid"] == os.getpid()
    if owner == "other_host":
        record["host"] = "elsewhere"
    if owner == "reused_pid_is_dead":
        record["start"] = "0"  # same PID, another start time: the owner is gone
    (tmp_path / OWNER).write_text(json.dumps(record))
    if owner == "no_record":
        (tmp_path / OWNER).unlink()
    _lock(tmp_path)
    removed = recover_stale_lock(tmp_path)
    assert bool(removed) == (owner == "reused_pid_is_dead")
    assert bool(list((tmp_path / LOCKS).glob("*.lock"))) == (owner != "reused_pid_is_dead")


def test_record_keeps_the_owner_while_locked(tmp_path):
    (tmp_path / OWNER).parent.mkdir(parents=True)
    (tmp_path / OWNER).write_text(json.dumps({"host": "h", "pid": 1, "start": "5"}))
    _lock(tmp_path)
    record_owner(tmp_path)
    assert json.loads((tmp_path / OWNER).read_text())["pid"] == 1
