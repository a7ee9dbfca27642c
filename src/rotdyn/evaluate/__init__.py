"""Scoring against ground truth and timing, for tests and benchmarks (never run by the workflow).

One module per part of the method: :mod:`~rotdyn.evaluate.segmentation`
(detection scores, ensemble training and inference timing),
:mod:`~rotdyn.evaluate.rvae` (latent angle accuracy, angle peaks, windows of
simulated movies, training-step timing), :mod:`~rotdyn.evaluate.tracks`
(linking scores) and :mod:`~rotdyn.evaluate.kde` (density timing).
"""
