"""The processed dataset: a ``DatasetDict`` saved with ``save_to_disk``.

Features are exactly those of docs/data.md ("Processed format"): ``input_frames`` (20 frame paths, oldest
first), ``edit_prompt`` and ``edited_image`` (the target frame).

How paths stay valid when data moves: frame paths are stored **relative to
the data root**, and ``ip2p_source.json`` beside the splits records where the
data root is **relative to the processed folder** (plus, as a fallback, the
absolute path it had when built). Loading resolves the data root in this
order: an explicit ``data_root`` argument (``--data-root``), the recorded
relative location, the recorded absolute location. So moving or copying the
data root and the processed folder together keeps it working, and moving only
the processed folder still works on the machine that built it. The target
frame's bytes are embedded in the dataset, so the ground truth never depends
on the raw files. A dataset without ``ip2p_source.json`` (made elsewhere) is
read with its paths as stored.
"""

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..shared.cli import UserError
from .raw_data import RawSample

SOURCE_FILE = "ip2p_source.json"
SKIPPED_REPORT_FILE = "skipped_samples.json"
FORMAT_VERSION = 1


def dataset_features(num_input_frames: int):
    from datasets import Features, Image, Sequence, Value  # in here: make_dataset.py --help must not wait for datasets

    return Features({
        "input_frames": Sequence(Value("string"), length=num_input_frames),
        "edit_prompt": Value("string"),
        "edited_image": Image(),
    })


def assign_splits(samples: List[RawSample], val_fraction: float, seed: int) -> Tuple[List[RawSample], List[RawSample], str]:
    """Train/test lists and a sentence saying where the test split came from.

    The raw ``val/`` split is used when it has samples; otherwise a seeded
    ``val_fraction`` of train. One sample cannot be split, so it goes to both
    splits (said in the returned sentence) rather than failing.
    """
    train = [s for s in samples if s.split == "train"]
    test = [s for s in samples if s.split == "test"]
    if test and train:
        return train, test, "test split = the raw val/ folder"
    pool = train or test
    if len(pool) == 1:
        return pool, list(pool), "only 1 sample: it is in both train and test (test overlaps train)"
    rng = random.Random(seed)
    num_test = min(len(pool) - 1, max(1, round(val_fraction * len(pool))))
    test_ids = set(rng.sample(range(len(pool)), num_test))
    test = [s for i, s in enumerate(pool) if i in test_ids]
    train = [s for i, s in enumerate(pool) if i not in test_ids]
    return train, test, f"test split = {num_test} of {len(pool)} samples drawn with seed {seed} (val_fraction {val_fraction})"


def _rows(samples: List[RawSample], data_root: str):
    for sample in samples:
        target = Path(data_root) / sample.target_frame
        yield {
            "input_frames": list(sample.input_frames),
            "edit_prompt": sample.instruction,
            # Embedding the bytes keeps the ground truth inside the dataset.
            "edited_image": {"bytes": target.read_bytes(), "path": sample.target_frame},
        }


def save_processed_dataset(
    staging_dir: Path,
    final_dir: Path,
    data_root: Path,
    splits: Dict[str, List[RawSample]],
    num_input_frames: int,
    provenance: dict,
) -> None:
    """Write the splits and ``ip2p_source.json`` into ``staging_dir``.

    ``final_dir`` is where the folder will live once complete; the recorded
    relative data-root path is computed from it, not from the staging name.
    """
    from datasets import Dataset, DatasetDict  # in here: make_dataset.py --help must not wait for datasets

    # The generator cache lives inside the fresh staging folder, so a re-run can
    # never pick up rows cached by an earlier run (datasets keys its cache on
    # the generator's code, not on the files it reads).
    build_cache = staging_dir / "_build_cache"
    features = dataset_features(num_input_frames)
    dataset = DatasetDict({
        name: Dataset.from_generator(
            _rows, features=features, cache_dir=str(build_cache / name),
            gen_kwargs={"samples": samples, "data_root": str(data_root)},
        )
        for name, samples in splits.items()
    })
    dataset.save_to_disk(str(staging_dir))
    del dataset
    shutil.rmtree(build_cache, ignore_errors=True)
    data_root_abs = Path(data_root).resolve()
    final_abs = Path(final_dir).resolve()
    source = {
        "format_version": FORMAT_VERSION,
        "data_root": _relative_path(data_root_abs, final_abs),
        "data_root_absolute_at_build": str(data_root_abs),
        "num_input_frames": num_input_frames,
        "num_samples": {name: len(samples) for name, samples in splits.items()},
        **provenance,
    }
    (staging_dir / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def _relative_path(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def is_processed_dataset(path: Path) -> bool:
    return (Path(path) / "dataset_dict.json").is_file()


@dataclass
class ProcessedDataset:
    splits: "object"  # datasets.DatasetDict
    data_root: Optional[Path]  # None: paths are used as stored
    num_input_frames: int
    source: dict
    folder: Path

    def frame_path(self, stored: str) -> Path:
        """The file behind a stored ``input_frames`` entry."""
        return Path(stored) if self.data_root is None else self.data_root / stored

    def split(self, name: str):
        """One split, or one clear line naming the splits there are."""
        if name not in self.splits:
            raise UserError(f"{self.folder} has no split {name!r} (splits: {', '.join(self.splits)})")
        return self.splits[name]


def load_processed_dataset(path: Path, data_root: Optional[Path] = None) -> ProcessedDataset:
    """Load a ``make_dataset.py`` output and locate its frames (see module doc)."""
    import datasets  # in here: make_dataset.py --help must not wait for datasets

    path = Path(path)
    if not is_processed_dataset(path):
        raise UserError(f"{path} is not a processed dataset (no dataset_dict.json); build it with make_dataset.py")
    splits = datasets.load_from_disk(str(path))
    source = _read_source(path)
    frames_feature = splits["train"].features.get("input_frames") if "train" in splits else None
    num_frames = getattr(frames_feature, "length", source.get("num_input_frames", -1))
    return ProcessedDataset(splits, _resolve_data_root(path, source, data_root), num_frames, source, path)


def _read_source(path: Path) -> dict:
    source_file = path / SOURCE_FILE
    if not source_file.is_file():
        return {}
    try:
        return json.loads(source_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{source_file}: malformed JSON ({err.msg}); rebuild the dataset with make_dataset.py") from None


def _resolve_data_root(path: Path, source: dict, override: Optional[Path]) -> Optional[Path]:
    if override is not None:
        if not Path(override).is_dir():
            raise UserError(f"--data-root {override} does not exist")
        return Path(override)
    if "data_root" not in source:
        return None
    candidates = [path / source["data_root"]]
    if source.get("data_root_absolute_at_build"):
        candidates.append(Path(source["data_root_absolute_at_build"]))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = " or ".join(str(c) for c in candidates)
    raise UserError(
        f"{path}: cannot find the raw frames' data root (looked at {tried}); "
        "move the data root beside the processed folder as it was, or pass --data-root"
    )
