"""Rule summary: results/<movie>/summary.json."""
import json

import pandas as pd
import xarray as xr

from rotdyn.logs import log_to
from rotdyn.store import atomic_path
from rotdyn.summary import movie_summary

with log_to(snakemake.log[0]):
    with xr.open_dataset(snakemake.input.movie) as movie, xr.open_dataset(snakemake.input.latents) as latents, \
            xr.open_dataset(snakemake.input.nmf) as nmf:
        summary = movie_summary(movie, latents, nmf, pd.read_csv(snakemake.input.tracks),
                                dict(snakemake.params.settings))
    with atomic_path(snakemake.output[0]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
