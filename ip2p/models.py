"""Model facts shared by every script (SPEC.md, "Model facts")."""

# SD's VAE has 4 latent channels; the UNet input is [noisy latents, one latent per conditioning frame].
LATENT_CHANNELS = 4


def unet_in_channels_for(num_conditioning_frames: int) -> int:
    """Input channels of a UNet conditioned on this many frames (8 for
    InstructPix2Pix's single image, 84 for 20 frames)."""
    return LATENT_CHANNELS * (1 + num_conditioning_frames)
