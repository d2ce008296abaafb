"""BurstGPT and Azure-2024 loaders on hand-written fixtures (the real files are not shipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads import load_azure, load_burstgpt


def test_burstgpt_skips_failed_requests_by_default(fixtures_dir: Path) -> None:
    requests = list(load_burstgpt(fixtures_dir / "burstgpt_sample.csv"))
    assert len(requests) == 8
    assert [r.id for r in requests] == list(range(8))
    assert requests[0].arrival == 0.0
    assert [r.arrival for r in requests][:3] == [0.0, 40.0, 113.0]
    assert requests[-1].arrival == 340.0
    assert all(r.output_len >= 1 for r in requests)


def test_burstgpt_zero_policy_error_names_the_failed_row(fixtures_dir: Path) -> None:
    with pytest.raises(TraceFormatError, match=r"burstgpt_sample\.csv: line 5, field 'Response tokens'.*zero='skip'"):
        list(load_burstgpt(fixtures_dir / "burstgpt_sample.csv", zero="error"))


def test_burstgpt_keeps_raw_timestamps_without_rebase(fixtures_dir: Path) -> None:
    requests = list(load_burstgpt(fixtures_dir / "burstgpt_sample.csv", rebase=False))
    assert requests[0].arrival == 5.0
    assert requests[4].arrival == 201.5


def test_burstgpt_filters_by_model_and_log_type(fixtures_dir: Path) -> None:
    path = fixtures_dir / "burstgpt_sample.csv"
    gpt4 = list(load_burstgpt(path, models={"GPT-4"}))
    assert [r.prompt_len for r in gpt4] == [417, 1024, 3000]
    assert [r.id for r in gpt4] == [0, 1, 2]
    conversation = list(load_burstgpt(path, log_types={"Conversation log"}, models={"ChatGPT"}))
    assert [r.prompt_len for r in conversation] == [472, 1087, 12]


def test_burstgpt_clients_by_model_and_session(fixtures_dir: Path) -> None:
    by_model = list(load_burstgpt(fixtures_dir / "burstgpt_sample.csv", client_by="model"))
    assert {r.client for r in by_model if r.prompt_len in (417, 1024, 3000)} == {1}
    assert {r.client for r in by_model if r.prompt_len not in (417, 1024, 3000)} == {0}
    sessions = list(load_burstgpt(fixtures_dir / "burstgpt_sessions_sample.csv", client_by="session"))
    assert [r.client for r in sessions] == [0, 1, 0, 2, 1, 0]


def test_burstgpt_session_clients_need_the_session_column(fixtures_dir: Path) -> None:
    with pytest.raises(TraceFormatError, match=r"missing column.*Session ID"):
        list(load_burstgpt(fixtures_dir / "burstgpt_sample.csv", client_by="session"))


def test_azure_2024_datetimes_with_utc_offsets_are_relative_to_the_first_row(fixtures_dir: Path) -> None:
    requests = list(load_azure(fixtures_dir / "azure2024_code_sample.csv"))
    assert len(requests) == 8
    arrivals = [r.arrival for r in requests]
    expected = [0.0, 0.17307, 1.49007, 1.49007, 1.9900701, 59.990069, 59.99007, 7259.99007 + 0.25]
    assert arrivals == pytest.approx(expected, abs=1e-9)
    assert [r.prompt_len for r in requests][:2] == [2048, 4711]


def test_azure_numeric_second_timestamps_are_supported(fixtures_dir: Path) -> None:
    requests = list(load_azure(fixtures_dir / "azure_numeric_sample.csv"))
    assert [r.arrival for r in requests] == [0.0, 0.5, 0.5, 3.75, 9.5]
    assert next(r.arrival for r in load_azure(fixtures_dir / "azure_numeric_sample.csv", rebase=False)) == 100.5


def test_azure_rejects_mixing_datetime_and_numeric_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00,1,1\n5.0,1,1\n")
    with pytest.raises(TraceFormatError, match=r"line 3, field 'TIMESTAMP'.*not a datetime"):
        list(load_azure(path))
