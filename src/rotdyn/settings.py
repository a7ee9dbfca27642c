"""Config settings resolved when the workflow is planned.

Kept free of heavy imports (no torch): the Snakefile imports it in every
Snakemake process, cluster jobs included.
"""
from __future__ import annotations

from typing import Any

# rVAE config keys that do not change the model (where and how fast it runs, figures).
RVAE_NOT_MODEL = ("scope", "gpu", "threads", "manifold_grid", "checkpoint_every")
# "auto" rVAE settings follow the windows: frames keep the head-tail contrast
# (polarity, Gaussian pixels); probability maps are head-tail symmetric and lie in [0, 1].
RVAE_AUTO = {
    "frames": {"likelihood": "gaussian", "polarity": True},
    "probability": {"likelihood": "bernoulli", "polarity": False},
}
# Config values renamed in this release: (section, key) -> {old: new}. They work, with a warning, for one release.
RENAMED_VALUES = {("rvae", "rotation_prior"): {"vonmises": "uniform"}}


def upgrade_config(config: dict) -> list[str]:
    """Rewrite renamed config values in place (old name -> new); return one warning per rewrite.

    Examples
    --------
    >>> config = {"rvae": {"rotation_prior": "vonmises"}}
    >>> upgrade_config(config)
    ["config rvae.rotation_prior: 'vonmises' is deprecated (the uniform prior); use 'uniform'"]
    >>> config["rvae"]["rotation_prior"], upgrade_config(config)
    ('uniform', [])
    """
    messages = []
    for (section, key), renames in RENAMED_VALUES.items():
        value = config.get(section, {}).get(key)
        if value in renames:
            config[section][key] = renames[value]
            messages.append(f"config {section}.{key}: {value!r} is deprecated (the {renames[value]} prior); "
                            f"use {renames[value]!r}")
    return messages


def rvae_fit_settings(rvae: dict, source: str) -> dict:
    """The ``rvae`` config section's model settings, "auto" resolved for windows cut from ``source``.

    Parameters
    ----------
    rvae : dict
        The ``rvae`` config section.
    source : {"frames", "probability"}
        Where the windows are cut (``patches.source``).

    Examples
    --------
    >>> rvae_fit_settings({"scope": "movie", "likelihood": "auto", "polarity": "auto", "epochs": 5}, "frames")
    {'likelihood': 'gaussian', 'polarity': True, 'epochs': 5}
    """
    settings = {key: value for key, value in rvae.items() if key not in RVAE_NOT_MODEL}
    for key, value in RVAE_AUTO[source].items():
        if settings.get(key, "auto") == "auto":
            settings[key] = value
    return settings


def canonical(value: Any) -> Any:
    """``value`` with every dict's keys sorted, recursively (the Snakefile sorts the config with it).

    Snakemake compares params by their text, and the order of the keys follows
    the config files (a --configfile puts its keys first): the same settings
    in another order must not rerun anything.

    Examples
    --------
    >>> canonical({"b": 1, "a": {"d": [{"y": 0, "x": 1}], "c": 2}})
    {'a': {'c': 2, 'd': [{'x': 1, 'y': 0}]}, 'b': 1}
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value
