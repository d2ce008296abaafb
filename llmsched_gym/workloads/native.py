"""The package's native trace format (CSV or JSON Lines), with a reader and a writer that round-trip exactly.

Fields (CSV columns or JSON keys):

==========================  ========  ==========================================================
field                       required  meaning (``Request`` attribute)
==========================  ========  ==========================================================
``arrival_s``               yes       arrival time in seconds (``arrival``)
``prompt_tokens``           yes       prompt tokens (``prompt_len``)
``output_tokens``           yes       true output tokens (``output_len``)
``client``                  no        client index, default 0
``max_tokens``              no        user's output cap
``slo_class``               no        SLO class name; needed when a target below is given
``ttft_slo_s``              no        the class's TTFT target in seconds
``tbt_slo_s``               no        the class's TBT target in seconds
``predicted_output_tokens`` no        predicted output length (``predicted_output_len``)
``weight``                  no        fair-share weight, default 1.0
``type``                    no        WAIT type index (``type_label``)
==========================  ========  ==========================================================

Missing optional fields, empty CSV cells and JSON ``null`` mean "not set". Ids are not stored: requests are
numbered 0..N-1 in arrival order when read. Files ending in ``.csv``/``.csv.gz`` are CSV and ``.jsonl``,
``.jsonl.gz``, ``.ndjson`` are JSON Lines, unless ``fmt`` says otherwise.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads._parse import (
    Row,
    ZeroPolicy,
    csv_rows,
    jsonl_records,
    open_text,
    order_rows,
    parse_count,
    parse_pair,
    parse_seconds,
    where,
)
from llmsched_gym.workloads.loaders import check_zero_policy

NativeFormat = Literal["csv", "jsonl"]
REQUIRED_FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")
OPTIONAL_FIELDS = (
    "client",
    "max_tokens",
    "slo_class",
    "ttft_slo_s",
    "tbt_slo_s",
    "predicted_output_tokens",
    "weight",
    "type",
)
NATIVE_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS


def native_format(path: Path | str, fmt: NativeFormat | None = None) -> NativeFormat:
    """The format of ``path``: ``fmt`` if given, else from the file name.

    Raises:
        ValueError: The suffix is not recognised and ``fmt`` is not given.
    """
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"fmt={fmt!r} must be 'csv' or 'jsonl'")
        return fmt
    name = str(path).lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path}: name it *.csv or *.jsonl (optionally .gz) or pass fmt=")


def load_native(
    path: Path | str,
    *,
    fmt: NativeFormat | None = None,
    sort: bool = False,
    zero: ZeroPolicy = "error",
    rebase: bool = False,
) -> Iterator[Request]:
    """Load a native-format trace.

    Args:
        path: The file.
        fmt: ``"csv"`` or ``"jsonl"``; inferred from the name when ``None``.
        sort: Sort by time instead of rejecting decreasing timestamps.
        zero: Policy for zero prompt/output counts.
        rebase: Start the trace at 0.

    Returns:
        The requests, numbered in arrival order.

    Raises:
        TraceFormatError: A field is missing or invalid (raised while iterating).
    """
    check_zero_policy(zero)
    kind = native_format(path, fmt)
    records = csv_rows(path, REQUIRED_FIELDS) if kind == "csv" else jsonl_records(path, REQUIRED_FIELDS)
    rows = (row for line, record in records if (row := _native_row(path, line, record, zero)) is not None)
    return order_rows(rows, path, sort=sort, rebase=rebase)


def _present(record: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``, or ``None`` when it is absent, null or an empty CSV cell."""
    value = record.get(key)
    return None if value is None or value == "" else value


def _native_row(path: Path | str, line: int, record: Mapping[str, Any], zero: ZeroPolicy) -> Row | None:
    arrival = parse_seconds(record["arrival_s"], (path, line, "arrival_s"))
    pair = parse_pair(record["prompt_tokens"], record["output_tokens"], path, line, REQUIRED_FIELDS[1:], zero)
    if pair is None:
        return None
    extra: dict[str, Any] = {}
    for key, attr, allow_zero in (
        ("client", "client", True),
        ("max_tokens", "max_tokens", False),
        ("predicted_output_tokens", "predicted_output_len", False),
        ("type", "type_label", True),
    ):
        if (value := _present(record, key)) is not None:
            extra[attr] = parse_count(value, (path, line, key), allow_zero=allow_zero)
    if (weight := _present(record, "weight")) is not None:
        extra["weight"] = parse_seconds(weight, (path, line, "weight"))
        if extra["weight"] <= 0:
            raise TraceFormatError(f"{where(path, line, 'weight')}: {weight!r} must be positive")
    slo = _native_slo(path, line, record)
    if slo is not None:
        extra["slo"] = slo
    return Row(line, arrival, *pair, extra)


def _native_slo(path: Path | str, line: int, record: Mapping[str, Any]) -> SLOClass | None:
    name = _present(record, "slo_class")
    targets: dict[str, float | None] = {}
    for key, attr in (("ttft_slo_s", "ttft_s"), ("tbt_slo_s", "tbt_s")):
        value = _present(record, key)
        targets[attr] = None if value is None else parse_seconds(value, (path, line, key))
    if name is None:
        if any(value is not None for value in targets.values()):
            raise TraceFormatError(f"{where(path, line, 'slo_class')}: missing, but an SLO target is given")
        return None
    try:
        return SLOClass(str(name), **targets)
    except ValueError as exc:
        raise TraceFormatError(f"{where(path, line)}: {exc}") from None


def _native_record(request: Request) -> dict[str, Any]:
    slo = request.slo
    return {
        "arrival_s": request.arrival,
        "prompt_tokens": request.prompt_len,
        "output_tokens": request.output_len,
        "client": request.client,
        "max_tokens": request.max_tokens,
        "slo_class": None if slo is None else slo.name,
        "ttft_slo_s": None if slo is None else slo.ttft_s,
        "tbt_slo_s": None if slo is None else slo.tbt_s,
        "predicted_output_tokens": request.predicted_output_len,
        "weight": request.weight,
        "type": request.type_label,
    }


def _cell(value: Any) -> str:
    """A CSV cell: empty for ``None``, shortest round-trip text for floats."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_native(requests: Iterable[Request], path: Path | str, *, fmt: NativeFormat | None = None) -> int:
    """Write requests in the native format (streaming); :func:`load_native` reads them back identically.

    CSV files get every column (empty cells for unset values); JSONL records omit unset values. Floats are
    written with Python's shortest round-trip representation.

    Args:
        requests: The requests, in arrival order (ids are not written).
        path: Destination file (``.gz`` compresses).
        fmt: ``"csv"`` or ``"jsonl"``; inferred from the name when ``None``.

    Returns:
        The number of requests written.
    """
    kind = native_format(path, fmt)
    count = 0
    with open_text(path, "w") as fh:
        if kind == "csv":
            writer = csv.DictWriter(fh, fieldnames=NATIVE_FIELDS, lineterminator="\n")
            writer.writeheader()
            for request in requests:
                writer.writerow({k: _cell(v) for k, v in _native_record(request).items()})
                count += 1
        else:
            for request in requests:
                record = {k: v for k, v in _native_record(request).items() if v is not None}
                fh.write(json.dumps(record) + "\n")
                count += 1
    return count
