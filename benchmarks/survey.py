"""How close the classical first look (rotdyn.survey) comes on movies of known truth, and what it says on real ones.

Simulated: AFM-like rods (rotdyn.simulate.simulate_rods, default head-tail asymmetry 0.3, line noise and tilt,
flattened and normalised as ingest does for AFM) over a grid of length, width and noise, as given and
inverted; STEM-like atoms (simulate_atoms) over spacing and dose; optical cells with a phase-contrast halo
drawn here. For each: the contrast decision and its confidence, the sizes and the noise against the truth,
and the seconds the three calls took.

Real (when ../shared/data is present): bacteria.mp4 (optical, bright cells with a dark halo), bulk_water
(bright-field colloids), the HS-AFM .asd (a protein lattice) and .h5-jpk (a few particles), read and
preprocessed by rotdyn.ingest.load_movie with the default settings.

    python benchmarks/survey.py [--quick]
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from rotdyn.preprocess import preprocess
from rotdyn.simulate import simulate_atoms, simulate_rods
from rotdyn.survey import detect_contrast, estimate_noise, estimate_sizes, particle_template

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), None)
SETTINGS = {"flatten": "auto", "normalize": "percentile", "drift_correction": False,
            "drift_reference": "previous", "first_frame": 0, "last_frame": -1}


def pct(value, truth):
    return f"{value:6.2f} ({100 * (value / truth - 1):+4.0f}%)"


def survey(frames, shape, contrast_truth, template):
    """Contrast decision, sizes and noise of ``frames``; the contrast used downstream is the decided one."""
    t0 = time.perf_counter()
    decision = detect_contrast(frames, template)
    sizes = estimate_sizes(frames, decision.contrast, shape)
    noise = estimate_noise(frames, decision.contrast, shape)
    seconds = time.perf_counter() - t0
    ok = "ok" if decision.contrast == contrast_truth else "WRONG"
    return decision, sizes, noise, seconds, ok


def rods_table(quick):
    grid = ((12, 24), (4, 6), (0.15, 0.4)) if quick else ((10, 16, 24, 32), (3, 5, 7), (0.1, 0.25, 0.5))
    lengths, widths, noises = grid
    print("\n## Simulated AFM rods (4 frames of 128 x 128, ~10 % covered), as given (bright) and inverted (dark)\n")
    print("| length | width | noise | contrast (conf.) | inverted | length est. | width est. | noise est. | used | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for length in lengths:
        for width in widths:
            if width > length / 1.5:
                continue
            count = max(4, int(0.1 * 128 ** 2 / (length * width)))
            for noise in noises:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "placed only n rods": fine for a survey
                    sim = simulate_rods(frames=4, length=length, width=width, noise=noise, count=count, seed=7)
                frames = preprocess(sim.frames, flatten_afm=True)[0]
                template = particle_template("rod", length=length, width=width)
                d, s, n, sec, ok = survey(frames, "rod", "bright", template)
                inv = detect_contrast(-frames, template)
                print(f"| {length} | {width} | {noise} | {d.contrast} ({d.confidence:.2f}) {ok} | "
                      f"{inv.contrast} ({inv.confidence:.2f}) {'ok' if inv.contrast == 'dark' else 'WRONG'} | "
                      f"{pct(s['length'], length)} | {pct(s['width'], width)} | {pct(n, noise)} | "
                      f"{s['n_used']}/{s['n_objects']} | {sec:.1f} |")


def atoms_table(quick):
    cases = [(6, 200)] if quick else [(4, 200), (6, 200), (8, 200), (6, 20), (6, 5)]
    print("\n## Simulated STEM atoms (3 frames of 128 x 128; noise: Poisson of `dose` + Gaussian 0.05)\n")
    print("| spacing | dose | contrast (conf.) | inverted | spacing est. | noise est. | maxima used | s |")
    print("|---|---|---|---|---|---|---|---|")
    for spacing, dose in cases:
        sim = simulate_atoms(frames=3, spacing=spacing, atom_sigma=0.2 * spacing, dose=dose, seed=3)
        frames = preprocess(sim.frames)[0]
        template = particle_template("atom", spacing=spacing)
        d, s, n, sec, ok = survey(frames, "atom", "bright", template)
        inv = detect_contrast(-frames, template)
        print(f"| {spacing} | {dose} | {d.contrast} ({d.confidence:.2f}) {ok} | {inv.contrast} | "
              f"{pct(s['spacing'], spacing)} | {n:.3f} | {s['n_used']}/{s['n_objects']} | {sec:.1f} |")


def cells(halo, length=18.0, width=6.0, size=192, n=16, seed=0):
    """Optical cells: body 1, dark rim ``halo`` deep and 2 px wide, PSF sd 1 px, illumination, noise 0.05."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size), dtype=float)
    image, centres = np.zeros((size, size)), []
    while len(centres) < n:
        x, y = rng.uniform(length, size - length, 2)
        if all(np.hypot(x - a, y - b) > length + 6 for a, b in centres):
            centres.append((x, y))
            a = rng.uniform(0, np.pi)
            along = (xx - x) * np.cos(a) - (yy - y) * np.sin(a)
            across = (xx - x) * np.sin(a) + (yy - y) * np.cos(a)
            d = np.hypot(np.clip(np.abs(along) - (length - width) / 2, 0, None), across)
            body = np.clip(width / 2 - d + 0.5, 0, 1)
            image += body - halo * (np.clip(width / 2 + 2 - d + 0.5, 0, 1) - body)
    image = ndimage.gaussian_filter(image, 1.0) + 2 * (xx / size) ** 2 + rng.normal(0, 0.05, image.shape)
    return image[None].astype(np.float32)


def cells_table():
    print("\n## Drawn optical cells 18 x 6 px with a phase-contrast rim (body +1, rim -halo), and inverted\n")
    print("| halo | contrast (conf.) | inverted | length est. | width est. |")
    print("|---|---|---|---|---|")
    template = particle_template("cell", length=18, width=6)
    for halo in (0.0, 0.4, 0.7, 1.0):
        frames = cells(halo)
        d, s, _, _, ok = survey(frames, "cell", "bright", template)
        inv = detect_contrast(-frames, template)
        print(f"| {halo} | {d.contrast} ({d.confidence:.2f}) {ok} | {inv.contrast} ({inv.confidence:.2f}) | "
              f"{pct(s['length'], 18)} | {pct(s['width'], 6)} |")


REAL = [  # file, shape, what it is, templates to try (the first one decides)
    ("bacteria/bacteria.mp4", "cell", "bright", [("cell", {"length": 20, "width": 5}),
                                                  ("cell", {"length": 10, "width": 3})]),
    ("bulk_water/frames", "disc", "dark", [("disc", {"diameter": 6}), ("disc", {"diameter": 11})]),
    ("hsafm/sample_0.h5-jpk", "disc", "bright", [("disc", {"diameter": 10}), ("disc", {"diameter": 20})]),
    ("hsafm/asd_sample_0.asd", "disc", "bright", [("disc", {"diameter": 10}), ("atom", {"spacing": 22})]),
]


def real_table():
    if DATA is None:
        print("\n(real recordings not found: ../shared/data is absent)")
        return
    from rotdyn.ingest import load_movie
    print("\n## Real recordings (rotdyn.ingest.load_movie, default preprocessing; first 20 frames)\n")
    print("| file | expected | template | decision | reason (modality AFM: dark needs confidence 0.3) | sizes (px) "
          "| noise | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, shape, expected, templates in REAL:
        path = DATA / name
        if not path.exists():
            print(f"| {name} | missing | | | | | | |")
            continue
        movie = load_movie(path, SETTINGS)
        frames, modality = movie["frames"].values[:20], movie.attrs.get("modality")
        for i, (kind, size) in enumerate(templates):
            t0 = time.perf_counter()
            d = detect_contrast(frames, particle_template(kind, **size), modality=modality)
            label = f"{kind} " + " ".join(f"{k}={v}" for k, v in size.items())
            if i:  # other templates: the decision only
                print(f"| | | {label} | {d.contrast} ({d.confidence:.2f}) | | | | {time.perf_counter() - t0:.1f} |")
                continue
            s = estimate_sizes(frames, d.contrast, shape)
            n = estimate_noise(frames, d.contrast, shape)
            shown = ", ".join(f"{k} {v:.1f}" for k, v in s.items()
                              if k in ("length", "width", "length_sd", "diameter"))
            reason = d.reason.split(": ", 1)[1]
            print(f"| {name} | {expected} | {label} | {d.contrast} ({d.confidence:.2f}) | {reason} | "
                  f"{shown}; {s['n_used']}/{s['n_objects']} objects | {n:.3f} | {time.perf_counter() - t0:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rods_table(args.quick)
    atoms_table(args.quick)
    cells_table()
    real_table()
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
