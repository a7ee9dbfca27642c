"""Rule simulate: a synthetic movie with its truth table and label masks."""
from rotdyn.logs import log_to
from rotdyn.simulate import simulate, to_dataset
from rotdyn.store import atomic_path, write_netcdf

with log_to(snakemake.log[0]) as log:
    params = dict(snakemake.params.sim)
    pixel, interval = params.pop("pixel_size_nm"), params.pop("frame_interval_s")
    sim = simulate(snakemake.wildcards.kind, **params)
    log.info("simulated %s: %d frames, %d truth rows", snakemake.wildcards.kind, len(sim.frames), len(sim.truth))
    with atomic_path(snakemake.output.truth) as tmp:
        sim.truth.to_csv(tmp, index=False)
    write_netcdf(to_dataset(sim, pixel_size_nm=pixel, frame_interval_s=interval), snakemake.output.movie)
