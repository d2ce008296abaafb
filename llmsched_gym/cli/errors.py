"""The command line's one error path: every failure becomes one line on stderr and an exit status.

Library errors speak Python (``pass sort=True``, ``trace_dir=...``, ``device='cpu'``); here they are rewritten in the
words of the command that was run: a keyword that is an option of the command becomes its flag (``--trace-dir
DIR``, ``--device cpu``), a workload option becomes ``--workload-option sort=true``, and a leading
``make_workload:`` or ``SarathiConfig:`` is dropped. The flag table comes from the command's own parser, so a new
command gets the rewriting for free.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping

from llmsched_gym.cli.validate import CommandError
from llmsched_gym.errors import LLMSchedError

HANDLED = (LLMSchedError, ValueError, OSError, ImportError)
"""Exceptions reported as one line (:class:`CommandError` is an ``LLMSchedError``; anything else is a bug and keeps
its traceback)."""

EXTRAS: Mapping[str, str] = {
    "matplotlib": "pip install -e '.[plots]' (or pass --no-plots)",
    "torch": "pip install torch==2.13.0 (the CPU build: add --index-url https://download.pytorch.org/whl/cpu), "
    "then pip install -e '.[executor]'",
    "transformers": "pip install -e '.[executor]'",
    "safetensors": "pip install -e '.[executor]'",
    "stable_baselines3": "pip install -e '.[train]'",
    "onnxruntime": "pip install onnxruntime",
}
"""Optional packages and the command that installs them."""

_KEYWORD = re.compile(r"\b([a-z_][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|\.\.\.|[^\s,;)]+)")
_PREFIX = re.compile(r"^(?:[a-z]+_[a-z_]*|[A-Z][a-z]+[A-Z]\w*|[A-Z]\w*Config|[A-Z]\w*Spec)(?:\(\))?: ")
_ALIASES = {"fmt": "trace_format", "n": "n_requests", "duration_s": "duration"}


def flag_table(parser: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    """``dest -> (flag, metavar)`` of every option of ``parser``."""
    out: dict[str, tuple[str, str]] = {}
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            out[action.dest] = (action.option_strings[0], metavar)
    return out


def _value(text: str, metavar: str) -> str:
    if text == "...":
        return metavar
    text = text.strip("'\"")
    return {"True": "true", "False": "false", "None": "none"}.get(text, text)


def speak_cli(message: str, flags: Mapping[str, tuple[str, str]], options: frozenset[str] = frozenset()) -> str:
    """Rewrite Python keyword names in ``message`` as the flags (or workload options) that set them."""
    message = _PREFIX.sub("", message, count=1)

    def swap(m: re.Match[str]) -> str:
        name = _ALIASES.get(m.group(1), m.group(1))
        if name in flags:
            flag, metavar = flags[name]
            return f"{flag} {_value(m.group(2), metavar)}"
        if m.group(1) in options:
            return f"--workload-option {m.group(1)}={_value(m.group(2), 'VALUE')}"
        return m.group(0)

    return _KEYWORD.sub(swap, message)


def missing_package(exc: ImportError) -> str:
    """A one-line message for a missing optional package, naming the command that installs it."""
    name = (exc.name or "").split(".")[0]
    fix = EXTRAS.get(name)
    if fix is None:
        return f"{exc} (a package is missing; reinstall with pip install -e .)"
    return f"this needs the optional package {name!r}: {fix}"


def one_line(text: str) -> str:
    """The message on one line (newlines folded, surrounding space trimmed)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def namespace_flags(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """``dest -> (flag, metavar)`` guessed from parsed arguments (argparse's ``--a-b`` -> ``a_b`` rule)."""
    return {dest: (f"--{dest.replace('_', '-')}", dest.upper()) for dest in vars(args) if dest != "handler"}


def report(
    command: str,
    exc: BaseException,
    parser: argparse.ArgumentParser | None,
    args: argparse.Namespace | None = None,
) -> int:
    """Print ``exc`` as ``llmsched <command>: error: <message>`` and return the exit status.

    Python keyword names in library messages become the flags of ``parser`` (or, without one, of ``args``).
    """
    if isinstance(exc, CommandError):
        message, status = str(exc), exc.status
    elif isinstance(exc, ImportError):
        message, status = missing_package(exc), 2
    else:
        flags = flag_table(parser) if parser is not None else namespace_flags(args) if args is not None else {}
        message, status = speak_cli(str(exc), flags, _workload_option_names()), 2
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
    prefix = f"llmsched {command}" if command else "llmsched"
    print(f"{prefix}: error: {one_line(message)}".rstrip(), file=sys.stderr)
    return status


def _workload_option_names() -> frozenset[str]:
    from llmsched_gym.workloads.registry import all_option_names

    return all_option_names()
