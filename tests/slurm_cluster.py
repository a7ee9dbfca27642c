"""A real one-node SLURM cluster on localhost, for tests and benchmarks.

Starts ``munged`` (as the munge user, unless one already runs), then
``slurmctld`` and ``slurmd`` with a ``slurm.conf`` whose state, spool and logs
live in a scratch folder. The config is also installed at the default
/etc/slurm/slurm.conf while the cluster runs (any file there is put back on
stop): the executor's job-step plugin strips every ``SLURM_*`` variable,
``SLURM_CONF`` included, before its nested ``srun``, which then only finds
the default path. Clients started here get ``SLURM_CONF`` from
:meth:`LocalSlurm.env` as well. The node offers one fake GPU (``gres.conf``
with ``File=/dev/null``) so the GPU rules' ``gpu`` resource can be scheduled.

Facts this relies on (Debian 12, root, no systemd): ``proctrack/linuxproc``
and ``task/none`` need no cgroups; without an accounting database ``sacct``
fails, so the executor must poll with ``--slurm-status-command squeue``;
``RealMemory`` must not exceed what ``slurmd -C`` reports.

    python tests/slurm_cluster.py install      # apt-get the daemons (root)
    python tests/slurm_cluster.py up DIR       # start; prints the env to export
    python tests/slurm_cluster.py down DIR     # stop the daemons started in DIR
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurm-wlm", "slurmctld", "slurmd", "slurm-client", "munge"]
NODE = "localhost"
# The partitions profiles/slurm asks for, both on the one node.
PARTITIONS = ("cpu", "gpu")
# The node as profiles/slurm expects a GPU node to be (cpus_per_gpu 4,
# mem_mb 16000): slurmd is told to trust these over the hardware
# (config_overrides), so a 2-core machine can stand in for it.
MIN_CPUS, MIN_MEMORY_MB = 4, 20000
DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo")


def missing_reason() -> str | None:
    """Why a local cluster cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "a local SLURM needs root (slurmd runs jobs as their users)"
    if all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS):
        return None
    if not shutil.which("apt-get"):
        return "SLURM is not installed and apt-get is not available to install it"
    return None


def install() -> None:
    """Install the SLURM daemons and munge with apt (about 15 s), if missing."""
    if all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(cmd, env=env, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> tuple[int, int]:
    """(CPUs, RealMemory MB) as slurmd sees this machine."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    cpus = int(re.search(r"CPUs=(\d+)", out).group(1))
    mem = int(re.search(r"RealMemory=(\d+)", out).group(1))
    return cpus, mem


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class LocalSlurm:
    """Daemons of a one-node cluster whose files all live in ``root``."""

    def __init__(self, root: str | os.PathLike, etc: str | os.PathLike = "/etc/slurm"):
        self.root = Path(root).resolve()
        self.conf = self.root / "slurm.conf"
        self.etc = Path(etc)
        self.pids: dict[str, int] = {}

    # -------------------------------------------------------------- config
    def write_config(self) -> None:
        cpus, mem = _node_hardware()
        cpus, mem = max(cpus, MIN_CPUS), max(mem, MIN_MEMORY_MB)
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        self.conf.write_text(f"""\
ClusterName=rotdyn
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmdParameters=config_overrides
SchedulerParameters=defer_batch=0
GresTypes=gpu
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} Gres=gpu:1 State=UNKNOWN
""" + "".join(f"PartitionName={p} Nodes={NODE} Default={'YES' if i == 0 else 'NO'} "
                      f"MaxTime=INFINITE State=UP\n" for i, p in enumerate(PARTITIONS)))
        # A fake GPU: SLURM only needs a device file to hand out.
        (self.root / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File=/dev/null\n")

    def _install_config(self) -> None:
        """Copy slurm.conf and gres.conf to the default folder, keeping what was there."""
        self.etc.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            target = self.etc / name
            if target.exists() and not (self.root / f"{name}.orig").exists():
                shutil.copy2(target, self.root / f"{name}.orig")
            shutil.copy(self.root / name, target)

    def _restore_config(self) -> None:
        for name in ("slurm.conf", "gres.conf"):
            target, orig = self.etc / name, self.root / f"{name}.orig"
            if orig.exists():
                shutil.copy2(orig, target)
            elif target.exists() and target.read_bytes() == (self.root / name).read_bytes():
                target.unlink()

    def env(self) -> dict:
        """This process's environment with the clients pointed at the cluster."""
        return dict(os.environ, SLURM_CONF=str(self.conf))

    # ------------------------------------------------------------- daemons
    def _start_munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return  # one is running: share it, and leave it running
        run = Path("/run/munge")
        run.mkdir(parents=True, exist_ok=True)
        shutil.chown(run, "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _exe("munged")], check=True)
        pid = Path("/run/munge/munged.pid")
        for _ in range(50):
            if pid.exists() and pid.read_text().strip():
                self.pids["munged"] = int(pid.read_text())
                return
            time.sleep(0.1)
        raise RuntimeError("munged did not start (no /run/munge/munged.pid)")

    def _start_daemon(self, name: str, *args: str) -> None:
        subprocess.run([_exe(name), "-f", str(self.conf), *args], check=True, env=self.env())
        pidfile = self.root / f"{name}.pid"
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text())
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start; see {self.root / 'log' / (name + '.log')}")

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until sinfo shows the node idle."""
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True,
                                 text=True, env=self.env())
            state = out.stdout.strip()
            if out.returncode == 0 and state.startswith("idle"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node not idle after {timeout} s (state {state!r}); "
                           f"logs in {self.root / 'log'}")

    def start(self) -> "LocalSlurm":
        self.write_config()
        self._install_config()
        self._start_munge()
        self._start_daemon("slurmctld")
        self._start_daemon("slurmd", "-N", NODE)
        self.wait_idle()
        return self

    def stop(self) -> None:
        """Stop the daemons this object started, by PID, newest first."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        self._restore_config()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------- queries
    def jobs(self) -> list[dict]:
        """Every job the controller still remembers (MinJobAge keeps finished ones)."""
        out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True,
                             text=True, env=self.env(), check=True).stdout
        jobs = []
        for line in out.splitlines():
            if line.startswith("JobId="):
                jobs.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
        return jobs


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("install", "up", "down"):
        print(__doc__)
        return 2
    if argv[0] == "install":
        install()
        return 0
    cluster = LocalSlurm(argv[1])
    if argv[0] == "up":
        cluster.start()
        (cluster.root / "pids").write_text(" ".join(f"{k}={v}" for k, v in cluster.pids.items()))
        print(f"export SLURM_CONF={cluster.conf}")
        return 0
    pids = (cluster.root / "pids").read_text().split()
    cluster.pids = {k: int(v) for k, v in (p.split("=") for p in pids)}
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
