"""Write an output folder completely or not at all, and replace only our own.

Every script that produces a folder builds it under a hidden sibling name and
swaps it into place only when it is complete, so a crash, Ctrl-C or bad input
never leaves a half-written folder, and a re-run never mixes old and new files.

A folder is replaced only when it is the same tool's earlier output: the sign
is ``.ip2p-owner.json`` inside it, which names the writing script and the
top-level entries it wrote (a file format such as ``metadata.json`` is no
sign: other tools and people write those too). Anything else (a folder
without the marker, another tool's output, or our output with files a user
added) is refused with one line unless ``overwrite`` is given. Staging folders
left by a killed run (``.NAME.partial-PID``, ``.NAME.old-PID``) are removed by
the next run once their process is gone.
"""

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator, List, Optional

from .cli import UserError

OWNER_FILE = ".ip2p-owner.json"


def read_owner(folder: Path) -> Optional[dict]:
    """The owner record of a folder we wrote, or None."""
    try:
        owner = json.loads((Path(folder) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("written_by"), str) else None


def mark_owner(folder: Path, tool: str, entries: Optional[List[str]] = None) -> None:
    """Record ``tool`` as the writer of ``folder`` and of its current top-level entries (or ``entries``)."""
    folder = Path(folder)
    names = sorted(entries if entries is not None else (p.name for p in folder.iterdir() if p.name != OWNER_FILE))
    text = json.dumps({"written_by": tool, "entries": names}, indent=1) + "\n"
    path = folder / OWNER_FILE
    if not path.is_file() or path.read_text(encoding="utf-8") != text:  # a re-run that changed nothing rewrites nothing
        path.write_text(text, encoding="utf-8")


def foreign_entries(folder: Path, owner: dict) -> List[str]:
    """Top-level entries of ``folder`` its owner record does not list and no
    tool of ours wrote (a user's additions; prepare_test_data.py's test_data/
    inside create_mini_data.py's output is ours)."""
    known = set(owner.get("entries", [])) | {OWNER_FILE}
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in known and read_owner(p) is None)


def check_replaceable(folder: Path, tool: str, overwrite: bool = False) -> None:
    """Refuse (one line) to replace ``folder`` unless it is empty, absent, ``tool``'s own
    unchanged output, or ``overwrite`` is given."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder; choose another output path")
    if overwrite or not any(folder.iterdir()):
        return
    owner = read_owner(folder)
    if owner is None:
        raise UserError(f"{folder} is a non-empty folder that {tool} did not write; refusing to replace it "
                        "(choose another output path, or pass --overwrite to replace it whole)")
    if owner["written_by"] != tool:
        raise UserError(f"{folder} was written by {owner['written_by']}, not {tool}; refusing to replace it "
                        "(choose another output path, or pass --overwrite)")
    added = foreign_entries(folder, owner)
    if added:
        raise UserError(f"{folder} holds {', '.join(added[:5])}{' ...' if len(added) > 5 else ''} that {tool} did not "
                        "write; move them out first (or pass --overwrite to delete them with the folder)")


def remove_stale_staging(final_dir: Path) -> List[Path]:
    """Clean up after a killed run of a tool writing ``final_dir``: a folder
    renamed aside (``.NAME.old-PID``) while the new one was not yet in place
    is put back; then staging and retired folders whose process has ended are
    removed. Returns what was removed."""
    final_dir = Path(final_dir)
    if not final_dir.parent.is_dir():
        return []
    stale = {kind: [p for p in final_dir.parent.glob(f".{final_dir.name}.{kind}-*") if _owner_gone(p)]
             for kind in ("old", "partial")}
    if stale["old"] and not final_dir.exists():
        stale["old"].pop().rename(final_dir)  # killed between the two renames: the earlier output comes back
    removed = stale["old"] + stale["partial"]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _owner_gone(staging: Path) -> bool:
    pid = staging.name.rsplit("-", 1)[-1]
    return pid.isdigit() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def atomic_output_dir(final_dir: Path, tool: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it is marked as ``tool``'s and
    replaces ``final_dir`` (which ``check_replaceable`` must allow)."""
    final_dir = Path(final_dir)
    check_replaceable(final_dir, tool, overwrite)
    remove_stale_staging(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = final_dir.parent / f".{final_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        mark_owner(staging, tool)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, final_dir)


def replace_folder(new: Path, final_dir: Path) -> None:
    """Put ``new`` at ``final_dir``: the old one renamed aside first, deleted last,
    so a kill at any point leaves one complete folder (or the old one beside a stale staging name)."""
    retired = final_dir.parent / f".{final_dir.name}.old-{os.getpid()}"
    if final_dir.exists():
        final_dir.rename(retired)
    new.rename(final_dir)
    shutil.rmtree(retired, ignore_errors=True)
