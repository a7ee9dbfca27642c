"""Rule link: trajectories with the latents along them, and a summary per track."""
import xarray as xr

from rotdyn.link import latents_table, link, search_range_px, track_summary
from rotdyn.logs import log_to
from rotdyn.store import atomic_path, write_netcdf

with log_to(snakemake.log[0]) as log:
    p = snakemake.params.link
    with xr.open_dataset(snakemake.input[0]) as latents:
        table = latents_table(latents.load())
        attrs = dict(latents.attrs)
    radius = p["search_range"]
    if p["search_range_nm"]:
        if not attrs.get("pixel_size_nm"):
            raise ValueError(f"{snakemake.input[0]}: link.search_range_nm needs the movie's pixel size "
                             "(give pixel_size_nm in config/movies.tsv)")
        radius = search_range_px(p["search_range_nm"], attrs["pixel_size_nm"])
    tracks = link(table, search_range=radius, memory=p["memory"], drift=p["drift"])
    latent_columns = [c for c in tracks.columns if c in ("angle", "dx", "dy") or (c[0] == "z" and c[1:].isdigit())]
    summary = track_summary(tracks, latent_columns, frame_interval_s=attrs.get("frame_interval_s"))
    log.info("%d tracks (search range %.1f px), median length %s", len(summary), radius,
             summary["length"].median() if len(summary) else 0)
    with atomic_path(snakemake.output.csv) as tmp:
        tracks.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.summary) as tmp:
        summary.to_csv(tmp, index=False)
    nc = xr.Dataset.from_dataframe(tracks.reset_index(drop=True).rename_axis("row"))
    nc.attrs = {**attrs, "search_range_px": radius, "memory": p["memory"], "drift": int(p["drift"])}
    write_netcdf(nc, snakemake.output.nc)
