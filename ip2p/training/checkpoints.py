"""Resumable checkpoints ``{output_dir}/checkpoint-N``.

A checkpoint holds what resuming needs to continue exactly: accelerate's
state (model, optimizer, grad scaler, registered objects such as the LR
scheduler and EMA, RNG states), the data position, and the resolved
arguments. The training noise needs no saved state: it is drawn from a
generator seeded per (seed, process, micro-batch) (``noise_seed``), so a
checkpoint resumes on another device type or process count. It is written under a hidden
staging name and renamed when complete, so a process killed while saving
leaves nothing that ``latest`` could pick.
"""

import json
import re
import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from ..models.files import safetensors_damage
from ..shared.cli import UserError

STATE_FILE = "training_state.json"
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainState:
    """Where a run is: optimizer steps done, and the data position (the
    epoch, and batches of it already read), plus the seed its data order comes from."""

    seed: int
    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def list_checkpoints(output_dir: Path):
    """Complete checkpoints, oldest first."""
    found = []
    if Path(output_dir).is_dir():
        for path in Path(output_dir).iterdir():
            match = CHECKPOINT_NAME.match(path.name)
            if match and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def find_checkpoint(output_dir: Path, request: Optional[str], report: Callable[[str], None] = print,
                    read_files: bool = True) -> Optional[Path]:
    """The checkpoint ``--resume_from_checkpoint`` names, or None for a fresh
    start. ``latest`` passes over damaged checkpoints to the newest intact one
    (and says so); a named checkpoint that is damaged is one line naming the
    file. ``read_files=False`` checks the state file only (``checkpoint_problem``)."""
    if request is None:
        return None
    if request == "latest":
        for checkpoint in reversed(list_checkpoints(output_dir)):
            problem = checkpoint_problem(checkpoint, read_files)
            if problem is None:
                return checkpoint
            report(f"skipping {checkpoint}: {problem}")
        return None
    path = Path(request)
    if not path.is_dir() and (Path(output_dir) / request).is_dir():
        path = Path(output_dir) / request
    if not (path / STATE_FILE).is_file():
        raise UserError(f"--resume_from_checkpoint {request}: no complete checkpoint there (expected {path / STATE_FILE})")
    problem = checkpoint_problem(path, read_files)
    if problem:
        raise UserError(f"--resume_from_checkpoint {request}: {problem}; resume from an earlier checkpoint or 'latest'")
    return path


def checkpoint_problem(path: Path, read_files: bool = True) -> Optional[str]:
    """What is damaged in a checkpoint (naming the file), or None: the state
    file parses, and (``read_files``) safetensors files hold every byte their
    header promises and torch.save archives (optimizer, scheduler, random
    states) pass their CRC check, which reads them whole."""
    try:
        read_state(path)
    except (OSError, ValueError, TypeError) as err:
        return f"{Path(path) / STATE_FILE} is damaged ({type(err).__name__})"
    for file in sorted(Path(path).rglob("*")) if read_files else []:
        if file.suffix == ".safetensors":
            problem = safetensors_damage(file)
        elif file.suffix in (".bin", ".pkl", ".pt"):
            problem = _archive_problem(file)
        else:
            continue
        if problem:
            return f"{file} is damaged ({problem})"
    return None


def _archive_problem(file: Path) -> Optional[str]:
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"not a complete torch.save archive: {err}"
    return f"bad CRC in {bad}" if bad else None


def later_checkpoints(output_dir: Path, checkpoint: Path) -> list:
    """Checkpoints of ``output_dir`` with more steps than ``checkpoint``."""
    match = CHECKPOINT_NAME.match(checkpoint.name)
    if match is None or checkpoint.resolve().parent != Path(output_dir).resolve():
        return []
    return [path for path in list_checkpoints(output_dir) if int(CHECKPOINT_NAME.match(path.name).group(1)) > int(match.group(1))]


def remove_partial_checkpoints(output_dir: Path) -> None:
    """Clean up after a run killed while saving: staging folders are removed;
    a checkpoint renamed aside for its replacement (``.checkpoint-N.old``)
    comes back if the replacement never arrived, else it is removed."""
    output_dir = Path(output_dir)
    for path in output_dir.glob(".checkpoint-*.partial"):
        shutil.rmtree(path, ignore_errors=True)
    for path in output_dir.glob(".checkpoint-*.old"):
        final = output_dir / path.name[1:-len(".old")]
        if final.exists():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.rename(final)


def save_checkpoint(accelerator, output_dir: Path, state: TrainState, total_limit: Optional[int],
                    write_args: Callable[[Path], None]) -> Path:
    """Write ``checkpoint-{step}``; every process must call this.
    ``write_args(folder)`` adds the run's resolved arguments."""
    final = Path(output_dir) / f"checkpoint-{state.global_step}"
    staging = Path(output_dir) / f".checkpoint-{state.global_step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_args(staging)
        # Written last: its presence marks the folder as complete.
        (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        replace_checkpoint(staging, final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def replace_checkpoint(staging: Path, final: Path) -> None:
    """Rename the old checkpoint aside, the new one in, then delete the old: a kill
    at any point leaves one complete checkpoint-N (``remove_partial_checkpoints`` restores it)."""
    retired = final.parent / f".{final.name}.old"
    if final.exists():
        shutil.rmtree(retired, ignore_errors=True)
        final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired, ignore_errors=True)


def load_checkpoint(accelerator, path: Path) -> TrainState:
    """Restore everything ``save_checkpoint`` wrote; returns the training state."""
    accelerator.load_state(str(path))
    return read_state(path)


def read_state(path: Path) -> TrainState:
    """The training state a checkpoint recorded (its seed decides a resumed run's data order)."""
    return TrainState(**json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8")))
