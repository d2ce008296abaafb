"""Loaders on the public traces in ../shared/traces, checked against the statistics in their README."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.core.request import Request
from llmsched_gym.workloads import (
    DeterministicArrivals,
    PoissonArrivals,
    load_azure,
    load_length_stats,
    load_mooncake,
    load_vtc,
)


@dataclass(frozen=True)
class Stats:
    n: int
    span: float
    rate: float
    iat_cv: float
    prompt_mean: float
    prompt_median: float
    output_mean: float
    output_median: float
    output_max: int


def stats(requests: list[Request]) -> Stats:
    arrivals = np.array([r.arrival for r in requests])
    prompts = np.array([r.prompt_len for r in requests])
    outputs = np.array([r.output_len for r in requests])
    gaps = np.diff(arrivals)
    span = float(arrivals[-1] - arrivals[0])
    return Stats(
        n=len(requests),
        span=span,
        rate=(len(requests) - 1) / span if span > 0 else 0.0,
        iat_cv=float(gaps.std() / gaps.mean()) if span > 0 else 0.0,
        prompt_mean=float(prompts.mean()),
        prompt_median=float(np.median(prompts)),
        output_mean=float(outputs.mean()),
        output_median=float(np.median(outputs)),
        output_max=int(outputs.max()),
    )


def check_stream(requests: list[Request]) -> None:
    assert [r.id for r in requests] == list(range(len(requests)))
    assert all(a.arrival <= b.arrival for a, b in itertools.pairwise(requests))
    assert requests[0].arrival == 0.0


@pytest.fixture(scope="module")
def load(trace_path: Callable[[str], Path]) -> Callable[[str], list[Request]]:
    cache: dict[str, list[Request]] = {}
    loaders: dict[str, Callable[[Path], list[Request]]] = {
        "azure2023_AzureLLMInferenceTrace_conv.csv": lambda p: list(load_azure(p)),
        "mooncake_fast25_conversation_trace.jsonl": lambda p: list(load_mooncake(p)),
        "mooncake_fast25_synthetic_trace.jsonl": lambda p: list(load_mooncake(p)),
        "vtc_lmsys_real_trace_27clients.csv": lambda p: list(load_vtc(p)),
    }

    def get(name: str) -> list[Request]:
        if name not in cache:
            cache[name] = loaders[name](trace_path(name))
        return cache[name]

    return get


# README: rows, span, mean rate, IAT CV, prompt mean/median, output mean/median/max
TIMESTAMPED = {
    "azure2023_AzureLLMInferenceTrace_conv.csv": (19_366, 3_502, 5.53, 1.09, 1_155, 1_020, 211, 129, 1_000),
    "mooncake_fast25_conversation_trace.jsonl": (12_031, 3_537, 3.40, 3.03, 12_035, 6_909, 343, 350, 2_000),
    "mooncake_fast25_synthetic_trace.jsonl": (3_993, 1_022, 3.91, 1.01, 15_326, 11_587, 149, 69, 893),
    "vtc_lmsys_real_trace_27clients.csv": (1_500, 600, 2.50, 1.10, 136, 40, 256, 211, 977),
}


@pytest.mark.parametrize("name", sorted(TIMESTAMPED))
def test_timestamped_trace_matches_readme_statistics(name: str, load: Callable[[str], list[Request]]) -> None:
    requests = load(name)
    check_stream(requests)
    n, span, rate, cv, p_mean, p_median, o_mean, o_median, o_max = TIMESTAMPED[name]
    got = stats(requests)
    assert got.n == n
    assert got.span == pytest.approx(span, abs=1.0)
    assert got.rate == pytest.approx(rate, abs=0.006)
    assert got.iat_cv == pytest.approx(cv, abs=0.006)
    assert got.prompt_mean == pytest.approx(p_mean, abs=1.0)
    assert got.prompt_median == p_median
    assert got.output_mean == pytest.approx(o_mean, abs=1.0)
    assert got.output_median == o_median
    assert got.output_max == o_max


def test_azure_datetimes_keep_sub_microsecond_differences(load: Callable[[str], list[Request]]) -> None:
    requests = load("azure2023_AzureLLMInferenceTrace_conv.csv")
    # rows 2 and 3: 18:15:46.6805900 and 18:15:50.9951690
    assert requests[1].arrival == pytest.approx(4.314579, abs=1e-9)


def test_vtc_trace_has_27_clients_with_the_readme_request_counts(load: Callable[[str], list[Request]]) -> None:
    counts = Counter(r.client for r in load("vtc_lmsys_real_trace_27clients.csv"))
    assert len(counts) == 27
    assert set(counts) == set(range(27))
    expected = [
        296,
        262,
        199,
        120,
        67,
        66,
        56,
        46,
        44,
        43,
        40,
        36,
        31,
        26,
        25,
        23,
        22,
        22,
        19,
        19,
        12,
        11,
        7,
        3,
        2,
        2,
        1,
    ]
    assert sorted(counts.values(), reverse=True) == expected


@pytest.fixture(scope="module")
def length_stats(trace_path: Callable[[str], Path]) -> Callable[[str], list[Request]]:
    cache: dict[str, list[Request]] = {}

    def get(name: str) -> list[Request]:
        if name not in cache:
            rng = np.random.default_rng(0)
            cache[name] = list(load_length_stats(trace_path(name), DeterministicArrivals(10.0), rng))
        return cache[name]

    return get


# README: rows, prompt mean/median/max, output mean/median/max
LENGTH_FILES = {
    "lengths_sharegpt_8k_filtered_stats_llama2_tokenizer.csv": (30_731, 2_340, 1_730, 8_141, 439, 415, 1_024),
    "lengths_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv": (
        28_257,
        2_588,
        2_730,
        4_054,
        291,
        167,
        4_056,
    ),
}


@pytest.mark.parametrize("name", sorted(LENGTH_FILES))
def test_length_stats_file_matches_readme_statistics(name: str, length_stats: Callable[[str], list[Request]]) -> None:
    requests = length_stats(name)
    n, p_mean, p_median, p_max, o_mean, o_median, o_max = LENGTH_FILES[name]
    assert len(requests) == n
    assert [r.id for r in requests] == list(range(n))
    prompts = np.array([r.prompt_len for r in requests])
    outputs = np.array([r.output_len for r in requests])
    assert prompts.mean() == pytest.approx(p_mean, abs=0.5)
    assert np.median(prompts) == p_median
    assert prompts.max() == p_max
    assert outputs.mean() == pytest.approx(o_mean, abs=0.5)
    assert np.median(outputs) == o_median
    assert outputs.max() == o_max
    assert requests[-1].arrival == pytest.approx(n / 10.0)


def test_length_stats_shuffle_is_seeded_and_limit_streams_the_file_head(trace_path: Callable[[str], Path]) -> None:
    path = trace_path("lengths_sharegpt_8k_filtered_stats_llama2_tokenizer.csv")
    shuffled = list(load_length_stats(path, PoissonArrivals(2.0), np.random.default_rng(1), shuffle=True, n=300))
    assert len(shuffled) == 300
    assert [r.prompt_len for r in shuffled[:3]] != [74, 290, 1402]
    head = list(load_length_stats(path, PoissonArrivals(2.0), np.random.default_rng(1), n=3))
    assert [r.prompt_len for r in head] == [74, 290, 1402]


def test_length_stats_filter_applies_before_arrivals_so_the_rate_is_kept():
    import numpy as np

    from llmsched_gym.workloads import make_workload

    try:
        reqs = list(make_workload("sharegpt", rng=np.random.default_rng(0), n_requests=3000, rate=4.0, max_total=4096))
    except FileNotFoundError as exc:
        import pytest

        pytest.skip(str(exc))
    assert all(r.prompt_len + r.output_len <= 4096 for r in reqs)
    rate = (len(reqs) - 1) / (reqs[-1].arrival - reqs[0].arrival)
    assert abs(rate - 4.0) / 4.0 < 0.06
