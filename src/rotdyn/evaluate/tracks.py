"""Linking scores of :func:`rotdyn.link.link` against simulated truth (benchmarks and tests only)."""
from __future__ import annotations

import pandas as pd

from ..contracts import track_column
from .segmentation import match


def _links(m: pd.DataFrame, key: str) -> set:
    """Pairs of detections that are consecutive (by frame) within one value of ``key``."""
    s = m.sort_values([key, "frame"], kind="stable")
    same = s[key].to_numpy()[1:] == s[key].to_numpy()[:-1]
    d = s["det"].to_numpy()
    return set(zip(d[:-1][same].tolist(), d[1:][same].tolist()))


def link_scores(tracks: pd.DataFrame, truth: pd.DataFrame, max_distance: float = 3.0) -> dict:
    """Link recall and precision of ``tracks`` against simulated truth.

    Detections are matched to truth one-to-one per frame (nearest within
    ``max_distance`` px, :func:`rotdyn.evaluate.segmentation.match`). Only
    matched detections take part, so detection errors are not counted as
    linking errors:

    * a *true link* joins two consecutive matched appearances of one true
      ``id`` (sorted by frame: (t, t+1), or across frames where its detection
      is missing);
    * a *predicted link* joins two consecutive matched detections of one
      ``track``;
    * a link is *correct* when it is both: the same two detections are
      consecutive in one true id and in one track.

    ``recall = correct / true links``, ``precision = correct / predicted
    links``. An id switch costs a true and a predicted link; a broken track
    costs a true link only.

    Parameters
    ----------
    tracks : DataFrame
        ``frame, x, y, track`` (as from :func:`rotdyn.link.link`; trackpy's
        ``particle`` alone is read as the track id too).
    truth : DataFrame
        ``frame, id, x, y`` (``Simulation.truth``).
    max_distance : float
        Largest detection-truth distance of a match, px.

    Returns
    -------
    dict
        ``recall, precision`` (NaN when their denominator is 0),
        ``correct_links, true_links, predicted_links, matched, detections,
        truth_points``.

    Examples
    --------
    Two true particles over three frames; the tracks swap them after frame 1:

    >>> truth = pd.DataFrame({"frame": [0, 0, 1, 1, 2, 2], "id": [7, 9] * 3, "x": [0.0, 50] * 3, "y": 0.0})
    >>> tracks = truth.drop(columns="id").assign(track=[0, 1, 0, 1, 1, 0])
    >>> s = link_scores(tracks, truth)
    >>> s["true_links"], s["predicted_links"], s["correct_links"], s["recall"]
    (4, 4, 2, 0.5)
    """
    det = tracks.reset_index(drop=True)
    tru = truth.reset_index(drop=True)
    pairs = match(det, tru, max_distance)
    pairs = pairs[(pairs["detected"] >= 0) & (pairs["truth"] >= 0)]
    m = pd.DataFrame({"frame": pairs["frame"].to_numpy(), "det": pairs["detected"].to_numpy(),
                      "track": det[track_column(det.columns)].to_numpy()[pairs["detected"].to_numpy()],
                      "id": tru["id"].to_numpy()[pairs["truth"].to_numpy()]})
    true_links, predicted = _links(m, "id"), _links(m, "track")
    correct = len(true_links & predicted)
    nan = float("nan")
    return {"recall": correct / len(true_links) if true_links else nan,
            "precision": correct / len(predicted) if predicted else nan,
            "correct_links": correct, "true_links": len(true_links), "predicted_links": len(predicted),
            "matched": len(m), "detections": len(det), "truth_points": len(tru)}
