"""Rule training_set: labelled or simulated frames -> results/training/<set>.nc."""
from rotdyn.logs import log_to
from rotdyn.store import write_netcdf
from rotdyn.training_set import training_set

with log_to(snakemake.log[0]) as log:
    ds = training_set(dict(snakemake.params.settings), labels_root=snakemake.params.labels_root)
    log.info("training set %s: %d tiles, classes %s (%s)", snakemake.wildcards.set,
             ds.sizes["sample"], ds.attrs["class_names"], ds.attrs["origin"])
    write_netcdf(ds, snakemake.output[0])
