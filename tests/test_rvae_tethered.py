"""The rVAE's latent angle turns with a fast-spinning tethered cell (issue 13, item 4).

The stand-in for the real tethered-cell movie of issue 13 (not in ../shared/data), drawn by
``tests/other_generator.py`` (no code shared with ``rotdyn.simulate``): a phase-contrast cell turning
18 deg per frame about a dark tether spot, beside a still neighbour. ``benchmarks/rvae_tethered.py``
as shipped (classical detections, the ``cells`` kind's windows and rVAE settings), on 150 frames.
"""
from __future__ import annotations

import numpy as np
import pytest

from other_generator import tethered_cell
from workflow_helpers import load_benchmark


def test_tethered_cell_turns_about_its_tether():
    movie, truth = tethered_cell(frames=40, seed=2)
    spin = truth[truth["id"] == 1]
    turns = np.degrees(np.diff(np.unwrap(spin["angle"].to_numpy())))
    assert 16 < np.median(turns) < 20
    tether = spin[["x", "y"]].to_numpy() - 7.0 * np.c_[np.cos(spin["angle"]), -np.sin(spin["angle"])]
    assert np.ptp(tether, axis=0).max() < 1e-9  # the body centre circles one fixed point, 7 px away
    assert movie.shape == (40, 64, 64)


def test_latent_angle_turns_with_the_spinning_cell():
    r = load_benchmark("rvae_tethered").run(frames=150)
    assert r["whole"] >= 140
    assert r["turn_true_angle"] == pytest.approx(18, abs=1)
    assert r["turn_latent"] == pytest.approx(r["turn_true_angle"], rel=0.1), r
    assert 0.9 <= r["slope_latent"]["slope"] <= 1.1, r["slope_latent"]
