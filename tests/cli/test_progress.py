"""Long runs show progress: totals for trace workloads, live serving, reproductions, the compile notice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmsched_gym.cli import main
from tests import trace_files


class _Bar:
    def __init__(self, total: int | None = None, **kwargs: Any) -> None:
        self.total, self.n, self.kwargs = total, 0, kwargs
        BARS.append(self)

    def update(self, k: int = 1) -> None:
        self.n += k

    def close(self) -> None:
        pass

    def set_description(self, text: str) -> None:
        self.kwargs["desc"] = text

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


BARS: list[_Bar] = []


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[_Bar]:
    import tqdm

    BARS.clear()
    monkeypatch.setattr(tqdm, "tqdm", _Bar)
    return BARS


def test_a_trace_workload_has_a_total(tmp_path: Path, bars: list[_Bar]) -> None:
    path = trace_files.write(tmp_path, "azure")
    assert main(["simulate", "--trace", str(path)]) == 0
    assert len(bars) == 1 and bars[0].total == len(trace_files.ROWS) == bars[0].n


def test_compare_counts_requests_and_runs(tmp_path: Path, bars: list[_Bar]) -> None:
    args = ["compare", "--schedulers", "sarathi", "--rates", "1,2", "--n-requests", "15", "--jobs", "1",
            "--out-dir", str(tmp_path), "--no-plots"]  # fmt: skip
    assert main(args) == 0
    assert bars[0].total == bars[0].n == 30 and bars[0].kwargs["desc"] == "compare: 2/2 runs"


def test_reproductions_show_progress(bars: list[_Bar]) -> None:
    from reproductions._common import parallel_map

    assert parallel_map(abs, [-1, -2, -3], jobs=1, desc="demo") == [1, 2, 3]
    assert bars[0].total == bars[0].n == 3


def test_live_shows_progress_on_the_cpu(tmp_path: Path, bars: list[_Bar], capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    path = trace_files.write(tmp_path, "native", rows=((0.0, 10, 3), (0.01, 17, 4), (0.02, 24, 5)))
    argv = ["live", "--trace", str(path), "--model", "TINY-LLAMA", "--device", "cpu", "--dtype", "float32",
            "--num-blocks", "32", "--scheduler", "vllm-v1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert bars[-1].total == 3 and bars[-1].n == 3
    assert captured.out.startswith("run: vllm-v1 on ") and "loading tiny-llama" in captured.err
