"""What the UNet learns to denoise, and from which condition: an objective
turns a batch's VAE moments (``ip2p.models.latents``) into (target latents,
conditioning latents). A trainer's task owns one; the training loop only
calls its hooks, so a new objective is a new class here.

Hooks (``from_args(args)`` builds one from the trainer's flags):
- ``prepare(dataset, vae, device, dtype) -> dict``: measure what the
  objective needs from the training data, once before training; returns the
  settings the saved pipeline needs to invert it (constructor arguments).
- ``latents(moments, scaling_factor, generator) -> (target, condition)``.

Both objectives condition on the observed frames as InstructPix2Pix does
(Brooks et al. 2023): each frame's distribution *mode*, unscaled, stacked in
the channel axis oldest first.
"""

from typing import Dict, Tuple

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution


def condition_latents(moments: torch.Tensor) -> torch.Tensor:
    """``(B, F, 2C, h, w)`` moments -> ``(B, (F - 1) * C, h, w)``: the observed frames' modes."""
    batch, frames = moments.shape[:2]
    condition = DiagonalGaussianDistribution(moments[:, :-1].flatten(0, 1)).mode()
    return condition.reshape(batch, (frames - 1) * condition.shape[1], *condition.shape[2:])


class FrameObjective:
    """Denoise the next frame's latent: a sample of its distribution times the
    VAE's ``scaling_factor`` (SD's latent normalisation), as InstructPix2Pix does."""

    name = "frame"

    @classmethod
    def from_args(cls, args) -> "FrameObjective":
        return cls()

    def prepare(self, dataset, vae, device, dtype) -> Dict[str, object]:
        return {}

    def latents(self, moments: torch.Tensor, scaling_factor: float, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        target = DiagonalGaussianDistribution(moments[:, -1]).sample(generator=generator) * scaling_factor
        return target, condition_latents(moments)


class ResidualObjective:
    """Denoise the change from the last observed frame's latent, divided by
    ``scale`` so it has unit variance like SD's scaled latents (README,
    "Predicting the change, not the frame").

    The change is taken between the two distributions' modes: a posterior
    sample would add VAE noise as large as the motion itself (measured on the
    fitted tiny VAE: posterior std 0.37 against a residual std of 0.25), which
    the model would then learn to draw everywhere, static regions included.
    """

    name = "residual"

    def __init__(self, scale: float = None, max_samples: int = 64):
        self.scale, self.max_samples = scale, max_samples

    @classmethod
    def from_args(cls, args) -> "ResidualObjective":
        return cls(scale=args.residual_scale)

    def prepare(self, dataset, vae, device, dtype) -> Dict[str, object]:
        """Measure the scale (unless given) as the change's standard deviation
        over the first training samples; every process reads the same ones."""
        if self.scale is None:
            scaling_factor = vae.config.scaling_factor
            changes = []
            for index in range(min(self.max_samples, len(dataset))):
                moments = dataset.moments(index, vae, device, dtype)
                modes = moments[:, : moments.shape[1] // 2]  # moments = [mean, log-variance]; the mean is the mode
                changes.append((modes[-1] - modes[-2]) * scaling_factor)
            self.scale = max(float(torch.stack(changes).std()), 1e-3)
        return {"prediction_target": self.name, "residual_scale": self.scale}

    def latents(self, moments: torch.Tensor, scaling_factor: float, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        target = DiagonalGaussianDistribution(moments[:, -1]).mode() * scaling_factor
        last = DiagonalGaussianDistribution(moments[:, -2]).mode() * scaling_factor
        return (target - last) / self.scale, condition_latents(moments)


OBJECTIVES = {"frame": FrameObjective, "residual": ResidualObjective}  # --prediction_target
