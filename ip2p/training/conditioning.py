"""Conditioning dropout for classifier-free guidance on two conditions.

InstructPix2Pix (Brooks et al. 2023, sec. 3.3) trains one model for three
guidance terms by dropping, per example, only the image condition with
probability p, only the text condition with probability p, and both with
probability p (p = 0.05 in the paper). Inference can then combine the text
and image guidance scales independently.
"""

from typing import Tuple

import torch


def conditioning_dropout_masks(batch_size: int, prob: float, generator: torch.Generator = None,
                               device: torch.device = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks ``(drop_text, drop_image)`` of shape ``(batch_size,)``.

    One uniform draw per example decides: [0, p) text only, [p, 2p) both,
    [2p, 3p) image only, otherwise neither.
    """
    if not 0.0 <= prob <= 1.0 / 3.0:
        raise ValueError(f"conditioning dropout probability must be in [0, 1/3], got {prob}")
    draw = torch.rand(batch_size, generator=generator, device=device)
    drop_text = draw < 2 * prob
    drop_image = (draw >= prob) & (draw < 3 * prob)
    return drop_text, drop_image


def apply_conditioning_dropout(text_embeddings: torch.Tensor, empty_text_embedding: torch.Tensor,
                               image_latents: torch.Tensor, drop_text: torch.Tensor, drop_image: torch.Tensor):
    """Replace dropped texts by the empty prompt's encoding and zero dropped
    image (or frame) latents. ``image_latents`` may hold any number of frames
    in its channels: they are dropped together."""
    text = torch.where(drop_text[:, None, None], empty_text_embedding.to(text_embeddings.dtype), text_embeddings)
    keep_image = (~drop_image).to(image_latents.dtype).view(-1, *([1] * (image_latents.dim() - 1)))
    return text, image_latents * keep_image
