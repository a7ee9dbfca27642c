# The deep ensemble: one baseline trained to early stopping, then members
# fine-tuned from it, each with its own seed, one job per member.


rule train_baseline:
    input:
        training_set_path(),
    output:
        model="results/ensemble/baseline.pt",
        history="results/ensemble/baseline_history.csv",
    params:
        train=train_params,
        code=stage_code("train_baseline"),
    log:
        "results/logs/ensemble/baseline.log",
    benchmark:
        "results/benchmarks/train_baseline/baseline.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpu"],
        mem_mb=8000,
        runtime=240,
    script:
        "../scripts/stage.py"


rule train_member:
    input:
        data=training_set_path(),
        baseline="results/ensemble/baseline.pt",
    output:
        model="results/ensemble/member_{member}.pt",
        history="results/ensemble/member_{member}_history.csv",
    params:
        train=train_params,
        seed=lambda wildcards: int(wildcards.member),
        code=stage_code("train_member"),
    log:
        "results/logs/ensemble/member_{member}.log",
    benchmark:
        "results/benchmarks/train_member/{member}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpu"],
        mem_mb=8000,
        runtime=120,
    script:
        "../scripts/stage.py"
