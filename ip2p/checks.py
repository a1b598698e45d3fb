"""Checks behind ``quick_test.py`` (and the download's verification): each
returns a list of one-line problems, empty when all is well."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple

from tqdm.auto import tqdm

from .models import LATENT_CHANNELS, unet_in_channels_for
from .processed import ProcessedDataset, dataset_features
from .raw_data import frame_files_problem

TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
MODEL_CONFIG = "config.json"


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
    from datasets import Image

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
    import io

    from PIL import Image as PILImage

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


def pipeline_folder_problems(model_dir: Path) -> List[str]:
    """Is ``model_dir`` a complete diffusers pipeline folder with safetensors weights?"""
    model_dir = Path(model_dir)
    index_file = model_dir / "model_index.json"
    if not index_file.is_file():
        return [f"{model_dir}: no model_index.json; not a diffusers pipeline folder (see download_model.py)"]
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return [f"{index_file}: malformed JSON ({err.msg}); re-run download_model.py"]
    problems = []
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        problem = _component_problem(model_dir / component, spec[1])
        if problem:
            problems.append(f"{model_dir / component}: {problem}")
    return problems


def _component_problem(folder: Path, class_name: str) -> Optional[str]:
    if not folder.is_dir():
        return "missing component folder"
    files = {p.name for p in folder.iterdir()}
    if "Tokenizer" in class_name:
        return None if any(f in files for f in TOKENIZER_FILES) else "no tokenizer.json or vocab.json"
    if "Scheduler" in class_name:
        return None if "scheduler_config.json" in files else "no scheduler_config.json"
    if "FeatureExtractor" in class_name or "ImageProcessor" in class_name:
        return None if "preprocessor_config.json" in files else "no preprocessor_config.json"
    if MODEL_CONFIG not in files:
        return "no config.json"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no .safetensors weights (only safetensors are loaded; pickled .bin/.ckpt files are refused)"
    for weight in weights:
        problem = safetensors_file_problem(weight)
        if problem:
            return problem
    return None


def safetensors_file_problem(path: Path) -> Optional[str]:
    """Header parses and the tensors it declares fit in the file (catches truncation)."""
    import struct

    try:
        with open(path, "rb") as handle:
            header_size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(header_size))
        data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except Exception as err:
        return f"{path.name} is not a readable safetensors file ({type(err).__name__})"
    actual = path.stat().st_size - 8 - header_size
    if actual != data_end:
        return f"{path.name} is incomplete or corrupt ({actual} data bytes, header declares {data_end}); re-run the download"
    return None


def unet_channels_check(model_dir: Path, num_input_frames: int) -> Tuple[Optional[str], str]:
    """(problem or None, note) for the UNet's input width against the frame count."""
    config_file = Path(model_dir) / "unet" / MODEL_CONFIG
    try:
        in_channels = json.loads(config_file.read_text(encoding="utf-8"))["in_channels"]
    except (OSError, json.JSONDecodeError, KeyError):
        return f"{config_file}: cannot read in_channels", ""
    expected = unet_in_channels_for(num_input_frames)
    if in_channels == expected:
        return None, f"unet in_channels {in_channels} = 4 noisy + {num_input_frames} x 4 frame latents"
    if in_channels in (LATENT_CHANNELS, unet_in_channels_for(1)):
        # A text-to-image or InstructPix2Pix base: the video trainer widens it.
        return None, f"unet in_channels {in_channels} (base model); widened to {expected} for {num_input_frames} frames at training"
    return (
        f"unet in_channels is {in_channels}, but {num_input_frames} input frames need {expected} "
        f"(4 + 4 x {num_input_frames}); use a model built for {(in_channels - LATENT_CHANNELS) // LATENT_CHANNELS} frames "
        "or a base InstructPix2Pix model",
        "",
    )
