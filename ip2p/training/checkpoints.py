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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

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


def find_checkpoint(output_dir: Path, request: Optional[str]) -> Optional[Path]:
    """The checkpoint ``--resume_from_checkpoint`` names, or None for a fresh start."""
    if request is None:
        return None
    if request == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(request)
    if not path.is_dir() and (Path(output_dir) / request).is_dir():
        path = Path(output_dir) / request
    if not (path / STATE_FILE).is_file():
        raise UserError(f"--resume_from_checkpoint {request}: no complete checkpoint there (expected {path / STATE_FILE})")
    return path


def remove_partial_checkpoints(output_dir: Path) -> None:
    """Staging folders left by a run killed while saving."""
    for path in Path(output_dir).glob(".checkpoint-*.partial"):
        shutil.rmtree(path, ignore_errors=True)


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
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path) -> TrainState:
    """Restore everything ``save_checkpoint`` wrote; returns the training state."""
    accelerator.load_state(str(path))
    return read_state(path)


def read_state(path: Path) -> TrainState:
    """The training state a checkpoint recorded (its seed decides a resumed run's data order)."""
    return TrainState(**json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8")))
