"""Where training samples come from (``--train_data_dir`` first, as in the
diffusers example):

- a folder with ``metadata.jsonl`` whose image columns hold file names
  (what ``prepare_test_data.py`` writes): names resolve inside the folder;
- a ``save_to_disk`` folder (ours from ``make_dataset.py`` or any other);
- any other folder: the ``imagefolder`` loader of ``datasets``;
- ``--dataset_name``: a ``save_to_disk`` folder, a local dataset folder, or a hub id.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import datasets

from ..shared.cli import UserError
from ..shared.images import Resolver
from .processed import is_processed_dataset, load_processed_dataset


@dataclass(frozen=True)
class DataSource:
    """Where a trainer's samples are: a local ``train_data_dir``, else
    ``dataset_name`` (a folder or a hub id, with its ``dataset_config_name``);
    ``cache_dir`` is the ``datasets`` cache for loaders that need one."""
    train_data_dir: Optional[str] = None
    dataset_name: Optional[str] = None
    dataset_config_name: Optional[str] = None
    cache_dir: Optional[str] = None


def load_training_split(source: DataSource) -> Tuple[object, Resolver, str]:
    """(train split, resolver for string image paths, description of the source)."""
    if source.train_data_dir:
        folder = Path(source.train_data_dir)
        if not folder.is_dir():
            raise UserError(f"--train_data_dir {folder} does not exist")
        if is_processed_dataset(folder):
            processed = load_processed_dataset(folder)
            return _train_split(processed.splits, folder), processed.frame_path, str(folder)
        if looks_like_raw_root(folder):
            raise UserError(f"--train_data_dir {folder} is a raw clip root (clip folders of frames), not a dataset; convert it "
                            f"first: python make_dataset.py --data-root {folder} --output-dir processed_dataset_seq, then pass "
                            "--train_data_dir processed_dataset_seq")
        if (folder / "metadata.jsonl").is_file():
            return _read_jsonl_folder(folder), lambda name: folder / name, str(folder / "metadata.jsonl")
        loaded = datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=source.cache_dir)
        return _train_split(loaded, folder), lambda name: folder / name, str(folder)
    name = source.dataset_name
    if Path(name).is_dir() and is_processed_dataset(Path(name)):
        processed = load_processed_dataset(Path(name))
        return _train_split(processed.splits, name), processed.frame_path, name
    try:
        loaded = datasets.load_dataset(name, source.dataset_config_name, cache_dir=source.cache_dir)
    except Exception as err:  # hub, network and format errors all end here
        raise UserError(f"cannot load dataset {name!r} ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    return _train_split(loaded, name), lambda path: Path(path), name


def looks_like_raw_root(folder: Path) -> bool:
    """The layouts make_dataset.py reads: metadata.json beside numbered frame
    folders, or clip folders of observe_NN.jpg (up to three levels down)."""
    if (folder / "metadata.json").is_file() and not (folder / "metadata.jsonl").is_file():
        return True
    return any(next(folder.glob("/".join(["*"] * depth + ["observe_00.jpg"])), None) for depth in range(4))


def _train_split(loaded, source) -> object:
    if hasattr(loaded, "keys"):
        if "train" not in loaded:
            raise UserError(f"{source} has no 'train' split (splits: {', '.join(loaded.keys())})")
        return loaded["train"]
    return loaded


def _read_jsonl_folder(folder: Path):
    rows = []
    metadata = folder / "metadata.jsonl"
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise UserError(f"{metadata}:{number}: malformed JSON ({err.msg}); fix that line") from None
    if not rows:
        raise UserError(f"{metadata} has no rows")
    return datasets.Dataset.from_list(rows)


def check_columns(split, columns: List[str], source: str) -> None:
    missing = [c for c in columns if c not in split.column_names]
    if missing:
        raise UserError(
            f"{source} has no column {missing[0]!r} (columns: {', '.join(split.column_names)}); "
            "pass --original_image_column / --edited_image_column / --edit_prompt_column"
        )


def select_samples(split, max_samples: Optional[int], seed: int):
    if max_samples is None or max_samples >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(max_samples))
