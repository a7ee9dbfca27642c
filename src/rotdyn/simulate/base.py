"""What every simulator shares: the result type, parameter tables and their checks.

Each simulator's parameters are one dataclass (a subclass of :class:`Params`)
whose fields carry their default and allowed range (:func:`param`); creating
an instance checks and converts every value and fills the defaults that
depend on other parameters. The same table drives the simulator's signature,
:func:`rotdyn.simulate.check_params` and the ``params`` recorded with the movie.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

TRUTH_COLUMNS = ["frame", "id", "x", "y", "angle", "class"]


@dataclass
class Simulation:
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    frames : ndarray, (T, H, W) float32
        The noisy movie.
    labels : ndarray, (T, H, W) uint8
        Semantic class per pixel: 0 background, 1.. the classes of ``class_names``.
    instances : ndarray, (T, H, W) int32
        0 background, else the truth ``id`` of the particle covering the pixel
        (where particles overlap, the one drawn on top).
    truth : DataFrame
        One row per particle per frame: ``frame, id, x, y, angle, class`` plus
        kind-specific extra columns.
    params : dict
        Every parameter used, after defaults were resolved (JSON-serialisable),
        plus ``kind``; ``simulate(**params)`` reproduces the movie.
    class_names : list of str
        Name of each label value, starting with ``"background"``.

    Examples
    --------
    >>> from rotdyn.simulate import simulate
    >>> sim = simulate("rods", size=32, frames=2, count=1, pair_fraction=0, seed=0)
    >>> sim.frames.shape, sim.labels.dtype, sim.class_names, sim.truth["id"].tolist()
    ((2, 32, 32), dtype('uint8'), ['background', 'rod'], [1, 1])
    """

    frames: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    truth: pd.DataFrame
    params: dict
    class_names: list[str]


class ParameterError(ValueError, TypeError):
    """A simulation parameter that is unknown or has a bad value.

    Both a ValueError and a TypeError, so callers that catch TypeError for
    unknown keyword arguments (as Python raises them) still catch it.

    Parameters
    ----------
    message : str
        What is wrong, naming the parameter.

    Examples
    --------
    >>> from rotdyn.simulate import simulate
    >>> try:
    ...     simulate("rods", colour="red")
    ... except TypeError as exc:  # caught as Python's own unknown-keyword error is
    ...     print(type(exc).__name__, isinstance(exc, ValueError))
    ParameterError True
    """


# ----------------------------------------------------------------- numbers
def number(name, value, minimum=-math.inf, maximum=math.inf, strict=False):
    """``value`` as a finite float in range, else ValueError naming ``name``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was given (a bool is not a number).
    minimum, maximum : float
        The allowed range, inclusive.
    strict : bool
        Exclude ``minimum`` itself.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming ``name``, the range and the value.

    Examples
    --------
    >>> number("noise", 1)
    1.0
    >>> number("noise", -1, 0)
    Traceback (most recent call last):
    ...
    ValueError: noise must be >= 0 and <= inf, got -1
    """
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    low_bad = v <= minimum if strict else v < minimum
    if not math.isfinite(v) or low_bad or v > maximum:
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum} and <= {maximum}, got {value!r}")
    return v


def integer(name, value, minimum=-math.inf, maximum=math.inf):
    """``value`` as an int in range (integral floats such as 128.0 accepted).

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was given.
    minimum, maximum : float
        The allowed range, inclusive.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Naming ``name`` when ``value`` is not an integral number in range.

    Examples
    --------
    >>> integer("frames", 128.0)
    128
    >>> integer("frames", 2.5)
    Traceback (most recent call last):
    ...
    ValueError: frames must be an integer, got 2.5
    """
    v = number(name, value, minimum, maximum)
    if not v.is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(v)


def wrap(angle):
    """Angles wrapped to [-pi, pi).

    Parameters
    ----------
    angle : array_like
        Angles, rad.

    Returns
    -------
    ndarray
        Float angles in [-pi, pi).

    Examples
    --------
    >>> wrap([np.pi, 1.5 * np.pi, -0.5, 2 * np.pi]).round(4).tolist()
    [-3.1416, -1.5708, -0.5, 0.0]
    """
    return (np.asarray(angle, dtype=float) + np.pi) % (2 * np.pi) - np.pi


def stream(seed: int, purpose: int) -> np.random.Generator:
    """A random generator for one ``purpose`` (1, 2, ...), independent of ``default_rng(seed)``.

    Imaging effects draw from their own streams, so switching one on never
    changes the particles (drawn from ``default_rng(seed)``) or another effect.

    Parameters
    ----------
    seed : int
        The simulation's seed.
    purpose : int
        Which stream (the imaging uses 1 for the static fields, 2 for the noise).

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> stream(7, 1).random() == stream(7, 1).random()  # reproducible
    True
    >>> len({stream(7, 1).random(), stream(7, 2).random(), np.random.default_rng(7).random()})  # independent
    3
    """
    return np.random.default_rng([seed, purpose])


# --------------------------------------------------------- parameter tables
def param(default, low=-math.inf, high=math.inf, *, strict=False, integer=False, unset=None, choices=None,
          optional=False):
    """A field of a :class:`Params` table: its default and the values it may take.

    Parameters
    ----------
    default : the default value.
    low, high : the allowed range (inclusive); either may name another
        parameter, or be a function of the checked parameters (a dict).
    strict : exclude ``low`` itself.
    integer : the value must be integral (stored as int).
    unset : function of the checked parameters that computes the value
        when it is None.
    choices : the allowed values, for a text parameter.
    optional : None is a value too (the feature is off).

    Returns
    -------
    dataclasses.Field

    Examples
    --------
    A table whose ``height`` is at least ``width`` and, when not given, twice it:

    >>> @dataclass
    ... class Box(Params):
    ...     width: float = param(2.0, 0, strict=True)
    ...     height: float | None = param(None, "width", unset=lambda p: 2 * p["width"])
    >>> Box(width=3).height
    6.0
    >>> Box(width=3, height=1)
    Traceback (most recent call last):
    ...
    ValueError: height must be >= 3.0 and <= inf, got 1
    >>> Box(width=0)
    Traceback (most recent call last):
    ...
    ValueError: width must be > 0 and <= inf, got 0
    """
    spec = dict(low=low, high=high, strict=strict, integer=integer, unset=unset, choices=choices, optional=optional)
    return field(default=default, metadata=spec)


def _depends(spec) -> bool:
    return spec["unset"] is not None or any(not isinstance(spec[b], (int, float)) for b in ("low", "high"))


def _bound(b, checked):
    if isinstance(b, str):
        return checked[b]
    return b(checked) if callable(b) else b


def _check(name, value, spec, checked):
    """``value`` of parameter ``name`` checked against its :func:`param` spec."""
    if value is None and spec["optional"]:
        return None
    if spec["choices"] is not None:
        if value not in spec["choices"]:
            raise ValueError(f"{name} must be one of {list(spec['choices'])}, got {value!r}")
        return value
    low, high = _bound(spec["low"], checked), _bound(spec["high"], checked)
    if spec["integer"]:
        return integer(name, value, low, high)
    return number(name, value, low, high, strict=spec["strict"])


@dataclass
class Params:
    """Base of every simulator's parameter table (see :func:`param`).

    ``__post_init__`` checks the fields with fixed bounds first, then fills
    the None defaults, then checks the fields whose bounds name others;
    :meth:`validate` adds the checks that involve several fields.

    Parameters
    ----------
    **fields
        A subclass's fields, each declared with :func:`param`.

    Raises
    ------
    ValueError
        Naming the parameter whose value is out of range or not a number.

    Examples
    --------
    >>> @dataclass
    ... class Disc(Params):
    ...     size: int = param(64, 1, integer=True)
    ...     radius: float = param(3.0, 0)
    ...     def validate(self):
    ...         if 2 * self.radius >= self.size:
    ...             raise ValueError(f"radius={self.radius} does not fit in size={self.size}")
    >>> Disc(size=32.0, radius=4).as_dict()  # converted: an int and a float
    {'size': 32, 'radius': 4.0}
    >>> Disc(size=8, radius=4)
    Traceback (most recent call last):
    ...
    ValueError: radius=4.0 does not fit in size=8
    """

    def __post_init__(self):
        specs = fields(self)
        checked = {}
        for f in specs:
            if not _depends(f.metadata):
                checked[f.name] = _check(f.name, getattr(self, f.name), f.metadata, checked)
        for f in specs:
            if f.name not in checked:
                value = getattr(self, f.name)
                if value is None and f.metadata["unset"] is not None:
                    value = f.metadata["unset"](checked)
                checked[f.name] = _check(f.name, value, f.metadata, checked)
        for f in specs:
            setattr(self, f.name, checked[f.name])
        self.validate()

    def validate(self):
        """Checks that involve several parameters (raise ValueError); none in the base.

        Called once every field has been checked and filled.

        Raises
        ------
        ValueError
            Naming the parameters that do not fit together.

        Examples
        --------
        >>> from rotdyn.simulate import RodParams
        >>> RodParams(size=20)
        Traceback (most recent call last):
        ...
        ValueError: size=20 leaves no room for rods of length 16.0 (need size > length + 5)
        """

    def as_dict(self) -> dict:
        """The parameters in table order.

        Returns
        -------
        dict
            Field name -> checked value, the None defaults filled.

        Examples
        --------
        >>> from rotdyn.simulate import RodParams
        >>> params = RodParams(noise=0.4).as_dict()
        >>> list(params)[:3], params["line_noise"]
        (['size', 'frames', 'count'], 0.2)
        """
        return asdict(self)


def names(table: type[Params]) -> list[str]:
    """The parameter names of ``table``, in order.

    Parameters
    ----------
    table : type
        A :class:`Params` subclass.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from rotdyn.simulate import SphereParams
    >>> names(SphereParams)[:4]
    ['size', 'frames', 'count', 'diameter']
    """
    return [f.name for f in fields(table)]
