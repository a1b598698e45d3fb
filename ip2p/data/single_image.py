"""The single-image layout read by ``train_instruct_pix2pix.py --train_data_dir``:
a folder of images plus ``metadata.jsonl``, one object per line (docs/data.md, "Single-image layout")."""

import json
import shutil
from pathlib import Path
from typing import Tuple

from ..shared.cli import UserError, read_json_file
from ..shared.images import IMAGE_EXTENSIONS
from .raw_data import frame_files_problem

METADATA_FILE = "metadata.jsonl"


def _find_frame(folder: Path, stem: str) -> Path:
    for ext in IMAGE_EXTENSIONS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise UserError(f"{folder}: missing frame {stem}.jpg")


def read_test_video(folder: Path) -> Tuple[Path, Path, str, str]:
    """(input frame, edited frame, instruction, task type) of ``test_video/``."""
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist; expected test_video/ with 00.jpg, 01.jpg and test_video.json (pass --data-root)")
    meta_file = folder / "test_video.json"
    meta = read_json_file(meta_file, 'write {"instruction": "...", "task_type": "..."} there')
    instruction = meta.get("instruction") if isinstance(meta, dict) else None
    if not isinstance(instruction, str) or not instruction.strip():
        raise UserError(f"{meta_file}: empty or missing \"instruction\"")
    source, edited = _find_frame(folder, "00"), _find_frame(folder, "01")
    problem = frame_files_problem(None, [str(source), str(edited)])
    if problem:
        raise UserError(f"{folder}: {problem}")
    return source, edited, instruction.strip(), str(meta.get("task_type", "unknown"))


def write_single_image_folder(output_dir: Path, source: Path, edited: Path, instruction: str) -> None:
    """Copy the pair (bytes unchanged, extension kept) and write ``metadata.jsonl``."""
    input_name, edited_name = f"input_image{source.suffix.lower()}", f"edited_image{edited.suffix.lower()}"
    shutil.copyfile(source, output_dir / input_name)
    shutil.copyfile(edited, output_dir / edited_name)
    row = {"file_name": input_name, "input_image": input_name, "edit_prompt": instruction, "edited_image": edited_name}
    (output_dir / METADATA_FILE).write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
