"""How the workflow scales with the number of movies on one machine.

Runs `snakemake --cores 2` on fresh copies of the workflow holding 1, 2 and 4
simulated rods movies (the demo's settings, a different seed each), then
prints for each run: wall time, wall time per movie, seconds per stage (from
the rules' `benchmark:` files), which jobs ran at the same time (from
Snakemake's log), and the disk each movie's results take. The per-movie
figures are what the README's cost note for 100 movies is computed from.

    python benchmarks/scale.py [--counts 1 2 4] [--configfile extra.yaml] [--keep DIR]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from rule_times import rule_times  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from workflow_helpers import copy_workflow  # noqa: E402  (the one copy of the workflow for tests and benchmarks)

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")


def add_movies(workflow: Path, count: int) -> None:
    """``count`` rods movies like the demo's (config simulate.rods), seeds 100, 101, ..."""
    import yaml
    from rotdyn.simulate import simulate_rods

    params = dict(yaml.safe_load((workflow / "config" / "config.yaml").read_text())["simulate"]["rods"])
    for key in ("pixel_size_nm", "frame_interval_s", "seed"):
        params.pop(key)
    for i in range(count):
        np.save(workflow / "resources" / "movies" / f"rods{i}.npy", simulate_rods(seed=100 + i, **params).frames)


def job_intervals(log: Path) -> list[tuple[str, float, float]]:
    """(job, start, end) in seconds from the run's start, read off Snakemake's log."""
    stamp, starts, names, out = None, {}, {}, []
    rule = None
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s+jobid: (\d+)$", line)):
            starts[m.group(1)], names[m.group(1)] = stamp, rule
        elif rule and (m := re.match(r"^\s+wildcards: (.*)$", line)):
            names[list(names)[-1]] += f"[{m.group(1).split('=')[-1]}]"
        elif m := re.match(r"^Finished jobid: (\d+)", line):
            out.append((names[m.group(1)], starts[m.group(1)], stamp))
    t0 = min((s for _, s, _ in out), default=0)
    return [(n, s - t0, e - t0) for n, s, e in out]


def overlaps(intervals) -> Counter:
    """How often each pair of rules ran at the same time (for at least a second).

    Examples
    --------
    >>> overlaps([("kde[a]", 0, 5), ("nmf[b]", 2, 9), ("link[a]", 9, 10)])
    Counter({'kde | nmf': 1})
    """
    pairs = Counter()
    for i, (a, sa, ea) in enumerate(intervals):
        for b, sb, eb in intervals[i + 1:]:
            if min(ea, eb) - max(sa, sb) >= 1:
                pairs[" | ".join(sorted((a.split("[")[0], b.split("[")[0])))] += 1
    return pairs


def max_parallel(intervals) -> int:
    """The most jobs that ran at one time, from (job, start, end) intervals.

    Examples
    --------
    >>> max_parallel([("a", 0, 5), ("b", 2, 9), ("c", 3, 4), ("d", 9, 10)])
    3
    """
    events = sorted([(s, 1) for _, s, e in intervals if e > s] + [(e, -1) for _, s, e in intervals if e > s])
    level = best = 0
    for _, step in events:
        level += step
        best = max(best, level)
    return best


def disk_mb(folder: Path) -> float:
    """Size of every file under ``folder``, MB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run(count: int, base: Path, extra: list[str]) -> dict:
    """Run the workflow on ``count`` movies in a fresh copy under ``base``; wall time, stage times, disk."""
    workflow = base / f"movies_{count}"
    copy_workflow(workflow)
    add_movies(workflow, count)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *extra], cwd=workflow, check=True,
                   capture_output=True, text=True)
    wall = time.perf_counter() - start
    log = max((workflow / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    intervals = job_intervals(log)
    results = workflow / "results"
    return {"count": count, "wall": wall, "times": rule_times(results),
            "intervals": intervals, "disk": {f"rods{i}": disk_mb(results / f"rods{i}") for i in range(count)},
            "ensemble_mb": disk_mb(results / "ensemble")}


def report(r: dict) -> None:
    """Print one run's figures (see the module docstring)."""
    n = r["count"]
    print(f"\n== {n} movie(s): wall {r['wall']:.0f} s, {r['wall'] / n:.0f} s per movie; "
          f"at most {max_parallel(r['intervals'])} jobs at once")
    stage = r["times"].groupby("rule")["seconds"].agg(["count", "sum", "mean"])
    for rule, row in stage.sort_values("sum", ascending=False).iterrows():
        print(f"   {rule:18s} {int(row['count']):3d} job(s)  {row['sum']:7.1f} s  ({row['mean']:.1f} s each)")
    pairs = overlaps(r["intervals"])
    print("   ran side by side: " + (", ".join(f"{p} x{k}" for p, k in pairs.most_common(8)) or "nothing"))
    disk = np.mean(list(r["disk"].values()))
    print(f"   disk: {disk:.1f} MB per movie's results, {r['ensemble_mb']:.1f} MB for the ensemble")


def main() -> None:
    """Command line: run every count, print the reports."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--configfile", help="extra config (e.g. tests/tiny_config.yaml for a quick check)")
    parser.add_argument("--keep", help="run in this folder and keep the results")
    args = parser.parse_args()
    extra = ["--configfile", str(Path(args.configfile).resolve())] if args.configfile else []
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rotdyn-scale-"))
    try:
        runs = [run(n, base, extra) for n in args.counts]
        for r in runs:
            report(r)
        first = runs[0]
        print("\nwall time per movie relative to one movie: " +
              ", ".join(f"{r['count']}: {r['wall'] / r['count'] / first['wall']:.2f}" for r in runs))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
