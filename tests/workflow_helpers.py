"""Running the real Snakemake on temporary copies of the workflow (shared by the workflow tests)."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PARTS = ["Snakefile", "workflow", "config", "profiles", "envs", "src"]
TINY = ["--configfile", str(ROOT / "tests" / "tiny_config.yaml")]


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package).

    Examples
    --------
    >>> load_benchmark("real_movies").TRACKPY["diameter"]
    9
    """
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_workflow(dest: Path) -> Path:
    """A fresh copy of the workflow (no results) with an empty movies folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dest / part)
    (dest / "resources" / "movies").mkdir(parents=True)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, cores: int | None = 2, env=None,
              timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, *(["--cores", str(cores)] if cores else []), *args]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def planned(result: subprocess.CompletedProcess) -> dict[str, int]:
    """{rule: job count} from a run's or dry run's job-stats table."""
    counts, in_table = {}, False
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
        elif in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if parts[-1].isdigit():
                counts[parts[0]] = int(parts[-1])
    return counts


def jobs(result) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a run or dry run lists."""
    found, rule = [], None
    for line in (result.stdout + result.stderr).splitlines():
        if m := re.match(r"^\s*(?:local)?rule (\w+):$", line):
            rule = m.group(1)
            found.append((rule, ""))
        elif rule and (m := re.match(r"^\s+wildcards: (.*)$", line)):
            found[-1] = (rule, m.group(1))
    return found


def movie(n=4, shape=(24, 32), seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def rods_movie(path: Path, seed: int, frames: int = 6, size: int = 64) -> None:
    """A small simulated rods movie (as .npy) that the tiny ensemble can segment."""
    from rotdyn.simulate import simulate_rods

    sim = simulate_rods(size=size, frames=frames, count=6, transition_frame=frames // 2, seed=seed)
    np.save(path, sim.frames)


def assert_same_results(a: Path, b: Path, patterns=("**/*.nc", "**/*.csv", "**/summary.json", "**/qc.json")) -> int:
    """Every table and dataset under results/ of run ``a`` equals run ``b``'s; returns how many.

    Attributes (creation times) and the ``seconds`` timing columns are left out.
    """
    files = sorted({p.relative_to(a) for pattern in patterns for p in (a / "results").glob(pattern)})
    assert files, f"no results under {a}"
    for rel in files:
        left, right = a / rel, b / rel
        assert right.exists(), f"{rel} missing from {b}"
        if rel.suffix == ".nc":
            with xr.open_dataset(left) as x, xr.open_dataset(right) as y:
                xr.testing.assert_allclose(x.drop_attrs(), y.drop_attrs(), rtol=1e-5, atol=1e-6)
        elif rel.suffix == ".csv":
            x, y = (pd.read_csv(f).drop(columns=["seconds"], errors="ignore") for f in (left, right))
            pd.testing.assert_frame_equal(x, y, rtol=1e-5, atol=1e-6)
        else:
            assert left.read_text() == right.read_text(), rel
    return len(files)
