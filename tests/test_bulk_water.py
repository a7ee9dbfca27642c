"""Real colloid video (../shared/data/bulk_water, when present): our linking equals trackpy's."""
from pathlib import Path

import pytest
from workflow_helpers import load_benchmark

from rotdyn.formats import read_movie

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT.parent / "shared" / "data" / "bulk_water" / "frames"


@pytest.mark.skipif(not FRAMES.is_dir(), reason=f"real colloid video not present at {FRAMES}")
def test_links_agree_with_trackpy_on_real_colloids():
    bench = load_benchmark("bulk_water")
    frames = read_movie(FRAMES).frames[:20]
    result = bench.compare(frames)
    assert result["detections"] > 20 * 100 and result["tracks"] > 100
    assert result["agreement"] >= 0.99
    assert result["median_length"] >= 5
    assert result["alias_agrees"]  # tracks.csv's "particle" (trackpy's name) holds the track ids too
