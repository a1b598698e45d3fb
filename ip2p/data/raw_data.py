"""Read and validate raw clip folders.

Two layouts are read (docs/data.md):

- **numbered**: ``metadata.json`` lists ``{"video_path", "instruction",
  "task_type"}`` entries; each video folder holds ``00.jpg, 01.jpg, ...``.
- **observe**: no metadata file; each video folder holds
  ``observe_00.jpg ... observe_19.jpg``, ``target.jpg`` and ``label.txt``.

In both, a sample is the target frame (the last frame: ``20.jpg`` or
``target.jpg``) and the ``num_input_frames`` frames just before it, oldest
first. The split comes from the first folder of the video's path: ``val/``
(or ``validation/``, ``test/``) becomes the ``test`` split, anything else
``train``.

Nothing is dropped silently: every sample that cannot be used becomes a
``SampleProblem`` with a one-line reason, and the caller decides whether to
stop or skip it.
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

from PIL import Image
from tqdm.auto import tqdm

from ..shared.cli import UserError, read_json_file
from ..shared.images import IMAGE_EXTENSIONS

TEST_SPLIT_FOLDERS = {"val", "validation", "test"}
TARGET_NAMES = {f"target{ext}" for ext in IMAGE_EXTENSIONS}
NUMBERED_FRAME = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
OBSERVED_FRAME = re.compile(r"^observe_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
# Top-level folders that are never clips: the single-image test clip and
# anything hidden (including our own staging folders).
NOT_CLIP_FOLDERS = {"test_video", "test_data"}


@dataclass
class RawSample:
    sample_id: str  # the video folder relative to the data root; used in every message
    split: str  # "train" or "test"
    task_type: str
    instruction: str
    input_frames: List[str]  # paths relative to the data root, POSIX style, oldest first
    target_frame: str


@dataclass
class SampleProblem:
    sample_id: str
    reason: str

    def line(self) -> str:
        return f"{self.sample_id}: {self.reason}"

    def to_dict(self) -> Dict[str, str]:
        return {"sample": self.sample_id, "reason": self.reason}


@dataclass
class ScanResult:
    layout: str
    samples: List[RawSample] = field(default_factory=list)
    problems: List[SampleProblem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def scan_raw_data(
    data_root: Path,
    num_input_frames: int,
    metadata_path: Optional[Path] = None,
    num_workers: int = 4,
) -> ScanResult:
    """Find every sample under ``data_root`` and check that each one is usable."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise UserError(f"data root {data_root} does not exist; pass --data-root with your clip folder")
    if metadata_path is None and (data_root / "metadata.json").is_file():
        metadata_path = data_root / "metadata.json"
    if metadata_path is not None:
        entries = read_metadata(Path(metadata_path))
        result = _samples_from_metadata(data_root, entries, num_input_frames)
        result.notes.extend(_unlisted_clip_notes(data_root, result))
    else:
        result = _samples_from_observe_folders(data_root, num_input_frames)
    if not result.samples and not result.problems:
        raise UserError(
            f"no clips found under {data_root}: expected metadata.json with numbered frames "
            "(00.jpg ...) or folders with observe_00.jpg ... target.jpg + label.txt"
        )
    _drop_undecodable(data_root, result, num_workers)
    return result


def read_metadata(path: Path) -> list:
    """Parse ``metadata.json``; a malformed file is one clear error line."""
    entries = read_json_file(path, "pass --metadata or put metadata.json in the data root")
    if not isinstance(entries, list):
        raise UserError(f"{path}: expected a JSON list of {{video_path, instruction, task_type}} objects")
    return entries


def _samples_from_metadata(data_root: Path, entries: list, num_input_frames: int) -> ScanResult:
    result = ScanResult(layout="numbered frames + metadata.json")
    first_seen: Dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = f"entry #{index}"
        if not isinstance(entry, dict):
            result.problems.append(SampleProblem(label, "not a JSON object"))
            continue
        video_path = entry.get("video_path")
        if not isinstance(video_path, str) or not video_path.strip():
            result.problems.append(SampleProblem(label, "missing 'video_path'"))
            continue
        relative, problem = _inside_root(video_path)
        sample_id = relative or video_path
        if problem:
            result.problems.append(SampleProblem(sample_id, problem))
            continue
        if relative in first_seen:
            result.problems.append(
                SampleProblem(sample_id, f"duplicate entry #{index} (first listed as entry #{first_seen[relative]})")
            )
            continue
        first_seen[relative] = index
        instruction = entry.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            result.problems.append(SampleProblem(sample_id, "empty or missing 'instruction'"))
            continue
        task_type = entry.get("task_type") or task_type_from_path(relative)
        frames, problem = _numbered_sample_frames(data_root / relative, relative, num_input_frames)
        if problem:
            result.problems.append(SampleProblem(sample_id, problem))
            continue
        result.samples.append(
            RawSample(sample_id, _split_from_path(relative), str(task_type), instruction.strip(), frames[:-1], frames[-1])
        )
    return result


def _samples_from_observe_folders(data_root: Path, num_input_frames: int) -> ScanResult:
    result = ScanResult(layout="observe_NN.jpg + target.jpg + label.txt folders")
    for folder in _walk_folders(data_root):
        names = os.listdir(folder)
        if not any(OBSERVED_FRAME.match(n) or n == "label.txt" or n.lower().startswith("target.") for n in names):
            continue
        relative = folder.relative_to(data_root).as_posix()
        sample, problem = _observe_sample(folder, relative, names, num_input_frames)
        if problem:
            result.problems.append(SampleProblem(relative, problem))
        else:
            result.samples.append(sample)
    return result


def _observe_sample(folder: Path, relative: str, names: List[str], num_input_frames: int) -> Tuple[Optional[RawSample], Optional[str]]:
    label_file = folder / "label.txt"
    if not label_file.is_file():
        return None, "missing label.txt (the instruction)"
    try:
        instruction = label_file.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        return None, "label.txt is not UTF-8 text"
    if not instruction:
        return None, "label.txt is empty (no instruction)"
    targets = sorted(n for n in names if n.lower() in TARGET_NAMES)
    if len(targets) != 1:
        return None, "missing target.jpg" if not targets else f"several target images: {', '.join(targets)}"
    observed, problem = _indexed_files(names, OBSERVED_FRAME, "observe_")
    if problem:
        return None, problem
    if len(observed) < num_input_frames:
        return None, f"too few frames: {len(observed)} observe_*.jpg, need {num_input_frames}"
    # The target follows the last observed frame, so the frames next to it are the last ones.
    inputs = [f"{relative}/{observed[i]}" for i in sorted(observed)[-num_input_frames:]]
    sample = RawSample(relative, _split_from_path(relative), task_type_from_path(relative), instruction, inputs, f"{relative}/{targets[0]}")
    return sample, None


def _numbered_sample_frames(folder: Path, relative: str, num_input_frames: int) -> Tuple[List[str], Optional[str]]:
    """The last ``num_input_frames + 1`` numbered frames of a clip, or a problem."""
    if not folder.is_dir():
        return [], f"video folder {relative}/ does not exist"
    frames, problem = _indexed_files(os.listdir(folder), NUMBERED_FRAME, "")
    if problem:
        return [], problem
    needed = num_input_frames + 1
    if len(frames) < needed:
        return [], f"too few frames: {len(frames)}, need {needed} ({num_input_frames} observed + 1 target)"
    return [f"{relative}/{frames[i]}" for i in sorted(frames)[-needed:]], None


def _indexed_files(names: List[str], pattern: "re.Pattern[str]", prefix: str) -> Tuple[Dict[int, str], Optional[str]]:
    """Map frame index -> file name; gaps and clashes are problems, not guesses."""
    frames: Dict[int, str] = {}
    for name in names:
        match = pattern.match(name)
        if not match:
            continue
        index = int(match.group(1))
        if index in frames:
            return {}, f"two files for frame {index}: {frames[index]} and {name}"
        frames[index] = name
    if not frames:
        return {}, f"no frames named {prefix}00.jpg, {prefix}01.jpg, ..."
    missing = sorted(set(range(max(frames) + 1)) - set(frames))
    if missing:
        return {}, f"missing frame {prefix}{missing[0]:02d} (frames must be numbered 0..{max(frames)} without gaps)"
    return frames, None


def _drop_undecodable(data_root: Path, result: ScanResult, num_workers: int) -> None:
    """Open every frame of every sample; move the ones that fail to ``problems``."""
    def check(sample: RawSample) -> Optional[str]:
        return frame_files_problem(data_root, sample.input_frames + [sample.target_frame])

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        outcomes = list(tqdm(pool.map(check, result.samples), total=len(result.samples), desc="checking frames", unit="clip"))
    kept = []
    for sample, problem in zip(result.samples, outcomes):
        if problem:
            result.problems.append(SampleProblem(sample.sample_id, problem))
        else:
            kept.append(sample)
    result.samples = kept


def frame_files_problem(data_root: Optional[Path], frame_paths: List[str]) -> Optional[str]:
    """Why these frames are unusable (missing, corrupt, mixed sizes), or None."""
    first_size = None
    for frame in frame_paths:
        path = Path(frame) if data_root is None else Path(data_root) / frame
        if not path.is_file():
            return f"missing frame {frame}"
        try:
            with Image.open(path) as image:
                image.load()  # decodes fully, so truncated files fail here
                size = image.size
        except Exception as err:  # PIL raises many types for bad files
            return f"corrupt or unreadable frame {frame} ({type(err).__name__}: {err})"
        if first_size is None:
            first_size = size
        elif size != first_size:
            return f"frame {frame} is {size[0]}x{size[1]} but earlier frames are {first_size[0]}x{first_size[1]}"
    return None


def _inside_root(video_path: str) -> Tuple[str, Optional[str]]:
    """Normalise a metadata path; paths that leave the data root are refused."""
    posix = video_path.replace("\\", "/").strip()
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        return posix, "video_path is absolute; make it relative to the data root"
    normal = os.path.normpath(posix).replace(os.sep, "/")
    if normal == ".." or normal.startswith("../"):
        return posix, "video_path escapes the data root (../); keep clips inside the data root"
    if normal == ".":
        return posix, "video_path points at the data root itself"
    return normal, None


def _split_from_path(relative: str) -> str:
    return "test" if PurePosixPath(relative).parts[0].lower() in TEST_SPLIT_FOLDERS else "train"


def task_type_from_path(relative: str) -> str:
    # train/<task_type>/video_12 -> task_type; anything shallower has none.
    parts = PurePosixPath(relative).parts
    return parts[1] if len(parts) >= 3 else "unknown"


def _walk_folders(data_root: Path):
    for current, dirs, _ in os.walk(data_root):
        here = Path(current)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".")
            and not (here == data_root and d in NOT_CLIP_FOLDERS)
            and not (here / d / "dataset_dict.json").exists()  # a processed dataset inside the root
        )
        yield here


def _unlisted_clip_notes(data_root: Path, result: ScanResult) -> List[str]:
    """Clip folders that metadata.json does not mention: not an error, but said."""
    listed = {s.sample_id for s in result.samples} | {p.sample_id for p in result.problems}
    unlisted = [
        folder.relative_to(data_root).as_posix()
        for folder in _walk_folders(data_root)
        if folder != data_root and any(NUMBERED_FRAME.match(n) for n in os.listdir(folder))
    ]
    unlisted = [u for u in unlisted if u not in listed]
    if not unlisted:
        return []
    return [f"{len(unlisted)} frame folder(s) are not listed in metadata.json and were not used (first: {unlisted[0]})"]


def prediction_clip(folder: Path, num_input_frames: int) -> Tuple[List[Path], Optional[Path], Optional[str]]:
    """(observed frames, true next frame or None, instruction from label.txt or None)
    of one clip folder in either layout, for prediction.

    Observe layout: the last ``num_input_frames`` observe_NN frames, target.jpg
    if present. Numbered layout: with more than ``num_input_frames`` frames the
    last one is the true next frame (as in training), with exactly that many
    all are observed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of frames")
    names = os.listdir(folder)
    label = folder / "label.txt"
    instruction = label.read_text(encoding="utf-8").strip() or None if label.is_file() else instruction_from_root(folder)
    observed, problem = _indexed_files(names, OBSERVED_FRAME, "observe_")
    if not problem:
        targets = [n for n in names if n.lower() in TARGET_NAMES]
        inputs, target = [folder / observed[i] for i in sorted(observed)], folder / targets[0] if targets else None
    else:
        numbered, problem = _indexed_files(names, NUMBERED_FRAME, "")
        if problem:
            raise UserError(f"{folder}: {problem}")
        files = [folder / numbered[i] for i in sorted(numbered)]
        inputs, target = (files[:-1], files[-1]) if len(files) > num_input_frames else (files, None)
    if len(inputs) < num_input_frames:
        raise UserError(f"{folder}: {len(inputs)} observed frames, but the model needs {num_input_frames}")
    return inputs[-num_input_frames:], target, instruction


def instruction_from_root(folder: Path, levels: int = 4) -> Optional[str]:
    """The instruction that the nearest raw root's metadata.json (as
    import_videos.py and create_mini_data.py write it, up to ``levels``
    folders above) gives this clip folder, or None."""
    folder = Path(folder).resolve()
    for root in list(folder.parents)[:levels]:
        if (root / "metadata.json").is_file():
            try:
                entries = json.loads((root / "metadata.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and (root / str(entry.get("video_path", ""))).resolve() == folder:
                    return entry.get("instruction") or None
            return None
    return None
