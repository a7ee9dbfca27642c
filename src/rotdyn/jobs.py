"""What a stage's entry function is given: a Snakemake job, or a :class:`Job` built in Python.

Entry functions (see :mod:`rotdyn.stages`) read ``job.input``, ``job.output``,
``job.params``, ``job.wildcards``, ``job.threads``, ``job.resources`` and
``job.log`` -- the attributes of the ``snakemake`` object Snakemake hands a
rule script. Kept apart from the stage map so that editing the map reruns
nothing: a stage's rerun key covers the modules its entry function imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class Named(list):
    """A list whose items can also be read by name, as Snakemake's ``input`` and ``output``.

    Parameters
    ----------
    items : dict or iterable
        A dict gives the items in its order, each also readable as an
        attribute under its key; any other iterable gives unnamed items.

    Examples
    --------
    >>> files = Named({"movie": "a.nc", "truth": "a.csv"})
    >>> files[0], files.truth
    ('a.nc', 'a.csv')
    """

    def __init__(self, items=()):
        if isinstance(items, dict):
            super().__init__(items.values())
            self.__dict__.update(items)
        else:
            super().__init__(items)


@dataclass
class Job:
    """What an entry function is given: a Snakemake job's files and settings.

    Inside the workflow the entry function gets Snakemake's own ``snakemake``
    object, which has the same attributes; build a :class:`Job` to run a stage
    from Python (:func:`job` fills the lists).

    Parameters
    ----------
    rule : str
        The rule's name, a key of :data:`rotdyn.stages.STAGES`.
    input, output, params, wildcards, log, resources : Named
        As Snakemake's job has them (empty by default).
    threads : int
        Threads the job may use.
    config : dict
        The workflow's configuration.

    Examples
    --------
    >>> j = Job("link", input=Named({"latents": "l.nc"}), threads=2)
    >>> j.input.latents, j.threads, len(j.output)
    ('l.nc', 2, 0)
    >>> Job("kde").output is Job("kde").output  # every job its own lists
    False
    """

    rule: str
    input: Named = field(default_factory=Named)
    output: Named = field(default_factory=Named)
    params: Named = field(default_factory=Named)
    wildcards: Named = field(default_factory=Named)
    log: Named = field(default_factory=Named)
    threads: int = 1
    resources: Named = field(default_factory=Named)
    config: dict = field(default_factory=dict)


def job(rule: str, *, input=(), output=(), params=None, wildcards=None, log=(), threads: int = 1,
        resources=None, config=None) -> Job:
    """A :class:`Job` for ``rule`` from plain lists and dicts.

    Parameters
    ----------
    rule : str
        The rule's name.
    input, output, log : dict or iterable
        Files, by name (dict) or in order.
    params, wildcards, resources : dict or None
        By name; ``resources.gpu`` is 0 unless given.
    threads : int
        Threads the job may use.
    config : dict or None
        The workflow's configuration (copied).

    Returns
    -------
    Job

    Examples
    --------
    >>> j = job("kde", input={"latents": "l.nc", "movie": "m.nc"}, output=["kde.nc"])
    >>> j.input.latents, j.output[0], j.resources.gpu
    ('l.nc', 'kde.nc', 0)
    """
    return Job(rule, Named(input), Named(output), Named(params or {}), Named(wildcards or {}), Named(log),
               threads, Named({"gpu": 0, **(resources or {})}), dict(config or {}))


def device(job) -> str:
    """Where a job runs its network: ``"auto"`` (a GPU when one is there) if it asked for a GPU, else CPU.

    Parameters
    ----------
    job : snakemake job or Job
        Its ``resources.gpu`` (missing = 0) says whether it asked for a GPU.

    Returns
    -------
    str
        ``"auto"`` or ``"cpu"``.

    Examples
    --------
    >>> device(job("segment", resources={"gpu": 1})), device(job("segment"))
    ('auto', 'cpu')
    """
    return "auto" if getattr(job.resources, "gpu", 0) else "cpu"
