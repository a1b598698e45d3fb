"""Model folders on disk: is a folder a complete diffusers pipeline with
safetensors weights, is a weights file whole, does a UNet's input width fit a
frame count. Each check returns one-line problems (empty when all is well);
``require_pipeline_folder`` turns the first into a ``UserError``."""

import json
import struct
from pathlib import Path
from typing import List, Optional, Tuple

from ..shared.cli import UserError
from .widening import LATENT_CHANNELS, unet_in_channels_for

TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
MODEL_CONFIG = "config.json"


def require_pipeline_folder(folder: Path, remedy: str, kind: str = "pipeline") -> None:
    """Stop with one line unless ``folder`` holds a pipeline (``model_index.json``)."""
    if not (Path(folder) / "model_index.json").is_file():
        raise UserError(f"{folder} is not a {kind} folder (no model_index.json); {remedy}")


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
    damage = safetensors_damage(path)
    return f"{path.name} is {damage}; re-run the download" if damage else None


def safetensors_damage(path: Path) -> Optional[str]:
    """What is wrong with a safetensors file (unreadable header, or data bytes
    other than its header declares), or None."""
    try:
        with open(path, "rb") as handle:
            header_size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(header_size))
        data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except Exception as err:
        return f"not a readable safetensors file ({type(err).__name__})"
    actual = path.stat().st_size - 8 - header_size
    if actual != data_end:
        return f"incomplete or corrupt ({actual} data bytes, header declares {data_end})"
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
