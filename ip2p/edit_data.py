"""Training data for the trainers: where samples come from, and how one
sample becomes tensors.

Sources (``--train_data_dir`` first, as in the diffusers example):

- a folder with ``metadata.jsonl`` whose image columns hold file names
  (what ``prepare_test_data.py`` writes): names resolve inside the folder;
- a ``save_to_disk`` folder (ours from ``make_dataset.py`` or any other);
- any other folder: the ``imagefolder`` loader of ``datasets``;
- ``--dataset_name``: a ``save_to_disk`` folder, a local dataset folder, or a hub id.

Randomness is per sample: the crop and flip of sample ``i`` in epoch ``e``
come from a generator seeded with ``(seed, e, i)``, so they do not depend on
worker count, process count or on resuming mid-epoch.
"""

import io
import json
import random
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch
from PIL import Image

from .cli import UserError
from .processed import is_processed_dataset, load_processed_dataset
from .transforms import paired_crop_flip

Resolver = Callable[[str], Path]


def load_training_split(args) -> Tuple[object, Resolver, str]:
    """(train split, resolver for string image paths, description of the source)."""
    import datasets

    if args.train_data_dir:
        folder = Path(args.train_data_dir)
        if not folder.is_dir():
            raise UserError(f"--train_data_dir {folder} does not exist")
        if is_processed_dataset(folder):
            processed = load_processed_dataset(folder)
            return _train_split(processed.splits, folder), processed.frame_path, str(folder)
        if (folder / "metadata.jsonl").is_file():
            return _read_jsonl_folder(folder), lambda name: folder / name, str(folder / "metadata.jsonl")
        loaded = datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=args.cache_dir)
        return _train_split(loaded, folder), lambda name: folder / name, str(folder)
    name = args.dataset_name
    if Path(name).is_dir() and is_processed_dataset(Path(name)):
        processed = load_processed_dataset(Path(name))
        return _train_split(processed.splits, name), processed.frame_path, name
    try:
        loaded = datasets.load_dataset(name, args.dataset_config_name, cache_dir=args.cache_dir)
    except Exception as err:  # hub, network and format errors all end here
        raise UserError(f"cannot load dataset {name!r} ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    return _train_split(loaded, name), lambda path: Path(path), name


def _train_split(loaded, source) -> object:
    if hasattr(loaded, "keys"):
        if "train" not in loaded:
            raise UserError(f"{source} has no 'train' split (splits: {', '.join(loaded.keys())})")
        return loaded["train"]
    return loaded


def _read_jsonl_folder(folder: Path):
    from datasets import Dataset

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
    return Dataset.from_list(rows)


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


def open_image(value, resolve: Resolver) -> Image.Image:
    """A PIL image from a decoded image, an undecoded ``{"bytes", "path"}`` or a path string."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else resolve(value["path"])
    elif isinstance(value, str):
        source = resolve(value)
    else:
        raise ValueError(f"unsupported image value of type {type(value).__name__}")
    with Image.open(source) as image:
        return image.convert("RGB")


def tokenize(tokenizer, prompts: List[str]) -> torch.Tensor:
    return tokenizer(prompts, max_length=tokenizer.model_max_length, padding="max_length",
                     truncation=True, return_tensors="pt").input_ids


class EditSamples(torch.utils.data.Dataset):
    """Single-image samples: (input image, instruction) -> edited image.

    Items are addressed by ``(epoch, index)`` (see ``EpochBatchSampler``).
    A sample whose image cannot be read becomes ``{"error": ...}`` so the
    training loop can stop with one line instead of a worker traceback.
    """

    def __init__(self, split, resolve: Resolver, args, tokenizer, seed: int):
        self.split, self.resolve, self.tokenizer, self.seed = split, resolve, tokenizer, seed
        self.source_column, self.target_column = args.original_image_column, args.edited_image_column
        self.prompt_column = args.edit_prompt_column
        self.resolution, self.center_crop, self.random_flip = args.resolution, args.center_crop, args.random_flip

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key):
        epoch, index = key
        row = self.split[index]
        try:
            images = [open_image(row[self.source_column], self.resolve), open_image(row[self.target_column], self.resolve)]
        except Exception as err:
            return {"error": f"training sample {index}: cannot read its image ({type(err).__name__}: {err}); fix or remove it"}
        images = [images[0], images[1].resize(images[0].size)] if images[1].size != images[0].size else images
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        pixels, _ = paired_crop_flip(images, self.resolution, self.center_crop, self.random_flip, rng)
        return {
            "condition_pixels": pixels[:1],  # (frames=1, 3, H, W)
            "target_pixels": pixels[1],
            "input_ids": tokenize(self.tokenizer, [str(row[self.prompt_column])])[0],
        }


def collate(items: List[dict]) -> dict:
    errors = [item["error"] for item in items if "error" in item]
    if errors:
        return {"errors": errors}
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class EpochBatchSampler:
    """This process's batches of ``(epoch, index)`` keys.

    The epoch's permutation is drawn from ``(seed, epoch)``, identical on every
    process; process ``rank`` takes every ``world``-th sample. The permutation
    is padded cyclically so every process gets the same number of full batches
    (a 1-sample data set still trains on 4 processes). ``set_position`` starts
    an epoch part-way, for resuming without re-reading skipped samples.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int, world: int, seed: int):
        self.num_samples, self.batch_size, self.rank, self.world, self.seed = num_samples, batch_size, rank, world, seed
        self.epoch, self.start_batch = 0, 0

    def batches_per_epoch(self) -> int:
        global_batch = self.batch_size * self.world
        return -(-self.num_samples // global_batch)

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self):
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)).tolist()
        needed = self.batches_per_epoch() * self.batch_size * self.world
        order = (order * (needed // len(order) + 1))[:needed]
        mine = order[self.rank::self.world]
        for batch in range(self.start_batch, self.batches_per_epoch()):
            yield [(self.epoch, i) for i in mine[batch * self.batch_size:(batch + 1) * self.batch_size]]
