"""Bad command-line input, table-driven: every case exits non-zero with one error line naming the culprit.

Cases cover malformed files of every supported trace format, bad names, bad numbers, impossible requests, bad
profiles and bad output paths. Each runs the real entry point (``llmsched_gym.cli.main``) in-process; a few are
repeated in a subprocess to check the console script's exit status and that no traceback is printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmsched_gym.cli import main
from tests import trace_files

SMALL = ["--n-requests", "4", "--no-progress"]


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments (built in a temporary folder), the text the error must contain, the status."""

    id: str
    argv: Callable[[Path], list[str]]
    culprit: str
    status: int = 2


def _file(name: str, text: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    return make


def _trace(name: str, text: str | bytes, *extra: str, status: int = 2, culprit: str | None = None) -> Case:
    """``simulate --trace FILE`` on a malformed file; the error must name the file (and ``culprit``)."""
    make = _file(name, text)
    return Case(
        f"trace-{name}", lambda d: ["simulate", "--trace", str(make(d)), *extra, *SMALL], culprit or name, status
    )


def _sim(case_id: str, *args: str, culprit: str, status: int = 2) -> Case:
    return Case(case_id, lambda d: ["simulate", *args, *SMALL], culprit, status)


def _with(case_id: str, command: list[str], culprit: str, status: int = 2) -> Case:
    """A command whose arguments contain ``{tmp}`` (replaced by the temporary folder)."""
    return Case(case_id, lambda d: [a.replace("{tmp}", str(d)) for a in command], culprit, status)


AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BURST = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
LENGTHS = "num_prefill_tokens,num_decode_tokens,num_total_tokens\n"
VTC = "req_id,client_id,arrival_s,prompt_tokens,output_tokens\n"
NATIVE = "arrival_s,prompt_tokens,output_tokens\n"

CASES = [
    # malformed files of every supported format (the message names the file, and the field where there is one)
    _trace("azure-time.csv", AZURE + "2023-11-16 18:15:46.1,10,5\nyesterday,10,5\n", culprit="TIMESTAMP"),
    _trace("azure-neg.csv", AZURE + "1.0,-10,5\n", culprit="ContextTokens"),
    _trace("burst-tokens.csv", BURST + "5,ChatGPT,many,18,490,Conversation log\n", culprit="Request tokens"),
    _trace(
        "burst-columns.csv", "Timestamp,Model,Request tokens,Response tokens\n5,ChatGPT,4,4\n", culprit="trace format"
    ),
    _trace(
        "moon-json.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 2}\n{"timestamp": 1,\n',
        culprit="line 2",
    ),
    _trace(
        "moon-key.jsonl",
        '{"timestamp": 0, "input_length": 5, "output_length": 2}\n{"timestamp": 9, "input_length": 5}\n',
        culprit="output_length",
    ),
    _trace("lengths-total.csv", LENGTHS + "10,5,16\n", culprit="num_total_tokens"),
    _trace("lengths-zero.csv", LENGTHS + "10,0,10\n", culprit="--workload-option zero=skip"),
    _trace("vtc-client.csv", VTC + "0,abc,0.0,10,5\n", culprit="client_id"),
    _trace("vtc-order.csv", VTC + "0,0,5.0,10,5\n1,0,1.0,10,5\n", culprit="--workload-option sort=true"),
    _trace("native-nan.csv", NATIVE + "nan,10,5\n", culprit="arrival_s"),
    _trace(
        "native-float.jsonl", '{"arrival_s": 0, "prompt_tokens": 1.5, "output_tokens": 3}\n', culprit="prompt_tokens"
    ),
    _trace("native-slo.csv", NATIVE.strip() + ",ttft_slo_s\n0,10,5,0.5\n", culprit="slo_class"),
    _trace("binary.csv", b"\x00\x01\x02\x03PK\x00", culprit="not a text file"),
    _trace("empty.csv", "", culprit="empty"),
    _trace("header-only.csv", NATIVE, status=1, culprit="no requests"),
    _trace("unknown.csv", "when,in,out\n1,2,3\n", culprit="cannot tell the trace format"),
    _trace("gzipped.csv", b"\x1f\x8b\x08\x00\x00\x00", culprit="gzip"),
    _trace("forced.csv", AZURE + "1.0,10,5\n", "--trace-format", "vtc", culprit="missing column"),
    _trace("option.csv", NATIVE + "0,10,5\n", "--workload-option", "shuffle=true", culprit="shuffle"),
    _with("trace-folder", ["simulate", "--trace", "{tmp}"], "is a folder"),
    _with("trace-missing", ["simulate", "--trace", "{tmp}/absent.csv"], "absent.csv"),
    # bad names
    _sim("scheduler", "--scheduler", "sarahti", culprit="sarahti"),
    _sim("gpu", "--gpu", "H300", culprit="H300"),
    _sim("model", "--model", "llama-9", culprit="llama-9"),
    _sim("workload", "--workload", "sharegtp", culprit="sharegtp"),
    _sim("cost-model", "--cost-model", "rooflin", culprit="rooflin"),
    _sim("trace-format", "--trace-format", "parquet", culprit="parquet"),
    _sim("format-without-trace", "--trace-format", "azure", culprit="--trace-format"),
    _with("params-name", ["params", "nope"], "nope"),
    _with("compare-names", ["compare", "--schedulers", "sarathi,nope", "--out-dir", "{tmp}/o"], "nope"),
    _sim("option-typo", "--n-request", "5", culprit="--n-request"),
    _sim("option-prefix", "--trac", "x.csv", culprit="--trac"),
    _with("no-command", ["simulat"], "simulat"),
    # bad values of typed flags
    _sim("param-bool", "--param", "chunk_size=true", culprit="chunk_size"),
    _sim("param-float", "--param", "chunk_size=1.5", culprit="chunk_size"),
    _sim("param-text", "--param", "chunk_size=abc", culprit="chunk_size"),
    _sim("param-key", "--param", "chunksize=512", culprit="chunksize"),
    _sim("param-form", "--param", "chunk_size", culprit="KEY=VALUE"),
    _sim("param-range", "--param", "chunk_size=0", culprit="chunk_size=0"),
    _sim("param-choice", "--param", "order=random", culprit="order"),
    _sim("option-key", "--workload-option", "colour=red", culprit="colour"),
    _sim("option-value", "--workload-option", "max_total=big", culprit="max_total"),
    _with(
        "compare-param",
        [
            "compare",
            "--schedulers",
            "sarathi,vllm-v1",
            "--param",
            "chunk_size=512",
            "--out-dir",
            "{tmp}/o",
            "--n-requests",
            "4",
        ],
        "chunk_size",
    ),
    # bad numbers
    _sim("rate-negative", "--rate", "-1", culprit="--rate"),
    _sim("rate-text", "--rate", "fast", culprit="--rate"),
    _sim("rate-nan", "--rate", "nan", culprit="--rate"),
    _with("n-zero", ["simulate", "--n-requests", "0"], "--n-requests"),
    _with("n-float", ["simulate", "--n-requests", "2.5"], "--n-requests"),
    _sim("duration-zero", "--duration", "0", culprit="--duration"),
    _sim("seed-negative", "--seed", "-3", culprit="--seed"),
    _sim("tp-zero", "--tp", "0", culprit="--tp"),
    _sim("tp-divisor", "--tp", "3", culprit="--tp 3"),
    _sim("block-size", "--block-size", "0", culprit="--block-size"),
    _sim("memory-fraction", "--memory-utilization", "1.5", culprit="--memory-utilization"),
    _sim("slo-zero", "--slo-ttft", "0", culprit="--slo-ttft"),
    _with("capacity-bounds", ["capacity", "--lo", "5", "--hi", "1"], "--lo"),
    _with("compare-rates", ["compare", "--rates", "1,x", "--out-dir", "{tmp}/o"], "'x'"),
    _with("compare-jobs", ["compare", "--jobs", "0", "--out-dir", "{tmp}/o"], "--jobs"),
    # impossible requests
    _sim("kv-too-small", "--num-blocks", "8", culprit="--num-blocks", status=1),
    _sim("model-too-big", "--gpu", "A100-80GB", "--model", "Llama-2-70B", culprit="--tp"),
    _sim("memory-too-small", "--memory-utilization", "0.05", culprit="--memory-utilization 0.05"),
    Case(
        "window-empty",
        lambda d: ["simulate", "--trace", str(trace_files.write(d, "vtc", ((5.0, 9, 3),))), "--duration", "1", *SMALL],
        "no requests",
        1,
    ),
    # bad profiles
    _with("profile-missing", ["simulate", "--cost-model", "profile:{tmp}/nope.json"], "nope.json"),
    Case(
        "profile-json", lambda d: ["simulate", "--cost-model", f"profile:{_file('p.json', '{')(d)}", *SMALL], "p.json"
    ),
    Case(
        "profile-schema",
        lambda d: ["simulate", "--cost-model", f"profile:{_file('s.json', json.dumps({}))(d)}", *SMALL],
        "s.json",
    ),
    _sim(
        "profile-lookup", "--cost-model", "profile", "--gpu", "A100-80GB", "--model", "Llama-2-13B", culprit="profile"
    ),
    # bad output paths
    _with("out-folder", ["simulate", "--out", "{tmp}"], "is a folder"),
    _with("out-parent", ["simulate", "--out", "{tmp}/no/such/x.csv"], "does not exist"),
    _with("out-suffix", ["simulate", "--out", "{tmp}/x.txt"], ".csv or .json"),
    _with("out-dir-file", ["compare", "--out-dir", str(Path(__file__))], "is a file"),
    _with("trace-dir", ["simulate", "--trace-dir", "{tmp}/none"], "--trace-dir"),
    _with("live-device", ["live", "--device", "tpu"], "tpu"),
    _with("live-timings", ["live", "--device", "cpu", "--timings-out", "{tmp}"], "--timings-out"),
]


def test_the_table_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_naming_the_culprit(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status = main(case.argv(tmp_path))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert status == case.status, err
    assert len(errors) == 1, err
    assert case.culprit in errors[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.id in ("trace-binary.csv", "param-bool", "out-parent")], ids=lambda c: c.id
)
def test_the_console_entry_point_exits_without_a_traceback(case: Case, tmp_path: Path) -> None:
    argv = case.argv(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "llmsched_gym", *argv], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert proc.returncode == case.status
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1].startswith("llmsched simulate: error: ")
