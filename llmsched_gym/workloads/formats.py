"""Trace files of any supported format: detection from the header, typed options, and one loader.

Formats (``fmt``), told apart by their CSV header or their first JSON record's keys:

===============  =====  ===================================================================  ===========
format           file   identifying columns / keys                                           timestamps
===============  =====  ===================================================================  ===========
``azure``        CSV    ``TIMESTAMP, ContextTokens, GeneratedTokens``                         yes
``burstgpt``     CSV    ``Timestamp, Model, Request tokens, Response tokens, ...``            yes
``mooncake``     JSONL  ``timestamp`` (ms), ``input_length``, ``output_length``               yes
``length-stats`` CSV    ``num_prefill_tokens, num_decode_tokens`` (ShareGPT/arXiv statistics)  no: Poisson
``vtc``          CSV    ``req_id, client_id, arrival_s, prompt_tokens, output_tokens``        yes
``native``       both   ``arrival_s, prompt_tokens, output_tokens`` (+ optional fields)       yes
===============  =====  ===================================================================  ===========

:func:`detect_format` reads only the first line (or record); a header matching several formats resolves to the one
naming the most columns (``vtc`` over ``native``). A file that is binary, empty or matches none is a
:class:`~llmsched_gym.errors.TraceFormatError` naming the file.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from llmsched_gym.core.request import Request
from llmsched_gym.errors import TraceFormatError, UnknownNameError
from llmsched_gym.workloads import loaders, native
from llmsched_gym.workloads.arrivals import GammaArrivals, PoissonArrivals

TRACE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".gz", ".tsv", ".txt")
"""File name endings that make a workload name a path (besides a ``/`` in it)."""


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a workload (``--workload-option NAME=VALUE`` on the command line).

    Attributes:
        name: Keyword name.
        kind: Its type annotation (``int | None``, ``bool``, ``Literal["error", "skip"]``, ...).
        default: Value when not given.
        doc: Meaning, one line.
    """

    name: str
    kind: Any
    default: Any
    doc: str


ZERO = Option("zero", Literal["error", "skip"], "error", "rows with a zero token count: error, or skip them")
SORT = Option("sort", bool, False, "sort rows by time instead of refusing decreasing timestamps")
MAX_TOTAL = Option("max_total", int | None, None, "drop requests whose prompt + output exceed this many tokens")
CV = Option("cv", float | None, None, "Gamma arrivals with this coefficient of variation (none: Poisson)")
SHUFFLE = Option("shuffle", bool, False, "shuffle the rows before assigning arrival times")
FMT = Option("fmt", str | None, None, "trace format (detected from the header when none)")
TIMESTAMPED_OPTIONS = (MAX_TOTAL, SORT, ZERO)
LENGTH_OPTIONS = (SHUFFLE, MAX_TOTAL, CV, ZERO)
BURSTGPT_OPTIONS = (
    *TIMESTAMPED_OPTIONS,
    Option("models", tuple[str, ...] | None, None, "keep only rows of these Model values (e.g. ChatGPT)"),
    Option("log_types", tuple[str, ...] | None, None, "keep only rows of these Log Type values"),
    Option("client_by", Literal["none", "model", "session"], "none", "what becomes the request's client"),
)


@dataclass(frozen=True, slots=True)
class TraceFormat:
    """A supported trace format.

    Attributes:
        name: The ``fmt`` value.
        kind: ``"csv"``, ``"jsonl"`` or ``"any"`` (native: both).
        columns: The header columns (CSV) or keys (JSONL) that identify it.
        timestamped: Whether rows carry arrival times (else arrivals are drawn).
        options: The options a workload of this format takes.
    """

    name: str
    kind: Literal["csv", "jsonl", "any"]
    columns: tuple[str, ...]
    timestamped: bool
    options: tuple[Option, ...]


FORMATS: Mapping[str, TraceFormat] = MappingProxyType(
    {
        f.name: f
        for f in (
            TraceFormat("azure", "csv", loaders.AZURE_COLUMNS, True, TIMESTAMPED_OPTIONS),
            TraceFormat("burstgpt", "csv", loaders.BURSTGPT_COLUMNS, True, BURSTGPT_OPTIONS),
            TraceFormat("mooncake", "jsonl", loaders.MOONCAKE_FIELDS, True, TIMESTAMPED_OPTIONS),
            TraceFormat("length-stats", "csv", loaders.LENGTH_STATS_COLUMNS, False, LENGTH_OPTIONS),
            TraceFormat("vtc", "csv", loaders.VTC_COLUMNS, True, TIMESTAMPED_OPTIONS),
            TraceFormat("native", "any", native.REQUIRED_FIELDS, True, TIMESTAMPED_OPTIONS),
        )
    }
)


def trace_format(fmt: str) -> TraceFormat:
    """The format called ``fmt`` (case-insensitive, ``_`` equals ``-``).

    Raises:
        UnknownNameError: Not a supported format.
    """
    key = fmt.strip().lower().replace("_", "-")
    if key not in FORMATS:
        raise UnknownNameError(f"unknown trace format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[key]


def _first_line(path: Path) -> str:
    """The first non-blank line of a text file (``.gz`` decompressed); binary or empty files are errors."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:2] == b"\x1f\x8b":
        if not str(path).endswith(".gz"):
            raise TraceFormatError(f"{path}: the file is gzip-compressed but not named *.gz; rename it to end in .gz")
        with gzip.open(path, "rb") as gz:
            head = gz.read(4096)
    if b"\x00" in head:
        raise TraceFormatError(f"{path}: not a text file (binary data); a trace is CSV or JSON Lines, optionally .gz")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the 4096-byte boundary
            raise TraceFormatError(f"{path}: not UTF-8 text (byte {exc.start}); a trace is CSV or JSON Lines") from None
        text = head[: exc.start].decode("utf-8")
    for line in text.splitlines():
        if line.strip():
            return line.lstrip("\ufeff")
    raise TraceFormatError(f"{path}: the file is empty; a trace needs a header row (CSV) or records (JSON Lines)")


def _keys(path: Path, line: str) -> tuple[Literal["csv", "jsonl"], set[str]]:
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceFormatError(f"{path}: line 1: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise TraceFormatError(f"{path}: line 1: expected a JSON object")
        return "jsonl", set(record)
    return "csv", {c.strip() for c in next(csv.reader([line]))}


def detect_format(path: Path | str) -> str:
    """The format of a trace file, from its header (CSV) or first record (JSON Lines).

    Raises:
        FileNotFoundError: No such file.
        TraceFormatError: The file is binary, empty, or matches no format (the message lists what each needs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    kind, keys = _keys(path, _first_line(path))
    matches = [f for f in FORMATS.values() if f.kind in (kind, "any") and set(f.columns) <= keys]
    if not matches:
        wanted = "; ".join(f"{f.name}: {', '.join(f.columns)}" for f in FORMATS.values() if f.kind in (kind, "any"))
        found = ", ".join(sorted(keys)) or "nothing"
        raise TraceFormatError(
            f"{path}: cannot tell the trace format; the {'header' if kind == 'csv' else 'first record'} has "
            f"{found}, but each format needs its columns ({wanted}); fix the header or pass fmt=..."
        )
    return max(matches, key=lambda f: len(f.columns)).name


def _arrivals(rate: float | None, cv: float | None) -> PoissonArrivals | GammaArrivals:
    rate = 1.0 if rate is None else rate
    return PoissonArrivals(rate) if cv is None else GammaArrivals(rate, cv)


def load_trace(
    path: Path | str,
    fmt: str | None = None,
    *,
    rng: np.random.Generator | None = None,
    rate: float | None = None,
    **options: Any,
) -> Iterator[Request]:
    """Load a trace file of any supported format (detected when ``fmt`` is ``None``).

    Timestamped formats keep their recorded times; ``length-stats`` files get Poisson arrivals at ``rate`` (default
    1/s; Gamma with option ``cv``) from ``rng``. ``make_workload(path, ...)`` adds rescaling, windows and counts.

    Args:
        path: The file (``.gz`` allowed).
        fmt: A name of :data:`FORMATS`, or ``None`` to detect it.
        rng: Randomness of drawn arrivals and shuffles (``length-stats`` only; default seed 0).
        rate: Arrival rate of ``length-stats`` files.
        **options: The format's options (:data:`TraceFormat.options`).

    Returns:
        The requests, sorted by arrival, ids 0..N-1.

    Raises:
        TypeError: An option the format does not take.
        TraceFormatError: The file is malformed (raised while iterating for rows past the header).
    """
    spec = trace_format(fmt if fmt is not None else detect_format(path))
    names = {o.name for o in spec.options}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"trace format {spec.name!r} got unknown option(s) {unknown}; it accepts {sorted(names)}")
    merged = {o.name: o.default for o in spec.options} | options
    max_total = merged.pop("max_total")
    if not spec.timestamped:
        arrivals = _arrivals(rate, merged.pop("cv"))
        rng = np.random.default_rng(0) if rng is None else rng
        return loaders.load_length_stats(path, arrivals, rng, max_total=max_total, **merged)
    from llmsched_gym.workloads.transforms import filter_max_total

    stream = _timestamped_loader(spec.name)(path, **merged)
    return stream if max_total is None else filter_max_total(stream, max_total)


def _timestamped_loader(name: str) -> Any:
    return {
        "azure": loaders.load_azure,
        "burstgpt": loaders.load_burstgpt,
        "mooncake": loaders.load_mooncake,
        "vtc": loaders.load_vtc,
        "native": native.load_native,
    }[name]
