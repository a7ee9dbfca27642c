rule segment:
    """Every frame through every ensemble member: probability mean and variance."""
    input:
        movie="results/{movie}/movie.nc",
        members=segment_members,
    output:
        "results/{movie}/probability.nc",
    params:
        batch_size=config["segment"]["batch_size"],
        code=stage_code("segment"),
    log:
        "results/logs/{movie}/segment.log",
    benchmark:
        "results/benchmarks/segment/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: config["segment"]["threads"]
    resources:
        gpu=config["segment"]["gpu"],
        mem_mb=8000,
        runtime=120,
    script:
        "../scripts/stage.py"
