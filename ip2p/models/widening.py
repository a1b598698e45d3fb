"""Model facts shared by every script (docs/training.md, "The 20-frame model"), and widening
a UNet's input layer for more conditioning frames."""

import torch
from torch import nn

from ..shared.cli import UserError

# SD's VAE has 4 latent channels; the UNet input is [noisy latents, one latent per conditioning frame].
LATENT_CHANNELS = 4


def unet_in_channels_for(num_conditioning_frames: int) -> int:
    """Input channels of a UNet conditioned on this many frames (8 for
    InstructPix2Pix's single image, 84 for 20 frames)."""
    return LATENT_CHANNELS * (1 + num_conditioning_frames)


@torch.no_grad()
def widen_unet_input(unet, num_conditioning_frames: int):
    """Give ``unet`` the input width for ``num_conditioning_frames`` frames, in place.

    Channel order stays InstructPix2Pix's: ``[noisy latents, frame latents
    oldest..newest]``. From a text-to-image base (4 channels) the new channels
    start at zero, as in the InstructPix2Pix paper (Brooks et al. 2023, sec. 3.2).
    From an InstructPix2Pix base (8 channels) its image-conditioning weights go
    to the newest frame and older frames start at zero, so at initialisation
    the widened model computes exactly what the base model computes given the
    last frame alone. Weights for the noisy latents and the bias are kept. A
    UNet that already has the target width is returned unchanged.
    """
    target = unet_in_channels_for(num_conditioning_frames)
    current = unet.config.in_channels
    if current == target:
        return unet
    if current not in (LATENT_CHANNELS, unet_in_channels_for(1)):
        raise UserError(
            f"the UNet has {current} input channels; {num_conditioning_frames} conditioning frame(s) need {target} "
            f"(or start from a base model with {LATENT_CHANNELS} or {unet_in_channels_for(1)})"
        )
    old = unet.conv_in
    new = nn.Conv2d(target, old.out_channels, old.kernel_size, old.stride, old.padding,
                    dtype=old.weight.dtype, device=old.weight.device)
    new.weight.zero_()
    new.weight[:, :LATENT_CHANNELS] = old.weight[:, :LATENT_CHANNELS]
    if current > LATENT_CHANNELS:
        new.weight[:, -LATENT_CHANNELS:] = old.weight[:, LATENT_CHANNELS:]
    new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=target)
    return unet
