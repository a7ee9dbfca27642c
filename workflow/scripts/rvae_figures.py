"""Rule rvae_figures: latent manifold, latent distributions, training history."""
import numpy as np
import pandas as pd
import xarray as xr

from rotdyn import figures
from rotdyn.logs import log_to
from rotdyn.rvae import latent_grid, load_rvae


def draw(model, lat, history, out, grid):
    z = lat.z.values
    ranges = [tuple(np.percentile(z[:, j], [2, 98])) for j in range(min(2, z.shape[1]))]
    images, z1, z2 = latent_grid(model, n=grid, ranges=ranges if len(ranges) == 2 else None)
    figures.save(figures.manifold(images, z1, z2), out.manifold)
    figures.save(figures.latent_histograms(lat.angle.values, lat.dx.values, lat.dy.values), out.histograms)
    figures.save(figures.angle_vs_latents(lat.angle.values, z), out.joint)
    figures.save(figures.training_history(history, "train_elbo", "test_elbo", "negative ELBO per window"),
                 out.history)


with log_to(snakemake.log[0]) as log:
    model, _ = load_rvae(snakemake.input.model)
    with xr.open_dataset(snakemake.input.latents) as latents:
        lat = latents.load()
    if lat.sizes["particle"]:
        draw(model, lat, pd.read_csv(snakemake.input.history), snakemake.output, snakemake.params.grid)
    else:
        log.warning("%s: no particles; the figures say so", snakemake.input.latents)
        for path in snakemake.output:
            figures.save(figures.empty(f"no particles in {snakemake.wildcards.movie}"), path)
