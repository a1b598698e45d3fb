"""Side-by-side strips, the picture every prediction is judged by:
last observed frame | prediction | true next frame (when known)."""

from typing import List

from PIL import Image, ImageOps


def make_strip(images: List[Image.Image], size: int) -> Image.Image:
    """Fit each image into a ``size`` square and place them left to right."""
    strip = Image.new("RGB", (size * len(images), size))
    for index, image in enumerate(images):
        strip.paste(ImageOps.fit(image.convert("RGB"), (size, size)), (index * size, 0))
    return strip
