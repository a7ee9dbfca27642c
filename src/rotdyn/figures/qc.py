"""The rule ``qc_figure``: the self-checks of one movie's run at a glance (``figures/qc.png``).

Three panels: particles per frame over time with the bad frames marked, the
particle sizes against the training particles', and the checks as text (the
tripped ones in red). The numbers come from ``qc.json`` (:mod:`rotdyn.qc`).
"""
from __future__ import annotations

import json
import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator
import xarray as xr

from ..qc import instance_sizes, read_particles
from . import save

TRIPPED, PASSED = "tab:red", "0.2"


def _counts_panel(ax, report: dict) -> None:
    frames = np.asarray(report["frames"])
    counts = np.asarray(report["particles_per_frame"])
    ax.plot(frames, counts, color="C0", lw=1.2, label="particles")
    for name, color, marker in (("bad_frames", TRIPPED, "x"), ("count_outliers", "tab:orange", "o")):
        marked = np.isin(frames, report.get(name, []))
        if marked.any():
            ax.scatter(frames[marked], counts[marked], color=color, marker=marker, zorder=3,
                       label=name.replace("_", " "))
    ax.set(xlabel="frame", ylabel="particles", title="particles per frame")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)


def _size_panel(ax, movie_area: np.ndarray, training_area: np.ndarray) -> None:
    shown = [a for a in (movie_area, training_area) if len(a)]
    if not shown:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    values = np.concatenate(shown)
    bins = np.geomspace(max(values.min(), 1), values.max() + 1, 30)
    for area, label, color in ((movie_area, "movie", "C0"), (training_area, "training", "C1")):
        if len(area):
            ax.hist(area, bins=bins, weights=np.full(len(area), 1 / len(area)), histtype="step", lw=1.5,
                    color=color, label=f"{label} (median {np.median(area):.0f} px, n = {len(area)})")
    ax.set_xscale("log")
    plain_number = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain_number)
    if bins[-1] < 10 * bins[0]:  # within a decade the major ticks are too few: label the minor ones
        ax.xaxis.set_minor_formatter(plain_number)
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set(xlabel="particle area (px)", ylabel="share of particles", title="size: movie vs training particles")
    ax.legend(fontsize=8)


def _checks_panel(ax, report: dict) -> None:
    ax.set_axis_off()
    ax.set_title(f"self-checks of {report.get('movie')}", loc="left")
    y = 0.97
    for check in report["checks"]:
        value = check["value"]
        shown = "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else str(value))
        ok = check["ok"]
        line = f"{'ok  ' if ok else 'FAIL'}  {check['name']}: {shown} (threshold {check['threshold']})"
        detail = check.get("message") or check.get("note") or ""
        text = line + ("\n" + textwrap.fill(detail, 120, initial_indent="      ", subsequent_indent="      ")
                       if detail else "")
        ax.text(0, y, text, va="top", family="monospace", fontsize=8, color=PASSED if ok else TRIPPED,
                transform=ax.transAxes)
        y -= 0.04 * (1 + text.count("\n")) + 0.015


def qc_figure(report: dict, movie_area=(), training_area=()):
    """The self-checks of one run: particles per frame, sizes against training, the checks as text.

    Parameters
    ----------
    report : dict
        ``qc.json`` (:func:`rotdyn.qc.run`).
    movie_area, training_area : array_like
        Areas (px) of the movie's particles and of the training particles.

    Returns
    -------
    matplotlib.figure.Figure
        Top left: particles per frame, bad frames marked with red crosses and
        count outliers with orange dots; top right: the size histograms;
        below: one line per check, tripped ones in red with their message.

    Examples
    --------
    >>> report = {"movie": "m", "frames": [0, 1, 2], "particles_per_frame": [5, 0, 6], "bad_frames": [1],
    ...           "count_outliers": [], "checks": [
    ...               {"name": "frames", "value": 1, "threshold": 8.0, "ok": False, "message": "frame 1 is blank"},
    ...               {"name": "border", "value": 0.0, "threshold": 0.3, "ok": True, "message": ""}]}
    >>> fig = qc_figure(report, [30, 32, 29], [31, 30])
    >>> [t.get_color() for t in fig.axes[2].texts]
    ['tab:red', '0.2']
    >>> fig.axes[0].collections[0].get_offsets().tolist()  # the bad frame, marked
    [[1.0, 0.0]]
    >>> plt.close(fig)
    """
    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1.3))
    _counts_panel(fig.add_subplot(grid[0, 0]), report)
    _size_panel(fig.add_subplot(grid[0, 1]), np.asarray(movie_area, float), np.asarray(training_area, float))
    _checks_panel(fig.add_subplot(grid[1, :]), report)
    fig.tight_layout()
    return fig


def run(job) -> None:
    """Entry of rule ``qc_figure``: ``job.input.qc`` (qc.json), ``particles``, ``training`` -> ``job.output[0]`` (PNG).

    The movie's sizes are of all its particles, those touching the frame edge
    too (the ``size`` check leaves them out): an inverted contrast shows as
    one blob the size of the frame. Training particles cut by the tile
    border or below ``locate.min_area`` (``job.params.locate``, when given)
    are left out, as the check does.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``input.qc`` (``qc.json``, :func:`rotdyn.qc.run`), ``input.particles``
        (``particles.nc``), ``input.training`` (the kind's training set, its
        ``masks``), optionally ``params.locate`` (the ``locate`` settings);
        ``output[0]``, the PNG (:func:`qc_figure`).

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> from rotdyn.store import write_netcdf
    >>> d = tempfile.mkdtemp()
    >>> files = {name: os.path.join(d, name) for name in ("qc.json", "particles.nc", "training.nc", "qc.png")}
    >>> with open(files["qc.json"], "w") as f:
    ...     json.dump({"movie": "m", "frames": [0, 1], "particles_per_frame": [2, 1], "checks": [
    ...         {"name": "size", "value": 1.1, "threshold": 2.0, "ok": True, "message": ""}]}, f)
    >>> write_netcdf(xr.Dataset({"frame": ("particle", [0, 0, 1]), "area": ("particle", [30, 32, 29])}),
    ...              files["particles.nc"])
    >>> masks = np.zeros((1, 20, 20), np.uint8)
    >>> masks[0, 5:8, 4:14] = 1  # one training rod of 30 px
    >>> write_netcdf(xr.Dataset({"masks": (("sample", "y", "x"), masks)}), files["training.nc"])
    >>> run(job("qc_figure", input={"qc": files["qc.json"], "particles": files["particles.nc"],
    ...                             "training": files["training.nc"]}, output=[files["qc.png"]]))
    >>> plt.imread(files["qc.png"]).shape  # 12 x 9 in at 120 dpi
    (1080, 1440, 4)
    """
    with open(job.input.qc) as f:
        report = json.load(f)
    particles = read_particles(job.input.particles)
    min_area = int(dict(getattr(job.params, "locate", {}) or {}).get("min_area", 1))
    with xr.open_dataset(job.input.training) as training:
        train = instance_sizes(training["masks"].values, min_area=min_area)
    save(qc_figure(report, particles["area"].to_numpy() if "area" in particles else [], train["area"].to_numpy()),
         job.output[0])
