"""VAE latents of a sample's frames, kept as the VAE's distribution
parameters ("moments": mean and log-variance), so that the cached and the
uncached training paths see exactly the same numbers. What becomes the
target and what the condition is the objective's choice
(``ip2p.training.objectives``)."""

import torch

# Frames per VAE call: a batch of 32 clips is 672 frames, whose encoder
# activations alone would not fit a 24 GB card at 512 px; 16 frames at 512 px
# in half precision stay well inside it (--vae_batch_size).
DEFAULT_VAE_BATCH_SIZE = 16


@torch.no_grad()
def encode_moments(vae, pixels: torch.Tensor, max_frames: int = DEFAULT_VAE_BATCH_SIZE) -> torch.Tensor:
    """``(B, F, 3, H, W)`` pixels in [-1, 1] -> ``(B, F, 2 * latent_channels, h, w)``
    float32 moments, encoding at most ``max_frames`` frames per VAE call."""
    batch, frames = pixels.shape[:2]
    chunks = [vae.encode(chunk).latent_dist.parameters.float() for chunk in pixels.flatten(0, 1).split(max_frames)]
    moments = torch.cat(chunks)
    return moments.reshape(batch, frames, *moments.shape[1:])
