"""Figures: the right data in the right place."""
import numpy as np

from rotdyn import figures
from rotdyn.figures import rvae as rvae_figures


def test_manifold_tiles_each_decoded_image_at_its_grid_point(tmp_path):
    n2, n1, s = 3, 4, 5
    images = np.zeros((n2, n1, s, s))
    for i in range(n2):
        for j in range(n1):
            images[i, j] = 10 * i + j
    fig = rvae_figures.manifold(images, np.linspace(-2, 2, n1), np.linspace(1, -1, n2))
    shown = fig.axes[0].get_images()[0]
    tiled = shown.get_array()
    assert tiled.shape == (n2 * s, n1 * s)
    assert tiled[2 * s + 1, 3 * s + 2] == 23  # block (row z2 index 2, column z1 index 3)
    assert shown.origin == "upper" and shown.get_extent()[2:] == [-1.5, 1.5]  # top row = highest z2
    figures.save(fig, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_histograms_count_every_particle():
    rng = np.random.default_rng(0)
    angle = rng.uniform(-np.pi, np.pi, 500)
    fig = rvae_figures.latent_histograms(angle, rng.normal(size=500), rng.normal(size=500))
    counts = [sum(p.get_height() for p in ax.patches) for ax in fig.axes]
    assert counts == [500, 500, 500]


def test_angle_vs_latents_draws_points_and_contours():
    rng = np.random.default_rng(1)
    angle = rng.choice(np.radians([-120, 0, 120]), 600) + rng.normal(0, 0.05, 600)
    z = rng.normal(size=(600, 2))
    fig = rvae_figures.angle_vs_latents(angle, z)
    assert len(fig.axes) == 2
    points = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], np.degrees(angle))
    assert len(fig.axes[0].collections) > 1  # the density contours
    # Too few points for a density: the scatter alone, no error.
    assert len(rvae_figures.angle_vs_latents(angle[:3], z[:3]).axes[0].collections) == 1


def test_track_latents_draws_the_longest_tracks_by_track_id():
    import pandas as pd

    from rotdyn.figures import maps

    tracks = pd.DataFrame({"frame": [0, 1, 2, 0, 1, 5], "track": [4, 4, 4, 9, 9, 2], "angle": 0.1, "z1": 1.0})
    tracks["particle"] = tracks["track"]  # trackpy's alias, as in tracks.csv
    fig = maps.track_latents(tracks, ["angle", "z1"], longest=2)
    assert [line.get_label() for line in fig.axes[0].lines] == ["track 4", "track 9"]
    # a table from before the track column (trackpy's "particle" only) is drawn the same
    old = maps.track_latents(tracks.drop(columns="track"), ["angle"], longest=1)
    assert [line.get_label() for line in old.axes[0].lines] == ["track 4"]
