"""Shared helpers of the trace loaders: opening files, parsing fields, ordering rows.

Every error is a :class:`~llmsched_gym.errors.TraceFormatError` whose message names the file, the 1-based
line (the CSV header is line 1) and the field.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from llmsched_gym.core.request import Request
from llmsched_gym.errors import TraceFormatError

ZeroPolicy = Literal["error", "skip"]
"""What a loader does with a zero token count: raise a ``TraceFormatError`` or drop the row."""

_DATETIME = re.compile(r"^(?P<base>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?(?P<tz>Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True, slots=True)
class Row:
    """One parsed trace row before ordering and numbering.

    Attributes:
        line: 1-based line number in the source file.
        arrival: Arrival time in seconds (relative to the trace's own origin; may be rebased later).
        prompt_len: Prompt tokens.
        output_len: Output tokens.
        extra: Further ``Request`` keyword arguments (``client``, ``slo``, ...).
    """

    line: int
    arrival: float
    prompt_len: int
    output_len: int
    extra: Mapping[str, Any] = field(default_factory=dict)


def where(path: Path | str, line: int, column: str | None = None) -> str:
    """Format a location prefix ``"<file>: line N, field 'x'"`` for error messages."""
    text = f"{path}: line {line}"
    return f"{text}, field {column!r}" if column is not None else text


def open_text(path: Path | str, mode: Literal["r", "w"] = "r") -> IO[str]:
    """Open a text file for CSV/JSONL use, transparently (de)compressing ``*.gz`` files."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt" if mode == "r" else "wt", encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def csv_rows(
    path: Path | str, required: Sequence[str], *, only: tuple[str, str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream ``(line, row)`` pairs from a CSV file with a header, checking the required columns.

    Args:
        path: CSV file (``.gz`` allowed).
        required: Column names that must be in the header.
        only: Optional ``(column, value)`` pre-filter for large files: only rows whose ``column`` equals ``value``
            are parsed and yielded. When ``column`` is the first column, other lines are skipped by a text prefix
            test before CSV parsing (the value may be bare or double-quoted).

    Yields:
        The 1-based line number of each data row (header = line 1) and the row as a dict.

    Raises:
        TraceFormatError: The file is empty, a column is missing, or a row has too few or too many fields.
    """
    header: list[str] = []
    for line, row in csv_fields(path, required, only=only, header_out=header):
        yield line, dict(zip(header, row, strict=True))


def csv_fields(
    path: Path | str,
    required: Sequence[str],
    *,
    only: tuple[str, str] | None = None,
    header_out: list[str] | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """:func:`csv_rows` yielding each row as a list of fields; ``header_out`` receives the header when it is read."""
    with open_text(path) as fh:
        header = next(csv.reader(fh), None)
        if header is None:
            raise TraceFormatError(f"{path}: the file is empty; expected a header with columns {list(required)}")
        missing = [name for name in required if name not in header]
        if missing:
            raise TraceFormatError(
                f"{where(path, 1)} (header): missing column(s) {missing}; found {header}; "
                f"the file must have columns {list(required)}"
            )
        if header_out is not None:
            header_out[:] = header
        column, wanted = (-1, "") if only is None else (header.index(only[0]), only[1])
        prefixes = (wanted + ",", f'"{wanted}",') if column == 0 else None
        width = len(header)
        for line, row in _split_rows(fh, prefixes):
            if not row or (column >= 0 and len(row) > column and row[column] != wanted):
                continue
            if len(row) != width:
                raise TraceFormatError(f"{where(path, line)}: {len(row)} fields but the header has {width}")
            yield line, row


def _split_rows(fh: Iterable[str], prefixes: tuple[str, ...] | None) -> Iterator[tuple[int, list[str]]]:
    """Numbered CSV rows: lines without quotes are split directly, others (and what follows) go through ``csv``."""
    lines = iter(enumerate(fh, start=2))
    for number, text in lines:
        if prefixes is not None and not text.startswith(prefixes):
            continue
        if '"' not in text:
            body = text.rstrip("\r\n")
            yield number, body.split(",") if body else []
            continue
        last_line = [number]
        rest = itertools.chain([text], (t for _, t in lines))
        for row in csv.reader(_numbered_lines(rest, prefixes, last_line, first=number)):
            yield last_line[0], row
        return


def _numbered_lines(
    lines: Iterable[str], prefixes: tuple[str, ...] | None, last_line: list[int], first: int = 2
) -> Iterator[str]:
    """Pass lines through (only those starting with a prefix, if given), recording each one's line number."""
    for number, text in enumerate(lines, start=first):
        if prefixes is None or text.startswith(prefixes):
            last_line[0] = number
            yield text


Loc = tuple[Path | str, int, str]
"""Where a value came from: ``(file, 1-based line, field)``; formatted by :func:`where` only on error."""


def parse_count(text: Any, loc: Loc, *, allow_zero: bool = False) -> int:
    """Parse a count or index: a non-negative integer (``"12"``, ``12`` or ``12.0``), at least 1 unless allowed.

    Args:
        text: The raw value (string from CSV or number from JSON).
        loc: ``(file, line, field)`` for the error message.
        allow_zero: Accept 0.

    Returns:
        The integer.

    Raises:
        TraceFormatError: The value is not an integer, is negative, or is zero when not allowed.
    """
    value: int
    if isinstance(text, str) and text.isascii() and text.isdigit():
        value = int(text)
    elif isinstance(text, bool):
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not an integer")
    elif isinstance(text, int):
        value = text
    elif isinstance(text, float) and text.is_integer():
        value = int(text)
    elif isinstance(text, str) and text.strip().lstrip("+-").isdigit():
        value = int(text.strip())
    elif isinstance(text, str) and _is_integral_float(text):
        value = int(float(text))
    else:
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not an integer")
    if value < 0:
        raise TraceFormatError(f"{where(*loc)}: {value} is negative")
    if value == 0 and not allow_zero:
        raise TraceFormatError(f"{where(*loc)}: 0 is not allowed (at least 1)")
    return value


def _is_integral_float(text: str) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and number.is_integer()


def parse_seconds(text: Any, loc: Loc) -> float:
    """Parse a finite number (seconds, milliseconds or a plain quantity; the caller scales).

    Raises:
        TraceFormatError: The value is not a number, or is NaN or infinite.
    """
    if isinstance(text, bool):
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not a number")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not a finite number")
    return value


def parse_datetime(text: str, loc: Loc) -> tuple[int, float]:
    """Parse an ISO-like datetime string with any number of fractional digits and an optional timezone.

    Naive times (no timezone, as in the Azure 2023 files) are read as UTC.

    Returns:
        ``(whole_seconds, fraction)``: integer POSIX seconds and the fractional part in ``[0, 1)``, kept apart so
        that differences between nearby rows stay exact to the 100-ns digits of the Azure files.

    Raises:
        TraceFormatError: The text is not such a datetime.
    """
    match = _DATETIME.match(text.strip())
    if match is None:
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not a datetime like '2023-11-16 18:15:46.6805900'")
    tz = match["tz"] or "+00:00"
    tz = "+00:00" if tz == "Z" else tz
    try:
        stamp = datetime.fromisoformat(match["base"].replace(" ", "T") + tz)
    except ValueError as exc:
        raise TraceFormatError(f"{where(*loc)}: {text!r} is not a valid datetime ({exc})") from None
    frac = float("0" + match["frac"]) if match["frac"] else 0.0
    return int(stamp.astimezone(UTC).timestamp()), frac


def order_rows(rows: Iterable[Row], path: Path | str, *, sort: bool, rebase: bool) -> Iterator[Request]:
    """Turn parsed rows into ``Request`` objects numbered 0..N-1 in arrival order.

    Args:
        rows: Parsed rows in file order.
        path: Source file, for error messages.
        sort: Load every row and sort stably by arrival; otherwise a decreasing timestamp is an error.
        rebase: Subtract the first arrival so that the trace starts at 0.

    Yields:
        Requests sorted by arrival with dense ids.

    Raises:
        TraceFormatError: Timestamps decrease (without ``sort``), an arrival is negative, or a field is invalid.
    """
    source: Iterable[Row] = sorted(rows, key=lambda r: r.arrival) if sort else rows
    origin: float | None = None
    previous: Row | None = None
    for index, row in enumerate(source):
        if previous is not None and row.arrival < previous.arrival:
            raise TraceFormatError(
                f"{where(path, row.line)}: timestamp {row.arrival!r} s is earlier than line {previous.line}'s "
                f"{previous.arrival!r} s; the trace must be sorted by arrival (pass sort=True to sort it)"
            )
        previous = row
        if origin is None:
            origin = row.arrival if rebase else 0.0
        arrival = row.arrival - origin
        if arrival < 0:
            raise TraceFormatError(f"{where(path, row.line)}: arrival {row.arrival!r} s is negative")
        try:
            yield Request(index, arrival, row.prompt_len, row.output_len, **row.extra)
        except (TypeError, ValueError) as exc:
            raise TraceFormatError(f"{where(path, row.line)}: {exc}") from None


def jsonl_records(path: Path | str, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line, record)`` pairs from a JSON Lines file, checking that each record has the required keys.

    Blank lines are ignored (they hold no record).

    Raises:
        TraceFormatError: A line is not valid JSON, not an object, or lacks a required key.
    """
    with open_text(path) as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TraceFormatError(f"{where(path, line)}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise TraceFormatError(f"{where(path, line)}: expected a JSON object, got {type(record).__name__}")
            for name in required:
                if name not in record or record[name] is None:
                    raise TraceFormatError(f"{where(path, line, name)}: missing; every record needs {list(required)}")
            yield line, record


def parse_pair(
    prompt: Any, output: Any, path: Path | str, line: int, names: Sequence[str], zero: ZeroPolicy
) -> tuple[int, int] | None:
    """Parse a prompt and an output count under a zero policy.

    Returns:
        ``(prompt, output)``, or ``None`` when a count is 0 and ``zero == "skip"``.

    Raises:
        TraceFormatError: A count is not a non-negative integer, or is 0 and ``zero == "error"``.
    """
    p = parse_count(prompt, (path, line, names[0]), allow_zero=True)
    o = parse_count(output, (path, line, names[1]), allow_zero=True)
    if p > 0 and o > 0:
        return p, o
    if zero == "skip":
        return None
    name = names[0] if p == 0 else names[1]
    raise TraceFormatError(
        f"{where(path, line, name)}: token count is 0 but every request needs at least 1 token; "
        "pass zero='skip' to drop such rows"
    )
