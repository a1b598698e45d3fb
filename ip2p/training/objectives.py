"""What the UNet learns to denoise, and from which condition: an objective
turns a batch's ``FrameLatents`` (``ip2p.models.latents``: the observed
frames' means, the next frame's moments) into (target latents, conditioning
latents). A trainer's task owns one; the training loop only
calls its hooks, so a new objective is a new class here.

Hooks (``from_args(args)`` builds one from the trainer's flags):
- ``prepare(dataset, vae, device, dtype) -> dict``: measure what the
  objective needs from the training data, once before training; returns the
  settings the saved pipeline needs to invert it (constructor arguments).
- ``latents(frame_latents, scaling_factor, generator) -> (target, condition)``.

Both objectives condition on the observed frames as InstructPix2Pix does
(Brooks et al. 2023): each frame's distribution *mode*, unscaled, stacked in
the channel axis oldest first.
"""

from typing import Dict, Tuple

import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from ..models.latents import FrameLatents


def condition_latents(latents: FrameLatents) -> torch.Tensor:
    """``(B, N, C, h, w)`` observed means -> ``(B, N * C, h, w)``: the frames' modes, oldest first."""
    return latents.condition.flatten(1, 2)


class FrameObjective:
    """Denoise the next frame's latent: a sample of its distribution times the
    VAE's ``scaling_factor`` (SD's latent normalisation), as InstructPix2Pix does."""

    name = "frame"

    @classmethod
    def from_args(cls, args) -> "FrameObjective":
        return cls()

    def prepare(self, dataset, vae, device, dtype) -> Dict[str, object]:
        return {}

    def latents(self, latents: FrameLatents, scaling_factor: float, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        target = DiagonalGaussianDistribution(latents.target).sample(generator=generator) * scaling_factor
        return target, condition_latents(latents)


class ResidualObjective:
    """Denoise the change from the last observed frame's latent, divided by
    ``scale`` so it has unit variance like SD's scaled latents (docs/learning.md,
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
                latents = dataset.latents(index, vae, device, dtype)
                channels = latents.condition.shape[-3]  # target = [mean, log-variance]; the mean is the mode
                changes.append((latents.target[:channels] - latents.condition[-1].float()) * scaling_factor)
            self.scale = max(float(torch.stack(changes).std()), 1e-3)
        return {"prediction_target": self.name, "residual_scale": self.scale}

    def latents(self, latents: FrameLatents, scaling_factor: float, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        target = DiagonalGaussianDistribution(latents.target).mode() * scaling_factor
        last = latents.condition[:, -1].float() * scaling_factor
        return (target - last) / self.scale, condition_latents(latents)


OBJECTIVES = {"frame": FrameObjective, "residual": ResidualObjective}  # --prediction_target


def draw_timesteps(scheduler, batch_size: int, generator, device, minimum: int = 0) -> torch.Tensor:
    """A micro-batch's training noise levels: uniform over ``minimum`` (--min_train_timestep) to the schedule's last."""
    return torch.randint(minimum, scheduler.config.num_train_timesteps, (batch_size,), generator=generator, device=device)


def denoising_target(scheduler, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet's output is compared with, by the scheduler's ``prediction_type`` (--prediction_type):
    the noise (epsilon), the velocity (v_prediction) or the clean latents themselves (sample)."""
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    if prediction_type == "sample":
        return clean
    if prediction_type == "epsilon":
        return noise
    raise ValueError(f"prediction_type must be epsilon, v_prediction or sample, got {prediction_type!r}")
