rule training_set:
    """A particle kind's labelled frames (resources/training/<kind>/), or simulated ones matched to the particles."""
    input:
        labels=labels_folder,
        movie=reference_movie,
    output:
        "results/training/{kind}.nc",
    params:
        settings=training_set_params,
        measure=lambda wildcards: measured_keys(wildcards.kind),
        labels_root=config["training_root"],
        code=stage_code("training_set"),
    log:
        "results/logs/training/{kind}.log",
    benchmark:
        "results/benchmarks/training_set/{kind}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"
