# Shared set-up: config validation, movie discovery, the sample sheet and
# the code-version parameters that make a change in the science rerun the
# stages it touches.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The package is imported from this checkout (Snakemake hands this search
# path on to rule scripts), so results come from the code beside them even
# where rotdyn is not installed, as in a --sdm conda environment.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from rotdyn.movies import MOVIE_NAME, discover, movie_settings, read_sample_sheet
from rotdyn.store import source_hash

validate(config, "../../config/schema.yaml")


def _sample_sheet():
    try:
        return read_sample_sheet(config["sample_sheet"])
    except ValueError as exc:
        raise WorkflowError(str(exc))


SHEET = _sample_sheet()
FOUND = discover(
    config["movies_dir"],
    channels={name: row["channel"] for name, row in SHEET.items() if "channel" in row},
    cache_file=".snakemake/rotdyn/probe-cache.json",
)
DEMO = f"demo_{config['demo']}"
MOVIES = dict(FOUND.movies) or {DEMO: f"results/simulated/{config['demo']}/movie.nc"}

if workflow.is_main_process:
    for path, reason in FOUND.skipped.items():
        logger.warning(f"rotdyn: skipping {path}: {reason}")
    for name in sorted(set(SHEET) - set(MOVIES)):
        logger.warning(f"rotdyn: sample sheet {config['sample_sheet']} names {name!r}, which is not in {config['movies_dir']}")
    if not FOUND.movies:
        logger.info(
            f"rotdyn: no movie in {config['movies_dir']}/: running the built-in demo "
            f"'{DEMO}' on a simulated {config['demo']} movie (results/simulated/{config['demo']}/)"
        )


def movie_source(wildcards):
    return MOVIES[wildcards.movie]


def settings_for(wildcards):
    return movie_settings(config["preprocess"], SHEET.get(wildcards.movie))


def code(*modules):
    """Hash of the package modules behind a stage; as a param, edits to them rerun it."""
    return source_hash(*modules)


def all_targets():
    return expand("results/{movie}/movie.nc", movie=sorted(MOVIES))
