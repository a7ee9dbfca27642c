"""A classical first look at a movie: contrast, sizes and noise against simulations of known truth."""
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from rotdyn.preprocess import preprocess
from rotdyn.simulate import simulate_atoms, simulate_rods
from rotdyn.survey import (
    capsule_from_moments,
    detect_contrast,
    estimate_noise,
    estimate_sizes,
    flatten_background,
    noise_sd,
    particle_template,
)

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (or beside the folder of worktrees holding it).
DATA = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), None)


@lru_cache(maxsize=None)
def rods(length, width, noise, asymmetry=0.3, seed=1, frames=4):
    """Simulated AFM rods, preprocessed as ingest does for AFM movies (flattened, percentile-normalised)."""
    sim = simulate_rods(frames=frames, length=length, width=width, noise=noise, asymmetry=asymmetry, seed=seed)
    return preprocess(sim.frames, flatten_afm=True)[0]


@lru_cache(maxsize=None)
def atoms(spacing, seed=0):
    sim = simulate_atoms(frames=3, spacing=spacing, atom_sigma=0.2 * spacing, seed=seed)
    return preprocess(sim.frames)[0]


def capsule(shape, x, y, angle, length, width):
    """Antialiased coverage of a capsule (1 px ramp), as the simulator draws rods."""
    yy, xx = np.indices(shape, dtype=float)
    along = (xx - x) * np.cos(angle) - (yy - y) * np.sin(angle)
    across = (xx - x) * np.sin(angle) + (yy - y) * np.cos(angle)
    d = np.hypot(np.clip(np.abs(along) - (length - width) / 2, 0, None), across)
    return np.clip(width / 2 - d + 0.5, 0, 1)


def phase_contrast(halo, halo_width, length=18.0, width=6.0, n=12, size=160, seed=0, frames=2):
    """Optical cells drawn independently of rotdyn: a bright body of height 1 with a dark rim of depth ``halo``.

    Blurred (PSF sd 1 px), on an uneven illumination (a quadratic field spanning twice the body height) with
    white noise of sd 0.05. Negate it for dark bodies with a bright rim.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        image, centres = np.zeros((size, size)), []
        while len(centres) < n:
            x, y = rng.uniform(length, size - length, 2)
            if all(np.hypot(x - a, y - b) > length + 2 * halo_width + 2 for a, b in centres):
                centres.append((x, y))
                angle = rng.uniform(0, np.pi)
                body = capsule(image.shape, x, y, angle, length, width)
                rim = capsule(image.shape, x, y, angle, length + 2 * halo_width, width + 2 * halo_width) - body
                image += body - halo * rim
        yy, xx = np.indices(image.shape) / size
        image = ndimage.gaussian_filter(image, 1.0) + 2.0 * (xx ** 2 + 0.5 * yy) + rng.normal(0, 0.05, image.shape)
        out.append(image)
    return np.stack(out).astype(np.float32)


# ------------------------------------------------------------------ templates
def test_templates_have_the_asked_sizes():
    rod = particle_template("rods", length=16, width=5)
    c = rod.shape[0] // 2
    assert rod[c].sum() == pytest.approx(16) and rod[:, c].sum() == pytest.approx(5)  # end to end, across
    upright = particle_template("rod", length=16, width=5, angle=np.pi / 2)
    np.testing.assert_allclose(upright, rod.T, atol=1e-12)
    cell = particle_template("cell", length=16, width=6)
    c = cell.shape[0] // 2
    # Rounded across (its thickness, sqrt(1 - (k / r)^2)), flat along: unlike the rod.
    np.testing.assert_allclose(cell[c:c + 4, c], np.sqrt(1 - (np.arange(4) / 3) ** 2))
    np.testing.assert_allclose(cell[c, c - 5:c + 6], 1.0)
    disc = particle_template("spheres", diameter=10)
    assert disc.sum() == pytest.approx(np.pi * 25, rel=0.02)
    atom = particle_template("atom", spacing=6)
    yy, xx = np.indices(atom.shape) - atom.shape[0] // 2
    assert np.sqrt((atom * xx ** 2).sum() / atom.sum()) == pytest.approx(1.2, rel=0.02)  # sigma = 0.2 spacing
    assert particle_template("atom", spacing=6, sigma=2).shape == (13, 13)


@pytest.mark.parametrize("shape, size, message", [
    ("blob", {"diameter": 3}, "unknown particle shape 'blob'"),
    ("rod", {"length": 10}, r"missing \['width'\]"),
    ("disc", {"diameter": 4, "length": 2}, r"unknown \['length'\]"),
    ("rod", {"length": 10, "width": -1}, "width must be a positive number"),
    ("cell", {"length": 4, "width": 6}, "width 6.0 exceeds its length 4.0"),
])
def test_template_bad_input_is_named(shape, size, message):
    with pytest.raises(ValueError, match=message):
        particle_template(shape, **size)


def test_capsule_from_moments_inverts_the_capsule():
    for length, width in [(20, 6), (8, 3), (30, 2.5), (6, 6)]:
        area = length * width - (1 - np.pi / 4) * width ** 2
        var = capsule_var(length, width)
        assert capsule_from_moments(area, var) == pytest.approx((length, width), abs=5e-3)


def capsule_var(length, width):
    """Variance along the axis of a capsule, by brute force on a fine grid (independent of the formula)."""
    h = 0.02
    s, t = np.meshgrid(np.arange(-length / 2, length / 2, h) + h / 2, np.arange(-width / 2, width / 2, h) + h / 2)
    inside = np.hypot(np.clip(np.abs(s) - (length - width) / 2, 0, None), t) <= width / 2
    return float((s[inside] ** 2).mean())


# --------------------------------------------------------------- backgrounds
def test_flatten_background_removes_illumination_and_is_odd():
    rng = np.random.default_rng(0)
    yy, xx = np.indices((128, 128)) / 128
    field = 3 * xx ** 2 - 2 * yy + 1.5 * xx * yy
    clean = sum(capsule((128, 128), *rng.uniform(20, 108, 2), rng.uniform(0, 3), 14, 5) for _ in range(15))
    image = clean + field + rng.normal(0, 0.1, clean.shape)
    flat = flatten_background(image)
    background = ndimage.binary_dilation(clean > 0, iterations=2)
    assert abs(np.median(flat[~background])) < 0.03 and np.std(flat[~background]) < 0.13
    assert np.median(flat[clean == 1]) == pytest.approx(1.0, abs=0.06)
    np.testing.assert_allclose(flatten_background(-image), -flat, atol=1e-12)


def test_noise_sd_ignores_planes_and_scan_lines():
    rng = np.random.default_rng(1)
    yy, xx = np.indices((128, 160))
    image = 0.05 * xx - 0.02 * yy + rng.normal(0, 1, (128, 1)) + rng.normal(0, 0.3, (128, 160))
    assert noise_sd(image) == pytest.approx(0.3, rel=0.05)
    # 8-bit video: noise of 0.3 grey levels leaves most differences at exactly 0 (a plain MAD reads 0);
    # measured as the sd the rounded noise has, in any units.
    quantised = np.round(100 + rng.normal(0, 0.3, (128, 160))) / 255
    assert noise_sd(quantised) == pytest.approx(np.std(quantised), rel=0.2)


# ------------------------------------------------------------------ contrast
@pytest.mark.parametrize("length, width, noise", [(16, 5, 0.15), (24, 4, 0.4), (10, 6, 0.5)])
def test_contrast_of_simulated_rods_both_polarities(length, width, noise):
    frames = rods(length, width, noise)
    template = particle_template("rod", length=length, width=width)
    bright, dark = detect_contrast(frames, template), detect_contrast(-frames, template)
    assert (bright.contrast, dark.contrast) == ("bright", "dark")
    assert bright.decided and bright.confidence > 0.3
    # Nothing favours a polarity: inverting the movie swaps the scores exactly.
    assert dark.score == pytest.approx({"bright": bright.score["dark"], "dark": bright.score["bright"]})


def test_contrast_survives_a_template_of_the_wrong_size():
    frames = rods(24, 4, 0.3)
    template = particle_template("rod", length=12, width=6)
    assert detect_contrast(frames, template).contrast == "bright"
    assert detect_contrast(-frames, template).contrast == "dark"


@pytest.mark.parametrize("spacing", [5.0, 7.0])
def test_contrast_of_simulated_atoms_both_polarities(spacing):
    frames = atoms(spacing)
    template = particle_template("atom", spacing=spacing)
    assert detect_contrast(frames, template).contrast == "bright"
    assert detect_contrast(-frames, template).contrast == "dark"


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_contrast_of_low_dose_stem_atoms(seed):
    # About 9 counts per atom: a single frame holds each atom at about one noise sd and the noise's
    # Poisson skew favours bright; the mean of the 20 frames shows the dips (bright background) clearly.
    template = particle_template("atom", spacing=6.0)
    dips = simulate_atoms(size=128, frames=20, background="bright", dose=1.0, seed=seed).frames
    decision = detect_contrast(dips, template)
    assert decision.contrast == "dark" and decision.decided and decision.confidence > 0.2, decision.reason
    assert "mean of 20 frames" in decision.reason
    peaks = simulate_atoms(size=128, frames=20, background="dark", dose=1.0, seed=seed).frames
    decision = detect_contrast(peaks, template)
    assert decision.contrast == "bright" and decision.confidence > 0.3, decision.reason


@pytest.mark.parametrize("halo, halo_width", [(0.4, 2.0), (1.0, 2.0), (0.7, 4.0)])
def test_contrast_of_phase_contrast_halos(halo, halo_width):
    frames = phase_contrast(halo, halo_width)
    template = particle_template("cell", length=18, width=6)
    body_bright = detect_contrast(frames, template)
    assert body_bright.contrast == "bright" and body_bright.decided, body_bright.reason
    assert detect_contrast(-frames, template).contrast == "dark"  # dark body, bright rim


def test_contrast_undecided_falls_back_to_the_default():
    noise = np.random.default_rng(3).normal(size=(3, 96, 96)).astype(np.float32)
    template = particle_template("disc", diameter=7)
    decision = detect_contrast(noise, template)
    assert not decision.decided and decision.contrast == "bright" and "undecided" in decision.reason
    assert detect_contrast(noise, template, default="dark").contrast == "dark"
    assert decision.confidence < 0.15


def test_afm_height_maps_need_a_clear_case_for_dark():
    # One frame of very noisy inverted rods (no mean of frames to lean on): dark wins, but not by much.
    frames, template = -rods(16, 5, 1.0, frames=1), particle_template("rod", length=16, width=5)
    plain = detect_contrast(frames, template)
    assert plain.contrast == "dark" and 0.15 <= plain.confidence < 0.3
    afm = detect_contrast(frames, template, modality="AFM")  # particles stand up in a height map
    assert afm.contrast == "bright" and not afm.decided and afm.confidence == plain.confidence


# --------------------------------------------------------------------- sizes
@pytest.mark.parametrize("length, width, noise", [(16, 5, 0.15), (24, 4, 0.3), (10, 6, 0.3), (30, 3, 0.2)])
def test_rod_sizes_within_ten_percent(length, width, noise):
    s = estimate_sizes(rods(length, width, noise), "bright", "rods")
    assert s["length"] == pytest.approx(length, rel=0.10)
    assert s["width"] == pytest.approx(width, rel=0.12)
    assert s["n_used"] >= 20 and s["n_objects"] >= s["n_used"]


def test_sizes_do_not_depend_on_polarity():
    frames = rods(16, 5, 0.15)
    assert estimate_sizes(-frames, "dark", "rod") == pytest.approx(estimate_sizes(frames, "bright", "rod"))


@pytest.mark.parametrize("halo", [0.0, 0.4, 0.7])
def test_cell_sizes_under_a_phase_contrast_halo(halo):
    for frames in (phase_contrast(halo, 2.0), -phase_contrast(halo, 2.0)):
        contrast = "bright" if frames.mean() > 0 else "dark"
        s = estimate_sizes(frames, contrast, "cell")
        assert s["length"] == pytest.approx(18, rel=0.10) and s["width"] == pytest.approx(6, rel=0.12)


def test_disc_diameters_of_dark_discs():
    rng = np.random.default_rng(4)
    for diameter in (6.0, 11.0):
        image = np.zeros((160, 160))
        for x, y in rng.uniform(12, 148, (25, 2)):
            image = np.maximum(image, capsule(image.shape, x, y, 0.0, diameter, diameter))
        frames = (-image + rng.normal(0, 0.1, image.shape))[None]
        s = estimate_sizes(frames, "dark", "spheres")
        assert s["diameter"] == pytest.approx(diameter, rel=0.08)


@pytest.mark.parametrize("spacing", [4.0, 6.0, 8.0])
def test_atom_spacing_within_five_percent(spacing):
    for frames, contrast in ((atoms(spacing), "bright"), (-atoms(spacing), "dark")):
        s = estimate_sizes(frames, contrast, "atoms")
        assert s["spacing"] == pytest.approx(spacing, rel=0.05)
        assert s["n_used"] > 50


# --------------------------------------------------------------------- noise
@pytest.mark.parametrize("noise", [0.15, 0.35])
def test_noise_in_the_simulators_unit(noise):
    # Flat rods of height 1: the definition itself.
    assert estimate_noise(rods(16, 5, noise, asymmetry=0.0)) == pytest.approx(noise, rel=0.12)
    # The default rods rise from 0.7 at the tail to 1 at the head: within a quarter.
    assert estimate_noise(rods(16, 5, noise)) == pytest.approx(noise, rel=0.25)
    assert estimate_noise(-rods(16, 5, noise), "dark") == pytest.approx(estimate_noise(rods(16, 5, noise)))


# --------------------------------------------------------------- bad input
def test_bad_frames_and_arguments_are_named():
    template = particle_template("disc", diameter=5)
    with pytest.raises(ValueError, match="no usable frame"):
        detect_contrast(np.full((2, 32, 32), np.nan), template)
    with pytest.raises(ValueError, match=r"\(T, H, W\) array"):
        estimate_noise(np.zeros(64))
    with pytest.raises(ValueError, match="contrast must be 'bright' or 'dark'"):
        estimate_sizes(np.random.default_rng(0).random((1, 32, 32)), "grey", "disc")
    with pytest.raises(ValueError, match="template must be"):
        detect_contrast(np.random.default_rng(0).random((1, 32, 32)), np.ones((5, 5)))


# ----------------------------------------------------------------- real data
def real(name):
    path = DATA / name if DATA else None
    if path is None or not path.exists():
        pytest.skip(f"real recording {name} not present (../shared/data)")
    return path


def test_real_bacteria_are_bright_cells():
    from rotdyn.formats import read_movie
    frames = preprocess(read_movie(real("bacteria/bacteria.mp4")).frames[:40])[0]
    assert detect_contrast(frames, particle_template("cell", length=20, width=5)).contrast == "bright"
    s = estimate_sizes(frames, "bright", "cell")
    assert 15 < s["length"] < 23 and 3.5 < s["width"] < 6.5


def test_real_colloids_are_dark_discs():
    from rotdyn.formats import read_image
    folder = real("bulk_water/frames")
    files = sorted(folder.glob("*.png"))[:3]
    frames = preprocess(np.concatenate([read_image(f) for f in files]))[0]
    assert detect_contrast(frames, particle_template("disc", diameter=6)).contrast == "dark"
    assert 4 < estimate_sizes(frames, "dark", "disc")["diameter"] < 8


# ------------------------------------------------------------------ noise of low-dose atoms

def test_atom_noise_orders_doses_and_reads_within_a_factor_of_1_4():
    """Bright-field STEM (atoms dark, noise sd sqrt(3 / dose) carbon peaks everywhere), inverted as the ingest does."""
    read = {}
    for dose in (1.0, 10.0, 200.0):
        raw = simulate_atoms(size=96, frames=20, background="bright", dose=dose, seed=3).frames
        frames = preprocess(-raw, normalize_method="percentile")[0]
        read[dose] = estimate_noise(frames, "bright", "atoms")
        expected = np.sqrt(3 / dose + 0.05 ** 2)
        assert expected / 1.4 < read[dose] < expected * 1.4, (dose, read[dose], expected)
    assert read[1.0] > read[10.0] > read[200.0]


def test_atom_noise_falls_with_the_frames_averaged():
    from rotdyn.preprocess import average_frames

    raw = simulate_atoms(size=96, frames=20, background="bright", dose=1.0, seed=3).frames
    single, averaged = (estimate_noise(preprocess(-average_frames(raw, n), normalize_method="percentile")[0],
                                       "bright", "atoms") for n in (1, 9))
    assert 2 < single / averaged < 4  # 3 for white noise
