"""Rule ingest: one movie file -> results/<movie>/movie.nc."""
from rotdyn.logs import log_to
from rotdyn.movies import load_movie
from rotdyn.store import write_netcdf

with log_to(snakemake.log[0]) as log:
    ds = load_movie(snakemake.input[0], snakemake.params.settings)
    log.info("%s: %d frames of %d x %d px", snakemake.input[0], ds.sizes["frame"], ds.sizes["y"], ds.sizes["x"])
    write_netcdf(ds, snakemake.output[0])
