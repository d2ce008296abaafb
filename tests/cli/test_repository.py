"""The repository's own hygiene: ignored build and output paths, and tests that skip without the traces folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path", [".venv-ci/bin/python", "docs/reproductions/quick/sarathi.json", "compare-out/compare.csv", "out/x.png"]
)
def test_build_and_output_paths_are_ignored(path: str) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False).returncode == 0


def test_trace_reading_tests_skip_without_the_traces_folder(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "LLMSCHED_TRACE_DIR": str(tmp_path)}
    test = "tests/executor/test_live_cli.py::test_speed_benchmark_code_path_on_cpu"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test, "-rs"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout and "not found" in proc.stdout
