rule training_set:
    """Labelled frames from resources/training/<set>/, or simulated ones matched to the particles."""
    input:
        labels_folder,
    output:
        "results/training/{set}.nc",
    params:
        settings=lambda wildcards: config["training_set"],
        labels_root=config["training_root"],
        code=stage_code("training_set"),
    log:
        "results/logs/training/{set}.log",
    benchmark:
        "results/benchmarks/training_set/{set}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"
