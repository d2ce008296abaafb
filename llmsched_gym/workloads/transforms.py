"""Lazy transforms of request streams: rate scaling, windows, heads, length filters and caps.

Every transform takes requests sorted by arrival and yields requests sorted by arrival with ids renumbered
0..N-1 (so filters never leave holes in the id space the engine indexes by). All are lazy except
:func:`scale_to_rate`, which must see the whole stream to measure its rate.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator

from llmsched_gym.core.request import Request
from llmsched_gym.workloads._validate import require_int_at_least, require_non_negative, require_positive


def renumber(requests: Iterable[Request]) -> Iterator[Request]:
    """Give the requests ids 0, 1, 2, ... in stream order (unchanged requests are passed through)."""
    for new_id, request in enumerate(requests):
        yield request if request.id == new_id else dataclasses.replace(request, id=new_id)


def keep(requests: Iterable[Request], predicate: Callable[[Request], bool]) -> Iterator[Request]:
    """Keep the requests for which ``predicate`` is true, renumbered."""
    return renumber(request for request in requests if predicate(request))


def scale_time(requests: Iterable[Request], factor: float) -> Iterator[Request]:
    """Multiply every arrival time by ``factor`` (> 1 slows the trace down, < 1 speeds it up).

    The mean rate becomes ``rate / factor``.

    Raises:
        ValueError: ``factor`` is not a positive finite number.
    """
    require_positive("scale_time", "factor", factor, "use e.g. factor=0.5 to double the rate")
    return (dataclasses.replace(request, arrival=request.arrival * factor) for request in requests)


def mean_rate(requests: Iterable[Request]) -> float:
    """Mean arrival rate ``(N - 1) / (t_last - t_first)`` (the traces README's definition).

    Raises:
        ValueError: Fewer than two requests, or all arrive at the same instant.
    """
    first: float | None = None
    last = 0.0
    count = 0
    for request in requests:
        first = request.arrival if first is None else first
        last = request.arrival
        count += 1
    if first is None or count < 2 or last <= first:
        raise ValueError(f"mean_rate: needs at least two requests spread over time (got {count})")
    return (count - 1) / (last - first)


def scale_to_rate(requests: Iterable[Request], target_rate: float) -> Iterator[Request]:
    """Rescale arrival times so that the stream's :func:`mean_rate` becomes ``target_rate``.

    This loads the whole stream into memory (the current rate needs the last arrival).

    Raises:
        ValueError: ``target_rate`` is invalid, or the stream's rate is undefined (see :func:`mean_rate`).
    """
    require_positive("scale_to_rate", "target_rate", target_rate, "pass requests/s, e.g. target_rate=5.0")
    loaded = list(requests)
    return scale_time(loaded, mean_rate(loaded) / target_rate)


def time_window(requests: Iterable[Request], start_s: float = 0.0, end_s: float | None = None) -> Iterator[Request]:
    """Keep arrivals in ``[start_s, end_s)``, shift them so that ``start_s`` becomes 0, and renumber.

    Stops reading the input at the first arrival at or after ``end_s``.

    Raises:
        ValueError: ``start_s`` is negative or ``end_s <= start_s``.
    """
    require_non_negative("time_window", "start_s", start_s)
    if end_s is not None and not end_s > start_s:
        raise ValueError(f"time_window: end_s={end_s!r} must be greater than start_s={start_s!r}")
    stop = math.inf if end_s is None else end_s
    inside = itertools.takewhile(lambda r: r.arrival < stop, (r for r in requests if r.arrival >= start_s))
    shifted = (dataclasses.replace(r, arrival=max(0.0, r.arrival - start_s)) for r in inside)
    return renumber(shifted)


def head(requests: Iterable[Request], n: int) -> Iterator[Request]:
    """The first ``n`` requests.

    Raises:
        ValueError: ``n`` is negative.
    """
    require_int_at_least("head", "n", n, 0)
    return renumber(itertools.islice(requests, n))


def filter_max_total(requests: Iterable[Request], max_total: int) -> Iterator[Request]:
    """Remove requests with ``prompt_len + output_len > max_total`` (Sarathi-Serve's rule: removed, not shrunk).

    Raises:
        ValueError: ``max_total`` is below 2.
    """
    require_int_at_least("filter_max_total", "max_total", max_total, 2, "e.g. 8192 for ShareGPT, 16384 for arXiv")
    return keep(requests, lambda r: r.prompt_len + r.output_len <= max_total)


def filter_lengths(
    requests: Iterable[Request], *, prompt_below: int | None = None, output_below: int | None = None
) -> Iterator[Request]:
    """Keep requests with ``prompt_len < prompt_below`` and ``output_len < output_below`` (strict).

    WAIT's real-data runs use ``prompt_below=500, output_below=500``; VTC's trace uses 1024 for both.

    Raises:
        ValueError: A threshold is below 2 (it would remove everything).
    """
    if prompt_below is not None:
        require_int_at_least("filter_lengths", "prompt_below", prompt_below, 2)
    if output_below is not None:
        require_int_at_least("filter_lengths", "output_below", output_below, 2)
    p_cap = math.inf if prompt_below is None else prompt_below
    o_cap = math.inf if output_below is None else output_below
    return keep(requests, lambda r: r.prompt_len < p_cap and r.output_len < o_cap)


def shrink_to_max_total(requests: Iterable[Request], max_total: int) -> Iterator[Request]:
    """Shrink requests over ``max_total`` proportionally instead of removing them (the Sarathi code's option).

    The excess ``e = p + o - max_total`` is taken from both parts in proportion to their share: the prompt loses
    ``ceil(e * p / (p + o))`` and the output the rest, each part keeping at least 1 token. The result has
    ``p + o == max_total`` exactly.

    Raises:
        ValueError: ``max_total`` is below 2.
    """
    require_int_at_least("shrink_to_max_total", "max_total", max_total, 2)
    for request in requests:
        total = request.prompt_len + request.output_len
        if total <= max_total:
            yield request
            continue
        cut_prompt = math.ceil((total - max_total) * request.prompt_len / total)
        prompt = max(1, request.prompt_len - cut_prompt)
        yield dataclasses.replace(request, prompt_len=prompt, output_len=max_total - prompt)


def merge_streams(*streams: Iterable[Request]) -> Iterator[Request]:
    """Merge sorted streams by arrival (ties: lower stream index first, then stream order) and renumber."""
    keyed = [_keyed(index, stream) for index, stream in enumerate(streams)]
    return renumber(item[3] for item in heapq.merge(*keyed, key=lambda item: item[:3]))


def _keyed(index: int, stream: Iterable[Request]) -> Iterator[tuple[float, int, int, Request]]:
    for position, request in enumerate(stream):
        yield request.arrival, index, position, request
