"""Synthetic microscopy movies with known ground truth.

Four kinds, each a stand-in for one kind of real data, so that every stage of
the workflow can be checked against the truth:

* ``rods`` (:func:`simulate_rods`) -- high-speed AFM of protein nanorods on a
  lattice, with a symmetry-lowering transition (paper 000);
* ``atoms`` (:func:`simulate_atoms`) -- STEM of Si dopants in graphene,
  dark or bright background, down to a few counts per atom (paper 002);
* ``cells`` (:func:`simulate_cells`) -- phase-contrast optical microscopy of
  swimming rod-shaped bacteria;
* ``spheres`` (:func:`simulate_spheres`) -- bright-field optical microscopy
  of colloids in Brownian motion.

Each kind has one parameter table (a dataclass: :class:`RodParams`,
:class:`AtomParams`, :class:`CellParams`, :class:`SphereParams`), listed by
:func:`parameter_names` and checked by :func:`check_params`; the imaging
effects they share (PSF, halo, illumination, texture, scan noise, contrast)
live in :mod:`rotdyn.simulate.imaging`. :func:`simulate` dispatches through
the registry :data:`KINDS`.

Conventions (project-wide): ``x`` is the column and ``y`` the row, in pixels,
with the origin at the centre of the top-left pixel. Angles are in radians,
counter-clockwise from +x *as displayed* (y up on screen), so direction ``a``
has array components ``(dx_col, dy_row) = (cos a, -sin a)``; stored angles are
wrapped to [-pi, pi).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import xarray as xr

from ..store import atomic_path, attr_value, write_netcdf
from .atoms import AtomParams, render_atoms, simulate_atoms
from .base import TRUTH_COLUMNS, ParameterError, Params, Simulation, names, number
from .cells import CellParams, render_cells, simulate_cells
from .rods import RodParams, render_rods, simulate_rods
from .spheres import SphereParams, render_spheres, simulate_spheres

__all__ = ["KINDS", "TRUTH_COLUMNS", "AtomParams", "CellParams", "Kind", "ParameterError", "RodParams",
           "Simulation", "SphereParams", "check_params", "parameter_names", "run", "simulate",
           "simulate_atoms", "simulate_cells", "simulate_rods", "simulate_spheres", "to_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One simulated kind: its parameter table, the function that renders it, and what it stands for.

    Parameters
    ----------
    params : type
        The kind's :class:`~rotdyn.simulate.base.Params` table.
    render : callable
        Makes the :class:`Simulation` from a checked table.
    modality : str
        The microscopy it stands for (``movie.nc``'s ``modality`` attr).
    class_names : tuple of str
        The label values' names, ``"background"`` first.

    Examples
    --------
    >>> atoms = KINDS["atoms"]
    >>> atoms.params is AtomParams, atoms.class_names
    (True, ('background', 'carbon', 'dopant'))
    >>> sim = KINDS["spheres"].render(SphereParams(size=24, frames=1, count=2))
    >>> len(sim.truth), sim.class_names
    (2, ['background', 'sphere'])
    """

    params: type[Params]
    render: Callable[[Params], Simulation]
    modality: str
    class_names: tuple[str, ...]


KINDS: dict[str, Kind] = {
    "rods": Kind(RodParams, render_rods, "AFM (simulated)", ("background", "rod")),
    "atoms": Kind(AtomParams, render_atoms, "STEM (simulated)", ("background", "carbon", "dopant")),
    "cells": Kind(CellParams, render_cells, "optical phase contrast (simulated)", ("background", "cell")),
    "spheres": Kind(SphereParams, render_spheres, "optical bright field (simulated)", ("background", "sphere")),
}
MODALITY = {kind: k.modality for kind, k in KINDS.items()}


def _kind(kind) -> Kind:
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {sorted(KINDS)}, got unknown kind {kind!r}")
    return KINDS[kind]


def parameter_names(kind: str) -> list[str]:
    """The parameters of simulator ``kind``, in the order of its table.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`.

    Returns
    -------
    list of str

    Raises
    ------
    ParameterError
        For an unknown kind.

    Examples
    --------
    >>> parameter_names("spheres")[:5]
    ['size', 'frames', 'count', 'diameter', 'diffusion']
    >>> "length" in parameter_names("atoms")
    False
    """
    return names(_kind(kind).params)


def _table(kind: str, params: dict) -> Params:
    """The checked parameter table of ``kind``; ParameterError naming the kind and the problem."""
    table = _kind(kind).params
    params = dict(params)
    given = params.pop("kind", kind)
    if given != kind:
        raise ParameterError(f"simulate kind {kind!r} was given kind={given!r}")
    known = names(table)
    for key in params:
        if key not in known:
            raise ParameterError(f"simulate kind {kind!r} has no parameter {key!r} "
                                 f"(its parameters: {', '.join(known)})")
    try:
        return table(**params)
    except ValueError as exc:
        raise ParameterError(f"simulate kind {kind!r}: {exc}") from None


def check_params(kind: str, params: dict) -> dict:
    """Check simulator parameters without simulating; return them resolved.

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS` ("rods", "atoms", "cells", "spheres").
    params : dict
        Some of that kind's parameters (a ``kind`` key equal to ``kind`` is
        allowed); the others take their defaults.

    Returns
    -------
    dict
        ``kind`` and every parameter of the kind, defaults filled and values
        converted, exactly as :attr:`Simulation.params` would hold them.

    Raises
    ------
    ParameterError
        (a ValueError) naming the kind and the unknown key, with the kind's
        parameters, or the parameter whose value is bad and why.

    Examples
    --------
    >>> check_params("cells", {"length": 18, "halo": -0.4})["length"]
    18.0
    >>> check_params("atoms", {"length": 16})
    Traceback (most recent call last):
    ...
    rotdyn.simulate.base.ParameterError: simulate kind 'atoms' has no parameter 'length' (its parameters: size, ...
    >>> check_params("rods", {"noise": -1})
    Traceback (most recent call last):
    ...
    rotdyn.simulate.base.ParameterError: simulate kind 'rods': noise must be >= 0 and <= inf, got -1
    """
    return {"kind": kind, **_table(kind, params).as_dict()}


def simulate(kind: str, **params) -> Simulation:
    """Run the simulation ``kind`` with keyword ``params``.

    Parameters
    ----------
    kind : str
        "rods" (:func:`simulate_rods`), "atoms" (:func:`simulate_atoms`),
        "cells" (:func:`simulate_cells`) or "spheres" (:func:`simulate_spheres`).
    **params
        That simulator's parameters (:func:`parameter_names`).

    Returns
    -------
    Simulation
        ``simulate(**sim.params)`` reproduces it (``kind`` is among the params).

    Raises
    ------
    ParameterError
        (both a ValueError and a TypeError) for an unknown kind, an unknown
        parameter or a bad value, naming it.

    Examples
    --------
    >>> sim = simulate("atoms", size=32, frames=1, dopants=1, vacancies=0)
    >>> again = simulate(**sim.params)
    >>> bool(np.array_equal(sim.frames, again.frames)), sim.params["kind"]
    (True, 'atoms')
    """
    return _kind(kind).render(_table(kind, params))


def to_dataset(sim: Simulation, pixel_size_nm: float, frame_interval_s: float) -> xr.Dataset:
    """The movie and its masks as an xarray Dataset, with calibration and parameters as attrs.

    Variables ``frames`` (float32), ``labels`` (uint8) and ``instances``
    (int32) on dims ``(frame, y, x)`` with integer index coordinates; attrs
    ``pixel_size_nm, frame_interval_s, modality, kind, class_names`` (comma
    joined) and ``sim_<name>`` for every simulation parameter (bools as ints).

    Parameters
    ----------
    sim : Simulation
        The simulation.
    pixel_size_nm, frame_interval_s : float
        Calibration (> 0).

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> sim = simulate("rods", size=32, frames=2, count=1, seed=0)
    >>> ds = to_dataset(sim, pixel_size_nm=0.5, frame_interval_s=2.0)
    >>> ds.frames.dims, ds.attrs["modality"], ds.attrs["class_names"], ds.attrs["sim_size"]
    (('frame', 'y', 'x'), 'AFM (simulated)', 'background,rod', 32)
    """
    pixel_size_nm = number("pixel_size_nm", pixel_size_nm, 0, strict=True)
    frame_interval_s = number("frame_interval_s", frame_interval_s, 0, strict=True)
    kind = sim.params.get("kind", "")
    dims = ("frame", "y", "x")
    T, H, W = sim.frames.shape
    ds = xr.Dataset(
        {"frames": (dims, np.asarray(sim.frames, np.float32)),
         "labels": (dims, np.asarray(sim.labels, np.uint8)),
         "instances": (dims, np.asarray(sim.instances, np.int32))},
        coords={"frame": np.arange(T), "y": np.arange(H), "x": np.arange(W)},
    )
    attrs = {"pixel_size_nm": pixel_size_nm, "frame_interval_s": frame_interval_s,
             "modality": MODALITY.get(kind, "simulated"), "kind": kind,
             "class_names": ",".join(sim.class_names)}
    attrs.update({f"sim_{name}": attr_value(value) for name, value in sim.params.items()
                  if name != "kind" and value is not None})
    ds.attrs.update(attrs)
    return ds


def run(job) -> None:
    """Entry of rule ``simulate``: a synthetic movie of ``job.wildcards.kind`` and its truth table.

    ``job.params.sim`` holds the simulator's keyword arguments plus
    ``pixel_size_nm`` and ``frame_interval_s``; ``job.output`` has ``movie``
    (movie.nc) and ``truth`` (truth.csv).

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``wildcards.kind``, ``params.sim``, ``output.movie``, ``output.truth``.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from pathlib import Path
    >>> from rotdyn.jobs import job
    >>> d = Path(tempfile.mkdtemp())
    >>> sim = {"size": 32, "frames": 2, "count": 1, "seed": 0, "pixel_size_nm": 0.5, "frame_interval_s": 2.0}
    >>> run(job("simulate", output={"movie": str(d / "movie.nc"), "truth": str(d / "truth.csv")},
    ...         params={"sim": sim}, wildcards={"kind": "rods"}))
    >>> pd.read_csv(d / "truth.csv").columns.tolist()[:6] == TRUTH_COLUMNS
    True
    >>> with xr.open_dataset(d / "movie.nc") as ds:
    ...     ds.frames.shape, float(ds.attrs["pixel_size_nm"])
    ((2, 32, 32), 0.5)
    """
    params = dict(job.params.sim)
    pixel, interval = params.pop("pixel_size_nm"), params.pop("frame_interval_s")
    sim = simulate(job.wildcards.kind, **params)
    log.info("simulated %s: %d frames, %d truth rows", job.wildcards.kind, len(sim.frames), len(sim.truth))
    with atomic_path(job.output.truth) as tmp:
        sim.truth.to_csv(tmp, index=False)
    write_netcdf(to_dataset(sim, pixel_size_nm=pixel, frame_interval_s=interval), job.output.movie)
