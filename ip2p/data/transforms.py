"""Image transforms without torchvision: one random crop and flip shared by
all images of a sample (the input frames and the target), so that pixels
stay aligned across them."""

import random
import re
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import Image


def paired_crop_flip(images: List[Image.Image], resolution: int, center_crop: bool, random_flip: bool,
                     rng: Optional[random.Random] = None) -> Tuple[torch.Tensor, bool]:
    """Resize the short side to ``resolution``, crop a ``resolution`` square
    (centre or random), maybe flip left-right; the same for every image.

    Returns a float tensor ``(len(images), 3, resolution, resolution)`` in
    [-1, 1], and whether the images were flipped.
    """
    rng = rng or random.Random()
    width, height = images[0].size
    new_size = resized_size(images[0].size, resolution)
    spare_x, spare_y = new_size[0] - resolution, new_size[1] - resolution
    if center_crop:
        left, top = spare_x // 2, spare_y // 2
    else:
        left, top = rng.randint(0, spare_x), rng.randint(0, spare_y)
    flip = random_flip and rng.random() < 0.5
    arrays = []
    for image in images:
        if image.size != (width, height):
            raise ValueError(f"images of one sample differ in size: {image.size} vs {(width, height)}")
        resized = image.convert("RGB").resize(new_size, Image.BICUBIC)
        array = np.asarray(resized.crop((left, top, left + resolution, top + resolution)), dtype=np.float32)
        arrays.append(array[:, ::-1] if flip else array)
    stacked = torch.from_numpy(np.stack(arrays).copy()).permute(0, 3, 1, 2)
    return stacked / 127.5 - 1.0, flip


def resized_size(size: Tuple[int, int], resolution: int) -> Tuple[int, int]:
    """``(width, height)`` after scaling the short side to ``resolution``."""
    scale = resolution / min(size)
    return max(resolution, round(size[0] * scale)), max(resolution, round(size[1] * scale))


def crop_is_fixed(size: Tuple[int, int], resolution: int) -> bool:
    """Whether every crop of an image of ``size`` is the same one (the resized image is already square)."""
    return resized_size(size, resolution) == (resolution, resolution)


_DIRECTION_SWAPS = {"left": "right", "right": "left", "leftward": "rightward", "rightward": "leftward",
                    "leftwards": "rightwards", "rightwards": "leftwards"}
_DIRECTION_WORD = re.compile(r"\b(" + "|".join(sorted(_DIRECTION_SWAPS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def mirror_instruction(text: str) -> str:
    """The instruction that stays true for a left-right flipped clip:
    "moving the cup from left to right" -> "moving the cup from right to left"."""
    def swap(match: "re.Match[str]") -> str:
        word = match.group(0)
        new = _DIRECTION_SWAPS[word.lower()]
        return new.upper() if word.isupper() else new.capitalize() if word[0].isupper() else new

    return _DIRECTION_WORD.sub(swap, text)
