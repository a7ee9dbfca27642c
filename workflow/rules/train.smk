# The deep ensemble of each particle kind: one baseline trained to early stopping,
# then members fine-tuned from it, each with its own seed, one job per member.


rule train_baseline:
    input:
        "results/training/{kind}.nc",
    output:
        model="results/ensemble/{kind}/baseline.pt",
        history="results/ensemble/{kind}/baseline_history.csv",
    params:
        train=baseline_params,
        code=stage_code("train_baseline"),
    log:
        "results/logs/ensemble/{kind}/baseline.log",
    benchmark:
        "results/benchmarks/train_baseline/{kind}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: kind_resource("train", "threads")
    resources:
        gpu=kind_resource("train", "gpu"),
        mem_mb=8000,
        runtime=240,
    script:
        "../scripts/stage.py"


rule train_member:
    input:
        data="results/training/{kind}.nc",
        baseline="results/ensemble/{kind}/baseline.pt",
    output:
        model="results/ensemble/{kind}/member_{member}.pt",
        history="results/ensemble/{kind}/member_{member}_history.csv",
    params:
        train=train_params,
        seed=lambda wildcards: int(wildcards.member),
        code=stage_code("train_member"),
    log:
        "results/logs/ensemble/{kind}/member_{member}.log",
    benchmark:
        "results/benchmarks/train_member/{kind}_{member}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: kind_resource("train", "threads")
    resources:
        gpu=kind_resource("train", "gpu"),
        mem_mb=8000,
        runtime=120,
    script:
        "../scripts/stage.py"
