"""Trace files of every format: detection from the header, ``load_trace``, and paths as workload names."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.request import Request
from llmsched_gym.errors import TraceFormatError, UnknownNameError
from llmsched_gym.workloads import make_workload, write_native
from llmsched_gym.workloads.formats import FORMATS, detect_format, load_trace, trace_format
from llmsched_gym.workloads.registry import list_workloads, resolve_workload, workload_options
from tests import trace_files

FILE_FORMATS = list(trace_files.SUFFIX)


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_format_is_detected_from_the_header(tmp_path: Path, fmt: str) -> None:
    assert detect_format(trace_files.write(tmp_path, fmt)) == fmt.removesuffix("-jsonl")


def test_every_supported_format_has_a_sample() -> None:
    assert {f.removesuffix("-jsonl") for f in FILE_FORMATS} == set(FORMATS)


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_load_trace_reads_every_format(tmp_path: Path, fmt: str) -> None:
    requests = list(load_trace(trace_files.write(tmp_path, fmt)))
    assert [(r.prompt_len, r.output_len) for r in requests] == [(p, o) for _, p, o in trace_files.ROWS]
    if trace_format(fmt.removesuffix("-jsonl")).timestamped:
        assert [r.arrival for r in requests] == pytest.approx([t for t, _, _ in trace_files.ROWS])


def test_gzip_traces_are_detected_and_read(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(trace_files.lines("azure")) + "\n")
    assert detect_format(path) == "azure"
    assert len(list(load_trace(path))) == len(trace_files.ROWS)


def test_vtc_header_wins_over_native_it_contains(tmp_path: Path) -> None:
    assert detect_format(trace_files.write(tmp_path, "vtc")) == "vtc"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (b"\x00\x01\x02binary\x00", "not a text file"),
        (b"\xff\xfe\xfa garbage text that is not utf-8 at all", "not UTF-8"),
        (b"\x1f\x8b\x08\x00compressed", "gzip-compressed but not named"),
        (b"a,b,c\n1,2,3\n", "cannot tell the trace format"),
        (b'{"ts": 1, "in": 2}\n', "cannot tell the trace format"),
        (b'{"timestamp": 1,\n', "not valid JSON"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(TraceFormatError, match=message) as info:
        detect_format(path)
    assert str(path) in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        detect_format(tmp_path / "absent.csv")


def test_format_options_are_checked(tmp_path: Path) -> None:
    path = trace_files.write(tmp_path, "azure")
    with pytest.raises(TypeError, match=r"unknown option.*'shuffle'"):
        load_trace(path, shuffle=True)
    with pytest.raises(UnknownNameError, match="unknown trace format 'parquet'"):
        load_trace(path, "parquet")


def test_a_path_is_a_workload_name(tmp_path: Path) -> None:
    path = trace_files.write(tmp_path, "native")
    rng = np.random.default_rng(0)
    served = list(make_workload(str(path), rng=rng, n_requests=3, rate=2.0))
    assert len(served) == 3
    assert served[-1].arrival == pytest.approx(1.25 * 1.5 / 2.0)  # the whole trace (1.5/s) rescaled to 2/s
    assert resolve_workload(str(path)) == str(path)
    assert {o.name for o in workload_options(str(path))} == {"max_total", "sort", "zero", "fmt"}


def test_a_forced_format_is_used_and_a_wrong_one_fails_with_the_file(tmp_path: Path) -> None:
    path = trace_files.write(tmp_path, "azure")
    rng = np.random.default_rng(0)
    assert len(list(make_workload(str(path), rng=rng, fmt="azure"))) == len(trace_files.ROWS)
    with pytest.raises(TraceFormatError, match=r"missing column"):
        list(make_workload(str(path), rng=rng, fmt="vtc"))


def test_length_stats_file_gets_poisson_arrivals_at_the_rate(tmp_path: Path) -> None:
    path = trace_files.write(tmp_path, "length-stats")
    a = list(make_workload(str(path), rng=np.random.default_rng(3), rate=5.0))
    b = list(make_workload(str(path), rng=np.random.default_rng(3), rate=5.0))
    assert a == b and len(a) == len(trace_files.ROWS)
    assert all(x.arrival < y.arrival for x, y in itertools.pairwise(a))


def test_named_trace_workloads_take_the_zero_option_their_loaders_suggest() -> None:
    for name in ("sharegpt", "azure-conv-2023", "mooncake-conversation", "vtc-lmsys"):
        assert "zero" in {o.name for o in workload_options(name)}


def test_workload_names_are_case_insensitive_and_suggest() -> None:
    assert resolve_workload("Synthetic-ShareGPT") == "synthetic-sharegpt"
    with pytest.raises(UnknownNameError, match="did you mean 'sharegpt'"):
        resolve_workload("sharegtp")
    assert set(list_workloads()) >= {"synthetic-sharegpt", "sharegpt"}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1e4, allow_nan=False), st.integers(1, 10**6), st.integers(1, 10**5)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([".csv", ".jsonl"]),
)
def test_native_files_round_trip_through_detection(rows: list[tuple[float, int, int]], suffix: str) -> None:
    import tempfile

    requests = [Request(i, t, p, o) for i, (t, p, o) in enumerate(sorted(rows))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t{suffix}"
        write_native(requests, path)
        assert detect_format(path) == "native"
        assert list(load_trace(path)) == requests
