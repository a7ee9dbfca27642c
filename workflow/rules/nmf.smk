rule nmf:
    """NMF of each latent's (value x time) density map; the frame where the system changes."""
    input:
        "results/{movie}/kde.nc",
    output:
        "results/{movie}/nmf.nc",
    params:
        nmf=config["nmf"],
        code=stage_code("nmf"),
    log:
        "results/logs/{movie}/nmf.log",
    benchmark:
        "results/benchmarks/nmf/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stage.py"


rule dynamics_figures:
    """KDE(value, time) maps with NMF weights, endmembers and the transition (paper 000, Fig. 5)."""
    input:
        kde="results/{movie}/kde.nc",
        nmf="results/{movie}/nmf.nc",
    output:
        report(
            directory("results/{movie}/figures/dynamics"),
            patterns=["{name}.png"],
            caption="../report/dynamics.rst",
            category="Population dynamics",
            subcategory="{movie}",
        ),
    params:
        code=stage_code("dynamics_figures"),
    log:
        "results/logs/{movie}/dynamics_figures.log",
    benchmark:
        "results/benchmarks/dynamics_figures/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/stage.py"
