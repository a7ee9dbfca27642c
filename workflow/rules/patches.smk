rule patches:
    """A square window around every particle, from the probability map or the frames."""
    input:
        particles="results/{movie}/particles.nc",
        images=patch_source,
    output:
        "results/{movie}/patches.nc",
    params:
        patches=movie_section("patches"),
        code=stage_code("patches"),
    log:
        "results/logs/{movie}/patches.log",
    benchmark:
        "results/benchmarks/patches/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/stage.py"
