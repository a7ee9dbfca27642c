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
    """Rewrite a config of the last release in place; return one warning per change.

    Renamed values (:data:`RENAMED_VALUES`, in the global sections and in
    every particle kind's) become their new names; the single training set's
    ``training_set.simulate`` moves to the default particle kind, and its
    ``training_set.set`` (training sets are now named after their kind) is
    dropped. Runs before the schema check, so old configs keep working for one
    release.

    Parameters
    ----------
    config : dict
        The workflow's configuration; changed in place.

    Returns
    -------
    list of str
        One warning per change; empty when the config is current.

    Examples
    --------
    >>> config = {"rvae": {"rotation_prior": "vonmises"}}
    >>> upgrade_config(config)
    ["config rvae.rotation_prior: 'vonmises' is deprecated (the uniform prior); use 'uniform'"]
    >>> config["rvae"]["rotation_prior"], upgrade_config(config)
    ('uniform', [])
    >>> config = {"training_set": {"set": "rods", "simulate": {"length": 20}},
    ...           "particles": {"default": "rods", "kinds": {"rods": {"training_set": {"simulate": {"kind": "rods"}}}}}}
    >>> len(upgrade_config(config)), config["particles"]["kinds"]["rods"]["training_set"]["simulate"]
    (2, {'kind': 'rods', 'length': 20})
    """
    messages = _move_training_simulation(config)
    kinds = (config.get("particles") or {}).get("kinds") or {}
    places = [("", config)] + [(f"particles.kinds.{name}.", kind or {}) for name, kind in kinds.items()]
    for prefix, holder in places:
        for (section, key), renames in RENAMED_VALUES.items():
            value = (holder.get(section) or {}).get(key)
            if value in renames:
                holder[section][key] = renames[value]
                messages.append(f"config {prefix}{section}.{key}: {value!r} is deprecated "
                                f"(the {renames[value]} prior); use {renames[value]!r}")
    return messages


def _move_training_simulation(config: dict) -> list[str]:
    """The last release's one ``training_set.simulate`` becomes the default kind's; ``set`` goes."""
    old = config.get("training_set") or {}
    messages = []
    if "set" in old:
        messages.append(f"config training_set.set ({old.pop('set')!r}) is no longer used: training sets are "
                        f"named after their particle kind (results/training/<kind>.nc)")
    if "simulate" in old and "particles" in config:
        default = config["particles"]["default"]
        kind = config["particles"]["kinds"].setdefault(default, {}) or {}
        config["particles"]["kinds"][default] = kind
        target = kind.setdefault("training_set", {}).setdefault("simulate", {})
        target.update(old.pop("simulate") or {})
        messages.append(f"config training_set.simulate is deprecated: it now sets the default particle kind's "
                        f"particles.kinds.{default}.training_set.simulate")
    return messages


def rvae_fit_settings(rvae: dict, source: str) -> dict:
    """The ``rvae`` config section's model settings, "auto" resolved for windows cut from ``source``.

    Parameters
    ----------
    rvae : dict
        The ``rvae`` config section.
    source : {"frames", "probability"}
        Where the windows are cut (``patches.source``).

    Returns
    -------
    dict
        The model and fit settings (the section less :data:`RVAE_NOT_MODEL`), each ``"auto"`` replaced by
        :data:`RVAE_AUTO`'s value for ``source``.

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

    Parameters
    ----------
    value : Any
        A config value: dicts and lists are walked, anything else kept.

    Returns
    -------
    Any
        A copy of the dicts and lists, keys sorted; other values as they were.

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
