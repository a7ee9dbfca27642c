"""Rule dynamics_figures: one Fig. 5-style panel per latent variable."""
from pathlib import Path

import xarray as xr

from rotdyn import figures
from rotdyn.logs import log_to
from rotdyn.nmf import kde_variables

with log_to(snakemake.log[0]):
    out = Path(snakemake.output[0])
    out.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(snakemake.input.kde) as kde, xr.open_dataset(snakemake.input.nmf) as nmf:
        for name in kde_variables(kde):
            figures.save(figures.latent_dynamics(kde, nmf, name), out / f"{name}.png")
