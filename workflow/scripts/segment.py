"""Rule segment: ensemble mean and variance of the class probabilities for every frame."""
from rotdyn.logs import log_to
from rotdyn.segment import segment_movie

with log_to(snakemake.log[0]):
    segment_movie(snakemake.input.movie, list(snakemake.input.members), snakemake.output[0],
                  batch_size=snakemake.params.batch_size, threads=snakemake.threads,
                  device="auto" if snakemake.resources.gpu else "cpu")
