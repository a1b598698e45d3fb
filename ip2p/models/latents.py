"""VAE latents of a sample's frames, kept as the VAE's distribution
parameters ("moments": mean and log-variance), so that the cached and the
uncached training paths see exactly the same numbers. What becomes the
target and what the condition is the objective's choice
(``ip2p.training.objectives``)."""

import torch


@torch.no_grad()
def encode_moments(vae, pixels: torch.Tensor) -> torch.Tensor:
    """``(B, F, 3, H, W)`` pixels in [-1, 1] -> ``(B, F, 2 * latent_channels, h, w)`` float32 moments."""
    batch, frames = pixels.shape[:2]
    moments = vae.encode(pixels.flatten(0, 1)).latent_dist.parameters
    return moments.float().reshape(batch, frames, *moments.shape[1:])
