"""The held-out samples ``evaluate.py`` scores: from a processed dataset, or
from a raw data root in either layout."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

from PIL import Image

from ..data.processed import is_processed_dataset, load_processed_dataset
from ..data.raw_data import scan_raw_data, task_type_from_path
from ..shared.cli import UserError
from ..shared.images import open_image


@dataclass
class EvalSample:
    sample_id: str
    task_type: str
    instruction: str
    load_frames: Callable[[], List[Image.Image]]
    load_target: Callable[[], Image.Image]


def samples_from_data(data: Path, split: str, num_frames: int) -> List[EvalSample]:
    """Samples of a processed dataset, or of a raw data root (either layout)."""
    return (_processed_samples if is_processed_dataset(data) else _raw_samples)(data, split, num_frames)


def _processed_samples(data: Path, split: str, num_frames: int) -> List[EvalSample]:
    dataset = load_processed_dataset(data)
    rows = dataset.split(split)
    if dataset.num_input_frames != num_frames:
        raise UserError(f"{data} has {dataset.num_input_frames} frames per sample but the model takes {num_frames}")
    samples = []
    # Whole columns of paths and prompts: indexing rows would decode every target image here.
    for index, (frames_paths, prompt) in enumerate(zip(rows["input_frames"], rows["edit_prompt"])):
        samples.append(EvalSample(
            sample_id=str(Path(frames_paths[-1]).parent), task_type=task_type_from_path(str(Path(frames_paths[-1]).parent)),
            instruction=prompt,
            load_frames=lambda paths=frames_paths: [open_image(p, dataset.frame_path) for p in paths],
            load_target=lambda i=index: rows[i]["edited_image"].convert("RGB"),
        ))
    return samples


def _raw_samples(data: Path, split: str, num_frames: int) -> List[EvalSample]:
    return raw_samples(data, split, num_frames, "check them with make_dataset.py")


def raw_samples(data: Path, split: str, num_frames: int, fix: str) -> List[EvalSample]:
    """The ``split`` samples of a raw data root: each clip's last ``num_frames``
    + 1 frames; any bad clip stops with one line ending in ``fix``."""
    scan = scan_raw_data(data, num_frames)
    if scan.problems:
        raise UserError(f"{len(scan.problems)} invalid sample(s) in {data}, first: {scan.problems[0].line()}; {fix}")
    chosen = [s for s in scan.samples if s.split == split]
    if not chosen:
        raise UserError(f"{data} has no samples in split {split!r} (raw val/ is 'test', everything else 'train')")
    open_rgb = lambda path: Image.open(Path(data) / path).convert("RGB")  # noqa: E731
    return [EvalSample(s.sample_id, s.task_type, s.instruction,
                       load_frames=lambda s=s: [open_rgb(p) for p in s.input_frames],
                       load_target=lambda s=s: open_rgb(s.target_frame)) for s in chosen]
