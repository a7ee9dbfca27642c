"""Rule encode: latent means and standard deviations of every particle's window."""
import xarray as xr

from rotdyn.fit_rvae import encode, latents_dataset
from rotdyn.logs import log_to
from rotdyn.rvae import load_rvae
from rotdyn.store import write_netcdf

with log_to(snakemake.log[0]) as log:
    model, meta = load_rvae(snakemake.input.model)
    with xr.open_dataset(snakemake.input.patches) as patches:
        latents = latents_dataset(encode(model, patches["patches"].values), patches, model)
    log.info("%d particles encoded", latents.sizes["particle"])
    write_netcdf(latents, snakemake.output[0])
