"""rotdyn: rotational dynamics of particles in microscopy movies.

The science lives here as plain functions on arrays and xarray objects; the
Snakemake rules in ``workflow/`` only glue them to files.
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("rotdyn")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"
