# rotdyn: from microscopy movies of moving, rotating particles to physics.
# Stages (one rule file and one script each) are in workflow/rules and
# workflow/scripts; the science is in the importable package src/rotdyn.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    movie=MOVIE_NAME,
    kind="rods|atoms",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"


rule all:
    default_target: True
    input:
        all_targets(),
