"""Recovering from a killed run without ``snakemake --unlock``.

Snakemake locks the working directory while it runs and leaves the lock
behind when it is killed (power loss, OOM killer, ``kill -9``); the next run
then refuses to start until someone runs ``--unlock``. The workflow records
which process holds the lock (host, PID and that process's start time, so a
reused PID is not mistaken for it). A later run on the same host removes the
lock only when that process is gone; a lock held by a live run, by a run on
another host or by a run that left no record is left alone, and Snakemake
refuses to start as usual.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

OWNER = Path(".snakemake") / "rotdyn" / "lock-owner.json"
LOCKS = Path(".snakemake") / "locks"


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after it.
    return stat.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None."""
    fields = _stat(pid)
    return fields[19] if fields else None


def _alive(owner: dict) -> bool:
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    if fields is None:
        return True  # no /proc: trust the signal
    if fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return owner.get("start") in (None, fields[19])


def recover_stale_lock(workdir: str | os.PathLike = ".") -> str | None:
    """Remove the locks of a dead run recorded on this host; return a message when it did.

    Parameters
    ----------
    workdir : str or os.PathLike
        The Snakemake working directory.

    Returns
    -------
    str or None
        What was removed, or None when nothing was (no lock, no record, a
        live owner or one on another host).

    Examples
    --------
    >>> import tempfile
    >>> workdir = Path(tempfile.mkdtemp())
    >>> (workdir / LOCKS).mkdir(parents=True)
    >>> _ = (workdir / LOCKS / "0.output.lock").write_text("results/x.nc")
    >>> (workdir / OWNER).parent.mkdir(parents=True)
    >>> _ = (workdir / OWNER).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    >>> recover_stale_lock(workdir) is None  # recorded on another host: left alone
    True
    >>> _ = (workdir / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 1}))
    >>> recover_stale_lock(workdir).startswith("removed the lock"), list((workdir / LOCKS).glob("*.lock"))
    (True, [])
    """
    workdir = Path(workdir)
    locks = list((workdir / LOCKS).glob("*.lock"))
    owner_file = workdir / OWNER
    if not locks or not owner_file.exists():
        return None
    try:
        owner = json.loads(owner_file.read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname() or _alive(owner):
        return None
    for lock in locks:
        lock.unlink(missing_ok=True)
    return (f"removed the lock left by a run that was killed (PID {owner['pid']} on {owner['host']}); "
            "its unfinished jobs are redone (rerun-incomplete)")


def record_owner(workdir: str | os.PathLike = ".") -> None:
    """Note this process as the run that is about to take the lock (unless a live run holds it).

    Parameters
    ----------
    workdir : str or os.PathLike
        The Snakemake working directory; the record is ``<workdir>/.snakemake/rotdyn/lock-owner.json``.

    Examples
    --------
    >>> import tempfile
    >>> workdir = Path(tempfile.mkdtemp())
    >>> record_owner(workdir)
    >>> json.loads((workdir / OWNER).read_text())["pid"] == os.getpid()
    True
    """
    workdir = Path(workdir)
    if list((workdir / LOCKS).glob("*.lock")):
        return  # a live run holds the lock: keep its record
    pid = os.getpid()
    owner = {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid)}
    path = workdir / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(owner))
    os.replace(tmp, path)
