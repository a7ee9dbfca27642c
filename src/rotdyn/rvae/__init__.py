"""The rotationally invariant VAE (rVAE; papers 000 and 002, after Bepler et al.'s spatial VAE).

A window ``(S, S)`` is encoded into a latent angle (rad), two offsets and
``latent_dim`` content variables; the decoder draws the window on a rotated
and shifted pixel grid, so rotation and translation are in the geometry and
the content latents describe shape and neighbourhood.

Modules, by concern:

- :mod:`~rotdyn.rvae.model`: :class:`RVAE` (encoder, decoder, priors,
  likelihood, negative ELBO);
- :mod:`~rotdyn.rvae.geometry`: the pixel grid and rotation conventions;
- :mod:`~rotdyn.rvae.kernel`: the tiled CPU kernel of the decoder MLP;
- :mod:`~rotdyn.rvae.polarity`: head versus tail, the discrete half turn;
- :mod:`~rotdyn.rvae.io`: save and load; :mod:`~rotdyn.rvae.render`: decode
  chosen latent points, the latent manifold.

Training is the ``fit_rvae`` stage (:mod:`rotdyn.fit_rvae`), encoding the
``encode`` stage (:mod:`rotdyn.encode`). The design decisions and the
measurements behind them: ``docs/rvae-*.md``.

Examples
--------
>>> import torch
>>> from rotdyn.rvae import RVAE, render
>>> model = RVAE(12, latent_dim=2, hidden=16)
>>> render(model, angle=0.5).shape
(1, 12, 12)
"""
from .geometry import pixel_grid, rotation
from .io import load_rvae, save_rvae
from .model import ENCODERS, LIKELIHOODS, ROTATION_PRIORS, RVAE
from .render import latent_grid, render

__all__ = ["RVAE", "ENCODERS", "LIKELIHOODS", "ROTATION_PRIORS", "pixel_grid", "rotation", "save_rvae",
           "load_rvae", "render", "latent_grid"]
