"""Generated clips for smoke tests: the original project's mini data set.

One clip, ``train/video_test_01/00.jpg ... 20.jpg``: a pen (a dark bar) falls
onto a table (a brown slab) over a noisy backdrop, matching its instruction.
Deterministic for a seed: the same seed writes byte-identical files.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MINI_VIDEO_PATH = "train/video_test_01"
MINI_INSTRUCTION = "dropping a pen onto the table"
MINI_TASK_TYPE = "drop_object"


def render_drop_clip(num_frames: int, size: int, seed: int):
    """Frames of a pen falling onto a table, as PIL images."""
    rng = np.random.default_rng(seed)
    backdrop = (rng.random((size, size, 3)) * 40 + 170).astype(np.uint8)
    table_top = int(size * 0.75)
    pen_length, pen_width = max(4, size // 4), max(2, size // 24)
    pen_x = int(rng.integers(size // 8, size - size // 8 - pen_length))
    colour = tuple(int(c) for c in rng.integers(0, 90, size=3))
    frames = []
    for index in range(num_frames):
        # Free fall that lands on the table top in the last frame.
        progress = (index / max(1, num_frames - 1)) ** 2
        pen_y = int(size * 0.05 + progress * (table_top - pen_width - size * 0.05))
        image = Image.fromarray(backdrop.copy())
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, table_top, size - 1, size - 1], fill=(120, 80, 40))
        draw.rectangle([pen_x, pen_y, pen_x + pen_length, pen_y + pen_width], fill=colour)
        frames.append(image)
    return frames


def write_mini_dataset(output_dir: Path, num_frames: int, size: int, seed: int) -> None:
    """Write ``metadata.json`` and the one clip into ``output_dir``."""
    video_dir = Path(output_dir) / MINI_VIDEO_PATH
    video_dir.mkdir(parents=True)
    for index, frame in enumerate(render_drop_clip(num_frames, size, seed)):
        frame.save(video_dir / f"{index:02d}.jpg", quality=95)
    metadata = [{"video_path": MINI_VIDEO_PATH, "instruction": MINI_INSTRUCTION, "task_type": MINI_TASK_TYPE}]
    (Path(output_dir) / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def write_test_video(output_dir: Path, num_frames: int, size: int, seed: int) -> None:
    """``test_video/``: the clip's last two frames as an (input, edited) pair,
    the input of ``prepare_test_data.py``."""
    folder = Path(output_dir) / "test_video"
    folder.mkdir(parents=True)
    frames = render_drop_clip(num_frames, size, seed)
    frames[-2].save(folder / "00.jpg", quality=95)
    frames[-1].save(folder / "01.jpg", quality=95)
    meta = {"instruction": MINI_INSTRUCTION, "task_type": MINI_TASK_TYPE}
    (folder / "test_video.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

