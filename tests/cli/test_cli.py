"""The ``llmsched`` command line."""

from __future__ import annotations

import csv
import json

import pytest

from llmsched_gym.cli import build_parser, main


def test_help_documents_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("simulate", "capacity", "schedulers", "workloads", "cost-models"):
        assert cmd in out


def test_every_simulate_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for action in sub.choices["simulate"]._actions:
        assert action.help, action.dest


def test_simulate_default_prints_summary_and_writes_csv(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["simulate", "--n-requests", "30", "--rate", "2", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "TTFT" in text and "sarathi" in text
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# llmsched run: ")
    rows = list(csv.DictReader(lines[1:]))
    assert len(rows) == 30 and "ttft_s" in rows[0]


def test_simulate_json_output_and_scheduler_params(capsys):
    args = [
        "simulate",
        "--scheduler",
        "vllm-v1",
        "--n-requests",
        "20",
        "--no-progress",
        "--json",
        "--param",
        "max_num_batched_tokens=2048",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] == 20 and summary["scheduler"] == "vllm-v1"


def test_unknown_scheduler_is_a_clear_error(capsys):
    assert main(["simulate", "--scheduler", "nope", "--n-requests", "5", "--no-progress"]) == 2
    assert "unknown scheduler 'nope'" in capsys.readouterr().err


def test_listings_print_registered_names(capsys):
    assert main(["schedulers"]) == 0
    assert "sarathi" in capsys.readouterr().out
    assert main(["cost-models"]) == 0
    assert "roofline" in capsys.readouterr().out


def test_capacity_reports_a_rate(capsys):
    args = ["capacity", "--n-requests", "60", "--lo", "0.5", "--hi", "4", "--rel-tol", "0.2", "--p99-tbt", "0.2"]
    assert main(args) == 0
    assert "capacity of sarathi" in capsys.readouterr().out
