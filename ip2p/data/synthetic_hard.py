"""The harder synthetic set (``create_mini_data.py --synthetic --hard``).

The same three task families and instructions as ``synthetic.py``, but made
to be hard for a classical predictor and closer to filmed clips:

- textured scenes: a multi-scale noise backdrop with "furniture" (blocks and
  discs of their own texture) and fine grain, and objects whose surface
  carries a stripe or checker pattern that moves with them;
- a camera that drifts at a constant sub-pixel velocity through the clip
  (0.1-0.6 px per frame in a random direction), so nothing is static;
- sub-pixel object motion, anti-aliased: every frame is rendered at 4x and
  box-filtered down, and positions are continuous;
- JPEG frames (quality 70-92, drawn per clip), the artefacts frame to frame;
- events that constant-velocity extrapolation gets wrong and the
  instruction explains, placed near the clip's end so the frame to predict
  is often the one where they happen: a dropped object is released,
  accelerates and comes to rest on the box; a cloth slides over an object
  and stops once it covers it (occlusion). Moving objects keep a constant
  velocity: there flow is right and a model must not do worse.

Everything is drawn per clip from the seed; the same seed writes the same
files. A clip's random draws (``draw_hard_clip``) come first, in order from
the set's one generator; its frames are rendered from them without
randomness (``HardClip.save``), so clips render in parallel and write the
same files at any number of workers.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

from .synthetic_common import COLOURS, NUM_FRAMES, SHAPES, SUPERSAMPLE, cover_layout, drop_layout, move_path

MAX_DRIFT = 0.6  # camera pixels per frame
PATTERNS = ("stripes", "checker", "plain")


OCTAVES = ((3, 0.5), (9, 0.3), (27, 0.2))  # noise cells across the image, weight


def value_noise(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random grid, bicubic-upsampled to ``height`` x ``width``."""
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC)).clip(0, 1)


@dataclass
class Texture:
    """An RGB float texture around colour ``base``: three octaves of noise per
    channel. ``draw`` makes its random draws, ``render`` its pixels."""
    base: np.ndarray
    contrast: float
    grids: List[List[np.ndarray]]  # per channel, per octave

    @classmethod
    def draw(cls, rng: np.random.Generator, base, contrast: float) -> "Texture":
        return cls(base, contrast, [[rng.random((cells + 1, cells + 1)).astype(np.float32) for cells, _ in OCTAVES]
                                    for _ in range(3)])

    def render(self, height: int, width: int) -> np.ndarray:
        image = np.empty((height, width, 3), np.float32)
        for channel, grids in enumerate(self.grids):
            octaves = [value_noise(grid, height, width) * weight for grid, (_, weight) in zip(grids, OCTAVES)]
            image[..., channel] = self.base[channel] + (sum(octaves) - 0.5) * self.contrast
        return image


def disc_mask(height: int, width: int, centre, radius: float, shape: str) -> np.ndarray:
    """Boolean mask of a circle or axis-aligned square (``radius`` = half side)."""
    y, x = np.ogrid[0:height, 0:width]
    dx, dy = x + 0.5 - centre[0], y + 0.5 - centre[1]
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)


@dataclass
class Backdrop:
    """A square world of ``size`` supersampled pixels: a noise texture with
    "furniture" (blocks and discs of their own texture) and fine grain fixed
    to the world."""
    size: int
    ground: Texture
    furniture: List[Tuple[np.ndarray, float, str, Texture]]  # centre, radius, shape, texture
    grain: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int) -> "Backdrop":
        ground = Texture.draw(rng, rng.uniform(80, 180, 3), rng.uniform(60, 110))
        furniture = []
        for _ in range(int(rng.integers(3, 7))):
            radius = rng.uniform(0.06, 0.16) * size
            centre = rng.uniform(0, size, 2)
            shape = str(rng.choice(SHAPES))
            furniture.append((centre, radius, shape, Texture.draw(rng, rng.uniform(30, 230, 3), 80)))
        return cls(size, ground, furniture, rng.normal(0, 6, (size, size, 3)).astype(np.float32))

    def render(self) -> np.ndarray:
        image = self.ground.render(self.size, self.size)
        for centre, radius, shape, texture in self.furniture:
            mask = disc_mask(self.size, self.size, centre, radius, shape)
            image[mask] = texture.render(self.size, self.size)[mask]
        return image + self.grain


def object_layer(rng: np.random.Generator, shape: str, colour, radius: float, pattern: str) -> dict:
    """An object of the world: its look is fixed, its position given per frame."""
    period = rng.uniform(0.35, 0.7) * radius
    angle = rng.uniform(0, math.pi)
    return {"shape": shape, "colour": np.asarray(colour, np.float32), "radius": radius, "pattern": pattern,
            "period": period, "angle": angle}


class Scene:
    """A world larger than the view, rendered at ``SUPERSAMPLE``x; the camera
    looks at a ``size`` x ``size`` window whose corner drifts. Holds only its
    random draws; ``frames`` renders."""

    def __init__(self, rng: np.random.Generator, size: int, num_frames: int = NUM_FRAMES):
        self.size = size
        self.margin = int(math.ceil(MAX_DRIFT * num_frames)) + 2
        self.backdrop = Backdrop.draw(rng, (size + 2 * self.margin) * SUPERSAMPLE)
        angle, speed = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, MAX_DRIFT)
        self.drift = (speed * math.cos(angle), speed * math.sin(angle))
        self.start = (self.margin + rng.uniform(-1, 1), self.margin + rng.uniform(-1, 1))
        self.jpeg_quality = int(rng.integers(70, 93))

    def _paint(self, canvas: np.ndarray, layer: dict, centre) -> None:
        s = SUPERSAMPLE
        cx, cy, radius = (centre[0] + self.margin) * s, (centre[1] + self.margin) * s, layer["radius"] * s
        top, left = max(int(cy - radius) - 1, 0), max(int(cx - radius) - 1, 0)
        bottom, right = min(int(cy + radius) + 2, canvas.shape[0]), min(int(cx + radius) + 2, canvas.shape[1])
        if bottom <= top or right <= left:
            return
        mask = disc_mask(bottom - top, right - left, (cx - left, cy - top), radius, layer["shape"])
        y, x = np.mgrid[top:bottom, left:right].astype(np.float32)
        u = ((x + 0.5 - cx) * math.cos(layer["angle"]) + (y + 0.5 - cy) * math.sin(layer["angle"])) / (layer["period"] * s)
        v = (-(x + 0.5 - cx) * math.sin(layer["angle"]) + (y + 0.5 - cy) * math.cos(layer["angle"])) / (layer["period"] * s)
        if layer["pattern"] == "stripes":
            shade = 0.8 + 0.35 * (np.floor(u) % 2)
        elif layer["pattern"] == "checker":
            shade = 0.8 + 0.35 * ((np.floor(u) + np.floor(v)) % 2)
        else:
            shade = np.ones_like(u)
        region = canvas[top:bottom, left:right]
        region[mask] = (layer["colour"][None] * shade[mask][:, None])

    def frames(self, positions: List[List[Tuple[dict, Tuple[float, float]]]]) -> List[Image.Image]:
        """Frame ``t`` shows the objects ``positions[t]`` at their world
        positions (view coordinates of frame 0) through the drifted camera."""
        backdrop = self.backdrop.render()
        return [self._frame(backdrop, t, placed) for t, placed in enumerate(positions)]

    def _frame(self, backdrop: np.ndarray, t: int, placed) -> Image.Image:
        s = SUPERSAMPLE
        canvas = backdrop.copy()
        for layer, centre in placed:
            self._paint(canvas, layer, centre)
        # The window's corner at full sub-pixel precision: bilinear between the supersampled pixels around it
        # (rounding it to the supersampled grid would hold the camera still for a frame or two, then jump).
        corner_x, corner_y = (self.start[0] + self.drift[0] * t) * s, (self.start[1] + self.drift[1] * t) * s
        x0, y0 = int(corner_x), int(corner_y)
        fx, fy = corner_x - x0, corner_y - y0
        window = canvas[y0:y0 + self.size * s + 1, x0:x0 + self.size * s + 1]
        rows = (1 - fy) * window[:-1] + fy * window[1:]
        view = (1 - fx) * rows[:, :-1] + fx * rows[:, 1:]
        small = view.reshape(self.size, s, self.size, s, 3).mean(axis=(1, 3))  # box filter: anti-aliasing
        return Image.fromarray(small.clip(0, 255).round().astype(np.uint8))


def _pattern(rng) -> str:
    return str(rng.choice(PATTERNS, p=(0.4, 0.4, 0.2)))


def move_clip(rng, size: int, num_frames: int):
    colour, shape, radius, direction, centres = move_path(rng, size, num_frames, speeds=(0.012, 0.035))
    layer = object_layer(rng, shape, COLOURS[colour], radius, _pattern(rng))
    return [[(layer, centre)] for centre in centres], f"Moving the {colour} {shape} from {direction}"


# When a drop lands and a cloth stops, in frames from the clip's last frame (the one to predict): always close to
# it, so the next frame is often where constant velocity goes wrong. The events' timing is then a cue of its own,
# which does not transfer to clips whose events come later (docs/learning.md, "Transfer to kinds never seen").
EVENT_WINDOW = (-1.5, 2.0)


def drop_clip(rng, size: int, num_frames: int):
    """Held still, released, falling with constant acceleration, then resting
    on the box: the landing falls near the clip's last frame, so the next
    frame is often the one where constant velocity would carry the object
    into the box."""
    drop = drop_layout(rng, size)
    x, radius, box_half, box_top, top = drop.x, drop.radius, drop.box_half, drop.box_top, drop.top
    rest = box_top - radius
    landing = num_frames - 1 + rng.uniform(*EVENT_WINDOW)  # frame (continuous) at which it touches the box
    release = landing - rng.uniform(7, 12)
    gravity = 2 * (rest - top) / (landing - release) ** 2

    def height(t: float) -> float:
        falling = min(max(t - release, 0.0), landing - release)
        return top + 0.5 * gravity * falling * falling

    box = object_layer(rng, "square", COLOURS[drop.box_colour], box_half, _pattern(rng))
    ball = object_layer(rng, drop.shape, COLOURS[drop.colour], radius, _pattern(rng))
    positions = [[(box, (x, box_top + box_half)), (ball, (x, height(t)))] for t in range(num_frames)]
    return positions, drop.instruction


def cover_clip(rng, size: int, num_frames: int):
    """A cloth slides over a resting object and stops when it covers it, near
    the clip's last frame: constant velocity would carry it past."""
    cover = cover_layout(rng, size, centre_x=(0.4, 0.6), speeds=(0.025, 0.045))
    centre = cover.centre
    stop = num_frames - 1 + rng.uniform(*EVENT_WINDOW)  # frame (continuous) at which it lies centred on the object
    thing = object_layer(rng, cover.shape, COLOURS[cover.colour], cover.radius, _pattern(rng))
    cloth = object_layer(rng, "square", COLOURS[cover.cloth_colour], cover.cloth_half, _pattern(rng))
    positions = []
    for t in range(num_frames):
        behind = cover.speed * max(stop - t, 0.0)  # distance still to go
        cloth_x = centre[0] - behind if cover.from_left else centre[0] + behind
        positions.append([(thing, centre), (cloth, (cloth_x, centre[1]))])
    return positions, cover.instruction


CLIP_MAKERS = {"move_object": move_clip, "drop_object": drop_clip, "cover_object": cover_clip}


@dataclass
class HardClip:
    """A clip's random draws; ``save`` renders its frames and writes them as JPEG."""
    scene: Scene
    positions: List[List[Tuple[dict, Tuple[float, float]]]]
    instruction: str

    def save(self, folder: Path) -> None:
        for index, frame in enumerate(self.scene.frames(self.positions)):
            frame.save(folder / f"{index:02d}.jpg", quality=self.scene.jpeg_quality)


def draw_hard_clip(task: str, size: int, rng: np.random.Generator, num_frames: int = NUM_FRAMES) -> HardClip:
    scene = Scene(rng, size, num_frames)
    positions, instruction = CLIP_MAKERS[task](rng, size, num_frames)  # drawn after the scene
    return HardClip(scene, positions, instruction)
