rule link:
    """Trajectories (trackpy), each row carrying the particle's latents; per-track summaries."""
    input:
        "results/{movie}/latents.nc",
    output:
        csv="results/{movie}/tracks.csv",
        nc="results/{movie}/tracks.nc",
        summary="results/{movie}/track_summary.csv",
    params:
        link=movie_section("link"),
        code=stage_code("link"),
    log:
        "results/logs/{movie}/link.log",
    benchmark:
        "results/benchmarks/link/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"
