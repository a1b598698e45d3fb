"""Images as every stage sees them: which files are frames, opening any
stored form of an image as RGB, and the side-by-side strip every prediction
is judged by (last observed frame | prediction | true next frame)."""

import io
from pathlib import Path
from typing import Callable, List

from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

Resolver = Callable[[str], Path]  # a stored image path -> the file to open


def open_image(value, resolve: Resolver = Path) -> Image.Image:
    """A PIL image from a decoded image, an undecoded ``{"bytes", "path"}`` or a path string."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else resolve(value["path"])
    elif isinstance(value, str):
        source = resolve(value)
    else:
        raise ValueError(f"unsupported image value of type {type(value).__name__}")
    with Image.open(source) as image:
        return image.convert("RGB")


def make_strip(images: List[Image.Image], size: int) -> Image.Image:
    """Fit each image into a ``size`` square and place them left to right."""
    strip = Image.new("RGB", (size * len(images), size))
    for index, image in enumerate(images):
        strip.paste(ImageOps.fit(image.convert("RGB"), (size, size)), (index * size, 0))
    return strip
