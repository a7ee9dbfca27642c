# Shared set-up: config validation, movie discovery and the sample sheet.
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

from rotdyn.locks import recover_stale_lock, record_owner
from rotdyn.movies import MOVIE_NAME, discover, movie_settings, read_sample_sheet
from rotdyn.settings import canonical, rvae_fit_settings, upgrade_config
from rotdyn.stages import check_rules, stage_code

validate(config, "../../config/schema.yaml")
# Renamed values keep working for one release: rewritten here, so params compare equal, with a warning.
DEPRECATIONS = upgrade_config(config)
# Snakemake compares params by their text, and the key order follows the config
# files (an extra --configfile puts its keys first): sorted once here, the same
# settings in another order rerun nothing.
config.update(canonical(config))


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
        logger.warning(f"rotdyn: sample sheet {config['sample_sheet']} names {name!r}, which is not in {config['movies_dir']}")
    if not FOUND.movies:
        logger.info(
            f"rotdyn: no movie in {config['movies_dir']}/: running the built-in demo "
            f"'{DEMO}' on a simulated {config['demo']} movie (results/simulated/{config['demo']}/)"
        )


def movie_source(wildcards):
    return MOVIES[wildcards.movie]


def settings_for(wildcards):
    row = FOUND.sheet_row(SHEET, wildcards.movie)  # by the movie's name, else its file's stem
    return canonical(movie_settings(config["preprocess"], row))  # sheet columns sorted too


def training_set_path():
    return f"results/training/{config['training_set']['set']}.nc"


def labels_folder(wildcards):
    """The labelled folder, when there is one, so new labels retrain the ensemble."""
    folder = Path(config["training_root"]) / wildcards.set
    return [str(folder)] if folder.is_dir() and config["training_set"]["source"] != "simulate" else []


def train_params(wildcards):
    """Training settings without the ensemble size: adding members keeps the others."""
    return {key: value for key, value in config["train"].items() if key not in ("members", "gpu", "threads")}


def member_paths():
    return expand("results/ensemble/member_{member}.pt", member=range(config["train"]["members"]))


def patch_source(wildcards):
    name = "probability" if config["patches"]["source"] == "probability" else "movie"
    return f"results/{wildcards.movie}/{name}.nc"


def rvae_model(wildcards):
    """The rVAE that encodes this movie: its own, or the one pooled over all movies."""
    name = "pooled" if config["rvae"]["scope"] == "pooled" else wildcards.movie
    return f"results/rvae/{name}/model.pt"


def rvae_training_patches(wildcards):
    movies = sorted(MOVIES) if wildcards.model == "pooled" else [wildcards.model]
    return expand("results/{movie}/patches.nc", movie=movies)


def rvae_params(wildcards):
    """rVAE settings that change the model (not where or how fast it runs), "auto" resolved."""
    return rvae_fit_settings(config["rvae"], config["patches"]["source"])


def run_settings(wildcards):
    """The settings summary.json records, "auto" resolved: what ran."""
    settings = {name: config[name] for name in ("kde", "link", "locate", "nmf", "patches", "rvae", "train")}
    settings["rvae"] = {**config["rvae"], **rvae_params(wildcards)}  # a copy: config stays as given
    return settings


def all_targets():
    return expand(
        [
            "results/{movie}/summary.json",
            "results/{movie}/figures/rvae_manifold.png",
            "results/{movie}/figures/dynamics",
            "results/{movie}/figures/tracks.png",
        ],
        movie=sorted(MOVIES),
    )
