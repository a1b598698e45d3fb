"""The trainer's output folder: which folders a run may write into, and the
final pipeline put there so that its files always describe each other.

A run folder is marked with ``.ip2p-owner.json`` naming the trainer script.
A new run is refused (one line) in a folder that is, or is inside, a model
the run reads; in a folder holding something other than a run of this
trainer; and in an earlier run's folder unless it resumes it. With
``--overwrite_output_dir`` the earlier run's files are moved aside into
``superseded-<time>/``, never deleted; another tool's or a user's files stay
where they are.
"""

import os
import shutil
import time
from pathlib import Path

from ..shared.atomic_dir import OWNER_FILE, mark_owner, read_owner
from ..shared.cli import UserError
from .checkpoints import list_checkpoints

FINAL_STAGING, FINAL_RETIRED = ".final.partial", ".final.old"
PIPELINE_INDEX = "model_index.json"


def check_output_dir(args, script: str) -> None:
    """Refuse an output folder this run must not write into; every process checks before any writes."""
    output = Path(args.output_dir)
    for flag in ("pretrained_model_name_or_path", "custom_unet_path"):
        source = getattr(args, flag, None)
        if source and Path(source).is_dir() and _is_inside(output, Path(source)):
            raise UserError(f"--output_dir {output} is inside --{flag} {source}, which this run reads: training would "
                            "overwrite that model; choose another --output_dir")
    if not output.is_dir() or not any(output.iterdir()) or args.overwrite_output_dir:
        return
    owner = read_owner(output)
    if not is_run_of(output, script):
        writer = f"written by {owner['written_by']}" if owner else "not a run of this trainer"
        raise UserError(f"--output_dir {output} is a non-empty folder {writer}; choose another folder "
                        "(or pass --overwrite_output_dir to train beside its files, which stay untouched)")
    earlier = earlier_run_entries(output)
    if earlier and args.resume_from_checkpoint is None:
        raise UserError(f"--output_dir {output} holds an earlier run ({', '.join(earlier[:4])}); continue it with "
                        "--resume_from_checkpoint latest, or pass --overwrite_output_dir to start over (its files are "
                        "then moved into superseded-<time>/ inside it)")


def is_run_of(output: Path, script: str) -> bool:
    """Marked as ``script``'s run folder, or an unmarked folder with checkpoints (a run from before the marker)."""
    owner = read_owner(output)
    return owner["written_by"] == script if owner else bool(list_checkpoints(output))


def _is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def earlier_run_entries(output: Path) -> list:
    """What a finished or checkpointed run left: checkpoints and the final pipeline's index."""
    found = [path.name for path in list_checkpoints(output)]
    return found + ([PIPELINE_INDEX] if (output / PIPELINE_INDEX).is_file() else [])


def prepare_output_dir(args, script: str) -> None:
    """Main process only, after ``check_output_dir`` passed on every process: the folder made and marked,
    a superseded run moved aside (``--overwrite_output_dir``), a killed save's leftovers cleaned."""
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    ours = is_run_of(output, script)
    if args.overwrite_output_dir and args.resume_from_checkpoint is None and ours:
        move_aside_earlier_run(output)
    if read_owner(output) is None and (ours or not any(output.iterdir())):
        mark_owner(output, script, entries=[])  # a new run, or one from before the marker existed
    for leftover in (FINAL_STAGING, FINAL_RETIRED):
        shutil.rmtree(output / leftover, ignore_errors=True)


def move_aside_earlier_run(output: Path) -> Path:
    """Everything in ``output`` but the marker and earlier superseded runs, moved into ``superseded-<time>/``."""
    target = output / f"superseded-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    entries = [p for p in output.iterdir() if p.name != OWNER_FILE and not p.name.startswith("superseded-")]
    if entries:
        target.mkdir()
        for path in entries:
            path.rename(target / path.name)
        print(f"moved the earlier run in {output} aside into {target.name}/ (--overwrite_output_dir)")
    return target


def publish_pipeline(staging: Path, output: Path) -> None:
    """Move a complete pipeline folder ``staging`` into ``output``, entry by entry.
    The old ``model_index.json`` goes first and the new one comes last, so
    until the swap ends the folder is no loadable pipeline at all rather than
    one whose arguments or weights belong to another run."""
    retired = output / FINAL_RETIRED
    shutil.rmtree(retired, ignore_errors=True)
    retired.mkdir()
    names = sorted(p.name for p in staging.iterdir())
    ordered = [n for n in names if n != PIPELINE_INDEX] + [PIPELINE_INDEX] * (PIPELINE_INDEX in names)
    if (output / PIPELINE_INDEX).exists():
        (output / PIPELINE_INDEX).rename(retired / PIPELINE_INDEX)
    for name in ordered:
        if (output / name).exists():
            (output / name).rename(retired / name)
        (staging / name).rename(output / name)
    shutil.rmtree(retired, ignore_errors=True)
    staging.rmdir()
