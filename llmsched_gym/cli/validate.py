"""The command line's one validation layer and its one error type.

Every ``llmsched`` command (and any command module added later) builds its options with these pieces, so a bad
value is refused before any work starts, with one line that names the flag and the fix:

* :class:`Parser` -- ``argparse.ArgumentParser`` without prefix matching (``--trace`` never silently means
  ``--trace-dir``) whose errors raise :class:`UsageError` instead of printing the usage block.
* ``type=`` factories: :func:`integer`, :func:`number`, :func:`name_of` (case-insensitive names with a
  suggestion), :func:`in_file`, :func:`out_file`, :func:`listed`.
* :func:`lookup` for names checked outside argparse, :func:`pairs` for repeatable ``KEY=VALUE`` flags.

``llmsched_gym.cli.main`` prints ``llmsched <command>: error: <message>`` for a :class:`UsageError` and exits 2
(and for a :class:`CommandError`, a run that could not do its work, exits 1). Library errors
(:class:`~llmsched_gym.errors.LLMSchedError`, ``ValueError``, ``OSError``, a missing optional package) take the same
path, their Python keyword names rewritten as the flags that set them (:mod:`llmsched_gym.cli.errors`).

Example of a command module (one registration line in ``build_parser``)::

    def add_parser(sub):
        p = sub.add_parser("tasks", help="list tasks")
        p.add_argument("--top", type=integer(low=1), default=10, help="rows to show")
        p.add_argument("--task", type=name_of("task", list_tasks, listing="llmsched tasks"), help="a task")
        p.set_defaults(handler=run)
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from llmsched_gym.cli.values import ConversionError, convert
from llmsched_gym.errors import LLMSchedError


class CommandError(LLMSchedError):
    """A command could not do its work (nothing to serve, nothing served); one line, exit status ``status``.

    Args:
        flag: The flag at fault (``"--rate"``), or ``None`` when no single flag is.
        message: What is wrong and how to fix it.
    """

    status = 1

    def __init__(self, flag: str | None, message: str) -> None:
        super().__init__(message)
        self.flag = flag
        self.message = message

    def __str__(self) -> str:
        """``"--flag VALUE: message"``, or the message alone."""
        return f"{self.flag}: {self.message}" if self.flag else self.message


class UsageError(CommandError, ValueError):
    """A bad command-line value, reported as one line naming the flag and the fix (exit status 2)."""

    status = 2


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that never abbreviates options and raises :class:`UsageError` on errors.

    Subparsers made with ``add_subparsers().add_parser`` are of this class too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise a one-line :class:`UsageError` (argparse would print the usage block and exit)."""
        hint = "" if "see `" in message else f" (see `{self.prog} --help`)"
        raise UsageError(None, message + hint)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse; an unknown option is an error naming the closest known one."""
        ns, extras = super().parse_known_args(args, namespace)
        unknown = [a for a in extras if a.startswith("-")]
        if unknown:
            known = [s for action in self._actions for s in action.option_strings]
            guess = suggest(unknown[0].split("=")[0], known)
            raise UsageError(unknown[0], f"unknown option{guess}; see `{self.prog} --help`")
        return ns, extras


def suggest(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice (case-insensitive), or ``""``."""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


def lookup(name: str, choices: Iterable[str], *, kind: str, flag: str | None, listing: str | None = None) -> str:
    """The choice equal to ``name`` ignoring case (and ``_`` versus ``-``).

    Raises:
        UsageError: No such choice; the message suggests the closest one and where the list is.
    """
    options = list(choices)

    def key(text: str) -> str:
        return text.strip().lower().replace("_", "-")

    for choice in options:
        if key(choice) == key(name):
            return choice
    where = f" (see `{listing}`)" if listing else f"; choose one of {', '.join(options)}"
    raise UsageError(flag, f"unknown {kind} {name!r}{suggest(name, options)}{where}")


def _fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def integer(*, low: int | None = None, high: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number within ``[low, high]`` (``what`` names the unit in the message)."""

    def parse(text: str) -> int:
        try:
            value = convert(text, int)
        except ConversionError as exc:
            _fail(f"{exc}; give a whole number{_range(low, high)}{what and ' (' + what + ')'}")
        if (low is not None and value < low) or (high is not None and value > high):
            _fail(f"{value} is out of range; give a whole number{_range(low, high)}{what and ' (' + what + ')'}")
        return int(value)

    return parse


def number(
    *, low: float | None = None, high: float | None = None, low_open: bool = False, what: str = ""
) -> Callable[[str], float]:
    """An argparse type: a finite number within ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    bound = "" if low is None else (f" > {low:g}" if low_open else f" >= {low:g}")
    bound += "" if high is None else f"{' and' if bound else ''} <= {high:g}"
    unit = f" {what}" if what else ""

    def parse(text: str) -> float:
        try:
            value = float(convert(text, float))
        except ConversionError as exc:
            _fail(f"{exc}; give a number{bound}{unit}")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high) or not math.isfinite(value):
            _fail(f"{text} is out of range; give a number{bound}{unit}")
        return value

    return parse


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" >= {low}"
    return "" if high is None else f" <= {high}"


def name_of(kind: str, choices: Callable[[], Iterable[str]], *, listing: str | None = None) -> Callable[[str], str]:
    """An argparse type: a name from ``choices()`` matched case-insensitively, returned in canonical spelling."""

    def parse(text: str) -> str:
        try:
            return lookup(text, choices(), kind=kind, flag=None, listing=listing)
        except UsageError as exc:
            _fail(exc.message)

    return parse


def listed(item: Callable[[str], Any], *, what: str) -> Callable[[str], tuple[Any, ...]]:
    """An argparse type: comma-separated items, each parsed by ``item``; at least one."""

    def parse(text: str) -> tuple[Any, ...]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            _fail(f"{text!r} is empty; give comma-separated {what}")
        values = []
        for part in parts:
            try:
                values.append(item(part))
            except argparse.ArgumentTypeError as exc:
                _fail(f"item {part!r}: {exc}")
        return tuple(values)

    return parse


def in_file(text: str) -> Path:
    """An argparse type: an existing regular file."""
    path = Path(text).expanduser()
    if path.is_dir():
        _fail(f"{text} is a folder; give a file")
    if not path.is_file():
        _fail(f"{text} does not exist; check the path")
    return path


def out_file(*suffixes: str) -> Callable[[str], Path]:
    """An argparse type: a file to write, ending in one of ``suffixes``, whose folder exists (never created)."""

    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if path.is_dir() or text.endswith(("/", "\\")):
            _fail(f"{text} is a folder; give a file name ending in {' or '.join(suffixes)}")
        if suffixes and path.suffix.lower() not in suffixes:
            _fail(f"{text}: unknown file type; give a name ending in {' or '.join(suffixes)}")
        if not path.parent.is_dir():
            _fail(f"folder {path.parent} does not exist; create it first or write elsewhere")
        return path

    return parse


def out_dir(text: str) -> Path:
    """An argparse type: a folder to write into (created if absent, but its parent must exist)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        _fail(f"{text} is a file; give a folder")
    if not path.exists() and not path.resolve().parent.is_dir():
        _fail(f"folder {path.resolve().parent} does not exist; create it first or write elsewhere")
    return path


def pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    """Repeatable ``KEY=VALUE`` flags to a dict of texts (keys stripped; a repeated key is an error).

    Raises:
        UsageError: An item lacks ``=`` or a key, or a key repeats.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} {item}", f"expected KEY=VALUE, e.g. {flag} {_example(flag)}")
        if key in out:
            raise UsageError(f"{flag} {item}", f"{key!r} is given twice; keep one")
        out[key] = value.strip()
    return out


def _example(flag: str) -> str:
    return {"--param": "chunk_size=512", "--workload-option": "max_total=4096"}.get(flag, "key=value")
