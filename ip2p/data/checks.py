"""Dataset checks behind ``quick_test.py``: each returns a list of one-line
problems, empty when all is well. (Model folder checks: ``ip2p.models.files``.)"""

from concurrent.futures import ThreadPoolExecutor
import io
from typing import List, Optional

from PIL import Image as PILImage
from tqdm.auto import tqdm

from .processed import ProcessedDataset, dataset_features
from .raw_data import frame_files_problem


def dataset_problems(dataset: ProcessedDataset, expected_frames: int, num_workers: int = 4) -> List[str]:
    """Features, split sizes, and that every frame resolves and decodes."""
    problems = []
    expected = dataset_features(expected_frames)
    for name in ("train", "test"):
        if name not in dataset.splits:
            problems.append(f"split '{name}' is missing; rebuild with make_dataset.py")
        elif len(dataset.splits[name]) == 0:
            problems.append(f"split '{name}' is empty")
    for name, split in dataset.splits.items():
        if split.features != expected:
            problems.append(f"split '{name}' has features {dict(split.features)}, expected {dict(expected)}")
            continue
        problems.extend(_split_frame_problems(dataset, name, split, num_workers))
    return problems


def _split_frame_problems(dataset: ProcessedDataset, name: str, split, num_workers: int) -> List[str]:
    from datasets import Image  # in here: quick_test.py --help must not wait for datasets (about 1 s)

    # Targets are checked from their stored bytes; inputs from their files.
    raw = split.cast_column("edited_image", Image(decode=False))

    def check(index: int) -> Optional[str]:
        row = raw[index]
        frames = [str(dataset.frame_path(p)) for p in row["input_frames"]]
        problem = frame_files_problem(None, frames)
        if problem is None:
            problem = _target_problem(row["edited_image"], frames[-1])
        return f"{name}[{index}] ({row['edit_prompt']!r}): {problem}" if problem else None

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        results = list(tqdm(pool.map(check, range(len(raw))), total=len(raw), desc=f"checking {name}", unit="sample"))
    return [r for r in results if r]


def _target_problem(stored: dict, last_input: str) -> Optional[str]:
    try:
        source = io.BytesIO(stored["bytes"]) if stored.get("bytes") else stored["path"]
        with PILImage.open(source) as target:
            target.load()
            target_size = target.size
        with PILImage.open(last_input) as last:
            last_size = last.size
    except Exception as err:
        return f"target frame does not decode ({type(err).__name__}: {err})"
    if target_size != last_size:
        return f"target is {target_size[0]}x{target_size[1]} but the input frames are {last_size[0]}x{last_size[1]}"
    return None
