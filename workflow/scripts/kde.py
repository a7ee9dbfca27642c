"""Rule kde: per-frame densities of every latent -> kde.nc."""
import xarray as xr

from rotdyn.kde import kde_maps, latent_names
from rotdyn.logs import log_to
from rotdyn.store import write_netcdf

with log_to(snakemake.log[0]) as log:
    p = snakemake.params.kde
    with xr.open_dataset(snakemake.input.latents) as latents, xr.open_dataset(snakemake.input.movie) as movie:
        latents = latents.load()
        bandwidth = {name: p["bandwidth"] for name in latent_names(latents)}
        if p["angle_bandwidth"]:
            bandwidth["angle"] = p["angle_bandwidth"]
        kde = kde_maps(latents, movie["frame"].values, grid_points=p["grid_points"], bandwidth=bandwidth)
    log.info("densities of %s over %d frames", kde.attrs.get("variables"), kde.sizes["frame"])
    write_netcdf(kde, snakemake.output[0])
