"""Single-image training samples: (input image, instruction) -> edited image.

Randomness is per sample: the crop and flip of sample ``i`` in epoch ``e``
come from a generator seeded with ``(seed, e, i)``, so they do not depend on
worker count, process count or on resuming mid-epoch.
"""

import random

import torch

from ..models.text import tokenize
from ..shared.images import Resolver, open_image
from .transforms import paired_crop_flip


class EditSamples(torch.utils.data.Dataset):
    """Single-image samples: (input image, instruction) -> edited image.

    Items are addressed by ``(epoch, index)`` (see ``EpochBatchSampler``).
    A sample whose image cannot be read becomes ``{"error": ...}`` so the
    training loop can stop with one line instead of a worker traceback.
    """

    def __init__(self, split, resolve: Resolver, args, tokenizer, seed: int):
        self.split, self.resolve, self.tokenizer, self.seed = split, resolve, tokenizer, seed
        self.source_column, self.target_column = args.original_image_column, args.edited_image_column
        self.prompt_column = args.edit_prompt_column
        self.resolution, self.center_crop, self.random_flip = args.resolution, args.center_crop, args.random_flip

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key):
        epoch, index = key
        row = self.split[index]
        try:
            images = [open_image(row[self.source_column], self.resolve), open_image(row[self.target_column], self.resolve)]
        except Exception as err:
            return {"error": f"training sample {index}: cannot read its image ({type(err).__name__}: {err}); fix or remove it"}
        images = [images[0], images[1].resize(images[0].size)] if images[1].size != images[0].size else images
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        pixels, _ = paired_crop_flip(images, self.resolution, self.center_crop, self.random_flip, rng)
        return {
            "condition_pixels": pixels[:1],  # (frames=1, 3, H, W)
            "target_pixels": pixels[1],
            "input_ids": tokenize(self.tokenizer, [str(row[self.prompt_column])])[0],
        }
