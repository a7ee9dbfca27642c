rule maps:
    """Particles drawn on the frames coloured by their latents, an animation, latents along tracks (Fig. 6)."""
    input:
        movie="results/{movie}/movie.nc",
        tracks="results/{movie}/tracks.csv",
    output:
        frames=report(
            directory("results/{movie}/figures/maps"),
            patterns=["{name}.png"],
            caption="../report/maps.rst",
            category="Real-space maps",
            subcategory="{movie}",
        ),
        animation=report("results/{movie}/figures/latent_angle.gif", caption="../report/animation.rst",
                         category="Real-space maps", subcategory="{movie}"),
        tracks=report("results/{movie}/figures/tracks.png", caption="../report/tracks.rst",
                      category="Trajectories", subcategory="{movie}"),
    params:
        maps=config["maps"],
        code=stage_code("maps"),
    log:
        "results/logs/{movie}/maps.log",
    benchmark:
        "results/benchmarks/maps/{movie}.tsv"
    conda:
        "../../envs/rotdyn.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/stage.py"
