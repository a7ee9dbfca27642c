"""Rule nmf: components of each latent's density map over time, and the transition frame."""
import xarray as xr

from rotdyn.logs import log_to
from rotdyn.nmf import kde_variables, nmf_maps
from rotdyn.store import write_netcdf

with log_to(snakemake.log[0]) as log:
    p = snakemake.params.nmf
    with xr.open_dataset(snakemake.input[0]) as kde:
        nmf = nmf_maps(kde.load(), n_components=p["components"], seed=p["seed"], min_score=p["min_score"])
    for name in kde_variables(kde):
        log.info("%s: transition frame %s +- %s", name, float(nmf[f"transition_frame_{name}"]),
                 float(nmf[f"transition_uncertainty_{name}"]))
    write_netcdf(nmf, snakemake.output[0])
