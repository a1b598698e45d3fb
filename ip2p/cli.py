"""Conventions shared by every entry point: ``--help`` shows defaults, and
expected mistakes end in one readable line and a non-zero exit, never a
traceback."""

import argparse
import sys
from typing import Callable, Optional, Sequence


class UserError(Exception):
    """A mistake the user can fix (bad input, missing file, unreachable server).

    The message is printed as a single line; it should name the file or sample
    and say what to do about it.
    """

    exit_code = 2


def make_parser(description: str) -> argparse.ArgumentParser:
    # ArgumentDefaultsHelpFormatter appends "(default: ...)" to every option
    # that has help text, so --help always documents the defaults.
    return argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def run_main(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> int:
    """Call ``main(argv)`` and turn a ``UserError`` into ``error: ...`` on stderr."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
