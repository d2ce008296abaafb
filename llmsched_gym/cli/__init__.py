"""The ``llmsched`` command: simulate, capacity, live and listing subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmsched_gym.cli import commands
from llmsched_gym.errors import LLMSchedError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every option documented in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="llmsched",
        description="llmsched-gym: simulate, compare and serve LLM-inference schedulers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_simulate(sub)
    commands.add_capacity(sub)
    commands.add_listings(sub)
    commands.add_optional(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``llmsched``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (LLMSchedError, FileNotFoundError, ValueError) as exc:
        print(f"llmsched {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
