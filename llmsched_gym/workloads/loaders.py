"""Streaming loaders for public LLM-inference trace formats.

Every loader reads its file row by row and yields :class:`~llmsched_gym.core.request.Request` objects sorted
by arrival, with ids 0..N-1 in arrival order (the source row is not kept; error messages name it). Shared
options:

* ``sort``: ``False`` (default) treats a decreasing timestamp as an error; ``True`` loads every row and sorts
  stably by arrival (rows with equal times keep file order).
* ``zero``: ``"error"`` raises on a zero prompt or output count; ``"skip"`` drops such rows. This is the only way
  rows are dropped, besides the explicit filters a loader documents.
* ``rebase``: subtract the first arrival so the trace starts at 0.

Malformed input raises :class:`~llmsched_gym.errors.TraceFormatError` naming the file, the 1-based line
(CSV header = line 1) and the field.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from llmsched_gym.core.request import Request
from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads._parse import (
    Row,
    ZeroPolicy,
    csv_fields,
    csv_rows,
    jsonl_records,
    order_rows,
    parse_count,
    parse_datetime,
    parse_pair,
    parse_seconds,
    where,
)
from llmsched_gym.workloads.arrivals import ArrivalProcess

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
LENGTH_STATS_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")
VTC_COLUMNS = ("req_id", "client_id", "arrival_s", "prompt_tokens", "output_tokens")


def check_zero_policy(zero: str) -> None:
    """Raise ``ValueError`` unless ``zero`` is ``"error"`` or ``"skip"``."""
    if zero not in ("error", "skip"):
        raise ValueError(f"zero={zero!r} must be 'error' (raise on zero token counts) or 'skip' (drop those rows)")


def load_azure(
    path: Path | str, *, sort: bool = False, zero: ZeroPolicy = "error", rebase: bool = True
) -> Iterator[Request]:
    """Load an Azure LLM inference trace (2023 Splitwise or 2024 DynamoLLM week-long code/conv files).

    Columns ``TIMESTAMP,ContextTokens,GeneratedTokens``. ``TIMESTAMP`` is either a datetime string with any
    number of fractional digits and an optional UTC offset (``2023-11-16 18:15:46.6805900``,
    ``2024-05-10 00:00:00.009930+00:00``), parsed without pandas, or, as a documented variant, a number of
    seconds. The first data row decides which; every row must then use the same form. Arrival times are seconds
    relative to the first row (``rebase=True``).

    Args:
        path: The CSV file (``.gz`` allowed).
        sort: Sort by time instead of rejecting decreasing timestamps.
        zero: Policy for zero ``ContextTokens``/``GeneratedTokens``.
        rebase: Start the trace at 0 (always sensible for absolute datetimes).

    Returns:
        The requests (``client`` 0).
    """
    check_zero_policy(zero)
    return order_rows(_azure_rows(path, zero), path, sort=sort, rebase=rebase)


def _azure_rows(path: Path | str, zero: ZeroPolicy) -> Iterator[Row]:
    origin: tuple[int, float] | None = None
    numeric: bool | None = None
    for line, row in csv_rows(path, AZURE_COLUMNS):
        loc = (path, line, "TIMESTAMP")
        text = row["TIMESTAMP"].strip()
        if numeric is None:
            numeric = _looks_numeric(text)
        if numeric:
            arrival = parse_seconds(text, loc)
        else:
            stamp = parse_datetime(text, loc)
            origin = stamp if origin is None else origin
            arrival = (stamp[0] - origin[0]) + (stamp[1] - origin[1])
        pair = parse_pair(row["ContextTokens"], row["GeneratedTokens"], path, line, AZURE_COLUMNS[1:], zero)
        if pair is not None:
            yield Row(line, arrival, *pair)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_burstgpt(
    path: Path | str,
    *,
    sort: bool = False,
    zero: ZeroPolicy = "skip",
    rebase: bool = True,
    models: Collection[str] | None = None,
    log_types: Collection[str] | None = None,
    client_by: Literal["none", "model", "session"] = "none",
) -> Iterator[Request]:
    """Load a BurstGPT CSV (``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``).

    ``Timestamp`` is in seconds; an optional ``Session ID`` column (BurstGPT v2) is read only for
    ``client_by="session"``. ``Elapsed time`` and ``Total tokens`` are not used.

    Zero-token policy: in BurstGPT a ``Response tokens`` of 0 marks a failed request, so by default
    (``zero="skip"``) rows with a zero request or response count are dropped; pass ``zero="error"`` to reject
    them instead.

    Args:
        path: The CSV file (``.gz`` allowed).
        sort: Sort by time instead of rejecting decreasing timestamps.
        zero: Policy for zero token counts (default ``"skip"``, see above).
        rebase: Start the trace at 0.
        models: Keep only rows whose ``Model`` is in this set (e.g. ``{"ChatGPT"}``); ``None`` keeps all.
        log_types: Keep only rows whose ``Log Type`` is in this set (e.g. ``{"Conversation log"}``).
        client_by: ``Request.client`` source: ``"none"`` (all 0), ``"model"`` or ``"session"`` (dense indices in
            order of first appearance in the file).

    Returns:
        The requests.
    """
    check_zero_policy(zero)
    if client_by not in ("none", "model", "session"):
        raise ValueError(f"load_burstgpt: client_by={client_by!r} must be 'none', 'model' or 'session'")
    rows = _burstgpt_rows(path, zero, models, log_types, client_by)
    return order_rows(rows, path, sort=sort, rebase=rebase)


def _burstgpt_rows(
    path: Path | str,
    zero: ZeroPolicy,
    models: Collection[str] | None,
    log_types: Collection[str] | None,
    client_by: str,
) -> Iterator[Row]:
    required = (*BURSTGPT_COLUMNS, "Session ID") if client_by == "session" else BURSTGPT_COLUMNS
    key_column = {"model": "Model", "session": "Session ID"}.get(client_by)
    clients: dict[str, int] = {}
    for line, row in csv_rows(path, required):
        if (models is not None and row["Model"] not in models) or (
            log_types is not None and row["Log Type"] not in log_types
        ):
            continue
        arrival = parse_seconds(row["Timestamp"], (path, line, "Timestamp"))
        pair = parse_pair(row["Request tokens"], row["Response tokens"], path, line, BURSTGPT_COLUMNS[2:4], zero)
        if pair is None:
            continue
        client = 0 if key_column is None else clients.setdefault(row[key_column].strip(), len(clients))
        yield Row(line, arrival, *pair, {"client": client})


def iter_length_stats(path: Path | str, *, zero: ZeroPolicy = "error") -> Iterator[tuple[int, int]]:
    """Stream ``(prompt, output)`` pairs from a Vidur/Sarathi length-stats CSV.

    Columns ``num_prefill_tokens,num_decode_tokens`` are required; ``num_total_tokens``, if present, must equal
    their sum; ``pd_ratio`` is ignored.

    Raises:
        TraceFormatError: A column is missing, a count is invalid, or the total does not match.
    """
    check_zero_policy(zero)
    header: list[str] = []
    i_p = i_o = i_t = -1
    for line, row in csv_fields(path, LENGTH_STATS_COLUMNS, header_out=header):
        if i_p < 0:
            i_p, i_o = header.index(LENGTH_STATS_COLUMNS[0]), header.index(LENGTH_STATS_COLUMNS[1])
            i_t = header.index("num_total_tokens") if "num_total_tokens" in header else -1
        p_text, o_text = row[i_p], row[i_o]
        pair: tuple[int, int] | None
        both = p_text + o_text
        if both.isdigit() and both.isascii() and p_text[:1] != "0" != o_text[:1]:  # plain positive integers
            pair = (int(p_text), int(o_text))
        else:
            pair = parse_pair(p_text, o_text, path, line, LENGTH_STATS_COLUMNS, zero)
            if pair is None:
                continue
        t_text = row[i_t] if i_t >= 0 else ""
        if t_text and not (t_text.isdigit() and t_text.isascii() and int(t_text) == pair[0] + pair[1]):
            _check_total(t_text, pair, path, line)
        yield pair


def _check_total(text: str, pair: tuple[int, int], path: Path | str, line: int) -> None:
    """Check a ``num_total_tokens`` value against the pair (blank is allowed)."""
    if not text.strip():
        return
    total = parse_count(text, (path, line, "num_total_tokens"), allow_zero=True)
    if total != pair[0] + pair[1]:
        raise TraceFormatError(
            f"{where(path, line, 'num_total_tokens')}: {total} != num_prefill_tokens + num_decode_tokens "
            f"= {pair[0] + pair[1]}"
        )


def load_length_stats(
    path: Path | str,
    arrivals: ArrivalProcess,
    rng: np.random.Generator,
    *,
    shuffle: bool = False,
    n: int | None = None,
    zero: ZeroPolicy = "error",
    max_total: int | None = None,
) -> Iterator[Request]:
    """Pair the rows of a length-stats CSV (ShareGPT, arXiv; no timestamps) with an arrival process.

    Rows whose prompt + output exceed ``max_total`` are removed *before* arrival times are assigned,
    so the requests arrive at the arrival process's own rate.

    Args:
        path: The CSV file.
        arrivals: Supplies the arrival times (drawn from ``rng`` after any shuffle).
        rng: Source of the shuffle and of the arrival times.
        shuffle: Randomly permute the rows first (loads the whole file); otherwise file order, streamed.
        n: Use only the first ``n`` rows (after shuffling); ``None`` uses all. The file is never cycled.
        zero: Policy for zero counts.
        max_total: Remove rows longer than this in total (spec §1.5), or keep all.

    Returns:
        One request per used row, ``client`` 0.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"load_length_stats: n={n!r} must be an integer >= 0 or None")
    pairs: Iterator[tuple[int, int]] = iter_length_stats(path, zero=zero)
    if max_total is not None:
        pairs = (pair for pair in pairs if pair[0] + pair[1] <= max_total)
    if shuffle:
        table = list(pairs)
        pairs = iter([table[i] for i in rng.permutation(len(table)).tolist()])
    return _paired(pairs, arrivals, rng, n)


def _paired(
    pairs: Iterator[tuple[int, int]], arrivals: ArrivalProcess, rng: np.random.Generator, n: int | None
) -> Iterator[Request]:
    times = arrivals.times(rng)
    for index, (prompt, output) in enumerate(pairs):
        if n is not None and index >= n:
            return
        yield Request(index, next(times), prompt, output)


def load_mooncake(
    path: Path | str, *, sort: bool = False, zero: ZeroPolicy = "error", rebase: bool = False
) -> Iterator[Request]:
    """Load a Mooncake FAST'25 JSONL trace (``timestamp`` in ms, ``input_length``, ``output_length``).

    ``hash_ids`` (prefix-block ids, 512 tokens per block) is checked to be a list when present but is not
    carried into the requests.

    Args:
        path: The JSONL file (``.gz`` allowed).
        sort: Sort by time instead of rejecting decreasing timestamps.
        zero: Policy for zero lengths.
        rebase: Start the trace at 0 (the published traces already do).

    Returns:
        The requests (``client`` 0), arrival in seconds.
    """
    check_zero_policy(zero)
    return order_rows(_mooncake_rows(path, zero), path, sort=sort, rebase=rebase)


def _mooncake_rows(path: Path | str, zero: ZeroPolicy) -> Iterator[Row]:
    for line, record in jsonl_records(path, MOONCAKE_FIELDS):
        arrival = parse_seconds(record["timestamp"], (path, line, "timestamp")) / 1000.0
        hashes = record.get("hash_ids")
        if hashes is not None and not isinstance(hashes, list):
            raise TraceFormatError(f"{where(path, line, 'hash_ids')}: expected a list of block ids")
        pair = parse_pair(record["input_length"], record["output_length"], path, line, MOONCAKE_FIELDS[1:], zero)
        if pair is not None:
            yield Row(line, arrival, *pair)


def load_vtc(
    path: Path | str, *, sort: bool = False, zero: ZeroPolicy = "error", rebase: bool = False
) -> Iterator[Request]:
    """Load the VTC multi-client CSV (``req_id,client_id,arrival_s,prompt_tokens,output_tokens``).

    ``client_id`` becomes ``Request.client``. ``req_id`` is validated as an integer but ids are renumbered in
    arrival order (in the published file they coincide).

    Args:
        path: The CSV file.
        sort: Sort by time instead of rejecting decreasing timestamps.
        zero: Policy for zero counts.
        rebase: Start the trace at 0 (the published trace already does).

    Returns:
        The requests.
    """
    check_zero_policy(zero)
    return order_rows(_vtc_rows(path, zero), path, sort=sort, rebase=rebase)


def _vtc_rows(path: Path | str, zero: ZeroPolicy) -> Iterator[Row]:
    for line, row in csv_rows(path, VTC_COLUMNS):
        parse_count(row["req_id"], (path, line, "req_id"), allow_zero=True)
        client = parse_count(row["client_id"], (path, line, "client_id"), allow_zero=True)
        arrival = parse_seconds(row["arrival_s"], (path, line, "arrival_s"))
        pair = parse_pair(row["prompt_tokens"], row["output_tokens"], path, line, VTC_COLUMNS[3:], zero)
        if pair is not None:
            yield Row(line, arrival, *pair, {"client": client})
