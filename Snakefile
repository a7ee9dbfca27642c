# rotdyn: from microscopy movies of moving, rotating particles to physics.
# The rules are in workflow/rules; each runs the package function that the
# stage map (src/rotdyn/stages.py) names for it, through workflow/scripts/stage.py.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    movie=MOVIE_NAME,
    kind="[A-Za-z][A-Za-z0-9_]*",
    member=r"\d+",
    model=f"{POOLED}|{MOVIE_NAME}",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/training_set.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/locate.smk"
include: "workflow/rules/patches.smk"
include: "workflow/rules/rvae.smk"
include: "workflow/rules/kde.smk"
include: "workflow/rules/nmf.smk"
include: "workflow/rules/link.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/summary.smk"


check_rules(workflow.rules)  # every stage rule writes what the stage map says


rule all:
    default_target: True
    input:
        all_targets(),
