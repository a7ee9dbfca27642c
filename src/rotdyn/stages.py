"""The stage map: every workflow rule, the package function that runs it, what it writes.

This is the one place that ties the Snakemake rules (``workflow/rules``) to
the package. Each rule runs ``workflow/scripts/stage.py``, which calls
:func:`run_stage`; that looks the rule up in :data:`STAGES` and calls its
entry function with the Snakemake job. Each rule also carries
``code=stage_code(rule)`` as a parameter: a hash of every ``rotdyn`` module in
the import closure of its entry function's module, so editing any module a
stage runs reruns that stage (and, through its new outputs, what follows), and
editing a module it does not import reruns nothing.

Kept light (standard library only): the Snakefile imports it in every
Snakemake process.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "rotdyn"
_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Stage:
    """One workflow rule: its entry function (``"module:function"``) and output patterns.

    Parameters
    ----------
    entry : str
        ``"module:function"``, the function called with the job.
    outputs : tuple of str
        The rule's output patterns, in the rule's order, wildcards without
        constraints.
    doc : str
        What the stage does, in a few words.

    Examples
    --------
    >>> STAGES["locate"].entry, STAGES["locate"].outputs
    ('rotdyn.locate:run', ('results/{movie}/particles.nc',))
    """

    entry: str
    outputs: tuple[str, ...]
    doc: str = ""

    @property
    def module(self) -> str:
        """The module that holds the entry function, e.g. ``"rotdyn.kde"``.

        Returns
        -------
        str

        Examples
        --------
        >>> STAGES["rvae_figures"].module
        'rotdyn.figures.rvae'
        """
        return self.entry.partition(":")[0]


_R = "results/{movie}"
STAGES: dict[str, Stage] = {
    "simulate": Stage("rotdyn.simulate:run", ("results/simulated/{kind}/movie.nc", "results/simulated/{kind}/truth.csv"),
                      "a synthetic movie with its ground truth"),
    "ingest": Stage("rotdyn.ingest:run", (f"{_R}/movie.nc",), "read any movie format, preprocess"),
    "training_set": Stage("rotdyn.training_set:run", ("results/training/{kind}.nc",),
                          "a particle kind's labelled or simulated training frames"),
    "train_baseline": Stage("rotdyn.train:run_baseline",
                            ("results/ensemble/{kind}/baseline.pt", "results/ensemble/{kind}/baseline_history.csv"),
                            "the ensemble's baseline network"),
    "train_member": Stage("rotdyn.train:run_member",
                          ("results/ensemble/{kind}/member_{member}.pt",
                           "results/ensemble/{kind}/member_{member}_history.csv"),
                          "one ensemble member fine-tuned from the baseline"),
    "segment": Stage("rotdyn.segment:run", (f"{_R}/probability.nc",), "ensemble mean and variance per pixel"),
    "locate": Stage("rotdyn.locate:run", (f"{_R}/particles.nc",), "particles found in the probability maps"),
    "patches": Stage("rotdyn.patches:run", (f"{_R}/patches.nc",), "a window around every particle"),
    "fit_rvae": Stage("rotdyn.fit_rvae:run", ("results/rvae/{kind}/{model}/model.pt",
                                                 "results/rvae/{kind}/{model}/history.csv"),
                      "the rotationally invariant VAE"),
    "encode": Stage("rotdyn.encode:run", (f"{_R}/latents.nc",), "latents of every window"),
    "rvae_figures": Stage("rotdyn.figures.rvae:run",
                          (f"{_R}/figures/rvae_manifold.png", f"{_R}/figures/latent_histograms.png",
                           f"{_R}/figures/angle_vs_latents.png", f"{_R}/figures/rvae_history.png"),
                          "latent manifold, distributions, training history"),
    "kde": Stage("rotdyn.kde:run", (f"{_R}/kde.nc",), "per-frame densities of every latent"),
    "nmf": Stage("rotdyn.nmf:run", (f"{_R}/nmf.nc",), "components over time and the transition frame"),
    "dynamics_figures": Stage("rotdyn.figures.dynamics:run", (f"{_R}/figures/dynamics",),
                              "density maps with the NMF weights"),
    "link": Stage("rotdyn.link:run", (f"{_R}/tracks.csv", f"{_R}/tracks.nc", f"{_R}/track_summary.csv"),
                  "trajectories with the latents along them"),
    "maps": Stage("rotdyn.figures.maps:run",
                  (f"{_R}/figures/maps", f"{_R}/figures/latent_angle.gif", f"{_R}/figures/tracks.png"),
                  "frames coloured by latents, an animation, tracks"),
    "qc": Stage("rotdyn.qc:run", (f"{_R}/qc.json",), "self-checks that say when a result cannot be trusted"),
    "qc_figure": Stage("rotdyn.figures.qc:run", (f"{_R}/figures/qc.png",), "the self-checks at a glance"),
    "summary": Stage("rotdyn.summary:run", (f"{_R}/summary.json",), "the numbers a user wants first"),
}


# ------------------------------------------------------------- import closure
def _module_file(name: str) -> Path | None:
    """The source file of ``rotdyn`` module ``name`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = _ROOT.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def direct_imports(module: str) -> set[str]:
    """``rotdyn`` modules that ``module``'s source imports anywhere (functions included).

    Read from the source with :mod:`ast`, nothing imported; relative imports
    are resolved, and ``from a import b`` counts ``a.b`` when it is a module.

    Parameters
    ----------
    module : str
        A ``rotdyn`` module, e.g. ``"rotdyn.kde"``.

    Returns
    -------
    set of str
        The ``rotdyn`` modules (and packages) it names in an import.

    Raises
    ------
    ValueError
        When ``module`` is not a module of the package.

    Examples
    --------
    >>> sorted(direct_imports("rotdyn.contracts"))
    []
    >>> "rotdyn.store" in direct_imports("rotdyn.kde")
    True
    """
    path = _module_file(module)
    if path is None:
        raise ValueError(f"no module {module!r} in {_ROOT}")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path.name == "__init__.py")
            found.add(base)
            # "from . import store" and "from .figures import save" alike: a name may be a submodule
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if _module_file(name) is not None}


def _with_parents(name: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` too."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@functools.cache
def import_closure(module: str) -> tuple[str, ...]:
    """Every ``rotdyn`` module that importing ``module`` can run, sorted.

    Parameters
    ----------
    module : str
        A ``rotdyn`` module.

    Returns
    -------
    tuple of str
        ``module``, its parent packages and, transitively, every module they
        import (:func:`direct_imports`) with its parents.

    Examples
    --------
    >>> closure = import_closure("rotdyn.nmf")
    >>> "rotdyn.nmf" in closure and "rotdyn" in closure
    True
    >>> "rotdyn.networks" in closure
    False
    """
    seen: set[str] = set()
    todo = list(_with_parents(module))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in direct_imports(name):
            todo.extend(_with_parents(imported) - seen)
    return tuple(sorted(seen))


def stage_modules(rule: str) -> tuple[str, ...]:
    """The import closure of ``rule``'s entry function (see :func:`import_closure`).

    Parameters
    ----------
    rule : str
        A key of :data:`STAGES`.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> "rotdyn.formats" in stage_modules("ingest")
    True
    """
    return import_closure(stage(rule).module)


def stage_code(rule: str) -> str:
    """Short hash of the source of every module ``rule`` runs: a rule param, so edits rerun it.

    Parameters
    ----------
    rule : str
        A key of :data:`STAGES`.

    Returns
    -------
    str
        16 hexadecimal digits of the SHA-256 of the names and sources of
        :func:`stage_modules`.

    Examples
    --------
    >>> len(stage_code("kde"))
    16
    >>> stage_code("kde") == stage_code("nmf")
    False
    """
    digest = hashlib.sha256()
    for name in stage_modules(rule):
        digest.update(name.encode() + b"\0" + _module_file(name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stage(rule: str) -> Stage:
    """The :class:`Stage` of ``rule``; a clear error for a rule not in the map.

    Parameters
    ----------
    rule : str
        A rule's name.

    Returns
    -------
    Stage

    Raises
    ------
    KeyError
        Naming the rule when it is not in :data:`STAGES`.

    Examples
    --------
    >>> stage("nmf").entry
    'rotdyn.nmf:run'
    >>> stage("plot")
    Traceback (most recent call last):
    ...
    KeyError: "rule 'plot' is not in the stage map (rotdyn.stages.STAGES)"
    """
    try:
        return STAGES[rule]
    except KeyError:
        raise KeyError(f"rule {rule!r} is not in the stage map (rotdyn.stages.STAGES)") from None


def check_rules(rules) -> None:
    """Check that the Snakemake ``rules`` that run a stage write what the map says.

    Rules without a script (``all``, ...) are passed over; a wildcard's
    constraint (``{movie,[^/]+}``) does not count as a difference.

    Parameters
    ----------
    rules : iterable of Snakemake rules
        ``workflow.rules``, each with ``name``, ``output`` and ``script``.

    Returns
    -------
    None
        When every stage has its rule and every rule writes what the map says.

    Raises
    ------
    ValueError
        Naming the rule whose outputs differ from :data:`STAGES`, or the
        stages with no rule.

    Examples
    --------
    Objects with a rule's three attributes stand in for Snakemake's rules:

    >>> from types import SimpleNamespace as Rule
    >>> rules = [Rule(name=name, output=list(s.outputs), script="../scripts/stage.py")
    ...          for name, s in STAGES.items()]
    >>> rules[1].output = ["results/{movie,[^/]+}/movie.nc"]  # ingest, with a constraint
    >>> check_rules(rules + [Rule(name="all", output=[], script=None)])
    >>> check_rules(rules[:-1])
    Traceback (most recent call last):
    ...
    ValueError: stage(s) ['summary'] in rotdyn.stages.STAGES have no rule
    >>> rules[-1].output = ["results/{movie}/summary.csv"]
    >>> check_rules(rules)
    Traceback (most recent call last):
    ...
    ValueError: rule summary writes ('results/{movie}/summary.csv',); rotdyn.stages.STAGES says ...
    """
    ran = set()
    for rule in rules:
        if not getattr(rule, "script", None):
            continue
        outputs = tuple(re.sub(r"\{(\w+),[^{}]*\}", r"{\1}", str(path)) for path in rule.output)  # constraints off
        expected = stage(rule.name).outputs
        if outputs != expected:
            raise ValueError(f"rule {rule.name} writes {outputs}; rotdyn.stages.STAGES says {expected}")
        ran.add(rule.name)
    if missing := sorted(set(STAGES) - ran):
        raise ValueError(f"stage(s) {missing} in rotdyn.stages.STAGES have no rule")


# ------------------------------------------------------------------- running
def entry_function(rule: str):
    """The entry function of ``rule``, imported.

    Parameters
    ----------
    rule : str
        A key of :data:`STAGES`.

    Returns
    -------
    callable
        The function named by the stage's ``entry``; it takes the job.

    Examples
    --------
    >>> import rotdyn.simulate
    >>> entry_function("simulate") is rotdyn.simulate.run
    True
    """
    module, _, name = stage(rule).entry.partition(":")
    return getattr(importlib.import_module(module), name)


def run_stage(job: Any) -> None:
    """Run the stage of ``job.rule`` with its log file receiving everything the package logs.

    This is all ``workflow/scripts/stage.py`` does, with Snakemake's ``snakemake`` object.

    Parameters
    ----------
    job : snakemake job or :class:`rotdyn.jobs.Job`
        ``rule`` picks the stage; ``log[0]``, when there is one, receives the
        log (else standard error); the entry function reads the rest.

    Examples
    --------
    >>> import os, tempfile
    >>> from rotdyn.jobs import job
    >>> d = tempfile.mkdtemp()
    >>> sim = {"size": 32, "frames": 2, "count": 1, "seed": 0, "pixel_size_nm": 1.0, "frame_interval_s": 1.0}
    >>> run_stage(job("simulate", output={"movie": os.path.join(d, "movie.nc"), "truth": os.path.join(d, "truth.csv")},
    ...               params={"sim": sim}, wildcards={"kind": "rods"}, log=[os.path.join(d, "simulate.log")]))
    >>> "simulated rods: 2 frames" in open(os.path.join(d, "simulate.log")).read()
    True
    """
    from .logs import log_to

    with log_to(job.log[0] if len(job.log) else None):
        logging.getLogger(PACKAGE).debug("rule %s -> %s", job.rule, stage(job.rule).entry)
        entry_function(job.rule)(job)
