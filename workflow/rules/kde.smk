rule kde:
    """Per-frame kernel densities of every latent (the angle on a circle)."""
    input:
        latents="results/{movie}/latents.nc",
        movie="results/{movie}/movie.nc",
        qc="results/{movie}/qc.json",
    output:
        "results/{movie}/kde.nc",
    params:
        kde=config["kde"],
        code=stage_code("kde"),
    log:
        "results/logs/{movie}/kde.log",
    benchmark:
        "results/benchmarks/kde/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stage.py"
