"""What both synthetic sets share (``synthetic.py``, ``synthetic_hard.py``):
the task names, colours and shapes, and the random layouts of a move, a drop
and a cover, drawn the same way in both so their instructions read alike."""

from dataclasses import dataclass
from typing import List, Tuple

TASKS = ("drop_object", "cover_object", "move_object")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
           "purple": (140, 60, 180), "orange": (240, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20)}
SHAPES = ("square", "circle")
SUPERSAMPLE = 4
NUM_FRAMES = 21


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
