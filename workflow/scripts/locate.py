"""Rule locate: particles (centroid, size, orientation, class) from the probability maps."""
import xarray as xr

from rotdyn.locate import locate
from rotdyn.logs import log_to
from rotdyn.store import write_netcdf

with log_to(snakemake.log[0]) as log:
    with xr.open_dataset(snakemake.input[0]) as prob:
        particles = locate(prob, **snakemake.params.locate)
    log.info("%d particles in %d frames", particles.sizes["particle"], prob.sizes["frame"])
    write_netcdf(particles, snakemake.output[0])
