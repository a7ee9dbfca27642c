# Self-checks of each movie's run: warnings that name the likely cause and the setting to change.


rule qc:
    """Particle counts, bad frames, coverage, sizes against training, ensemble disagreement, border, rVAE checks."""
    input:
        movie="results/{movie}/movie.nc",
        probability="results/{movie}/probability.nc",
        particles="results/{movie}/particles.nc",
        patches="results/{movie}/patches.nc",
        latents="results/{movie}/latents.nc",
        training=lambda wildcards: f"results/training/{KIND[wildcards.movie]}.nc",
        members=segment_members,
    output:
        "results/{movie}/qc.json",
    params:
        kind=kind_of,
        train=movie_section("train"),
        locate=movie_section("locate"),
        code=stage_code("qc"),
    log:
        "results/logs/{movie}/qc.log",
    benchmark:
        "results/benchmarks/qc/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"


rule qc_figure:
    """Particles per frame with bad frames marked, sizes against the training particles, the checks."""
    input:
        qc="results/{movie}/qc.json",
        particles="results/{movie}/particles.nc",
        training=lambda wildcards: f"results/training/{KIND[wildcards.movie]}.nc",
    output:
        report("results/{movie}/figures/qc.png", caption="../report/qc.rst", category="Self-check",
               subcategory="{movie}"),
    params:
        locate=movie_section("locate"),
        code=stage_code("qc_figure"),
    log:
        "results/logs/{movie}/qc_figure.log",
    benchmark:
        "results/benchmarks/qc_figure/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stage.py"
