rule locate:
    """Particles in the probability maps: centroid, size, orientation; touching ones split."""
    input:
        "results/{movie}/probability.nc",
        "results/{movie}/movie.nc",
    output:
        "results/{movie}/particles.nc",
    params:
        locate=movie_section("locate"),
        code=stage_code("locate"),
    log:
        "results/logs/{movie}/locate.log",
    benchmark:
        "results/benchmarks/locate/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/stage.py"
