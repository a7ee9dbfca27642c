"""Rule fit_rvae: the rotationally invariant VAE on the windows of one movie (or all of them)."""
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from rotdyn.fit_rvae import HISTORY_COLUMNS, fit
from rotdyn.logs import log_to
from rotdyn.rvae import RVAE, save_rvae
from rotdyn.store import atomic_path

MODEL_KEYS = ("latent_dim", "hidden", "encoder", "translation", "likelihood", "rotation_prior", "rotation_sd",
              "polarity")

with log_to(snakemake.log[0]) as log:
    windows = []
    for path in snakemake.input:
        with xr.open_dataset(path) as ds:
            windows.append(ds["patches"].values)
    patches = np.concatenate(windows)
    log.info("%d windows from %d movie(s)", len(patches), len(snakemake.input))
    p = dict(snakemake.params.rvae)
    meta = {"movies": ",".join(Path(path).parent.name for path in snakemake.input), "trained": 1}
    if len(patches):
        model, history = fit(patches, checkpoint=snakemake.params.checkpoint,
                             checkpoint_every=snakemake.config["rvae"]["checkpoint_every"],
                             device="auto" if snakemake.resources.gpu else "cpu", threads=snakemake.threads, **p)
    else:  # no particles anywhere: an untrained model keeps the chain going to empty tables
        log.warning("%s: no windows to train on; the rVAE stays untrained and encodes nothing",
                    ", ".join(snakemake.input))
        model = RVAE(windows[0].shape[-1], **{k: p[k] for k in MODEL_KEYS})
        history, meta["trained"] = pd.DataFrame(columns=HISTORY_COLUMNS), 0
    with atomic_path(snakemake.output.history) as tmp:
        history.to_csv(tmp, index=False)
    save_rvae(model, snakemake.output.model, meta)
    Path(snakemake.params.checkpoint).unlink(missing_ok=True)  # finished: nothing to resume
