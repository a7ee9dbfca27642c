rule summary:
    """The numbers a user wants first: frames, particles per frame, tracks, transitions, settings."""
    input:
        movie="results/{movie}/movie.nc",
        latents="results/{movie}/latents.nc",
        nmf="results/{movie}/nmf.nc",
        tracks="results/{movie}/track_summary.csv",
        qc="results/{movie}/qc.json",
    output:
        report("results/{movie}/summary.json", caption="../report/summary.rst", category="Summary",
               subcategory="{movie}"),
    params:
        settings=run_settings,
        code=stage_code("summary"),
    log:
        "results/logs/{movie}/summary.log",
    benchmark:
        "results/benchmarks/summary/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stage.py"
