"""Time of every job of a finished run, from Snakemake's benchmark files.

    python benchmarks/rule_times.py [results]

Reads results/benchmarks/**.tsv (written by each rule's `benchmark:`
directive) and prints the wall time of each job, the total per rule and its
share of the whole, slowest first, so the slowest stage is visible.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def rule_times(results: Path) -> pd.DataFrame:
    """One row per job: rule (the first folder), target (the rest of the path), seconds, max RSS (MB).

    Rules nest their files (``fit_rvae/<kind>/<model>.tsv``): every level is read.
    """
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rule, *rest = path.relative_to(results / "benchmarks").with_suffix("").parts
        rows.append({"rule": rule, "target": "/".join(rest),
                     "seconds": float(table["s"].iloc[-1]),
                     "max_rss_mb": float(pd.to_numeric(table["max_rss"], errors="coerce").iloc[-1])})  # "-": too short
    return pd.DataFrame(rows, columns=["rule", "target", "seconds", "max_rss_mb"])


def main() -> None:
    """Command line: print the job and rule times of the results folder given (default ``results``)."""
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    jobs = rule_times(results)
    if jobs.empty:
        sys.exit(f"no benchmark files under {results}/benchmarks: run the workflow first")
    per_rule = jobs.groupby("rule")["seconds"].agg(["count", "sum", "max"]).sort_values("sum", ascending=False)
    per_rule["share"] = per_rule["sum"] / per_rule["sum"].sum()
    print(f"{'rule':18} {'jobs':>5} {'total s':>9} {'max s':>8} {'share':>7}")
    for rule, row in per_rule.iterrows():
        print(f"{rule:18} {int(row['count']):5d} {row['sum']:9.1f} {row['max']:8.1f} {row['share']:7.1%}")
    print(f"{'all jobs':18} {len(jobs):5d} {per_rule['sum'].sum():9.1f}")


if __name__ == "__main__":
    main()
