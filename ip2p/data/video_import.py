"""Video files in, the numbered raw layout out (``import_videos.py``).

Label files: Something-Something v2 as distributed (a JSON list of
``{"id", "label", "template", "placeholders"}``; the video is ``<id>.webm``),
or a generic list, JSON or CSV, of ``{"video": file, "instruction": text}``
with an optional ``task_type``. Frames are decoded with PyAV at the video's
own frame rate: consecutive decoded frames, never resampled.
"""

import csv
import json
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import av
from PIL import Image

from ..shared.cli import UserError

VIDEO_EXTENSIONS = (".webm", ".mp4", ".avi", ".mkv", ".mov")
WINDOW_HELP = "end (the last frames), middle, or stride:N (every window starting at 0, N, 2N, ...)"


@dataclass
class LabelledVideo:
    key: str  # the id (SSv2) or the file named in the label file; names the clip folder
    split: str  # "train" or "val"
    instruction: str
    task_type: str  # folder-safe
    video: Optional[Path] = None  # found under --videos, or None


def folder_safe(text: str) -> str:
    """A template or label as a folder name: "Dropping [something] onto [something]" -> dropping_something_onto_something."""
    name = re.sub(r"[^a-z0-9]+", "_", text.replace("[", "").replace("]", "").lower()).strip("_")
    return name[:120] or "unknown"


def parse_window(policy: str) -> Tuple[str, int]:
    """``end`` | ``middle`` | ``stride:N`` -> (kind, stride)."""
    if policy in ("end", "middle"):
        return policy, 0
    match = re.fullmatch(r"stride:(\d+)", policy)
    if match and int(match.group(1)) > 0:
        return "stride", int(match.group(1))
    raise UserError(f"--window {policy!r}: use {WINDOW_HELP}")


def window_starts(policy: Tuple[str, int], total: int, count: int) -> List[int]:
    """First frame of every window a video of ``total`` frames gives."""
    kind, stride = policy
    if total < count:
        return []
    if kind == "end":
        return [total - count]
    if kind == "middle":
        return [(total - count) // 2]
    return list(range(0, total - count + 1, stride))


def read_label_file(path: Path, split: str) -> List[LabelledVideo]:
    """The entries of one label file; a file that is not one is one clear line."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass the label file (e.g. something-something-v2-train.json)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"video", "instruction"} <= set(rows[0]):
            raise UserError(f"{path}: a CSV label file needs the columns video,instruction (has {','.join(rows[0])})")
    else:
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}; fix the file") from None
        if not isinstance(rows, list):
            raise UserError(f"{path}: expected a JSON list of SSv2 entries {{id, label, template}} or {{video, instruction}}")
    entries = []
    for index, row in enumerate(rows):
        entries.append(_label_entry(path, index, row, split))
    return entries


def _label_entry(path: Path, index: int, row, split: str) -> LabelledVideo:
    where = f"{path}: entry #{index}"
    if not isinstance(row, dict):
        raise UserError(f"{where} is not an object; fix the label file")
    if "id" in row:  # Something-Something v2
        key, instruction = str(row["id"]).strip(), row.get("label")
        template = row.get("template") or instruction
    else:
        key, instruction = str(row.get("video") or "").strip(), row.get("instruction")
        template = row.get("task_type") or "video"
    if not key:
        raise UserError(f"{where} names no video (needs 'id' or 'video'); fix the label file")
    if not isinstance(instruction, str) or not instruction.strip():
        raise UserError(f"{where} ({key}) has no {'label' if 'id' in row else 'instruction'}; fix the label file")
    return LabelledVideo(key=key, split=split, instruction=instruction.strip(), task_type=folder_safe(str(template)))


def find_videos(videos_dir: Path) -> Dict[str, Path]:
    """Every video file under ``videos_dir``, by path relative to it and by
    name without extension (the SSv2 id)."""
    if not videos_dir.is_dir():
        raise UserError(f"--videos {videos_dir} is not a folder; pass the folder holding the video files")
    found: Dict[str, Path] = {}
    for path in sorted(videos_dir.rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            relative = path.relative_to(videos_dir).as_posix()
            found[relative] = path
            found.setdefault(path.stem, path)
    return found


def match_videos(entries: List[LabelledVideo], videos: Dict[str, Path]) -> Tuple[List[LabelledVideo], List[Tuple[str, str]]]:
    """(entries with their video, problems): a label without a video, a
    video without a label, and a video labelled twice are each a problem."""
    problems, matched, used = [], [], {}
    for entry in entries:
        video = videos.get(entry.key) or videos.get(Path(entry.key).as_posix())
        if video is None:
            problems.append((entry.key, f"labelled, but no video file {entry.key}{{{','.join(VIDEO_EXTENSIONS)}}} under --videos"))
            continue
        if video in used:
            problems.append((entry.key, f"{video.name} is labelled twice (also as {used[video]}); keep one entry"))
            continue
        used[video] = entry.key
        entry.video = video
        matched.append(entry)
    for path in sorted(set(videos.values()) - set(used)):
        problems.append((str(path), "video without a label in the label files; label it or remove it"))
    return matched, problems


def check_clip_folders(entries: List[LabelledVideo]) -> None:
    """Two videos whose names become the same clip folder (``Clip-1.webm`` and
    ``clip_1.webm`` are both ``clip_1``) would write over each other's frames: refused, naming both."""
    seen: Dict[Tuple[str, str, str], LabelledVideo] = {}
    for entry in entries:
        folder = ("val" if entry.split == "val" else "train", entry.task_type, folder_safe(entry.key))
        if folder in seen:
            raise UserError(f"{seen[folder].video} and {entry.video} would both be written to {'/'.join(folder)}; "
                            "rename one of the videos (and its label entry)")
        seen[folder] = entry


def decode_frames(path: Path, max_side: int, keep_last: Optional[int] = None):
    """Every frame of the video (or only the last ``keep_last``, the others
    dropped as they are decoded), in order, as RGB PIL images no larger than
    ``max_side``; raises ValueError with the reason for a bad file."""
    frames = deque(maxlen=keep_last)
    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            expected = stream.frames or (round(container.duration / 1e6 * float(stream.average_rate))
                                         if container.duration and stream.average_rate else 0)
            for frame in container.decode(stream):
                image = frame.to_image()
                scale = max_side / max(image.size)
                if scale < 1:
                    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                         Image.BICUBIC)
                frames.append(image)
                decoded += 1
    except av.error.FFmpegError as err:
        where = f"is truncated or damaged after frame {decoded}" if decoded else "cannot be decoded"
        raise ValueError(f"{where} ({err.__class__.__name__}: {err.strerror or err}); re-download or re-encode it") from None
    if not decoded:
        raise ValueError("holds no video frames; re-download or re-encode it")
    if decoded < 0.9 * expected - 1:  # the header promises more than decodes: the file was cut short
        raise ValueError(f"is truncated: {decoded} of its {expected} frames decode; re-download or re-encode it")
    return list(frames)


def import_video(entry: LabelledVideo, policy: Tuple[str, int], num_frames: int, max_side: int, staging: Path) -> dict:
    """Decode one video and write its windows under ``staging``; returns
    ``{"entries": [...metadata...], "problem": reason or None}``. Runs in a
    worker process: every expected failure is returned, never raised."""
    try:
        frames = decode_frames(entry.video, max_side)
    except ValueError as err:
        return {"entries": [], "problem": str(err)}
    except Exception as err:  # noqa: BLE001 - a decoder crash on one file must not end the import
        return {"entries": [], "problem": f"cannot be decoded ({err.__class__.__name__}: {err}); re-download or re-encode it"}
    starts = window_starts(policy, len(frames), num_frames)
    if not starts:
        return {"entries": [], "problem": f"has {len(frames)} frames, fewer than --num-frames {num_frames}"}
    split_folder = "val" if entry.split == "val" else "train"
    entries = []
    for start in starts:
        clip = folder_safe(entry.key) if len(starts) == 1 else f"{folder_safe(entry.key)}_from{start:04d}"
        video_path = f"{split_folder}/{entry.task_type}/{clip}"
        folder = staging / video_path
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames[start:start + num_frames]):
            frame.save(folder / f"{index:02d}.jpg", quality=95)
        entries.append({"video_path": video_path, "instruction": entry.instruction, "task_type": entry.task_type,
                        "source": str(entry.video), "first_frame": start})
    return {"entries": entries, "problem": None}
