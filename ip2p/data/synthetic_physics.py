"""The third synthetic set (``create_mini_data.py --synthetic --physics``):
rigid bodies on a table whose motion the Bullet physics engine (pybullet)
computes. Our code places the bodies and starts each action; the engine
decides when an object lands, bounces, slides to a stop, falls off the edge,
rolls or tips over, and the instruction names what it did (SSv2's templates):

- drop_object:  held still, then released over a box ("Dropping the red block onto the blue box")
- push_object:  an impulse at a random frame ("Pushing the green block so that it slides" or
                "... so that it falls off the table", whichever the engine made of it)
- cover_object: an upturned box dropped over a resting object ("Covering the yellow ball with the purple box")
- roll_object:  a ball set rolling ("Rolling the orange ball across the table")
- topple_stack: a leaning stack released ("Letting the stack of blocks fall over" or "... stand")

Frames: pybullet's CPU renderer (TinyRenderer, headless), a perspective camera
orbiting the table a little every frame, one light with shadows, noise
textures on the floor, the table and every body, rendered at twice the size and
downsampled, saved as JPEG of a random quality. 12 frames a second (SSv2's).

The draw (``draw_physics_clip``, one generator, in order) makes every random
choice and runs the simulation, which records poses only; ``save`` rebuilds
the bodies' looks in a fresh engine, poses them and renders, so any number of
processes writes the same files.
"""

from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import List, Tuple

import numpy as np
import pybullet
from PIL import Image

from .synthetic_common import COLOURS, NUM_FRAMES, pick_colours
from .synthetic_hard import Texture

PHYSICS_TASKS = ("drop_object", "push_object", "cover_object", "roll_object", "topple_stack")
FPS = 12
SUBSTEPS = 20  # engine steps of 1/240 s per frame
TABLE = (0.45, 0.3, 0.2)  # half length, half width, height (m)
TEXTURE_SIZE = 64

Pose = Tuple[Tuple[float, float, float], Tuple[float, float, float, float]]


@dataclass
class Body:
    """A body's look and first pose: ``shape`` is box, sphere or cup (an upturned open box)."""
    shape: str
    half: Tuple[float, float, float]  # half extents (a sphere: its radius three times)
    texture: Texture  # its colour too
    position: Tuple[float, float, float]
    orientation: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    mass: float = 0.2


def _parts(body: Body):
    """(half extents, offset) of the boxes a cup is made of: a top and four walls."""
    hx, hy, hz, wall = *body.half, 0.006
    return [((hx, hy, wall), (0, 0, hz - wall)), ((wall, hy, hz), (hx - wall, 0, 0)), ((wall, hy, hz), (-hx + wall, 0, 0)),
            ((hx, wall, hz), (0, hy - wall, 0)), ((hx, wall, hz), (0, -hy + wall, 0))]


def _shapes(client: int, body: Body, collide: bool):
    """(collision shape, visual shape) ids of ``body`` (collision -1 when ``collide`` is off)."""
    kw = dict(physicsClientId=client)
    white = [1, 1, 1, 1]
    if body.shape == "cup":
        parts = _parts(body)
        visual = pybullet.createVisualShapeArray([pybullet.GEOM_BOX] * 5, halfExtents=[p[0] for p in parts],
                                                 visualFramePositions=[p[1] for p in parts], rgbaColors=[white] * 5, **kw)
        collision = pybullet.createCollisionShapeArray([pybullet.GEOM_BOX] * 5, halfExtents=[p[0] for p in parts],
                                                       collisionFramePositions=[p[1] for p in parts], **kw) if collide else -1
    elif body.shape == "sphere":
        visual = pybullet.createVisualShape(pybullet.GEOM_SPHERE, radius=body.half[0], rgbaColor=white, **kw)
        collision = pybullet.createCollisionShape(pybullet.GEOM_SPHERE, radius=body.half[0], **kw) if collide else -1
    else:
        visual = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=body.half, rgbaColor=white, **kw)
        collision = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=body.half, **kw) if collide else -1
    return collision, visual


def _add(client: int, body: Body, collide: bool, static: bool = False) -> int:
    collision, visual = _shapes(client, body, collide)
    return pybullet.createMultiBody(0 if static else body.mass, collision, visual, basePosition=body.position,
                                    baseOrientation=body.orientation, physicsClientId=client)


@dataclass
class PhysicsClip:
    """A clip's draws and simulated poses; ``save`` renders the frames and writes them as JPEG."""
    floor: Body
    table: Body
    bodies: List[Body]  # the moving ones; the first is the box of a drop (static)
    poses: List[List[Pose]]  # per frame, per body
    cameras: List[Tuple[float, float, float]]  # per frame: yaw, pitch (degrees), distance (m)
    light: Tuple[float, float, float]
    jpeg_quality: int
    size: int
    instruction: str

    def save(self, folder: Path) -> None:
        client = pybullet.connect(pybullet.DIRECT)
        try:
            with TemporaryDirectory(prefix="ip2p-textures-") as textures:
                ids = [self._place(client, body, Path(textures) / f"{index}.png")
                       for index, body in enumerate([self.floor, self.table] + self.bodies)]
                for index, (poses, camera) in enumerate(zip(self.poses, self.cameras)):
                    for body_id, (position, orientation) in zip(ids[2:], poses):
                        pybullet.resetBasePositionAndOrientation(body_id, position, orientation, physicsClientId=client)
                    self._render(client, camera).save(folder / f"{index:02d}.jpg", quality=self.jpeg_quality)
        finally:
            pybullet.disconnect(client)

    def _place(self, client: int, body: Body, texture_file: Path) -> int:
        body_id = _add(client, body, collide=False, static=True)
        pixels = (body.texture.render(TEXTURE_SIZE, TEXTURE_SIZE).clip(0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(texture_file)
        texture = pybullet.loadTexture(str(texture_file), physicsClientId=client)
        for link in range(-1, pybullet.getNumJoints(body_id, physicsClientId=client)):
            pybullet.changeVisualShape(body_id, link, textureUniqueId=texture, physicsClientId=client)
        return body_id

    def _render(self, client: int, camera) -> Image.Image:
        yaw, pitch, distance = camera
        view = pybullet.computeViewMatrixFromYawPitchRoll([0, 0, TABLE[2]], distance, yaw, pitch, 0, 2, physicsClientId=client)
        projection = pybullet.computeProjectionMatrixFOV(45, 1.0, 0.05, 6.0, physicsClientId=client)
        width, height, rgba, _, _ = pybullet.getCameraImage(
            2 * self.size, 2 * self.size, view, projection, shadow=1, lightDirection=list(self.light),
            renderer=pybullet.ER_TINY_RENDERER, physicsClientId=client)
        pixels = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]
        return Image.fromarray(pixels).resize((self.size, self.size), Image.BOX)


def _colour(name: str) -> Tuple[float, float, float]:
    return tuple(channel / 255 for channel in COLOURS[name])


def _textured(rng, colour, contrast: float) -> Texture:
    return Texture.draw(rng, np.asarray(colour, np.float32), contrast)


def _object(rng, colour_name: str, x: float, y: float, shape: str = None, half=None, lift: float = 0.0,
            tilt: float = 0.0) -> Body:
    """An object (``shape`` and ``half`` drawn when None) resting on the table at (x, y), or ``lift`` m above
    that, turned up to ``tilt`` radians about each axis."""
    shape = shape or str(rng.choice(["box", "sphere"]))
    if half is None:
        half = (rng.uniform(0.04, 0.06),) * 3 if shape == "sphere" else tuple(rng.uniform(0.035, 0.065, 3))
    orientation = tuple(pybullet.getQuaternionFromEuler(rng.uniform(-tilt, tilt, 3).tolist())) if tilt else (0.0, 0.0, 0.0, 1.0)
    return Body(shape, tuple(half), _textured(rng, _colour(colour_name), 0.25),
                (x, y, TABLE[2] + half[2] + lift), orientation, mass=float(rng.uniform(0.1, 0.5)))


def _noun(body: Body) -> str:
    return "ball" if body.shape == "sphere" else "block"


def _on_table(rng, margin: float = 0.12) -> List[float]:
    return [rng.uniform(-TABLE[0] + margin, TABLE[0] - margin), rng.uniform(-TABLE[1] + margin, TABLE[1] - margin)]


class _Simulation:
    """A DIRECT pybullet world with the floor and the table: ``hold`` keeps bodies still until a frame,
    ``run`` steps it, recording every moving body's pose once a frame."""

    def __init__(self, rng, floor: Body, table: Body, bodies: List[Body], static_first: bool = False):
        self.client = pybullet.connect(pybullet.DIRECT)
        pybullet.setGravity(0, 0, -9.81, physicsClientId=self.client)
        pybullet.setPhysicsEngineParameter(fixedTimeStep=1 / (FPS * SUBSTEPS), deterministicOverlappingPairs=1,
                                           physicsClientId=self.client)
        self.ids = [_add(self.client, floor, True, static=True), _add(self.client, table, True, static=True)]
        self.ids += [_add(self.client, body, True, static=static_first and index == 0) for index, body in enumerate(bodies)]
        for body_id in self.ids:
            pybullet.changeDynamics(body_id, -1, lateralFriction=float(rng.uniform(0.3, 0.7)),
                                    restitution=float(rng.uniform(0.1, 0.5)), rollingFriction=float(rng.uniform(0.0, 0.002)),
                                    physicsClientId=self.client)
        self.moving = self.ids[2:]

    def pose(self, index: int) -> Pose:
        position, orientation = pybullet.getBasePositionAndOrientation(self.moving[index], physicsClientId=self.client)
        return tuple(position), tuple(orientation)

    def run(self, num_frames: int, held: dict = None, pushes: dict = None) -> List[List[Pose]]:
        """``held``: body index -> frame it is released at (kept at its start pose before);
        ``pushes``: frame -> (body index, linear velocity) given at that frame."""
        held, pushes, frames = held or {}, pushes or {}, []
        starts = {index: self.pose(index) for index in held}
        for frame in range(num_frames):
            if frame in pushes:
                index, velocity = pushes[frame]
                pybullet.resetBaseVelocity(self.moving[index], linearVelocity=velocity, physicsClientId=self.client)
            for _ in range(SUBSTEPS):
                for index, release in held.items():
                    if frame < release:
                        pybullet.resetBasePositionAndOrientation(self.moving[index], *starts[index], physicsClientId=self.client)
                        pybullet.resetBaseVelocity(self.moving[index], [0, 0, 0], [0, 0, 0], physicsClientId=self.client)
                pybullet.stepSimulation(physicsClientId=self.client)
            frames.append([self.pose(index) for index in range(len(self.moving))])
        pybullet.disconnect(self.client)
        return frames


def _drop(rng, floor, table, num_frames):
    colour, box_colour = pick_colours(rng, 2)
    x, y = _on_table(rng, 0.15)
    box_half = tuple(rng.uniform([0.06, 0.06, 0.03], [0.1, 0.1, 0.06]))
    box = Body("box", box_half, _textured(rng, _colour(box_colour), 0.2), (x, y, TABLE[2] + box_half[2]))
    offset = rng.uniform(-0.6, 0.6, 2) * np.asarray(box_half[:2])
    thing = _object(rng, colour, x + offset[0], y + offset[1], lift=2 * box_half[2] + rng.uniform(0.12, 0.3), tilt=0.5)
    bodies = [box, thing]
    poses = _Simulation(rng, floor, table, bodies, static_first=True).run(num_frames, held={1: int(rng.integers(8, 17))})
    return bodies, poses, f"Dropping the {colour} {_noun(thing)} onto the {box_colour} box"


def _push(rng, floor, table, num_frames):
    (colour,) = pick_colours(rng, 1)
    x, y = _on_table(rng, 0.15)
    thing = _object(rng, colour, x, y, shape="box")
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.5, 1.5)
    push = {int(rng.integers(6, 15)): (0, [speed * np.cos(angle), speed * np.sin(angle), 0.0])}
    poses = _Simulation(rng, floor, table, [thing]).run(num_frames, pushes=push)
    fell = poses[-1][0][0][2] < TABLE[2] - 0.02
    return [thing], poses, f"Pushing the {colour} block so that it {'falls off the table' if fell else 'slides'}"


def _cover(rng, floor, table, num_frames):
    colour, cup_colour = pick_colours(rng, 2)
    x, y = _on_table(rng, 0.18)
    shape = str(rng.choice(["box", "sphere"]))
    thing = _object(rng, colour, x, y, shape, half=(0.045,) * 3 if shape == "sphere" else (0.045, 0.045, 0.035))
    cup_half = (rng.uniform(0.075, 0.095), rng.uniform(0.075, 0.095), rng.uniform(0.06, 0.075))
    offset = rng.uniform(-0.015, 0.015, 2)
    cup = Body("cup", cup_half, _textured(rng, _colour(cup_colour), 0.2),
               (x + offset[0], y + offset[1], TABLE[2] + 2 * thing.half[2] + cup_half[2] + rng.uniform(0.05, 0.2)),
               tuple(pybullet.getQuaternionFromEuler([0, 0, float(rng.uniform(-0.8, 0.8))])), mass=0.3)
    poses = _Simulation(rng, floor, table, [thing, cup]).run(num_frames, held={1: int(rng.integers(8, 17))})
    return [thing, cup], poses, f"Covering the {colour} {_noun(thing)} with the {cup_colour} box"


def _roll(rng, floor, table, num_frames):
    (colour,) = pick_colours(rng, 1)
    x, y = _on_table(rng, 0.12)
    ball = _object(rng, colour, x, y, shape="sphere")
    towards = -np.asarray([x, y]) + rng.uniform(-0.2, 0.2, 2)  # roughly across the table
    velocity = towards / (np.linalg.norm(towards) + 1e-6) * rng.uniform(0.3, 0.9)
    start = int(rng.integers(4, 14))
    poses = _Simulation(rng, floor, table, [ball]).run(num_frames, pushes={start: (0, [*velocity.tolist(), 0.0])})
    return [ball], poses, f"Rolling the {colour} ball across the table"


def _topple(rng, floor, table, num_frames):
    colours = pick_colours(rng, 3)
    x, y = _on_table(rng, 0.15)
    half = rng.uniform(0.035, 0.05)
    lean = rng.uniform(0.4, 1.2) * half * rng.choice([-1, 1], 2)  # each block's shift over the one below
    blocks = [_object(rng, colour, x + level * lean[0], y + level * lean[1], "box", (half,) * 3, lift=2 * half * level)
              for level, colour in enumerate(colours)]
    release = int(rng.integers(6, 15))
    poses = _Simulation(rng, floor, table, blocks).run(num_frames, held={index: release for index in range(3)})
    fell = poses[-1][2][0][2] < TABLE[2] + 4 * half
    return blocks, poses, f"Letting the stack of blocks {'fall over' if fell else 'stand'}"


ACTIONS = {"drop_object": _drop, "push_object": _push, "cover_object": _cover, "roll_object": _roll, "topple_stack": _topple}


def draw_physics_clip(task: str, size: int, rng: np.random.Generator, num_frames: int = NUM_FRAMES) -> PhysicsClip:
    floor_colour, table_colour = np.asarray(rng.uniform(0.3, 0.8, 3), np.float32), np.asarray(rng.uniform(0.25, 0.75, 3), np.float32)
    floor = Body("box", (3.0, 3.0, 0.05), _textured(rng, floor_colour, 0.35), (0, 0, -0.05))
    table = Body("box", (TABLE[0], TABLE[1], TABLE[2] / 2), _textured(rng, table_colour, 0.3),
                 (0, 0, TABLE[2] / 2))
    bodies, poses, instruction = ACTIONS[task](rng, floor, table, num_frames)
    yaw, pitch, distance = rng.uniform(0, 360), rng.uniform(-45, -28), rng.uniform(0.6, 0.8)
    turn = rng.uniform(0.3, 1.0) * rng.choice([-1, 1])  # degrees a frame
    cameras = [(float(yaw + turn * frame), float(pitch), float(distance)) for frame in range(num_frames)]
    light = tuple(float(v) for v in (*rng.uniform(-1, 1, 2), rng.uniform(1.5, 3)))
    return PhysicsClip(floor, table, bodies, poses, cameras, light, int(rng.integers(75, 96)), size, instruction)
