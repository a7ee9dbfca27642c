"""Every rule's script: run the stage the stage map names for this rule (rotdyn.stages)."""
from rotdyn.stages import run_stage

run_stage(snakemake)  # noqa: F821 (Snakemake defines it)
