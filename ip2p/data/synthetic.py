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
from typing import List, Tuple

import numpy as np
from PIL import Image, ImageDraw

TASKS = ("drop_object", "cover_object", "move_object")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
           "purple": (140, 60, 180), "orange": (240, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20)}
SHAPES = ("square", "circle")
SUPERSAMPLE = 4
NUM_FRAMES = 21


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


def pick_colours(rng, count: int) -> List[str]:
    return list(rng.choice(list(COLOURS), size=count, replace=False))


def move_path(rng, size: int, num_frames: int, speeds=(0.02, 0.035)):
    """An object's colour, shape, radius, direction and its centre in every
    frame, moving in a straight line at a constant speed (fraction of ``size`` per frame)."""
    colour, shape = pick_colours(rng, 1)[0], str(rng.choice(SHAPES))
    radius = rng.uniform(0.08, 0.13) * size
    direction = str(rng.choice(["left to right", "right to left", "top to bottom", "bottom to top"]))
    speed = rng.uniform(*speeds) * size  # pixels per frame
    start, cross = radius + rng.uniform(0, 0.1) * size, rng.uniform(0.3, 0.7) * size
    sign = 1 if direction in ("left to right", "top to bottom") else -1
    origin = start if sign > 0 else size - start
    horizontal = direction in ("left to right", "right to left")
    alongs = [origin + sign * speed * t for t in range(num_frames)]
    centres = [(along, cross) if horizontal else (cross, along) for along in alongs]
    return colour, shape, radius, direction, centres


def move_clip(rng, size: int, num_frames: int = NUM_FRAMES):
    colour, shape, radius, direction, centres = move_path(rng, size, num_frames)
    frames = [[(shape, centre, radius, COLOURS[colour])] for centre in centres]
    return frames, f"Moving the {colour} {shape} from {direction}"


@dataclass
class DropLayout:
    """Where a drop happens: the object above a box."""
    colour: str
    box_colour: str
    shape: str
    radius: float
    x: float
    box_half: float
    box_top: float
    top: float  # the object's centre at the start

    @property
    def noun(self) -> str:
        return "ball" if self.shape == "circle" else "block"

    @property
    def instruction(self) -> str:
        return f"Dropping the {self.colour} {self.noun} onto the {self.box_colour} box"


def drop_layout(rng, size: int) -> DropLayout:
    colour, box_colour = pick_colours(rng, 2)
    shape = str(rng.choice(SHAPES))
    radius = rng.uniform(0.07, 0.1) * size
    x = rng.uniform(0.3, 0.7) * size
    box_half = rng.uniform(0.15, 0.22) * size
    box_top = rng.uniform(0.8, 0.88) * size
    return DropLayout(colour, box_colour, shape, radius, x, box_half, box_top, top=radius + rng.uniform(0, 0.05) * size)


def drop_clip(rng, size: int, num_frames: int = NUM_FRAMES):
    drop = drop_layout(rng, size)
    # Falls so it reaches the box a little after frame 21: always visibly moving.
    fall = drop.box_top - drop.radius - drop.top
    gravity = 2 * fall / (num_frames + rng.uniform(1, 4)) ** 2
    box = ("square", (drop.x, drop.box_top + drop.box_half), drop.box_half, COLOURS[drop.box_colour])
    frames = [[box, (drop.shape, (drop.x, drop.top + 0.5 * gravity * t * t), drop.radius, COLOURS[drop.colour])]
              for t in range(num_frames)]
    return frames, drop.instruction


@dataclass
class CoverLayout:
    """Where a covering happens: an object, and the cloth that slides over it."""
    colour: str
    cloth_colour: str
    shape: str
    radius: float
    centre: Tuple[float, float]
    cloth_half: float
    from_left: bool
    speed: float  # pixels per frame

    @property
    def instruction(self) -> str:
        return f"Covering the {self.colour} {self.shape} with the {self.cloth_colour} cloth"


def cover_layout(rng, size: int, centre_x=(0.45, 0.6), speeds=(0.02, 0.03)) -> CoverLayout:
    colour, cloth_colour = pick_colours(rng, 2)
    shape = str(rng.choice(SHAPES))
    radius = rng.uniform(0.09, 0.13) * size
    centre = (rng.uniform(*centre_x) * size, rng.uniform(0.35, 0.65) * size)
    return CoverLayout(colour, cloth_colour, shape, radius, centre, cloth_half=radius * 1.6,
                       from_left=bool(rng.integers(2)), speed=rng.uniform(*speeds) * size)


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
                            hard: bool = False, num_frames: int = NUM_FRAMES, workers: int = 1) -> None:
    """The numbered raw layout: metadata.json, train/<task>/video_*/00..20.png, val/...
    (``hard``: the set of ``synthetic_hard.py``, frames saved as JPEG; ``num_frames`` > 21
    for clips that go on, e.g. for ``evaluate.py --horizon``). Every clip's
    random draws are made here, in order from one generator; ``workers``
    processes render and write the frames, the same files at any count."""
    from .synthetic_hard import draw_hard_clip

    rng = np.random.default_rng(seed)
    entries = []

    def drawn():
        for split, count in (("train", videos_per_task), ("val", val_videos_per_task)):
            for task in TASKS:
                for index in range(count):
                    video_path = f"{split}/{task}/video_{index}"
                    clip = (draw_hard_clip if hard else draw_clip)(task, size, rng, num_frames)
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
