"""Conventions shared by every entry point: ``--help`` shows defaults, and
expected mistakes end in one readable line and a non-zero exit, never a
traceback."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence


class UserError(Exception):
    """A mistake the user can fix (bad input, missing file, unreachable server).

    The message is printed as a single line; it should name the file or sample
    and say what to do about it.
    """

    exit_code = 2


def read_json_file(path: Path, missing_hint: str) -> Any:
    """Parse a JSON file a user wrote; any mistake in it is one clear line."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; {missing_hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}; fix the file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8 JSON") from None


def make_parser(description: str) -> argparse.ArgumentParser:
    # ArgumentDefaultsHelpFormatter appends "(default: ...)" to every option
    # that has help text, so --help always documents the defaults.
    return argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def at_least(minimum, kind=int):
    """An argparse ``type``: ``kind`` of the flag's text, refused (one usage line) below ``minimum``."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value
    return convert


class _DropTorchvisionAdvice(logging.Filter):
    # transformers advises installing torchvision whenever diffusers imports
    # CLIPImageProcessor; this project must never install it (no working CPU
    # build), and the PIL fallback it announces is exactly what we want.
    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None,
             report: Optional[Callable[[str], None]] = None) -> int:
    """Call ``main(argv)`` and turn a ``UserError`` into ``error: ...`` on
    stderr (or into ``report(line)``, e.g. for a launcher to print once)."""
    logging.getLogger("transformers.utils.import_utils").addFilter(_DropTorchvisionAdvice())
    try:
        return main(argv)
    except UserError as err:
        (report or (lambda line: print(line, file=sys.stderr)))(f"error: {err}")
        leave_process_group()
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def leave_process_group(barrier: Optional[Callable[[], None]] = None) -> None:
    """Tear a distributed run's process group down, if there is one: the one
    teardown of every script. A run that ends normally passes its barrier
    (``accelerator.wait_for_everyone``) so every rank leaves together, while
    the models still hold the group; after an error there is none (the other
    processes may have stopped too). Left to garbage collection at exit, a
    rank can wait forever in the DDP reducer's destructor for a gloo peer that
    has already gone (the scripts then also end such a process at once:
    ``exit_script``)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        if barrier is not None:
            barrier()
        distributed.destroy_process_group()


def exit_script(code: int) -> None:
    """End a script's process with ``code``. A process of a distributed run
    (``WORLD_SIZE`` > 1: torchrun, accelerate launch) ends at once once its
    output is flushed: by then its results are saved and its process group
    torn down, and the interpreter's own teardown can still wait forever in
    a C++ destructor (the DDP reducer joining a gloo thread whose peer has
    gone; seen about once in a dozen 2-process runs), which on a cluster
    burns the allocation. A single process exits normally."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
