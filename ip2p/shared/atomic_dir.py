"""Write an output folder completely or not at all.

Every script that produces a folder builds it under a hidden sibling name and
swaps it into place only when it is complete, so a crash, Ctrl-C or bad input
never leaves a half-written folder, and a re-run never mixes old and new files.
"""

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional

from .cli import UserError


@contextlib.contextmanager
def atomic_output_dir(final_dir: Path, is_ours: Optional[Callable[[Path], bool]] = None) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``final_dir``.

    ``is_ours(path)`` says whether an existing ``final_dir`` was written by the
    same tool; a non-empty folder that is not ours is never replaced, so a typo
    such as ``--output-dir models`` cannot delete unrelated data.
    """
    final_dir = Path(final_dir)
    if final_dir.exists():
        if not final_dir.is_dir():
            raise UserError(f"{final_dir} exists and is not a folder; choose another output path")
        if any(final_dir.iterdir()) and is_ours is not None and not is_ours(final_dir):
            raise UserError(
                f"{final_dir} is a non-empty folder that this script did not write; "
                "refusing to replace it (choose another output path or remove it)"
            )
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = final_dir.parent / f".{final_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = final_dir.parent / f".{final_dir.name}.old-{os.getpid()}"
    if final_dir.exists():
        final_dir.rename(retired)
    staging.rename(final_dir)
    shutil.rmtree(retired, ignore_errors=True)
