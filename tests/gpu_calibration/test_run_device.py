"""``gpu_calibration/run_device.sh --dry-run``: the GPU script's steps run end to end on the CPU with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[2] / "gpu_calibration" / "run_device.sh"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_dry_run_writes_every_documented_file(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    expected = {"run.log", "executor_speed.log", "measurement.json", "profile.json", "fit.png", "comparison.json",
                "comparison.png"}  # fmt: skip
    assert expected == {p.name for p in tmp_path.iterdir()}  # at most 8 files come back from the device machine
    assert json.loads((tmp_path / "executor_speed.log").read_text().splitlines()[-1])
    assert "4/4 sim vs live" in (tmp_path / "run.log").read_text()
