"""The ``llmsched live`` subcommand and the speed benchmark's code path, on the CPU with a tiny model."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from llmsched_gym.core.request import Request
from llmsched_gym.executor.cli import add_live_parser, run_live
from llmsched_gym.workloads.native import write_native

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmsched")
    add_live_parser(parser.add_subparsers(dest="command"))
    return parser


def _trace(tmp_path: Path) -> Path:
    reqs = [Request(id=i, arrival=0.01 * i, prompt_len=10 + 7 * i, output_len=4 + i) for i in range(5)]
    path = tmp_path / "trace.jsonl"
    write_native(reqs, path)
    return path


def test_live_on_cpu_prints_summary_and_writes_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timings = tmp_path / "timings.jsonl"
    args = _parser().parse_args(
        ["live", "--trace", str(_trace(tmp_path)), "--model", "tiny-llama", "--device", "cpu", "--dtype", "float32",
         "--num-blocks", "32", "--scheduler", "vllm-v1", "--timings-out", str(timings), "--json"]
    )  # fmt: skip
    assert args.handler is run_live
    assert run_live(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["finished"] == 5 and summary["executor"]["num_blocks"] == 32
    records = [json.loads(line) for line in timings.read_text().splitlines()]
    assert len(records) == summary["iterations"]
    assert sum(sum(r["prefill_tokens"]) for r in records) == sum(10 + 7 * i for i in range(5))
    args.json = False
    assert run_live(args) == 0
    table = capsys.readouterr().out
    assert "metric" in table and "executor:" in table


def test_live_reports_missing_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    args = _parser().parse_args(["live", "--trace", str(_trace(tmp_path)), "--model", "tiny-llama"])
    assert run_live(args) == 2
    assert "needs CUDA" in capsys.readouterr().err


def test_live_rejects_too_long_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "long.jsonl"
    write_native([Request(id=0, arrival=0.0, prompt_len=2040, output_len=20)], path)
    args = _parser().parse_args(
        ["live", "--trace", str(path), "--model", "tiny-llama", "--device", "cpu", "--dtype", "float32",
         "--num-blocks", "256"]
    )  # fmt: skip
    assert run_live(args) == 1
    assert "exceed the model's context of 2048" in capsys.readouterr().err


def test_speed_benchmark_code_path_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    from llmsched_gym.workloads.registry import SHAREGPT_FILE, resolve_trace_file

    try:  # its end-to-end part reads ShareGPT lengths from the public traces folder
        resolve_trace_file(SHAREGPT_FILE)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    spec = importlib.util.spec_from_file_location("executor_speed", ROOT / "benchmarks" / "executor_speed.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(["--device", "cpu", "--model", "tiny-llama", "--dtype", "float32", "--quick"])
    args.batches, args.prefill, args.repeats, args.e2e_requests, args.e2e_output = "2", "16", 1, 2, 3
    res = bench.run(args)
    assert res["decode"][0]["ms"] > 0 and res["prefill"][0]["frac_of_gemm_peak"] > 0
    assert res["e2e"]["requests"] == 2 and res["e2e"]["floor_s"] > 0
    assert set(res["goals"]) == {
        "decode_b1_le_1.8x_floor", "decode_b8plus_le_1.3x_floor", "prefill_2048plus_ge_60pct_gemm_peak",
        "e2e_le_1.5x_floor",
    }  # fmt: skip
    if not torch.cuda.is_available():
        assert bench.main(["--model", "tiny-llama"]) == 2
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["error"]


def test_live_drops_too_long_requests_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mixed.jsonl"
    write_native(
        [
            Request(id=0, arrival=0.0, prompt_len=2040, output_len=20),
            Request(id=1, arrival=0.0, prompt_len=9, output_len=3),
        ],
        path,
    )
    args = _parser().parse_args(
        ["live", "--trace", str(path), "--model", "tiny-llama", "--device", "cpu", "--dtype", "float32",
         "--num-blocks", "16", "--drop-too-long", "--json"]
    )  # fmt: skip
    assert run_live(args) == 0
    out = capsys.readouterr().out
    assert json.loads(out[: out.rindex("}") + 1])["finished"] == 1


def test_live_serves_with_a_learned_policy_and_reports_its_decision_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    policy = ROOT / "policies" / "bursty-goodput-priority-s0.onnx"
    args = _parser().parse_args(
        ["live", "--trace", str(_trace(tmp_path)), "--model", "tiny-llama", "--device", "cpu", "--dtype", "float32",
         "--num-blocks", "64", "--scheduler", f"policy:{policy}", "--json"]
    )  # fmt: skip
    assert run_live(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["finished"] == 5
    timing = summary["executor"]["policy_decision_us"]  # next to the iteration times
    assert timing["decisions"] > 0 and timing["median"] > 0 and "iteration_ms" in summary["executor"]
