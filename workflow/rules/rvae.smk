# The rotationally invariant VAE: one model per movie (rvae.scope: movie) or
# one model pooled over all movies of a particle kind, so that their latents are comparable.


rule fit_rvae:
    input:
        rvae_training_patches,
    output:
        model="results/rvae/{kind}/{model}/model.pt",
        history="results/rvae/{kind}/{model}/history.csv",
    params:
        rvae=rvae_params,
        checkpoint="results/rvae/{kind}/{model}/checkpoint.pt",
        code=stage_code("fit_rvae"),
    log:
        "results/logs/rvae/{kind}/{model}.log",
    benchmark:
        "results/benchmarks/fit_rvae/{kind}/{model}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: kind_resource("rvae", "threads")
    resources:
        gpu=kind_resource("rvae", "gpu"),
        mem_mb=8000,
        runtime=600,
    script:
        "../scripts/stage.py"


rule encode:
    """Latent angle, offsets and content variables of every particle's window."""
    input:
        patches="results/{movie}/patches.nc",
        model=rvae_model,
    output:
        "results/{movie}/latents.nc",
    params:
        code=stage_code("encode"),
    log:
        "results/logs/{movie}/encode.log",
    benchmark:
        "results/benchmarks/encode/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"


rule rvae_figures:
    """The latent manifold, latent distributions and the training history of a movie's rVAE."""
    input:
        latents="results/{movie}/latents.nc",
        model=rvae_model,
        history=lambda wildcards: rvae_model(wildcards).replace("model.pt", "history.csv"),
    output:
        manifold=report("results/{movie}/figures/rvae_manifold.png", caption="../report/rvae_manifold.rst",
                        category="rVAE", subcategory="{movie}"),
        histograms=report("results/{movie}/figures/latent_histograms.png",
                          caption="../report/latent_histograms.rst", category="rVAE", subcategory="{movie}"),
        joint=report("results/{movie}/figures/angle_vs_latents.png", caption="../report/angle_vs_latents.rst",
                     category="rVAE", subcategory="{movie}"),
        history=report("results/{movie}/figures/rvae_history.png", caption="../report/rvae_history.rst",
                       category="rVAE", subcategory="{movie}"),
    params:
        grid=lambda wildcards: KIND_SETTINGS[KIND[wildcards.movie]]["rvae"]["manifold_grid"],
        code=stage_code("rvae_figures"),
    log:
        "results/logs/{movie}/rvae_figures.log",
    benchmark:
        "results/benchmarks/rvae_figures/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        "../scripts/stage.py"
