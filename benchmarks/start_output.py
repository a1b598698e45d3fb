"""Start a benchmark script's output folder afresh, deleting only what that script wrote.

    python benchmarks/start_output.py TOOL FOLDER ENTRY [ENTRY ...]

Used by learn_synthetic.sh and transfer.sh before their first stage. A killed
run's staging folders beside the ENTRY names are cleared first; then FOLDER is
deleted only if it is absent, empty, or carries TOOL's ``.ip2p-owner.json``
with no entries it does not list. Anything else is refused with one line and
nothing is deleted. FOLDER is then created empty and marked as TOOL's, listing
the ENTRY names the script will write there.
"""

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ip2p.shared.atomic_dir import check_replaceable, mark_owner, remove_stale_staging  # noqa: E402
from ip2p.shared.cli import UserError, run_main  # noqa: E402


def start_afresh(argv) -> int:
    if len(argv) < 3:
        raise UserError("usage: start_output.py TOOL FOLDER ENTRY [ENTRY ...]")
    tool, out, entries = argv[0], Path(argv[1]), argv[2:]
    for entry in entries:
        remove_stale_staging(out / entry)
    try:
        check_replaceable(out, tool)
    except UserError:
        raise UserError(f"{out} holds files that {tool} did not write; nothing was deleted: "
                        "move them, or choose another OUT=...") from None
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    mark_owner(out, tool, entries)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(start_afresh, sys.argv[1:]))
