"""A rollout as files: observed frames, then predicted ones with a red
border, as an animated GIF (PIL) and an H.264 MP4 (PyAV)."""

from pathlib import Path
from typing import List

import av
import numpy as np
from PIL import Image, ImageOps

MARK = (230, 30, 30)


def marked(frame: Image.Image, width: int = 2) -> Image.Image:
    """The frame with a red border drawn over its outer pixels (same size)."""
    inner = frame.convert("RGB").crop((width, width, frame.width - width, frame.height - width))
    return ImageOps.expand(inner, border=width, fill=MARK)


def rollout_frames(observed: List[Image.Image], predicted: List[Image.Image]) -> List[Image.Image]:
    return [frame.convert("RGB") for frame in observed] + [marked(frame) for frame in predicted]


def write_gif(frames: List[Image.Image], path: Path, fps: float) -> None:
    first, *rest = frames
    first.save(path, save_all=True, append_images=rest, duration=round(1000 / fps), loop=0)


def write_mp4(frames: List[Image.Image], path: Path, fps: int) -> None:
    """H.264 in yuv420p, which needs even sides: odd ones get a one-pixel edge copied on."""
    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = even[0], even[1], "yuv420p"
        for frame in frames:
            pixels = np.asarray(frame.convert("RGB"))
            pixels = np.pad(pixels, ((0, even[1] - height), (0, even[0] - width), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
