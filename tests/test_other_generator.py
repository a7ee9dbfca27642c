"""The independent acceptance-test generator (tests/other_generator.py) draws what its truth says."""
import numpy as np
import pytest
from other_generator import crowded_rods
from scipy import ndimage
from skimage.measure import regionprops

CLEAN = dict(noise=0.0, line_noise=0.0, background=0.0)


@pytest.fixture(scope="module")
def movie():
    return crowded_rods(count=12, size=128, frames=4, seed=3, **CLEAN)


def test_isolated_rods_sit_where_the_truth_says(movie):
    frames, truth = movie
    isolated = truth[truth.nn_distance > 22.0 + 6.5 + 2]
    assert len(isolated) >= 8
    for row in isolated.itertuples():
        blobs, _ = ndimage.label(frames[row.frame] > 0.5)
        rod = blobs == blobs[int(round(row.y)), int(round(row.x))]
        (p,) = regionprops(rod.astype(int), intensity_image=frames[row.frame])
        cy, cx = p.centroid
        assert abs(cx - row.x) < 0.5 and abs(cy - row.y) < 0.5  # bright pixels centred on x, y
        # A 22 x 6.5 rectangle with corners of radius 2 cut round; a uniform bar's axis length is 4 L / sqrt(12).
        assert p.area == pytest.approx(22.0 * 6.5 - (4 - np.pi) * 2.0 ** 2, rel=0.05)
        assert p.axis_major_length == pytest.approx(4 * 22.0 / np.sqrt(12), rel=0.04)
        # The head: the intensity centroid lies toward (cos angle, -sin angle) from the shape's centroid.
        wy, wx = p.centroid_weighted
        shift = np.arctan2(-(wy - cy), wx - cx)
        assert abs((shift - row.angle + np.pi) % (2 * np.pi) - np.pi) < np.deg2rad(8)
        assert np.hypot(wx - cx, wy - cy) > 0.5


def test_rods_overlap_move_and_turn(movie):
    frames, truth = movie
    crowded = crowded_rods(count=40, size=128, frames=2, seed=0)[1]
    assert (crowded.nn_distance < 6.5).any()  # independent positions: rods cross
    nn = crowded[crowded.frame == 0][["x", "y"]].to_numpy()
    d = np.linalg.norm(nn[:, None] - nn[None], axis=-1) + np.diag(np.full(len(nn), np.inf))
    np.testing.assert_allclose(crowded[crowded.frame == 0].nn_distance, d.min(1))
    step = truth.sort_values(["id", "frame"]).groupby("id")[["x", "y", "angle"]].diff().dropna()
    assert 0.2 < step[["x", "y"]].to_numpy().std() < 0.6 and 0.005 < step.angle.abs().median() < 0.06


def test_noise_is_the_afm_mix():
    noisy, truth = crowded_rods(count=0, size=96, frames=3, noise=0.1, line_noise=0.05, background=0.0, seed=2)
    assert truth.empty
    rows = noisy.mean(-1)
    white = noisy - rows[..., None]
    assert white.std() == pytest.approx(0.1, rel=0.05) and rows.std() == pytest.approx(0.05, rel=0.25)
    smooth, _ = crowded_rods(count=0, size=96, frames=3, noise=0.0, line_noise=0.0, background=0.2, seed=2)
    assert smooth.std() == pytest.approx(0.2, rel=0.5) and np.abs(np.diff(smooth, axis=-1)).max() < 0.05
