"""VAE latents of a sample's frames, the one form every training path uses,
so that the cached and the uncached paths see exactly the same numbers.

The VAE gives each frame a distribution ("moments": mean and log-variance).
Training needs, per sample, only
- the observed frames' means (InstructPix2Pix conditions on the mode), kept
  in float16: their log-variance is never read;
- the next frame's full moments in float32 (the frame objective samples it).
That is about 4x smaller than every frame's float32 moments, on disk and in
memory. What becomes the target and what the condition is the objective's
choice (``ip2p.training.objectives``).
"""

from typing import NamedTuple

import torch

# Frames per VAE call: a batch of 32 clips is 672 frames, whose encoder
# activations alone would not fit a 24 GB card at 512 px; 16 frames at 512 px
# in half precision stay well inside it (--vae_batch_size).
DEFAULT_VAE_BATCH_SIZE = 16
CONDITION_DTYPE = torch.float16


class FrameLatents(NamedTuple):
    condition: torch.Tensor  # (..., N, C, h, w): the N observed frames' means, float16
    target: torch.Tensor  # (..., 2C, h, w): the next frame's [mean, log-variance], float32

    def to(self, device, non_blocking: bool = False) -> "FrameLatents":
        return FrameLatents(*(t.to(device, non_blocking=non_blocking) for t in self))


def latent_modes(moments: torch.Tensor) -> torch.Tensor:
    """``(..., 2C, h, w)`` moments -> their ``(..., C, h, w)`` means (the modes, unscaled): what conditions the UNet."""
    return moments[..., : moments.shape[-3] // 2, :, :]


def split_moments(moments: torch.Tensor) -> FrameLatents:
    """``(..., N + 1, 2C, h, w)`` moments, observed frames first -> ``FrameLatents``."""
    return FrameLatents(latent_modes(moments[..., :-1, :, :, :]).to(CONDITION_DTYPE).contiguous(),
                        moments[..., -1, :, :, :].float().contiguous())


@torch.no_grad()
def encode_moments(vae, pixels: torch.Tensor, max_frames: int = DEFAULT_VAE_BATCH_SIZE) -> torch.Tensor:
    """``(B, F, 3, H, W)`` pixels in [-1, 1] -> ``(B, F, 2 * latent_channels, h, w)``
    float32 moments, encoding at most ``max_frames`` frames per VAE call."""
    batch, frames = pixels.shape[:2]
    chunks = [vae.encode(chunk).latent_dist.parameters.float() for chunk in pixels.flatten(0, 1).split(max_frames)]
    moments = torch.cat(chunks)
    return moments.reshape(batch, frames, *moments.shape[1:])


def encode_frame_latents(vae, pixels: torch.Tensor, max_frames: int = DEFAULT_VAE_BATCH_SIZE) -> FrameLatents:
    """``(B, N + 1, 3, H, W)`` pixels, observed frames first -> ``FrameLatents`` of the batch."""
    return split_moments(encode_moments(vae, pixels, max_frames))
