"""The whole chain on real movies, in one mixed Snakemake run, scored against references.

Movies (from ../shared/data, found in the checkout's parent folders; see its README):

* ``bacteria/bacteria.mp4`` (214 frames of rod-shaped bacteria, phase contrast), kind ``cells``: detections
  against the hand-checked reference ``tests/references/bacteria_cells.csv`` (6 frames, matched within 4 px;
  cells cut by the frame edge left out), median axis error, median track length;
* ``bulk_water/frames`` (100 frames of 1 um colloids, bright field), kind ``spheres``: detections against
  ``trackpy.locate`` with trackpy's bulk-water example settings but a separation of 5 px (matched within 2 px;
  rotdyn given the same diameter and minmass as ``mass_diameter`` and ``min_mass``), as they are and with either
  tool free within 10 % of minmass (:func:`score_banded`), and the tracks against ``trackpy.link`` of trackpy's
  detections (the share of trackpy's links that rotdyn's tracks hold, and back); and rotdyn's and trackpy's
  detections (separation 5 and the walkthrough's 10 px) against the hand-checked reference
  ``tests/references/bulk_water_colloids.csv`` (five regions of 320 x 212 px, judged blind; matched within 3 px);
* ``hsafm/asd_sample_0.asd`` (HS-AFM of a protein lattice; the tip loses the surface from frame 22), kind
  ``lattice`` defined here (bright discs): frames 0-21 analysed, 22-31 flagged by qc (``qc.json`` bad_frames) and
  kept out of the dynamics (``kde.nc`` attrs bad_frames);
* a simulated STEM movie with a bright background at dose 1 (about 9 counts per atom; averaged over 9 frames;
  ``rotdyn.simulate.simulate_atoms``), kind ``atoms`` with ``contrast: auto``: detections against the truth.

Every figure is printed with the settings as a user types them (sample sheet, extra config, command line).

    python benchmarks/real_movies.py [--keep DIR] [--configfile extra.yaml] [--frames N]

``--frames N`` keeps the first N frames of each real movie (the sample sheet's ``last_frame``);
``--configfile`` adds a config (e.g. ``tests/tiny_config.yaml`` for a quick run).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import trackpy
import xarray as xr

from rotdyn.evaluate.segmentation import match
from rotdyn.formats import read_movie
from rotdyn.simulate import simulate_atoms

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), None)
REFERENCE = ROOT / "tests" / "references" / "bacteria_cells.csv"
sys.path.insert(0, str(ROOT / "tests"))
from workflow_helpers import copy_workflow  # noqa: E402  (one copy of the workflow for tests and benchmarks)

# Movies of the run: target name -> (file under DATA, kind, contrast); the sample sheet's rows.
MOVIES = {
    "bacteria": ("bacteria/bacteria.mp4", "cells", ""),
    "bulk_water": ("bulk_water/frames", "spheres", ""),
    "asd_sample_0": ("hsafm/asd_sample_0.asd", "lattice", ""),
    "stem_atoms": (None, "atoms", "auto"),
}
# The simulated STEM movie: bright background (atoms are dips), dose 1 = about 9 counts per atom.
ATOMS = dict(size=128, frames=20, background="bright", dose=1.0, seed=3)
# Running means over time (sample sheet average_frames): the low-dose STEM series of a slow lattice, as
# microscopists average such series (one frame holds each atom at about one noise sd).
AVERAGE = {"stem_atoms": 9}
# trackpy's bulk-water example (trackpy-examples walkthrough): dark features, linked within 5 px, memory 3;
# separation 5 px, not its default of diameter + 1 = 10 px, which drops colloids in contact: against the
# hand-checked colloids trackpy's recall is 0.965 with 5 px, 0.881 with 10 (precision 0.991, 0.993).
TRACKPY = dict(diameter=9, minmass=100.0, separation=5, invert=True, search_range=5.0, memory=3)
WALKTHROUGH_SEPARATION = 10
# Two detectors that select by one brightness line disagree on particles near it (their masses differ by
# up to 3 %: trackpy's 8-bit truncation, centres a fraction of a px apart): within BAND of the line on either
# side, either may keep or drop a particle.
BAND = 0.1
# The run's own settings: the HS-AFM lattice's kind, and for the colloids trackpy's linking radius and its
# selection by brightness (diameter and minmass as locate's mass_diameter and min_mass).
CONFIG = """\
particles:
  kinds:
    lattice:
      description: HS-AFM protein lattice of ring-shaped units (bright on the substrate)
      contrast: bright
      training_set:
        simulate: {kind: spheres, contrast: bright, frames: 16, size: 128, seed: 1}
      locate: {split: distance, min_area: 6}
      patches: {size: 16}
    spheres:
      locate: {mass_diameter: 9, min_mass: 100}
      link: {search_range: 5}
"""
# Colloids judged by eye in five regions of the bulk-water movie (see the file's header): frame -> (x0, y0) of a
# 320 x 212 px region; particles of at least MASS_LINE must be found, fainter and unsure ones may be.
COLLOIDS = ROOT / "tests" / "references" / "bulk_water_colloids.csv"
COLLOID_REGIONS = {0: (0, 0), 25: (320, 0), 50: (0, 212), 75: (320, 212), 99: (160, 106)}
COLLOID_REGION_SIZE = (320, 212)
MASS_LINE = round(TRACKPY["minmass"] * (1 + BAND), 6)  # 110: where the two tools' mass estimates no longer disagree


# ------------------------------------------------------------------ the run
def sample_sheet(frames: int | None = None) -> str:
    """The run's ``config/movies.tsv``: each movie's kind and contrast, and ``last_frame`` when ``frames`` is set.

    Examples
    --------
    >>> print(sample_sheet(10).splitlines()[1])
    bacteria	cells		9	
    >>> print(sample_sheet(10).splitlines()[4])
    stem_atoms	atoms	auto		9
    """
    last = "" if frames is None else str(frames - 1)
    rows = ["movie\tparticles\tcontrast\tlast_frame\taverage_frames"]
    rows += [f"{name}\t{kind}\t{contrast}\t{last if path else ''}\t{AVERAGE.get(name, '')}"
             for name, (path, kind, contrast) in MOVIES.items()]
    return "\n".join(rows) + "\n"


def prepare(work: Path, data: Path, *, frames: int | None = None) -> tuple[Path, pd.DataFrame]:
    """A fresh copy of the workflow at ``work`` holding the four movies, the sample sheet and ``real.yaml``.

    Returns the workflow folder and the simulated atoms' truth.
    """
    workflow = copy_workflow(work)
    movies = workflow / "resources" / "movies"
    for name, (path, _, _) in MOVIES.items():
        if path is None:
            continue
        source = data / path
        target = movies / (name + "".join(source.suffixes))
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    sim = simulate_atoms(**ATOMS)
    np.save(movies / "stem_atoms.npy", sim.frames)
    (workflow / "config" / "movies.tsv").write_text(sample_sheet(frames))
    (workflow / "real.yaml").write_text(CONFIG)
    return workflow, sim.truth


def run_workflow(workflow: Path, configfiles: list[Path], cores: int = 2, timeout: float | None = None):
    """``snakemake --cores N --configfile real.yaml [more]`` in ``workflow``.

    Returns the command, its wall time and CPU time (s; the CPU time of all
    its processes, which does not grow when other work shares the machine:
    on an idle machine with N cores the run takes at least CPU / N) and the
    finished process.
    """
    command = ["snakemake", "--cores", str(cores), "--configfile", "real.yaml", *map(str, configfiles)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *command], cwd=workflow, capture_output=True, text=True,
                            timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return " ".join(command), time.perf_counter() - start, cpu, result


# ------------------------------------------------------------------ scores
def _ratio(n, d) -> float:
    return float(n / d) if d else float("nan")


def _axis_error_deg(a, b) -> np.ndarray:
    diff = np.mod(np.asarray(a) - np.asarray(b) + np.pi / 2, np.pi) - np.pi / 2
    return np.degrees(np.abs(diff))


def read_reference(path: Path = REFERENCE) -> pd.DataFrame:
    """The hand-checked cells (``frame, x, y, orientation, length, width, border``); the header says how it was made."""
    return pd.read_csv(path, comment="#")


def score_cells(detected: pd.DataFrame, reference: pd.DataFrame, max_distance: float = 4.0) -> dict:
    """Detections against the hand-checked cells, in the reference's frames.

    Cells cut by the frame edge (``border`` 1) count neither way: they and the
    detections matched to them are left out, and so are unmatched detections
    that touch the edge (pieces of such cells).

    Parameters
    ----------
    detected : DataFrame
        ``frame, x, y, orientation`` (rad), ``touches_edge`` (``particles.nc``).
    reference : DataFrame
        :func:`read_reference`.
    max_distance : float
        Matching radius, px.

    Returns
    -------
    dict
        ``n_reference, n_detected, n_matched, precision, recall, axis_error_deg`` (median, modulo 180
        degrees), ``rmse`` (px).

    Examples
    --------
    >>> ref = pd.DataFrame({"frame": 0, "x": [10.0, 40.0, 0.5], "y": 10.0, "orientation": [0.0, 1.0, 0.0],
    ...                     "border": [0, 0, 1]})
    >>> det = pd.DataFrame({"frame": 0, "x": [11.0, 70.0, 1.0, 0.2], "y": 10.0, "orientation": [0.05, 0.0, 0.0, 0.0],
    ...                     "touches_edge": [0, 0, 1, 1]})
    >>> s = score_cells(det, ref)
    >>> s["n_matched"], s["precision"], s["recall"], round(s["axis_error_deg"], 2)
    (1, 0.5, 0.5, 2.86)
    """
    detected = detected[detected["frame"].isin(reference["frame"].unique())].reset_index(drop=True)
    reference = reference.reset_index(drop=True)
    pairs = match(detected, reference, max_distance)
    ref_border = reference["border"].to_numpy(bool)
    edge = detected["touches_edge"].to_numpy(bool)
    hit = (pairs.detected >= 0) & (pairs.truth >= 0)
    on_border = hit & ref_border[pairs.truth.clip(lower=0)]
    pairs = pairs[~on_border]
    tp = pairs[(pairs.detected >= 0) & (pairs.truth >= 0)]
    fp = pairs[(pairs.truth < 0) & ~edge[pairs.detected.clip(lower=0)]]
    fn = pairs[(pairs.detected < 0) & ~ref_border[pairs.truth.clip(lower=0)]]
    err = _axis_error_deg(detected["orientation"].to_numpy()[tp.detected], reference["orientation"].to_numpy()[tp.truth])
    return {"n_reference": len(tp) + len(fn), "n_detected": len(tp) + len(fp), "n_matched": len(tp),
            "precision": _ratio(len(tp), len(tp) + len(fp)), "recall": _ratio(len(tp), len(tp) + len(fn)),
            "axis_error_deg": float(np.median(err)) if len(err) else float("nan"),
            "rmse": float(np.sqrt(np.mean(tp.distance ** 2))) if len(tp) else float("nan")}


def track_lengths(tracks: pd.DataFrame) -> pd.Series:
    """Frames each track spans (first to last, gaps bridged by ``memory`` included)."""
    span = tracks.groupby("track")["frame"].agg(["min", "max"])
    return span["max"] - span["min"] + 1


def trackpy_detections(frames: np.ndarray, *, diameter: int, minmass: float, separation: float | None = None,
                       invert: bool = True, first_frame: int = 0) -> pd.DataFrame:
    """``trackpy.locate`` on every frame (the reference for spheres): ``frame, x, y, mass`` per feature."""
    trackpy.quiet()
    found = trackpy.batch(frames, diameter, minmass=minmass, separation=separation, invert=invert, processes=1)
    found["frame"] = found["frame"] + first_frame
    return found.reset_index(drop=True)[["frame", "x", "y", "mass"]]


def _inside(table: pd.DataFrame, shape, margin: float) -> pd.DataFrame:
    ny, nx = shape
    keep = table.x.between(margin, nx - 1 - margin) & table.y.between(margin, ny - 1 - margin)
    return table[keep].reset_index(drop=True)


def score_points(detected: pd.DataFrame, reference: pd.DataFrame, max_distance: float, shape=None,
                 margin: float = 0.0) -> dict:
    """Precision and recall of ``detected`` against ``reference`` points (``frame, x, y``), matched one to one.

    Points within ``margin`` px of the edge of a frame of ``shape`` are left out on both sides.

    Examples
    --------
    >>> ref = pd.DataFrame({"frame": 0, "x": [5.0, 20.0, 40.0], "y": 5.0})
    >>> det = pd.DataFrame({"frame": 0, "x": [5.5, 20.0, 30.0], "y": 5.0})
    >>> s = score_points(det, ref, 2.0)
    >>> s["n_matched"], round(s["precision"], 3), round(s["recall"], 3)
    (2, 0.667, 0.667)
    """
    if shape is not None:
        detected, reference = _inside(detected, shape, margin), _inside(reference, shape, margin)
    pairs = match(detected.reset_index(drop=True), reference.reset_index(drop=True), max_distance)
    n = int(((pairs.detected >= 0) & (pairs.truth >= 0)).sum())
    return {"n_reference": len(reference), "n_detected": len(detected), "n_matched": n,
            "precision": _ratio(n, len(detected)), "recall": _ratio(n, len(reference)),
            "pairs": pairs}


def score_banded(detected: pd.DataFrame, reference: pd.DataFrame, line: float, max_distance: float, shape=None,
                 margin: float = 0.0, band: float = BAND) -> dict:
    """Agreement of two detectors that both select by ``mass >= line``, either free to differ near the line.

    Recall: the share of reference points of mass >= ``line * (1 + band)``
    that ``detected`` matches. Precision: the share of detections of mass >=
    ``line * (1 + band)`` matched by reference points of mass >= ``line * (1 -
    band)`` (``reference`` must hold those). Matching as :func:`score_points`.

    Examples
    --------
    >>> ref = pd.DataFrame({"frame": 0, "x": [5.0, 20.0, 40.0], "y": 5.0, "mass": [200.0, 95.0, 105.0]})
    >>> det = pd.DataFrame({"frame": 0, "x": [5.5, 20.0, 60.0], "y": 5.0, "mass": [190.0, 115.0, 104.0]})
    >>> s = score_banded(det, ref, 100.0, 2.0)  # 20 px: 95 and 115 within 10 % of 100; 40 and 60 px: faint
    >>> s["precision"], s["recall"], s["n_counted"], s["n_required"]
    (1.0, 1.0, 2, 1)
    """
    high, low = line * (1 + band), line * (1 - band)
    counted = score_points(detected[detected["mass"] >= high], reference[reference["mass"] >= low], max_distance,
                           shape, margin)
    required = score_points(detected, reference[reference["mass"] >= high], max_distance, shape, margin)
    return {"precision": counted["precision"], "recall": required["recall"], "n_counted": counted["n_detected"],
            "n_required": required["n_reference"]}


def links(tracks: pd.DataFrame, key: str) -> set:
    """Pairs of row labels joined between consecutive appearances of a track (``key``: its id column)."""
    out = set()
    for _, track in tracks.sort_values("frame").groupby(key):
        rows = track.index.to_numpy()
        out.update(zip(rows[:-1], rows[1:]))
    return out


def link_agreement(ours: pd.DataFrame, theirs: pd.DataFrame, max_distance: float) -> dict:
    """How far rotdyn's tracks (``track``) and trackpy's (``particle``) join the same detections.

    Each of our rows is matched to one of trackpy's (within ``max_distance``
    px, one to one, per frame); a link of one side counts as shared when both
    its ends are matched and the other side links the two matched rows.
    Returns ``ours_in_theirs`` (share of our links, among those with both ends
    matched, that trackpy has), ``theirs_in_ours`` (the converse) and the
    numbers of links.

    Examples
    --------
    >>> a = pd.DataFrame({"frame": [0, 1, 2], "x": [0.0, 1.0, 2.0], "y": 0.0, "track": [1, 1, 1]})
    >>> b = pd.DataFrame({"frame": [0, 1, 2], "x": [0.1, 1.1, 2.1], "y": 0.0, "particle": [5, 5, 6]})
    >>> r = link_agreement(a, b, 1.0)
    >>> r["ours_in_theirs"], r["theirs_in_ours"]
    (0.5, 1.0)
    """
    ours, theirs = ours.reset_index(drop=True), theirs.reset_index(drop=True)
    pairs = match(ours, theirs, max_distance)
    pairs = pairs[(pairs.detected >= 0) & (pairs.truth >= 0)]
    to_theirs = dict(zip(pairs.detected, pairs.truth))
    a, b = links(ours, "track"), links(theirs, "particle")
    mapped = {(to_theirs[i], to_theirs[j]) for i, j in a if i in to_theirs and j in to_theirs}
    to_ours = {v: k for k, v in to_theirs.items()}
    b_mapped = {(i, j) for i, j in b if i in to_ours and j in to_ours}
    return {"ours_in_theirs": _ratio(len(mapped & b), len(mapped)),
            "theirs_in_ours": _ratio(len(b_mapped & mapped), len(b_mapped)),
            "n_ours": len(a), "n_theirs": len(b)}


def score_afm(results: Path, clean: range = range(22), bad: range = range(22, 32)) -> dict:
    """Frames flagged by qc and left out of the dynamics, and particles found in the clean frames."""
    qc = json.loads((results / "qc.json").read_text())
    with xr.open_dataset(results / "kde.nc") as kde:
        kde_bad = [int(f) for f in str(kde.attrs.get("bad_frames", "")).split(",") if f != ""]
    with xr.open_dataset(results / "particles.nc") as p:
        counts = pd.Series(p["frame"].values).value_counts()
    per_frame = [int(counts.get(f, 0)) for f in clean]
    return {"qc_bad_frames": qc["bad_frames"], "kde_bad_frames": kde_bad,
            "flagged_right": sorted(qc["bad_frames"]) == list(bad) and kde_bad == list(bad),
            "clean_frames_with_particles": sum(c > 0 for c in per_frame), "particles_per_clean_frame": per_frame,
            "qc_count_outliers": qc["count_outliers"], "qc_ok": qc.get("ok"), "warnings": qc.get("warnings", [])}


def tripped_checks(results: Path) -> dict:
    """``{movie: {check: value}}``: the qc checks that each movie of a finished run tripped (its qc.json).

    Examples
    --------
    >>> folder = Path(tempfile.mkdtemp()); (folder / "m").mkdir()
    >>> checks = [{"name": "border", "value": 0.3, "ok": False}, {"name": "angle", "value": 0.9, "ok": True}]
    >>> _ = (folder / "m" / "qc.json").write_text(json.dumps({"checks": checks}))
    >>> tripped_checks(folder)
    {'m': {'border': 0.3}}
    """
    out = {}
    for path in sorted(results.glob("*/qc.json")):
        checks = json.loads(path.read_text())["checks"]
        out[path.parent.name] = {c["name"]: c["value"] for c in checks if not c["ok"]}
    return out


def score_atoms(detected: pd.DataFrame, truth: pd.DataFrame, shape, max_distance: float = 3.0,
                border: float = 3.0) -> dict:
    """Atoms found against the simulation's truth, away from the edge (the truth lists only whole atoms)."""
    s = score_points(detected, truth, max_distance, shape, border)
    pairs = s.pop("pairs")
    det, ref = _inside(detected, shape, border), _inside(truth, shape, border)
    hit = pairs[(pairs.detected >= 0) & (pairs.truth >= 0)]
    right = det["class"].to_numpy()[hit.detected] == ref["class"].to_numpy()[hit.truth]
    s["class_agreement"] = _ratio(right.sum(), len(hit))
    return s


# ------------------------------------------------------------------ report
def _particles(results: Path) -> pd.DataFrame:
    with xr.open_dataset(results / "particles.nc") as p:
        return p.to_dataframe().reset_index(drop=True)


def report(workflow: Path, truth: pd.DataFrame, data: Path) -> dict:
    """Every figure of a finished run (printed), returned as a dict."""
    results = workflow / "results"
    out = {}
    if (results / "bacteria" / "tracks.csv").exists():
        cells = score_cells(_particles(results / "bacteria"), read_reference())
        tracks = pd.read_csv(results / "bacteria" / "tracks.csv")
        cells["median_track_length"] = float(track_lengths(tracks).median())
        cells["tracks"] = int(tracks["track"].nunique())
        out["cells"] = cells
        print(f"bacteria (cells): precision {cells['precision']:.3f}, recall {cells['recall']:.3f} "
              f"({cells['n_matched']} of {cells['n_reference']} hand-checked cells, {cells['n_detected']} detections, "
              f"within 4 px), axis error {cells['axis_error_deg']:.1f} deg (median), centre rmse {cells['rmse']:.2f} "
              f"px; {cells['tracks']} tracks, median length {cells['median_track_length']:.0f} frames")
    if (results / "bulk_water" / "tracks.csv").exists():
        out["spheres"] = spheres = _score_spheres(results / "bulk_water", data)
        b = spheres["banded"]
        print(f"bulk_water (spheres) vs trackpy.locate(diameter={TRACKPY['diameter']}, minmass={TRACKPY['minmass']:g}, "
              f"separation={TRACKPY['separation']}, invert=True), within 2 px: precision {spheres['precision']:.3f}, "
              f"recall {spheres['recall']:.3f} ({spheres['n_matched']} of {spheres['n_reference']} features, "
              f"{spheres['n_detected']} detections); with either free within {BAND:.0%} of minmass: precision "
              f"{b['precision']:.3f}, recall {b['recall']:.3f} ({b['n_counted']} detections and {b['n_required']} "
              f"features of mass >= {MASS_LINE:g}); links vs trackpy.link(search_range={TRACKPY['search_range']}, "
              f"memory={TRACKPY['memory']}): {spheres['theirs_in_ours']:.3f} of trackpy's in ours, "
              f"{spheres['ours_in_theirs']:.3f} of ours in trackpy's")
        for who, name in (("rotdyn", "rotdyn"), ("trackpy", f"trackpy (separation {TRACKPY['separation']})"),
                          ("walkthrough", f"trackpy (separation {WALKTHROUGH_SEPARATION})")):
            h = spheres[f"hand_{who}"]
            print(f"  {name} against the hand-checked colloids ({COLLOIDS.name}, {len(COLLOID_REGIONS)} regions, "
                  f"within 3 px): precision {h['precision']:.3f}, recall {h['recall']:.3f} ({h['n_matched']} of "
                  f"{h['n_required']} colloids of mass >= {MASS_LINE:g}; {h['n_false']} false of {h['n_counted']})")
    if (results / "asd_sample_0" / "qc.json").exists() and (results / "asd_sample_0" / "kde.nc").exists():
        out["afm"] = afm = score_afm(results / "asd_sample_0")
        print(f"asd_sample_0 (lattice): qc bad_frames {afm['qc_bad_frames']}, kde.nc bad_frames "
              f"{afm['kde_bad_frames']} ({'right' if afm['flagged_right'] else 'WRONG'}: 22-31); "
              f"{afm['clean_frames_with_particles']} of 22 clean frames analysed "
              f"(particles per frame {min(afm['particles_per_clean_frame'])}-{max(afm['particles_per_clean_frame'])}"
              f"; count outliers among them {afm['qc_count_outliers']})")
    if (results / "stem_atoms" / "particles.nc").exists():
        with xr.open_dataset(results / "stem_atoms" / "movie.nc") as movie:
            shape, contrast = movie["frames"].shape[1:], movie.attrs.get("contrast_reason", "")
        out["atoms"] = atoms = score_atoms(_particles(results / "stem_atoms"), truth, shape)
        print(f"stem_atoms (atoms, contrast auto: {contrast}): precision {atoms['precision']:.3f}, recall "
              f"{atoms['recall']:.3f} ({atoms['n_matched']} of {atoms['n_reference']} atoms, within 3 px), "
              f"class agreement {atoms['class_agreement']:.3f}")
    out["qc"] = tripped_checks(results)
    for movie, tripped in out["qc"].items():
        flags = ", ".join(f"{name} {value:.3g}" if isinstance(value, float) else f"{name} {value}"
                          for name, value in tripped.items())
        print(f"{movie} self-check tripped: {flags or 'nothing'}")
    return out


def _score_spheres(results: Path, data: Path) -> dict:
    with xr.open_dataset(results / "movie.nc") as movie:
        first, last = int(movie.frame.values[0]), int(movie.frame.values[-1])
        shape = movie["frames"].shape[1:]
    frames = read_movie(data / MOVIES["bulk_water"][0]).frames[first:last + 1]
    settings = {k: TRACKPY[k] for k in ("diameter", "separation", "invert")}
    line = TRACKPY["minmass"]
    loose = trackpy_detections(frames, first_frame=first, minmass=line * (1 - BAND), **settings)
    reference = loose[loose["mass"] >= line]
    margin = TRACKPY["diameter"]  # trackpy leaves out features this near the edge; so do we, on both sides
    ours = _particles(results)
    s = score_points(ours, reference, 2.0, shape, margin)
    s.pop("pairs")
    s["banded"] = score_banded(ours, loose, line, 2.0, shape, margin)
    trackpy.quiet()
    theirs = trackpy.link(_inside(reference, shape, margin), TRACKPY["search_range"], memory=TRACKPY["memory"])
    tracks = _inside(pd.read_csv(results / "tracks.csv"), shape, margin)
    s.update(link_agreement(tracks, theirs, 2.0))
    hand = read_colloids()
    hand = hand[hand.frame.between(first, last)]  # the hand-checked frames this run analysed
    s["hand_rotdyn"] = score_colloids(ours, hand, shape)
    s["hand_trackpy"] = score_colloids(reference, hand, shape)
    hand_frames = hand.frame.unique()  # the walkthrough's separation, on the hand-checked frames only
    walkthrough = trackpy_detections(frames[hand_frames - first], minmass=line,
                                     **{**settings, "separation": WALKTHROUGH_SEPARATION})
    walkthrough["frame"] = hand_frames[walkthrough["frame"]]
    s["hand_walkthrough"] = score_colloids(walkthrough, hand, shape)
    return s


def read_colloids(path: Path = COLLOIDS) -> pd.DataFrame:
    """The hand-checked colloids: ``frame, x, y, mass, verdict`` (particle, unsure, duplicate, not).

    Examples
    --------
    >>> hand = read_colloids()
    >>> hand["verdict"].value_counts().to_dict()
    {'particle': 562, 'unsure': 39, 'duplicate': 6, 'not': 5}
    >>> int(((hand.verdict == "particle") & (hand.mass >= MASS_LINE)).sum())
    454
    """
    return pd.read_csv(path, comment="#")


def in_regions(table: pd.DataFrame, shape, margin: float = 9.0) -> pd.DataFrame:
    """The rows of ``table`` inside the hand-checked regions and at least ``margin`` px from the frame's edge.

    Examples
    --------
    >>> points = pd.DataFrame({"frame": [0, 0, 25, 1], "x": [100.0, 400.0, 400.0, 100.0], "y": 50.0})
    >>> in_regions(points, (424, 640))["x"].tolist()  # frame 0's region is x < 320; frame 1 has none
    [100.0, 400.0]
    """
    (w, h), table = COLLOID_REGION_SIZE, _inside(table, shape, margin)
    corner = pd.DataFrame.from_dict(COLLOID_REGIONS, orient="index", columns=["x0", "y0"]).reindex(table["frame"])
    x0, y0 = corner["x0"].to_numpy(), corner["y0"].to_numpy()  # NaN where a frame has no region: left out
    keep = (table.x >= x0) & (table.x < x0 + w) & (table.y >= y0) & (table.y < y0 + h)
    return table[keep].reset_index(drop=True)


def score_colloids(detected: pd.DataFrame, hand: pd.DataFrame, shape, max_distance: float = 3.0) -> dict:
    """Detections against the hand-checked colloids, matched one to one within ``max_distance`` px.

    Only the regions of the frames ``hand`` lists are scored. A particle of
    mass >= :data:`MASS_LINE` must be found (recall); a detection matched to
    a fainter particle or an unsure one is left out of precision; one
    matched to a duplicate or not, or to nothing, is false.

    Examples
    --------
    >>> hand = pd.DataFrame({"frame": 0, "x": [20.0, 40.0, 60.0, 80.0], "y": 20.0, "mass": [150.0, 150.0, 50.0, 150.0],
    ...                      "verdict": ["particle", "particle", "particle", "not"]})
    >>> det = pd.DataFrame({"frame": 0, "x": [20.5, 60.0, 80.0, 100.0], "y": 20.0})
    >>> s = score_colloids(det, hand, (424, 640))
    >>> s["n_matched"], s["n_required"], s["n_false"], s["n_counted"], s["precision"], s["recall"]
    (1, 2, 2, 3, 0.3333333333333333, 0.5)
    """
    det, ref = in_regions(detected[detected.frame.isin(hand.frame)], shape), in_regions(hand, shape)
    pairs = match(det, ref, max_distance)
    hit = pairs.truth[(pairs.detected >= 0) & (pairs.truth >= 0)].to_numpy(int)
    required = ((ref["verdict"] == "particle") & (ref["mass"] >= MASS_LINE)).to_numpy()
    neutral = ((ref["verdict"] == "unsure") | (ref["verdict"] == "particle")).to_numpy() & ~required
    n_matched = int(required[hit].sum())
    n_counted = len(det) - int(neutral[hit].sum())
    return {"n_required": int(required.sum()), "n_matched": n_matched, "n_counted": n_counted,
            "n_false": n_counted - n_matched, "precision": _ratio(n_matched, n_counted),
            "recall": _ratio(n_matched, int(required.sum()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--configfile", type=Path, action="append", default=[], help="extra config (repeatable)")
    parser.add_argument("--frames", type=int, help="first N frames of each real movie")
    args = parser.parse_args()
    if DATA is None:
        sys.exit("../shared/data not found beside the checkout: the real movies are needed for this benchmark")
    work = args.keep or Path(tempfile.mkdtemp(prefix="rotdyn-real-"))
    workflow, truth = prepare(work, DATA, frames=args.frames)
    command, wall, cpu, result = run_workflow(workflow, [p.resolve() for p in args.configfile])
    (workflow / "run.log").write_text(result.stdout + result.stderr)
    print("settings: config/movies.tsv\n" + sample_sheet(args.frames) + "real.yaml\n" + CONFIG)
    print(f"{command}: {wall:.0f} s wall, {cpu:.0f} s CPU, exit {result.returncode}")
    report(workflow, truth, DATA)
    print(f"results kept in {work}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
