"""Sizes and noise measured on the movie fill the training simulation's unset keys (issue 13, item 2)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from rotdyn.kinds import unset_sizes
from rotdyn.simulate import simulate_cells, simulate_rods, simulate_spheres
from rotdyn.store import write_netcdf
from rotdyn.survey import measure
from rotdyn.training_set import calibrate, training_set, with_measured_sizes


@pytest.mark.parametrize("length, width", [(26.0, 7.0), (16.0, 5.0)])
def test_cell_sizes_are_measured_and_calibrated_within_a_tenth(length, width):
    sim = simulate_cells(size=128, frames=3, count=10, length=length, length_sd=1.0, width=width, seed=3)
    read = measure(sim.frames, "cells", ["length", "width"])
    assert read["length"] == pytest.approx(length, rel=0.1)
    assert read["width"] < width  # the halo and the blur narrow a cell at half height...
    sizes = calibrate({"kind": "cells", "size": 128, "count": 10, "length_sd": 1.0}, read)
    assert sizes["length"] == pytest.approx(length, rel=0.1)
    assert sizes["width"] == pytest.approx(width, rel=0.1)  # ...and the simulator's own reading undoes it


def test_sphere_diameter_and_rod_noise_are_measured():
    spheres = simulate_spheres(size=128, frames=3, count=20, diameter=8.0, contrast="bright", seed=2)
    assert measure(spheres.frames, "spheres", ["diameter"])["diameter"] == pytest.approx(8.0, rel=0.12)
    rods = simulate_rods(size=128, frames=3, count=12, noise=0.3, seed=4)
    assert measure(rods.frames, "rods", ["noise"])["noise"] == pytest.approx(0.3, rel=0.3)


def test_blank_frames_measure_nothing_and_say_so(caplog):
    assert measure(np.zeros((2, 32, 32), np.float32), "cells", ["length"]) == {}
    assert "could not measure length" in caplog.text


def test_only_the_unset_keys_are_filled_and_recorded(tmp_path):
    settings = {"set": "cells", "tile": 64, "source": "simulate",
                "simulate": {"kind": "cells", "frames": 2, "size": 64, "count": 3, "width": 6.0, "seed": 1}}
    kind = {"name": "cells", "training_set": settings}
    assert unset_sizes(kind) == ["length", "length_sd", "noise"]
    movie = tmp_path / "movie.nc"
    write_netcdf(xr.Dataset(attrs={"measured_length": 24.0, "measured_width": 9.0, "measured_noise": 0.05}), movie)
    filled = with_measured_sizes(settings, unset_sizes(kind), movie)
    length = filled["simulate"]["length"]
    assert length == pytest.approx(24.0, rel=0.15) and filled["simulate"]["width"] == 6.0  # the user's value wins
    assert "length_sd" not in filled["simulate"]  # not measured: the simulator's default
    ds = training_set(filled)
    assert ds.attrs["measured_length"] == length and ds.attrs["measured_from"] == str(movie)
    assert float(ds.attrs["sim_length"]) == length and float(ds.attrs["sim_width"]) == 6.0
