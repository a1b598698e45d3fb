"""Procedural clips for the three task families, learnable from 20 frames + text.

Each clip is 21 frames of one object over a textured static backdrop. The
object's motion is smooth (rendered at 4x and downsampled, so sub-pixel
positions show), keeps moving between frame 20 and 21, and is predictable
from the observed frames and the instruction:

- move_object:  constant velocity, left/right/up/down ("Moving the red square from left to right")
- drop_object:  falls with constant acceleration towards a box ("Dropping the blue ball onto the green box")
- cover_object: a cloth slides over a resting object ("Covering the yellow circle with the purple cloth")

Colours, shapes, sizes, positions, speeds and directions are drawn at random
per clip, as are the backdrop textures; nothing but motion distinguishes frame
21 from frame 20.
"""

import json
import math
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..shared.cli import UserError
from .synthetic_common import COLOURS, NUM_FRAMES, SUPERSAMPLE, TASKS, cover_layout, drop_layout, move_path
from .synthetic_hard import draw_hard_clip


def backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth, colourful texture that stays the same through the clip."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    for channel in range(3):
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 2 * math.pi)]
            image[..., channel] += np.sin(2 * math.pi * (fx * x + fy * y) + phase)
    image = (image - image.min()) / (np.ptp(image) + 1e-8)
    base = rng.uniform(90, 170, 3)
    return np.clip(base + (image - 0.5) * 70 + rng.normal(0, 3, (size, size, 3)), 0, 255).astype(np.uint8)


def _draw(draw: ImageDraw.ImageDraw, shape: str, centre: Tuple[float, float], radius: float, colour) -> None:
    s = SUPERSAMPLE
    box = [(centre[0] - radius) * s, (centre[1] - radius) * s, (centre[0] + radius) * s, (centre[1] + radius) * s]
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)


def _render(background: np.ndarray, layers) -> Image.Image:
    """``layers``: list of (shape, centre, radius, colour) drawn in order."""
    size = background.shape[0]
    big = Image.fromarray(background).resize((size * SUPERSAMPLE, size * SUPERSAMPLE), Image.NEAREST)
    draw = ImageDraw.Draw(big)
    for shape, centre, radius, colour in layers:
        _draw(draw, shape, centre, radius, colour)
    return big.resize((size, size), Image.BOX)


def move_clip(rng, size: int, num_frames: int = NUM_FRAMES):
    colour, shape, radius, direction, centres = move_path(rng, size, num_frames)
    frames = [[(shape, centre, radius, COLOURS[colour])] for centre in centres]
    return frames, f"Moving the {colour} {shape} from {direction}"


def drop_clip(rng, size: int, num_frames: int = NUM_FRAMES):
    drop = drop_layout(rng, size)
    # Falls so it reaches the box a little after frame 21: always visibly moving.
    fall = drop.box_top - drop.radius - drop.top
    gravity = 2 * fall / (num_frames + rng.uniform(1, 4)) ** 2
    box = ("square", (drop.x, drop.box_top + drop.box_half), drop.box_half, COLOURS[drop.box_colour])
    frames = [[box, (drop.shape, (drop.x, drop.top + 0.5 * gravity * t * t), drop.radius, COLOURS[drop.colour])]
              for t in range(num_frames)]
    return frames, drop.instruction


def cover_clip(rng, size: int, num_frames: int = NUM_FRAMES):
    cover = cover_layout(rng, size)
    start = -cover.cloth_half + rng.uniform(0, 0.1) * size
    frames = []
    for t in range(num_frames):
        edge = start + cover.speed * t
        cloth_x = edge if cover.from_left else size - edge
        cloth = ("square", (cloth_x, cover.centre[1]), cover.cloth_half, COLOURS[cover.cloth_colour])
        frames.append([(cover.shape, cover.centre, cover.radius, COLOURS[cover.colour]), cloth])
    return frames, cover.instruction


CLIP_MAKERS = {"move_object": move_clip, "drop_object": drop_clip, "cover_object": cover_clip}


@dataclass
class EasyClip:
    """A clip's random draws; ``save`` renders its frames and writes them as PNG."""
    background: np.ndarray
    layers: list  # per frame
    instruction: str

    def save(self, folder: Path) -> None:
        for index, frame_layers in enumerate(self.layers):
            _render(self.background, frame_layers).save(folder / f"{index:02d}.png")  # lossless: no JPEG noise to learn


def draw_clip(task: str, size: int, rng: np.random.Generator, num_frames: int = NUM_FRAMES) -> EasyClip:
    layers, instruction = CLIP_MAKERS[task](rng, size, num_frames)
    return EasyClip(backdrop(rng, size), layers, instruction)


def _save_clip(clip, folder: Path) -> None:
    folder.mkdir(parents=True)
    clip.save(folder)


def write_synthetic_dataset(output_dir: Path, videos_per_task: int, val_videos_per_task: int, size: int, seed: int,
                            hard: bool = False, num_frames: int = NUM_FRAMES, workers: int = 1, physics: bool = False) -> None:
    """The numbered raw layout: metadata.json, train/<task>/video_*/00..20.png, val/...
    (``hard``: the set of ``synthetic_hard.py``, frames saved as JPEG; ``physics``: the set of
    ``synthetic_physics.py``, its own five tasks, JPEG; ``num_frames`` > 21 for clips that go on,
    e.g. for ``evaluate.py --horizon``). Every clip's random draws (and a physics clip's simulation)
    are made here, in order from one generator; ``workers`` processes render and write the frames,
    the same files at any count."""
    rng = np.random.default_rng(seed)
    entries = []
    tasks, draw = TASKS, draw_hard_clip if hard else draw_clip
    if physics:
        try:
            from .synthetic_physics import PHYSICS_TASKS, draw_physics_clip  # in here: optional (pybullet), only this set needs it
        except ImportError as err:
            raise UserError(f"the physics set needs pybullet ({err}): pip install -r requirements-test.txt, or pip install pybullet")
        tasks, draw = PHYSICS_TASKS, draw_physics_clip

    def drawn():
        for split, count in (("train", videos_per_task), ("val", val_videos_per_task)):
            for task in tasks:
                for index in range(count):
                    video_path = f"{split}/{task}/video_{index}"
                    clip = draw(task, size, rng, num_frames)
                    entries.append({"video_path": video_path, "instruction": clip.instruction, "task_type": task})
                    yield clip, Path(output_dir) / video_path

    if workers <= 1:
        for clip, folder in drawn():
            _save_clip(clip, folder)
    else:
        with ProcessPoolExecutor(workers) as pool:
            pending = deque()
            for clip, folder in drawn():  # a drawn hard clip holds its grain (1.7 MB at 64 px): a few per worker at a time
                pending.append(pool.submit(_save_clip, clip, folder))
                if len(pending) >= 4 * workers:
                    pending.popleft().result()
            for job in pending:
                job.result()
    (Path(output_dir) / "metadata.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
