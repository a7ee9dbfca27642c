"""Rule patches: one window per particle, indexed back to particles.nc."""
import xarray as xr

from rotdyn.logs import log_to
from rotdyn.patches import extract_patches, from_frames, from_probability
from rotdyn.store import write_netcdf

with log_to(snakemake.log[0]) as log:
    p = snakemake.params.patches
    adapter = from_probability if p["source"] == "probability" else from_frames
    with xr.open_dataset(snakemake.input.particles) as particles, xr.open_dataset(snakemake.input.images) as images:
        patches = extract_patches(adapter(images), particles, size=p["size"], edge=p["edge"], source=p["source"])
    log.info("%d windows of %d px", patches.sizes["particle"], p["size"])
    write_netcdf(patches, snakemake.output[0])
