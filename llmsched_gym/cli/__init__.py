"""The ``llmsched`` command: simulate, capacity, compare, live and the listing commands.

A command module registers itself with one line in :func:`build_parser` (``module.add_parser(sub)``), builds its
options with :mod:`llmsched_gym.cli.validate` and raises :class:`~llmsched_gym.cli.validate.UsageError` for a bad
value; :func:`main` turns every failure into one line on stderr (see :mod:`llmsched_gym.cli.errors`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmsched_gym.cli import commands, listings
from llmsched_gym.cli.errors import HANDLED, report
from llmsched_gym.cli.validate import Parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every option documented in ``--help``; no option abbreviations)."""
    parser = Parser(
        prog="llmsched",
        description="llmsched-gym: simulate, compare and serve LLM-inference schedulers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_simulate(sub)
    commands.add_capacity(sub)
    listings.add_listings(sub)
    commands.add_optional(sub)
    return parser


def _command(argv: Sequence[str], parser: argparse.ArgumentParser) -> tuple[str, argparse.ArgumentParser | None]:
    """The subcommand named in ``argv`` and its parser (for error messages before parsing succeeds)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for word in argv:
        if word in sub.choices:
            return word, sub.choices[word]
    return "", parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``llmsched``; returns the process exit status (2: bad input, 1: nothing could be done)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command, sub_parser = _command(argv, parser)
    try:
        args = parser.parse_args(argv)
        code: int = args.handler(args)
    except HANDLED as exc:
        return report(command or "", exc, sub_parser)
    except KeyboardInterrupt:
        print(f"llmsched {command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
