rule simulate:
    """A synthetic movie with ground truth (rods, atoms, cells, spheres): the demo and test movies."""
    output:
        movie="results/simulated/{kind}/movie.nc",
        truth="results/simulated/{kind}/truth.csv",
    params:
        sim=lambda wildcards: config["simulate"][wildcards.kind],
        code=stage_code("simulate"),
    log:
        "results/logs/simulated/{kind}.log",
    benchmark:
        "results/benchmarks/simulate/{kind}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        "../scripts/stage.py"


rule simulations:
    """Both synthetic movies (``snakemake simulations``)."""
    input:
        expand("results/simulated/{kind}/movie.nc", kind=sorted(config["simulate"])),
