from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads import load_native, make_workload, with_predictions, write_native

SUFFIXES = [".csv", ".jsonl", ".csv.gz", ".jsonl.gz"]


def rich_requests() -> list[Request]:
    gold = SLOClass("gold, tier 1", ttft_s=0.5, tbt_s=0.05)
    return [
        Request(0, 0.0, 10, 5),
        Request(1, 0.1 + 0.2, 300, 1, client=4, max_tokens=64, slo=gold, predicted_output_len=2, weight=2.5),
        Request(2, 1e-7, 1, 1, type_label=3, slo=SLOClass("tbt-only", tbt_s=0.2)),
    ]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_native_writer_and_reader_round_trip_every_field(tmp_path: Path, suffix: str) -> None:
    requests = sorted(rich_requests(), key=lambda r: r.arrival)
    requests = [dataclasses.replace(r, id=i) for i, r in enumerate(requests)]
    path = tmp_path / f"trace{suffix}"
    assert write_native(requests, path) == 3
    assert list(load_native(path)) == requests


def test_native_round_trip_of_a_generated_workload(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    requests = list(with_predictions(make_workload("synthetic-sharegpt", rng=rng, n_requests=300), eps=0.3, rng=rng))
    for suffix in (".csv", ".jsonl"):
        write_native(requests, tmp_path / f"w{suffix}")
        assert list(load_native(tmp_path / f"w{suffix}")) == requests


def test_native_reader_accepts_only_the_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "min.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,5,6\n1.5,7,8\n")
    assert list(load_native(path)) == [Request(0, 0.0, 5, 6), Request(1, 1.5, 7, 8)]


def test_native_format_comes_from_the_name_or_fmt(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    with pytest.raises(ValueError, match=r"cannot tell the format"):
        write_native([], path)
    write_native([Request(0, 0.0, 1, 1)], path, fmt="jsonl")
    assert len(list(load_native(path, fmt="jsonl"))) == 1


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("0,5,6,,,,0.5,,,,", "field 'slo_class': missing, but an SLO target"),
        ("0,5,6,,,gold,-1,,,,", "ttft_s=-1.0"),
        ("0,5,6,,,,,,,0,", "field 'weight'.*positive"),
        ("0,5,6,,0,,,,,,", "field 'max_tokens'.*0 is not allowed"),
        ("0,5,6,x,,,,,,,", "field 'client'.*not an integer"),
        ("0,5,6,,,,,,,,1.5", "field 'type'.*not an integer"),
    ],
    ids=["target-without-class", "bad-target", "zero-weight", "zero-max-tokens", "bad-client", "bad-type"],
)
def test_native_optional_fields_are_validated(tmp_path: Path, row: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    header = "arrival_s,prompt_tokens,output_tokens,client,max_tokens,slo_class,ttft_slo_s,tbt_slo_s,"
    path.write_text(header + "predicted_output_tokens,weight,type\n" + row + "\n")
    with pytest.raises(TraceFormatError, match=f"line 2.*{problem}"):
        list(load_native(path))


request_strategy = st.builds(
    lambda t, p, o, c, m, w, lab, pred, slo: (t, p, o, c, m, slo, pred, w, lab),
    st.floats(0, 1e7, allow_nan=False),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
    st.integers(0, 1000),
    st.none() | st.integers(1, 10**5),
    st.floats(1e-6, 1e6),
    st.none() | st.integers(0, 50),
    st.none() | st.integers(1, 10**5),
    st.none()
    | st.builds(
        SLOClass,
        st.sampled_from([" ", "a b", "x,y", 'q"t', "é", "two\nlines"]),
        st.none() | st.floats(1e-3, 1e3),
        st.none() | st.floats(1e-4, 10),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(request_strategy, max_size=15), st.sampled_from([".csv", ".jsonl"]))
def test_native_round_trip_is_exact_for_any_requests(tmp_path: Path, rows: list[tuple], suffix: str) -> None:
    requests = [Request(i, *row) for i, row in enumerate(sorted(rows, key=lambda row: row[0]))]
    path = tmp_path / f"prop{suffix}"
    write_native(requests, path)
    assert list(load_native(path)) == requests
