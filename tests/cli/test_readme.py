"""Every command and code block of the README runs, at the small sizes listed here (CI runs them all).

A README command missing from :data:`SMALL` fails :func:`test_every_readme_command_has_a_small_size`, so a new
example cannot go untested. The setup commands' ``pip install`` and ``pytest`` parts are what CI itself runs
(``.ci/run``); their ``llmsched`` part runs here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from llmsched_gym.cli import main
from llmsched_gym.workloads.registry import trace_search_dirs

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
Q = ["--no-progress"]
TINY_TRAIN = ["--total-decisions", "32", "--n-envs", "2", "--n-procs", "0", "--n-steps", "16", "--batch-size", "16",
              "--eval-every", "1000000", "--eval-episodes", "1", "--no-wandb"]  # fmt: skip

SMALL: dict[str, list[str]] = {
    "llmsched simulate": ["--n-requests", "50", *Q],
    "llmsched schedulers": [],
    "llmsched params sarathi": [],
    "llmsched workloads": [],
    "llmsched gpus": [],
    "llmsched models": [],
    "llmsched cost-models": [],
    "llmsched simulate --scheduler vllm-v1 --workload sharegpt --rate 2 --n-requests 2000 --out results.csv": [
        "--n-requests",
        "100",
        *Q,
    ],
    "llmsched simulate --scheduler sarathi --param chunk_size=2048 --gpu H200 --model Llama-3-8B --json": [
        "--n-requests",
        "50",
        *Q,
    ],
    "llmsched simulate --trace ../shared/traces/azure2023_AzureLLMInferenceTrace_conv.csv --n-requests 2000 "
    "--slo-ttft 2 --slo-tbt 0.1": ["--n-requests", "100", *Q],
    "llmsched capacity --scheduler sarathi --workload sharegpt --p99-tbt 0.1 --lo 0.5 --hi 8": [
        "--n-requests",
        "60",
        "--rel-tol",
        "0.3",
    ],
    "llmsched compare --schedulers vllm-v0,sarathi,slai --workload sharegpt --rates 0.5,1,2,3 --seeds 0,1 "
    "--out-dir out/": ["--n-requests", "30", *Q],
    "python -m reproductions.sarathi --quick": [],
    "llmsched live --help": [],
    "llmsched tasks": [],
    "llmsched train slo-goodput --out runs": [*TINY_TRAIN, "--no-progress"],
    "llmsched evaluate bursty-goodput --policy policies/bursty-goodput-priority-s0.onnx --out results/": [
        "--episodes",
        "2",
        "--no-sampled",
        "--baselines",
        "vllm-v1,sarathi-spf",
    ],
    "llmsched simulate --scheduler policy:policies/bursty-goodput-priority-s0.onnx --workload sharegpt --rate 4 "
    "--n-requests 500": [
        "--n-requests",
        "40",
        *Q,
    ],
}
"""README command -> arguments appended in CI (argparse keeps the last value of a repeated option)."""


def readme_blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language."""
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def readme_commands() -> list[str]:
    """The ``llmsched`` and ``python -m reproductions`` commands of the README's bash blocks (comments dropped)."""
    out = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in (p.strip() for p in line.split("&&")):
                if part.startswith(("llmsched ", "python -m reproductions")) or part == "llmsched simulate":
                    out.append(part)
    return out


def _traces() -> Path | None:
    return next((d for d in trace_search_dirs() if d.is_dir()), None)


def test_every_readme_command_has_a_small_size() -> None:
    assert sorted(readme_commands()) == sorted(SMALL)


def test_the_setup_commands_are_what_ci_runs() -> None:
    setup = readme_blocks("bash")[:2]
    assert setup[0].strip().endswith("llmsched simulate") and 'pip install -e ".[plots]"' in setup[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q torch==2.13.0" in ci and "python -m pytest -q -n 2" in setup[1] + ci


def test_each_example_names_or_gets_the_extra_it_needs() -> None:
    text = README.read_text()
    first = readme_blocks("bash")[0]
    assert "[plots]" in first  # compare and the reproductions draw plots
    assert 'pip install -e ".[executor]"' in text.split("llmsched live --help")[0]  # live names its extra
    assert "--index-url https://download.pytorch.org/whl/cpu" in text  # the CPU torch without a local wheel


@pytest.mark.parametrize("command", list(SMALL))
def test_readme_command_runs(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    words = shlex.split(command)
    traces = _traces()
    if traces is None and any("sharegpt" in w or "shared/traces" in w for w in words):
        pytest.skip("needs the public traces folder (../shared/traces)")
    words = [str(traces / Path(w).name) if "shared/traces" in w and traces else w for w in words]
    words = [re.sub(r"^(policy:)?policies/", lambda m: f"{m.group(1) or ''}{ROOT}/policies/", w) for w in words]
    if words[1] in ("train", "evaluate", "export"):
        pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    if words[:2] == ["python", "-m"]:
        import importlib

        module = importlib.import_module(words[2])
        module.main([*words[3:], "--jobs", "2", "--out", str(tmp_path / "repro")])
        assert (tmp_path / "repro" / "sarathi.json").is_file()
        return
    if words[-1] == "--help":
        with pytest.raises(SystemExit) as info:
            main(words[1:])
        assert info.value.code == 0 and "usage: llmsched live" in capsys.readouterr().out
        return
    assert main([*words[1:], *SMALL[command]]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("index", range(len(readme_blocks("python"))))
def test_readme_python_block_runs(index: int) -> None:
    code = readme_blocks("python")[index].replace("n_requests=1000", "n_requests=100")
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
