"""Rule maps: frames with particles coloured by their latents, an animation, tracks."""
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from rotdyn import figures
from rotdyn.logs import log_to

with log_to(snakemake.log[0]):
    p = snakemake.params.maps
    tracks = pd.read_csv(snakemake.input.tracks)
    out = Path(snakemake.output.frames)
    out.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(snakemake.input.movie) as movie:
        frames = movie["frames"]
        numbers = frames["frame"].values
        shown = numbers[np.unique(np.linspace(0, len(numbers) - 1, p["frames_shown"]).round().astype(int))]
        names = [n for n in ("angle", "z1", "z2") if n in tracks.columns]
        for number in shown:
            rows = tracks[tracks.frame == number]
            for name in names:
                fig = figures.latent_map(frames.sel(frame=number).values, rows, name, f"{name}, frame {number}")
                figures.save(fig, out / f"{name}_frame{number:05d}.png")
        figures.latent_map_animation(frames, tracks, "angle", snakemake.output.animation)
    figures.save(figures.track_latents(tracks, [n for n in ("angle", "z1") if n in tracks.columns],
                                       longest=p["tracks_shown"]), snakemake.output.tracks)
