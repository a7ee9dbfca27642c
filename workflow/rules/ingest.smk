rule ingest:
    """Read a movie in any supported format, preprocess it, write movie.nc."""
    input:
        movie_source,
    output:
        "results/{movie}/movie.nc",
    params:
        settings=settings_for,
        code=stage_code("ingest"),
    log:
        "results/logs/{movie}/ingest.log",
    benchmark:
        "results/benchmarks/ingest/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"


rule movies:
    """Ingest every movie and stop there (``snakemake movies``)."""
    input:
        expand("results/{movie}/movie.nc", movie=sorted(MOVIES)),
