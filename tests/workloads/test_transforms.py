from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.request import Request
from llmsched_gym.workloads import (
    filter_lengths,
    filter_max_total,
    head,
    mean_rate,
    merge_streams,
    renumber,
    scale_time,
    scale_to_rate,
    shrink_to_max_total,
    time_window,
)


def stream(*specs: tuple[float, int, int]) -> list[Request]:
    return [Request(i, t, p, o) for i, (t, p, o) in enumerate(specs)]


def dense(requests: list[Request]) -> bool:
    return [r.id for r in requests] == list(range(len(requests)))


def test_scale_time_multiplies_arrivals_and_divides_the_rate() -> None:
    requests = stream((0.0, 1, 1), (1.0, 1, 1), (2.0, 1, 1))
    scaled = list(scale_time(requests, 0.5))
    assert [r.arrival for r in scaled] == [0.0, 0.5, 1.0]
    assert mean_rate(scaled) == pytest.approx(2 * mean_rate(requests))


def test_scale_to_rate_reaches_the_target_mean_rate() -> None:
    requests = stream((1.0, 1, 1), (3.0, 1, 1), (4.0, 1, 1), (9.0, 1, 1))
    assert mean_rate(scale_to_rate(requests, 6.0)) == pytest.approx(6.0)


def test_mean_rate_needs_two_distinct_arrivals() -> None:
    with pytest.raises(ValueError, match=r"at least two"):
        mean_rate(stream((1.0, 1, 1)))


def test_time_window_keeps_half_open_interval_rebased_and_renumbered() -> None:
    requests = stream(*((float(t), 1, 1) for t in range(10)))
    window = list(time_window(requests, 3.0, 6.0))
    assert [r.arrival for r in window] == [0.0, 1.0, 2.0]
    assert dense(window)


def test_time_window_stops_reading_at_the_end() -> None:
    def endless() -> Iterator[Request]:
        for i in itertools.count():
            yield Request(i, float(i), 1, 1)

    assert len(list(time_window(endless(), 0.0, 5.0))) == 5


def test_time_window_rejects_an_empty_interval() -> None:
    with pytest.raises(ValueError, match=r"end_s=1.0"):
        time_window([], 2.0, 1.0)


def test_head_takes_the_first_n_requests() -> None:
    assert [r.arrival for r in head(stream((0.0, 1, 1), (1.0, 1, 1), (2.0, 1, 1)), 2)] == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"n=-1"):
        head([], -1)


def test_filter_max_total_removes_long_requests_instead_of_shrinking() -> None:
    kept = list(filter_max_total(stream((0.0, 8000, 192), (1.0, 8000, 193), (2.0, 10, 10)), 8192))
    assert [(r.prompt_len, r.output_len) for r in kept] == [(8000, 192), (10, 10)]
    assert dense(kept)


def test_filter_lengths_uses_strict_thresholds_like_wait_and_vtc() -> None:
    requests = stream((0.0, 499, 499), (1.0, 500, 1), (2.0, 1, 500), (3.0, 10, 10))
    kept = list(filter_lengths(requests, prompt_below=500, output_below=500))
    assert [r.prompt_len for r in kept] == [499, 10]
    assert dense(kept)


def test_shrink_to_max_total_cuts_proportionally_to_the_cap() -> None:
    shrunk = list(shrink_to_max_total(stream((0.0, 6000, 2000), (1.0, 10, 10)), 4000))
    assert (shrunk[0].prompt_len, shrunk[0].output_len) == (3000, 1000)
    assert (shrunk[1].prompt_len, shrunk[1].output_len) == (10, 10)


def test_merge_streams_interleaves_by_arrival_with_stable_ties() -> None:
    left = stream((0.0, 1, 1), (2.0, 1, 1))
    right = stream((0.0, 2, 2), (1.0, 2, 2))
    merged = list(merge_streams(left, right))
    assert [(r.arrival, r.prompt_len) for r in merged] == [(0.0, 1), (0.0, 2), (1.0, 2), (2.0, 1)]
    assert dense(merged)


requests_strategy = st.lists(
    st.tuples(st.floats(0, 1e4), st.integers(1, 20_000), st.integers(1, 5_000)), max_size=60
).map(lambda rows: stream(*sorted(rows)))


@settings(max_examples=60, deadline=None)
@given(requests_strategy, st.integers(2, 20_000))
def test_shrunk_requests_fit_the_cap_and_keep_at_least_one_token(requests: list[Request], cap: int) -> None:
    for before, after in zip(requests, shrink_to_max_total(requests, cap), strict=True):
        assert after.prompt_len >= 1 and after.output_len >= 1
        assert after.prompt_len + after.output_len <= max(cap, before.prompt_len + before.output_len)
        if before.prompt_len + before.output_len > cap:
            assert after.prompt_len + after.output_len == cap


@settings(max_examples=60, deadline=None)
@given(requests_strategy, st.integers(2, 25_000), st.integers(2, 6_000), st.floats(0, 5e3), st.floats(1, 5e3))
def test_chained_transforms_keep_streams_sorted_and_ids_dense(
    requests: list[Request], cap: int, below: int, start: float, width: float
) -> None:
    out = list(
        renumber(time_window(filter_lengths(filter_max_total(requests, cap), output_below=below), start, start + width))
    )
    assert dense(out)
    assert [r.arrival for r in out] == sorted(r.arrival for r in out)
    assert all(r.prompt_len + r.output_len <= cap and r.output_len < below for r in out)
