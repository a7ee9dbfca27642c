# Shared set-up: config validation, particle kinds, movie discovery and the sample sheet.
# Each rule runs the entry function rotdyn.stages.STAGES names for it, and
# carries stage_code(rule), a hash of every module that function imports, so
# that an edit to the code a stage runs reruns it and what follows.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The package is imported from this checkout (Snakemake hands this search
# path on to rule scripts), so results come from the code beside them even
# where rotdyn is not installed, as in a --sdm conda environment.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from rotdyn.kinds import (CALIBRATION_KEYS, POOLED, check_kinds, kind_names, kind_settings, movie_contrast, movie_kind,
                          particle_size, simulation, unset_sizes)
from rotdyn.locks import recover_stale_lock, record_owner
from rotdyn.movies import MOVIE_NAME, discover, movie_settings, read_sample_sheet
from rotdyn.settings import canonical, rvae_fit_settings, upgrade_config
from rotdyn.simulate import check_params
from rotdyn.stages import check_rules, stage_code

# A config of the last release is rewritten first (renamed values, the one training set), with a warning.
DEPRECATIONS = upgrade_config(config)
validate(config, "../../config/schema.yaml")
# Snakemake compares params by their text, and the key order follows the config
# files (an extra --configfile puts its keys first): sorted once here, the same
# settings in another order rerun nothing.
config.update(canonical(config))
try:
    check_kinds(config, check_params)  # each kind's simulator keys against its simulator
except ValueError as exc:
    raise WorkflowError(f"Error validating config: {exc}")
for _name, _sim in config["simulate"].items():  # the demo movies' simulator keys too
    try:
        check_params(_name, {k: v for k, v in _sim.items() if k not in CALIBRATION_KEYS})
    except ValueError as exc:
        raise WorkflowError(f"Error validating config: simulate.{_name}: {exc}")
# Everything that differs by particle kind: the kind's overrides merged over the global sections.
KIND_SETTINGS = {kind: canonical(kind_settings(config, kind)) for kind in kind_names(config)}


def _sample_sheet():
    try:
        return read_sample_sheet(config["sample_sheet"])
    except ValueError as exc:
        raise WorkflowError(str(exc))


SHEET = _sample_sheet()
FOUND = discover(
    config["movies_dir"],
    sheet=SHEET,
    cache_file=".snakemake/rotdyn/probe-cache.json",
)
DEMO = f"demo_{config['demo']}"
MOVIES = dict(FOUND.movies) or {DEMO: f"results/simulated/{config['demo']}/movie.nc"}


def _kinds_of_movies():
    """Each movie's particle kind (sample sheet ``particles``, else the default; the demo's is its simulator)."""
    if not FOUND.movies:
        return {DEMO: config["demo"] if config["demo"] in KIND_SETTINGS else config["particles"]["default"]}
    try:
        return {name: movie_kind(config, FOUND.sheet_row(SHEET, name), name) for name in MOVIES}
    except ValueError as exc:
        raise WorkflowError(f"sample sheet {config['sample_sheet']}: {exc}")


KIND = _kinds_of_movies()

if workflow.is_main_process:
    # A run killed outright leaves its lock; the next one takes it over (rotdyn.locks).
    if (stale := recover_stale_lock()):
        logger.warning(f"rotdyn: {stale}")
    record_owner()
    for message in DEPRECATIONS:
        logger.warning(f"rotdyn: {message}")
    for level, note in FOUND.notes():  # renamed movies (path -> name), clashes of names, skipped files
        getattr(logger, level)(f"rotdyn: {note}")
    for name in FOUND.unused_rows(SHEET, MOVIES):
        hint = f" (did you mean {close!r}?)" if (close := FOUND.closest(name)) else ""
        logger.warning(f"rotdyn: sample sheet {config['sample_sheet']} names {name!r}, which is not in "
                       f"{config['movies_dir']}{hint}")
    for name in sorted(MOVIES):
        logger.info(f"rotdyn: {name}: particles '{KIND[name]}'")
    if not FOUND.movies:
        logger.info(
            f"rotdyn: no movie in {config['movies_dir']}/: running the built-in demo "
            f"'{DEMO}' on a simulated {config['demo']} movie (results/simulated/{config['demo']}/)"
        )


def movie_source(wildcards):
    return MOVIES[wildcards.movie]


def kind_of(wildcards):
    return KIND[wildcards.movie]


def settings_for(wildcards):
    """Preprocessing and contrast of a movie: config defaults, its kind, its sample-sheet row."""
    row = FOUND.sheet_row(SHEET, wildcards.movie)  # by the movie's name, else its file's stem
    settings = movie_settings(config["preprocess"], row)
    settings.pop("particles", None)  # the kind picks the ensemble, not the preprocessing
    if settings.get("average_frames") == 1:  # off: left out, so the movies ingested before it existed stay done
        settings.pop("average_frames")
    kind = KIND[wildcards.movie]
    settings["contrast"] = movie_contrast(config, kind, row)
    if settings["contrast"] == "auto":  # decided from the movie with the kind's particle as template
        settings["particle"] = particle_size(KIND_SETTINGS[kind], check_params)
    if (keys := measured_keys(kind)):  # sizes the kind leaves unset: measured on its movies
        settings["measure"] = {"simulator": simulation(KIND_SETTINGS[kind]).get("kind", kind), "keys": keys}
    return canonical(settings)  # sheet columns sorted too


def _labels(kind):
    settings = KIND_SETTINGS[kind]["training_set"]
    return Path(settings.get("labels") or Path(config["training_root"]) / kind)


def measured_keys(kind):
    """Simulator keys the kind leaves unset, measured on its first movie; none when it trains on labels."""
    settings = KIND_SETTINGS[kind]
    if settings["training_set"]["source"] == "auto" and _labels(kind).is_dir() and any(_labels(kind).iterdir()):
        return []
    return unset_sizes(settings)


def reference_movie(wildcards):
    """The kind's first movie (by name), whose measured sizes fill the training simulation's unset keys."""
    movies = sorted(name for name, kind in KIND.items() if kind == wildcards.kind)
    return [f"results/{movies[0]}/movie.nc"] if measured_keys(wildcards.kind) and movies else []


def training_set_params(wildcards):
    return KIND_SETTINGS[wildcards.kind]["training_set"]


def labels_folder(wildcards):
    """The kind's labelled folder, when there is one, so new labels retrain its ensemble."""
    folder = _labels(wildcards.kind)
    return [str(folder)] if folder.is_dir() and KIND_SETTINGS[wildcards.kind]["training_set"]["source"] != "simulate" else []


def train_params(wildcards):
    """A member's training settings without the ensemble size: adding members keeps the others."""
    train = KIND_SETTINGS[wildcards.kind]["train"]
    return {key: value for key, value in train.items() if key not in ("members", "gpu", "threads")}


def baseline_params(wildcards):
    """The baseline's training settings: not the members' (their number, their fine-tuning epochs)."""
    return {key: value for key, value in train_params(wildcards).items() if key != "member_epochs"}


def member_paths(kind):
    members = range(KIND_SETTINGS[kind]["train"]["members"])
    return expand("results/ensemble/{kind}/member_{member}.pt", kind=kind, member=members)


def segment_members(wildcards):
    return member_paths(KIND[wildcards.movie])


def movie_section(name):
    """A function of the wildcards giving the movie's kind's section ``name`` (params of a movie rule)."""
    return lambda wildcards: KIND_SETTINGS[KIND[wildcards.movie]][name]


def patch_source(wildcards):
    source = KIND_SETTINGS[KIND[wildcards.movie]]["patches"]["source"]
    return f"results/{wildcards.movie}/{'probability' if source == 'probability' else 'movie'}.nc"


def rvae_model(wildcards):
    """The rVAE that encodes this movie: its own, or the one pooled over its kind's movies."""
    kind = KIND[wildcards.movie]
    name = POOLED if KIND_SETTINGS[kind]["rvae"]["scope"] == "pooled" else wildcards.movie
    return f"results/rvae/{kind}/{name}/model.pt"


def rvae_training_patches(wildcards):
    if wildcards.model == POOLED:
        movies = sorted(name for name, kind in KIND.items() if kind == wildcards.kind)
    else:
        movies = [wildcards.model]
    return expand("results/{movie}/patches.nc", movie=movies)


def rvae_params(wildcards):
    """rVAE settings that change the model (not where or how fast it runs), "auto" resolved."""
    settings = KIND_SETTINGS[wildcards.kind]
    return rvae_fit_settings(settings["rvae"], settings["patches"]["source"])


def kind_resource(section, key):
    """A kind's ``section.key`` (threads, gpu) for a rule with a ``kind`` wildcard."""
    return lambda wildcards: KIND_SETTINGS[wildcards.kind][section][key]


def run_settings(wildcards):
    """The settings summary.json records, "auto" resolved: what ran, with the movie's kind."""
    kind = KIND[wildcards.movie]
    settings = {name: config[name] for name in ("kde", "nmf")}
    own = KIND_SETTINGS[kind]
    settings.update({name: own[name] for name in ("locate", "patches", "train", "training_set", "link")})
    settings["rvae"] = {**own["rvae"], **rvae_fit_settings(own["rvae"], own["patches"]["source"])}
    settings["particles"] = {"kind": kind, "description": own["description"]}
    return settings


def all_targets():
    return expand(
        [
            "results/{movie}/summary.json",
            "results/{movie}/figures/rvae_manifold.png",
            "results/{movie}/figures/dynamics",
            "results/{movie}/figures/tracks.png",
            "results/{movie}/figures/qc.png",
        ],
        movie=sorted(MOVIES),
    )
