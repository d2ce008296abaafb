"""Every loader reports malformed input with a TraceFormatError naming file, line and field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmsched_gym.core.request import Request
from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads import (
    PoissonArrivals,
    load_azure,
    load_burstgpt,
    load_length_stats,
    load_mooncake,
    load_native,
    load_vtc,
)

Cells = tuple[str, str, str]
"""Raw ``(time, prompt, output)`` cells of one row."""


def azure_time(raw: str) -> str:
    try:
        seconds = float(raw)
    except ValueError:
        return raw
    if seconds != seconds:
        return raw
    return (datetime(2023, 11, 16, 18, 0, 0) + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S.%f") + "0"


@dataclass(frozen=True)
class Format:
    name: str
    columns: tuple[str, str, str]
    load: Callable[..., Iterator[Request]]
    suffix: str = ".csv"
    extra: tuple[tuple[str, str], ...] = ()
    time: Callable[[str], str] = str
    json_scale: float | None = None

    def write(self, directory: Path, rows: list[Cells], drop: str | None = None) -> Path:
        path = directory / f"{self.name}{self.suffix}"
        names = [c for c in (*self.columns, *(k for k, _ in self.extra)) if c != drop]
        records = [
            {self.columns[0]: self.time(t), self.columns[1]: p, self.columns[2]: o, **dict(self.extra)}
            for t, p, o in rows
        ]
        if self.json_scale is None:
            lines = [",".join(names)] + [",".join(rec[c] for c in names) for rec in records]
        else:
            lines = [json.dumps({c: self._json_value(rec[c], c) for c in names}) for rec in records]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _json_value(self, text: str, column: str) -> Any:
        try:
            value = float(text)
        except ValueError:
            return text
        if column == self.columns[0] and self.json_scale is not None:
            return value * self.json_scale
        return int(value) if value.is_integer() else value


FORMATS = [
    Format("azure", ("TIMESTAMP", "ContextTokens", "GeneratedTokens"), load_azure, time=azure_time),
    Format("azure_numeric", ("TIMESTAMP", "ContextTokens", "GeneratedTokens"), load_azure),
    Format(
        "burstgpt",
        ("Timestamp", "Request tokens", "Response tokens"),
        lambda path, **kw: load_burstgpt(path, **{"zero": "error", **kw}),
        extra=(("Model", "ChatGPT"), ("Total tokens", "0"), ("Log Type", "Conversation log")),
    ),
    Format("mooncake", ("timestamp", "input_length", "output_length"), load_mooncake, ".jsonl", json_scale=1000.0),
    Format(
        "vtc",
        ("arrival_s", "prompt_tokens", "output_tokens"),
        load_vtc,
        extra=(("req_id", "0"), ("client_id", "3")),
    ),
    Format("native_csv", ("arrival_s", "prompt_tokens", "output_tokens"), load_native),
    Format("native_jsonl", ("arrival_s", "prompt_tokens", "output_tokens"), load_native, ".jsonl", json_scale=1.0),
]
GOOD: list[Cells] = [("1.0", "10", "5"), ("2.5", "20", "6"), ("4.0", "30", "7")]


def with_row(index: int, cells: Cells) -> list[Cells]:
    rows = list(GOOD)
    rows[index] = cells
    return rows


@pytest.fixture(params=FORMATS, ids=[f.name for f in FORMATS])
def fmt(request: pytest.FixtureRequest) -> Format:
    return request.param  # type: ignore[no-any-return]


def test_well_formed_file_loads_sorted_with_dense_ids(fmt: Format, tmp_path: Path) -> None:
    requests = list(fmt.load(fmt.write(tmp_path, GOOD)))
    assert [r.id for r in requests] == [0, 1, 2]
    assert [r.prompt_len for r in requests] == [10, 20, 30]
    assert [r.output_len for r in requests] == [5, 6, 7]
    assert np.diff([r.arrival for r in requests]) == pytest.approx([1.5, 1.5])


@pytest.mark.parametrize("column", [0, 1, 2])
def test_missing_column_is_named(fmt: Format, tmp_path: Path, column: int) -> None:
    name = fmt.columns[column]
    with pytest.raises(TraceFormatError, match=re.escape(repr(name))) as info:
        list(fmt.load(fmt.write(tmp_path, GOOD, drop=name)))
    assert f"{fmt.name}{fmt.suffix}" in str(info.value)


@pytest.mark.parametrize(
    ("cells", "column", "problem"),
    [
        (("2.5", "2x", "6"), 1, "not an integer"),
        (("2.5", "20", "6.5"), 2, "not an integer"),
        (("2.5", "-4", "6"), 1, "negative"),
        (("2.5", "20", "-6"), 2, "negative"),
        (("2.5", "20", "0"), 2, "token count is 0"),
        (("2.5", "0", "6"), 1, "token count is 0"),
        (("nan", "20", "6"), 0, "not a"),
        (("soon", "20", "6"), 0, "not a"),
    ],
    ids=[
        "prompt-text",
        "output-fraction",
        "prompt-negative",
        "output-negative",
        "output-zero",
        "prompt-zero",
        "nan",
        "garbage",
    ],
)
def test_bad_field_error_names_file_line_and_field(
    fmt: Format, tmp_path: Path, cells: Cells, column: int, problem: str
) -> None:
    line = 3 if fmt.json_scale is None else 2
    with pytest.raises(TraceFormatError, match=f"line {line}, field {fmt.columns[column]!r}.*{problem}") as info:
        list(fmt.load(fmt.write(tmp_path, with_row(1, cells))))
    assert f"{fmt.name}{fmt.suffix}" in str(info.value)


def test_zero_output_rows_are_dropped_only_with_the_skip_option(fmt: Format, tmp_path: Path) -> None:
    path = fmt.write(tmp_path, with_row(1, ("2.5", "20", "0")))
    kept = list(fmt.load(path, zero="skip"))
    assert [r.prompt_len for r in kept] == [10, 30]
    assert [r.id for r in kept] == [0, 1]


def test_unsorted_timestamps_are_an_error_unless_sort_is_requested(fmt: Format, tmp_path: Path) -> None:
    path = fmt.write(tmp_path, [("5.0", "10", "5"), ("2.0", "20", "6"), ("2.0", "30", "7"), ("9.0", "40", "8")])
    with pytest.raises(TraceFormatError, match=r"earlier than line.*sort=True"):
        list(fmt.load(path))
    ordered = list(fmt.load(path, sort=True))
    assert [r.prompt_len for r in ordered] == [20, 30, 10, 40]
    assert [r.id for r in ordered] == [0, 1, 2, 3]


def test_invalid_zero_policy_is_rejected_eagerly(fmt: Format, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"zero='drop'"):
        fmt.load(fmt.write(tmp_path, GOOD), zero="drop")


def test_empty_csv_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(TraceFormatError, match=r"empty"):
        list(load_vtc(path))


def test_csv_row_with_wrong_field_count_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n1.0,2,3\n2.0,4\n")
    with pytest.raises(TraceFormatError, match=r"line 3: 2 fields but the header has 3"):
        list(load_native(path))


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ('{"timestamp": 1}', "'input_length'")],
)
def test_bad_jsonl_lines_are_reported(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n' + text + "\n")
    with pytest.raises(TraceFormatError, match=f"line 2.*{re.escape(problem)}"):
        list(load_mooncake(path))


def test_mooncake_hash_ids_must_be_a_list(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": 3}\n')
    with pytest.raises(TraceFormatError, match=r"line 1, field 'hash_ids'"):
        list(load_mooncake(path))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("num_prefill_tokens,num_total_tokens\n5,7\n", "missing column.*num_decode_tokens"),
        ("num_prefill_tokens,num_decode_tokens\n5,abc\n", "line 2, field 'num_decode_tokens'.*not an integer"),
        ("num_prefill_tokens,num_decode_tokens\n-5,2\n", "line 2, field 'num_prefill_tokens'.*negative"),
        ("num_prefill_tokens,num_decode_tokens\n5,0\n", "line 2, field 'num_decode_tokens'.*0"),
        ("num_prefill_tokens,num_decode_tokens,num_total_tokens\n5,2,8\n", "line 2, field 'num_total_tokens'"),
    ],
    ids=["missing-column", "non-integer", "negative", "zero-output", "total-mismatch"],
)
def test_length_stats_errors_name_line_and_field(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "stats.csv"
    path.write_text(body)
    with pytest.raises(TraceFormatError, match=problem):
        list(load_length_stats(path, PoissonArrivals(1.0), np.random.default_rng(0)))


def test_vtc_client_id_must_be_a_non_negative_integer(tmp_path: Path) -> None:
    path = tmp_path / "vtc.csv"
    path.write_text("req_id,client_id,arrival_s,prompt_tokens,output_tokens\n0,-1,0.0,5,5\n")
    with pytest.raises(TraceFormatError, match=r"line 2, field 'client_id'.*negative"):
        list(load_vtc(path))


def test_negative_arrival_without_rebase_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "neg.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n-1.0,5,5\n")
    with pytest.raises(TraceFormatError, match=r"line 2: arrival -1.0 s is negative"):
        list(load_native(path))
    assert [r.arrival for r in load_native(path, rebase=True)] == [0.0]
