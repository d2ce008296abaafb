"""What a run reports.

Rejections, runs with nothing to serve, SLO attainment only against targets, the run record in every output, your own
trace in every command, case-insensitive names.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from llmsched_gym.cli import main
from llmsched_gym.cli.metadata import read_run_record
from llmsched_gym.core.request import Request
from llmsched_gym.workloads import write_native
from tests import trace_files

QUIET = ["--no-progress"]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main([*argv, "--json", *QUIET]) == 0
    return json.loads(capsys.readouterr().out)


def test_requests_larger_than_the_kv_pool_are_reported_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "mixed.csv"
    write_native([Request(0, 0.0, 100, 10), Request(1, 0.1, 5000, 10), Request(2, 0.2, 80, 10)], trace)
    assert main(["simulate", "--trace", str(trace), "--num-blocks", "64", *QUIET]) == 0
    captured = capsys.readouterr()
    assert "3 (2 / 1)" in captured.out  # requests (finished / rejected) in the table
    warning = [line for line in captured.err.splitlines() if "rejected" in line]
    assert len(warning) == 1
    assert "1 of 3 requests were rejected" in warning[0] and "can never fit" in warning[0]
    assert "request 1" in warning[0] and "--num-blocks" in warning[0]


def test_a_run_that_serves_nothing_exits_1_after_writing_its_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert main(["simulate", "--n-requests", "3", "--num-blocks", "4", "--out", str(out), *QUIET]) == 1
    assert "nothing could be served: 3 of 3 requests were rejected" in capsys.readouterr().err
    assert len(json.loads(out.read_text())["requests"]) == 3  # the per-request file is still written


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--n-requests", "0"], 2),
        (["--duration", "0"], 2),
        (["--trace", "HEADER_ONLY"], 1),
    ],
)
def test_nothing_asked_is_an_error_not_a_table_of_nan(
    argv: list[str], status: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(trace_files.header_only(tmp_path, "native")) if a == "HEADER_ONLY" else a for a in argv]
    assert main(["simulate", *argv, *QUIET]) == status
    captured = capsys.readouterr()
    assert "nan" not in captured.out and "error" in captured.err


def test_without_slo_targets_no_attainment_or_goodput_is_claimed(capsys: pytest.CaptureFixture[str]) -> None:
    summary = _json(capsys, ["simulate", "--n-requests", "20", "--rate", "4"])
    assert summary["slo_attainment"] == {} and summary["goodput_req_per_s"] is None
    assert main(["simulate", "--n-requests", "20", *QUIET]) == 0
    out = capsys.readouterr().out
    assert "- (no SLO targets)" in out and "--slo-ttft" in out


def test_slo_attainment_is_measured_against_given_targets(capsys: pytest.CaptureFixture[str]) -> None:
    loose = _json(capsys, ["simulate", "--n-requests", "20", "--slo-ttft", "1000", "--slo-tbt", "1000"])
    tight = _json(capsys, ["simulate", "--n-requests", "20", "--slo-ttft", "0.000001"])
    assert loose["slo_attainment"]["all"] == 1.0 and loose["goodput_req_per_s"] > 0
    assert tight["slo_attainment"]["all"] == 0.0 and tight["goodput_req_per_s"] == 0.0
    assert loose["run"]["slo_ttft_s"] == 1000.0


def test_every_output_records_what_was_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--scheduler", "sarathi", "--param", "chunk_size=256", "--n-requests", "10", "--rate", "3",
            "--seed", "7", "--gpu", "H200", "--model", "Mistral-7B", "--cost-model", "roofline", *QUIET]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "r.csv")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    for text in ("run: sarathi (", "chunk_size=256", "synthetic-sharegpt", "rate 3/s", "seed 7", "H200", "Mistral-7B",
                 "roofline", "no SLO targets"):  # fmt: skip
        assert text in first
    record = read_run_record(tmp_path / "r.csv")
    assert record is not None
    assert record["rate"] == 3.0 and record["seed"] == 7 and record["scheduler_params"]["chunk_size"] == 256
    assert record["hardware"]["gpu"] == "H200" and record["hardware"]["model"] == "Mistral-7B"
    rows = list(csv.DictReader(line for line in (tmp_path / "r.csv").open() if not line.startswith("#")))
    assert len(rows) == 10
    summary = _json(capsys, [*argv, "--out", str(tmp_path / "r.json")])
    assert summary["run"] == read_run_record(tmp_path / "r.json") == {**record, "requests": 10}


def test_capacity_states_the_slo_rate_range_and_seed(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["capacity", "--n-requests", "40", "--lo", "0.5", "--hi", "4", "--rel-tol", "0.3", "--p99-tbt", "0.2"]
    assert main([*args, "--seed", "3"]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("capacity of sarathi on synthetic-sharegpt:")
    assert "P99 TBT <= 0.2 s" in last and "40 requests per trial" in last and "seed 3" in last
    assert "bisecting the rate in [0.5, 4] req/s" in out


@pytest.mark.parametrize("fmt", list(trace_files.SUFFIX))
def test_simulate_runs_your_trace_of_every_format(fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = trace_files.write(tmp_path, fmt)
    summary = _json(capsys, ["simulate", "--trace", str(path)])
    assert summary["requests"] == summary["finished"] == len(trace_files.ROWS)
    assert summary["run"]["workload"] == str(path)


def test_capacity_and_compare_run_your_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = trace_files.write(tmp_path, "azure")
    assert main(["capacity", "--trace", str(path), "--lo", "0.5", "--hi", "2", "--rel-tol", "0.5"]) == 0
    assert f"on {path}:" in capsys.readouterr().out
    out = tmp_path / "cmp"
    argv = ["compare", "--trace", str(path), "--trace-format", "azure", "--schedulers", "sarathi", "--rates", "1,2",
            "--out-dir", str(out), "--no-plots", "--jobs", "1", *QUIET]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert {r["workload"] for r in rows} == {str(path)} and {r["requests"] for r in rows} == {"4"}
    assert json.loads(rows[0]["workload_options"]) == {"fmt": "azure"}


def test_trace_is_never_taken_for_trace_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = trace_files.write(tmp_path, "native")
    summary = _json(capsys, ["simulate", "--trace", str(path)])
    assert summary["requests"] == len(trace_files.ROWS)  # the file, not the default synthetic workload
    assert main(["simulate", "--trace-d", str(tmp_path), *QUIET]) == 2
    assert "unknown option" in capsys.readouterr().err


def test_names_are_case_insensitive(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--scheduler", "SARATHI", "--gpu", "h200", "--model", "llama-3-8b", "--cost-model", "Roofline",
            "--workload", "Synthetic-ShareGPT", "--n-requests", "5"]  # fmt: skip
    run = _json(capsys, argv)["run"]
    assert run["scheduler"] == "sarathi" and run["workload"] == "synthetic-sharegpt"
    assert run["hardware"]["gpu"] == "H200" and run["hardware"]["model"] == "Llama-3-8B"


def test_a_loader_suggested_option_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "zeros.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n10,5\n20,0\n30,7\n")
    assert main(["simulate", "--trace", str(path), *QUIET]) == 2
    assert "--workload-option zero=skip" in capsys.readouterr().err
    summary = _json(capsys, ["simulate", "--trace", str(path), "--workload-option", "zero=skip"])
    assert summary["requests"] == 2


def test_out_never_creates_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "deeper" / "x.csv"
    assert main(["simulate", "--n-requests", "3", "--out", str(target), *QUIET]) == 2
    assert not (tmp_path / "missing").exists()
    assert "does not exist" in capsys.readouterr().err


def test_live_reports_rejections_and_fails_when_nothing_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    base = ["--model", "tiny-llama", "--device", "cpu", "--dtype", "float32", "--num-blocks", "4", *QUIET]
    mixed = trace_files.write(tmp_path, "native", rows=((0.0, 10, 3), (0.01, 200, 4), (0.02, 24, 5)))
    assert main(["live", "--trace", str(mixed), *base]) == 0
    err = capsys.readouterr().err
    assert "1 of 3 requests were rejected" in err and "--gpu-memory-fraction" in err
    big = trace_files.write(tmp_path, "native", rows=((0.0, 100, 3), (0.01, 200, 4)), name="big")
    assert main(["live", "--trace", str(big), *base]) == 1
    assert "nothing could be served: 2 of 2 requests were rejected" in capsys.readouterr().err


def test_a_registered_name_scheme_reaches_its_factory_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types
    from types import MappingProxyType

    import llmsched_gym.schedulers as registry

    module = types.ModuleType("scheme_probe")
    built: list[tuple[str, dict]] = []

    def factory(arg: str, **kwargs: object):
        built.append((arg, kwargs))
        scheduler = registry.make_scheduler("sarathi", **kwargs)
        scheduler.name = f"policy:{arg}"
        return scheduler

    module.factory = factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "scheme_probe", module)
    monkeypatch.setattr(registry, "PREFIXES", MappingProxyType({"policy": "scheme_probe:factory"}))
    summary = _json(capsys, ["simulate", "--scheduler", "policy:runs/p.onnx", "--param", "chunk_size=256",
                             "--n-requests", "4"])  # fmt: skip
    assert summary["run"]["scheduler"] == "policy:runs/p.onnx" and built[-1] == ("runs/p.onnx", {"chunk_size": 256})
    argv = ["compare", "--schedulers", "policy:runs/p.onnx,sarathi", "--n-requests", "4", "--jobs", "1",
            "--out-dir", str(tmp_path), "--no-plots", *QUIET]  # fmt: skip
    assert main(argv) == 0
    assert main(["simulate", "--scheduler", "nosuch:x", *QUIET]) == 2
