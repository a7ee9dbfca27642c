"""benchmarks/peers.py end to end without the peers: a rotdyn row with a time, and its -ELBO.

The tiled and the naive decoder compute the same function from the same
weights, seed and batches, so their -ELBO after one epoch must agree; with a
Gaussian of sd 1 no -ELBO can fall below the likelihood's constant P/2 log(2 pi).
"""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (rotdyn [^|]+?) \| unset \| ([\d.]+) \| 1 \| - \| - \| ([\d.]+) \| ([\d.]+) \|$", re.M)


def test_peers_benchmark_runs_rotdyn_alone():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--quick", "--no-peers", "--no-tunables",
         "--windows", "200", "--size", "24", "--epochs", "1", "--fit-epochs", "1", "--fit-all",
         "--settings", "rotdyn-tiled,rotdyn-naive"],
        env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "peers: skipped (--no-peers)" in out and "AVX512-BF16:" in out
    rows = {name: (float(s), float(elbo), float(nll)) for name, s, elbo, nll in ROW.findall(out)}
    assert set(rows) == {"rotdyn float32, tiled decoder", "rotdyn naive decoder"}, out
    floor = 0.5 * 24 * 24 * math.log(2 * math.pi)
    for seconds, elbo, nll in rows.values():
        assert seconds > 0
        assert floor < nll < elbo < floor + 200  # 0.5 * sum(x^2) ~ 20 nats, the angle KL at the start ~ 47
    tiled, naive = rows["rotdyn float32, tiled decoder"], rows["rotdyn naive decoder"]
    assert abs(tiled[1] - naive[1]) < 0.05 and abs(tiled[2] - naive[2]) < 0.05, (tiled, naive)
