"""Linking on a real colloid video: rotdyn's link against trackpy's own, same detections.

Uses ../shared/data/bulk_water/frames (1 um latex spheres in water, 24 frames/s,
trackpy-examples, BSD-3-Clause) when present. Detections come from
trackpy.locate on the luminance frames (dark spheres: invert); they are linked
once by rotdyn.link.link and once by trackpy.link directly with the same
search range and memory, and the two sets of links are compared.

    python benchmarks/bulk_water.py [frames-folder]
"""
from __future__ import annotations

import sys
from pathlib import Path

import trackpy

from rotdyn.formats import read_movie
from rotdyn.link import link

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "bulk_water" / "frames"


def links(tracks, key: str = "track") -> set:
    """Pairs of detections (row labels) joined between consecutive appearances of a track.

    ``key`` is the track id column: ``track`` in rotdyn's tables, ``particle`` in trackpy's.
    """
    out = set()
    for _, track in tracks.sort_values("frame").groupby(key):
        rows = track.index.to_numpy()
        out.update(zip(rows[:-1], rows[1:]))
    return out


def compare(frames, diameter: int = 11, minmass: float = 30.0, search_range: float = 5.0, memory: int = 3) -> dict:
    trackpy.quiet()
    detections = trackpy.batch(frames, diameter, invert=True, minmass=minmass, processes=1)
    detections = detections.reset_index(drop=True)
    ours = link(detections, search_range=search_range, memory=memory)
    theirs = trackpy.link(detections, search_range, memory=memory)
    a, b = links(ours), links(theirs, "particle")
    lengths = ours.groupby("track").size()
    return {"detections": len(detections), "tracks": int(ours.track.nunique()),
            "median_length": float(lengths.median()), "links": len(a),
            "agreement": len(a & b) / max(len(a | b), 1),
            "alias_agrees": bool((ours["particle"] == ours["track"]).all())}  # trackpy's alias column


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not folder.is_dir():
        sys.exit(f"{folder} not found: the real colloid video is needed for this benchmark")
    movie = read_movie(folder)
    r = compare(movie.frames)
    print(f"bulk_water: {len(movie.frames)} frames, {r['detections']} detections, {r['tracks']} tracks, "
          f"median length {r['median_length']:.0f} frames; links identical to trackpy's: {r['agreement']:.1%} "
          f"of {r['links']}")


if __name__ == "__main__":
    main()
