"""Particle kinds: what a movie holds, and the settings that go with it.

A run may hold movies of several kinds of particle (rods in an HS-AFM movie,
atoms in a STEM movie, cells in a phase-contrast movie). Each kind, under
``particles.kinds.<kind>`` in the config, has its own training set (labelled
frames or simulator parameters), its own ensemble, and its own ``train``,
``locate``, ``patches``, ``rvae`` and ``link`` settings: the kind's entries override the
global sections of the same name, key by key (:func:`merge`). The sample
sheet's ``particles`` column picks a movie's kind; ``particles.default``
serves the others.

Kept light (standard library only): the Snakefile imports it in every
Snakemake process.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

# Sections a kind may override, key by key, over the global section of the same name.
SECTIONS = ("training_set", "train", "locate", "patches", "rvae", "link")
CONTRASTS = ("bright", "dark", "auto")
# Simulator keys that are calibration, not simulation (the training set ignores them).
CALIBRATION_KEYS = ("pixel_size_nm", "frame_interval_s")
# The shape of each simulator's particle, and the size keys that describe it (for the contrast template).
SHAPES = {"rods": "rod", "cells": "cell", "spheres": "disc", "atoms": "atom"}
SIZE_KEYS = ("length", "width", "diameter", "spacing", "atom_sigma")
# Simulator keys a kind may leave unset to have them measured on its first movie (rotdyn.survey).
MEASURED = {"rods": ("length", "width", "noise"), "cells": ("length", "length_sd", "width", "noise"),
            "spheres": ("diameter", "noise"), "atoms": ("spacing", "noise")}
# The simulator keys a measured key goes into, where they differ: the atoms' noise (relative to a carbon
# peak) is their read noise; set ``gaussian_noise`` or ``dose`` and the noise is not measured.
SIMULATOR_KEYS = {"atoms": {"noise": ("gaussian_noise", "dose")}}
POOLED = "_pooled"  # the model name of an rVAE pooled over a kind's movies (movie names start with a letter or digit)


def merge(base: dict, override: dict | None) -> dict:
    """``base`` updated by ``override`` recursively (dicts merge key by key, anything else replaces).

    Parameters
    ----------
    base : dict
        Defaults; not changed.
    override : dict or None
        Values that win; None changes nothing.

    Returns
    -------
    dict
        A deep copy of ``base`` with ``override`` merged in.

    Examples
    --------
    >>> merge({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"d": 4}, "e": 5})
    {'a': 1, 'b': {'c': 2, 'd': 4}, 'e': 5}
    """
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def kind_names(config: dict) -> list[str]:
    """The configured kinds, sorted.

    Parameters
    ----------
    config : dict
        The workflow's configuration (``particles.kinds``).

    Returns
    -------
    list of str

    Examples
    --------
    >>> kind_names({"particles": {"default": "rods", "kinds": {"rods": {}, "atoms": {}}}})
    ['atoms', 'rods']
    """
    return sorted(config["particles"]["kinds"])


def kind_settings(config: dict, kind: str) -> dict:
    """Everything that differs by kind, the kind's overrides merged over the global sections.

    Parameters
    ----------
    config : dict
        The workflow config (validated).
    kind : str
        A configured kind.

    Returns
    -------
    dict
        ``name``, ``description``, ``contrast`` and one merged dict per
        :data:`SECTIONS`; ``training_set`` also gets ``set`` (= the kind's
        name, the training file and the labels folder's name).

    Examples
    --------
    >>> config = {"particles": {"default": "rods", "kinds": {"rods": {"contrast": "dark",
    ...           "locate": {"min_area": 4}}}}, "training_set": {"tile": 64}, "train": {"members": 3},
    ...           "locate": {"threshold": 0.5, "min_area": 10}, "patches": {"size": 24}, "rvae": {"epochs": 60},
    ...           "link": {"search_range": 21, "memory": 3}}
    >>> s = kind_settings(config, "rods")
    >>> s["contrast"], s["locate"], s["training_set"]["set"]
    ('dark', {'threshold': 0.5, 'min_area': 4}, 'rods')
    """
    kinds = config["particles"]["kinds"]
    if kind not in kinds:
        raise ValueError(f"particle kind {kind!r} is not configured; particles.kinds has {sorted(kinds)}")
    own = kinds[kind] or {}
    settings = {"name": kind, "description": own.get("description", ""),
                "contrast": own.get("contrast", "bright")}
    for section in SECTIONS:  # a config without a section (a test's, a script's) gives the kind's own keys only
        settings[section] = merge(config.get(section, {}), own.get(section))
    settings["training_set"]["set"] = kind
    return settings


def movie_kind(config: dict, row: dict | None, movie: str = "") -> str:
    """The kind of a movie: its sample-sheet ``particles`` cell, else ``particles.default``.

    Parameters
    ----------
    config : dict
        The workflow's configuration (``particles.default``, ``particles.kinds``).
    row : dict or None
        The movie's sample-sheet row.
    movie : str
        The movie's name, for the error.

    Returns
    -------
    str
        The kind's name.

    Raises
    ------
    ValueError naming the movie and the kind when the kind is not configured.

    Examples
    --------
    >>> config = {"particles": {"default": "rods", "kinds": {"rods": {}, "atoms": {}}}}
    >>> movie_kind(config, None), movie_kind(config, {"particles": "atoms"})
    ('rods', 'atoms')
    """
    kind = (row or {}).get("particles") or config["particles"]["default"]
    if kind not in config["particles"]["kinds"]:
        raise ValueError(f"movie {movie!r}: particles={kind!r} is not a configured kind; "
                         f"particles.kinds has {kind_names(config)}")
    return kind


def movie_contrast(config: dict, kind: str, row: dict | None) -> str:
    """A movie's contrast setting: its sample-sheet ``contrast`` cell, else its kind's.

    Parameters
    ----------
    config : dict
        The workflow's configuration.
    kind : str
        The movie's kind (:func:`movie_kind`).
    row : dict or None
        The movie's sample-sheet row.

    Returns
    -------
    str
        ``"bright"``, ``"dark"`` or ``"auto"`` (bright when neither sets it).

    Examples
    --------
    >>> config = {"particles": {"default": "cells", "kinds": {"cells": {"contrast": "auto"}}}}
    >>> movie_contrast(config, "cells", None), movie_contrast(config, "cells", {"contrast": "dark"})
    ('auto', 'dark')
    """
    return (row or {}).get("contrast") or (config["particles"]["kinds"][kind] or {}).get("contrast", "bright")


def simulation(settings: dict) -> dict:
    """The simulator parameters of a kind's training set (``kind`` included, calibration keys left out).

    Parameters
    ----------
    settings : dict
        A kind's settings (:func:`kind_settings`).

    Returns
    -------
    dict
        ``training_set.simulate`` less :data:`CALIBRATION_KEYS`; empty when it has none.

    Examples
    --------
    >>> simulation({"training_set": {"simulate": {"kind": "rods", "length": 20, "pixel_size_nm": 0.5}}})
    {'kind': 'rods', 'length': 20}
    """
    sim = settings["training_set"].get("simulate") or {}
    return {key: value for key, value in sim.items() if key not in CALIBRATION_KEYS}


def particle_size(settings: dict, resolve: Callable[[str, dict], dict] | None = None) -> dict:
    """The simulator and the sizes of a kind's particle (what the contrast template needs).

    ``resolve(simulator, params)`` fills the sizes the kind leaves unset with
    the simulator's defaults (:func:`rotdyn.simulate.check_params`).

    Parameters
    ----------
    settings : dict
        A kind's settings (:func:`kind_settings`).
    resolve : callable or None
        ``resolve(simulator, params) -> params`` with the defaults filled in; None: only the sizes set.

    Returns
    -------
    dict
        ``simulator`` (its name), then the :data:`SIZE_KEYS` known (px).

    Examples
    --------
    >>> particle_size({"training_set": {"simulate": {"kind": "rods", "length": 20, "noise": 0.2}}})
    {'simulator': 'rods', 'length': 20}
    >>> particle_size({"training_set": {"simulate": {"kind": "rods"}}}, lambda s, p: {"length": 16, "width": 5})
    {'simulator': 'rods', 'length': 16, 'width': 5}
    """
    sim = simulation(settings)
    simulator = sim.pop("kind", settings.get("name"))
    if resolve is not None:
        sim = resolve(simulator, sim)
    return {"simulator": simulator, **{key: sim[key] for key in SIZE_KEYS if key in sim}}


def unset_sizes(settings: dict) -> list[str]:
    """The size and noise keys a kind's training simulation leaves unset: they are measured on the movie.

    A key counts as set when one of the simulator keys it goes into
    (:data:`SIMULATOR_KEYS`) is: the user's ``dose`` or ``gaussian_noise``
    of atoms wins over a measured noise.

    Parameters
    ----------
    settings : dict
        A kind's settings (:func:`kind_settings`).

    Returns
    -------
    list of str
        The :data:`MEASURED` keys of the kind's simulator absent from its settings; empty for labelled sets.

    Examples
    --------
    >>> unset_sizes({"name": "cells", "training_set": {"source": "simulate", "simulate": {"kind": "cells", "width": 6}}})
    ['length', 'length_sd', 'noise']
    >>> unset_sizes({"name": "x", "training_set": {"source": "labels", "simulate": {"kind": "cells"}}})
    []
    >>> unset_sizes({"name": "atoms", "training_set": {"simulate": {"kind": "atoms", "dose": 5.0}}})
    ['spacing']
    """
    if settings["training_set"].get("source") == "labels":
        return []
    sim = simulation(settings)
    simulator = sim.get("kind", settings.get("name"))
    given = SIMULATOR_KEYS.get(simulator, {})
    return [key for key in MEASURED.get(simulator, ())
            if key not in sim and not any(k in sim for k in given.get(key, ()))]


def simulator_params(simulator: str, measured: dict) -> dict:
    """Measured keys as the simulator's parameters: the atoms' ``noise`` is their ``gaussian_noise``.

    A training frame of :func:`rotdyn.simulate.simulate_atoms` (atoms of peak
    1 on a dark background) then has white noise of the measured sd relative
    to a carbon peak everywhere, as a bright-field movie has; the shot noise
    of the simulator's ``dose`` (200 by default) adds little.

    Parameters
    ----------
    simulator : str
        The simulator's name.
    measured : dict
        Measured keys (:data:`MEASURED`) and their values.

    Returns
    -------
    dict
        The same values under the simulator's parameter names.

    Examples
    --------
    >>> simulator_params("atoms", {"spacing": 6.0, "noise": 1.7})
    {'spacing': 6.0, 'gaussian_noise': 1.7}
    >>> simulator_params("rods", {"noise": 0.2})
    {'noise': 0.2}
    """
    names = SIMULATOR_KEYS.get(simulator, {})
    return {(names[key][0] if key in names else key): value for key, value in measured.items()}


def _drawn_bright(simulator: str, sim: dict) -> bool:
    """Training frames must show bright particles: movies with dark ones are inverted at ingest."""
    return sim.get("contrast", "bright") != "dark" and not (simulator == "atoms" and sim.get("background") == "bright")


def check_kinds(config: dict, check_simulation: Callable[[str, dict], Any]) -> None:
    """Check every kind's settings at planning; ValueError naming the kind and the problem.

    ``check_simulation(simulator, params)`` checks a training simulation's
    parameters (:func:`rotdyn.simulate.check_params`); its error is passed
    on with the kind's config path in front.

    Parameters
    ----------
    config : dict
        The workflow's configuration.
    check_simulation : callable
        ``check_simulation(simulator, params)``, raising ValueError or TypeError on bad parameters.

    Examples
    --------
    >>> def check(simulator, params):
    ...     if simulator == "atoms" and "length" in params:
    ...         raise ValueError("simulate kind 'atoms' has no parameter 'length'")
    >>> config = {"particles": {"default": "dots", "kinds": {"dots": {"training_set": {"simulate": {
    ...           "kind": "atoms", "length": 16}}}}}, "training_set": {}, "train": {}, "locate": {},
    ...           "patches": {}, "rvae": {}}
    >>> check_kinds(config, check)
    Traceback (most recent call last):
    ...
    ValueError: particles.kinds.dots.training_set.simulate: simulate kind 'atoms' has no parameter 'length'
    """
    default = config["particles"]["default"]
    if default not in config["particles"]["kinds"]:
        raise ValueError(f"particles.default is {default!r}, which is not in particles.kinds "
                         f"({kind_names(config)})")
    for kind in kind_names(config):
        sim = simulation(kind_settings(config, kind))
        if not sim:
            continue
        simulator = sim.pop("kind", kind)
        try:
            check_simulation(simulator, sim)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"particles.kinds.{kind}.training_set.simulate: {exc}") from None
        if not _drawn_bright(simulator, sim):
            raise ValueError(f"particles.kinds.{kind}.training_set.simulate: training frames are drawn with bright "
                             f"particles (movies with dark ones are inverted when read); for dark particles set "
                             f"particles.kinds.{kind}.contrast: dark (or auto) instead")
