"""End to end on the CPU with the tiny model: profile -> fit -> validate -> compare, through ``llmsched calibrate``.

This is the CI run of the calibration pipeline (a few hundred milliseconds of timing per batch at most). It checks
that every step runs and writes what it documents; the accuracy goals are measured on a larger design and reported
in docs/calibration.md (timings on the shared CI machine are too noisy for assertions on them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from llmsched_gym.cli import main
from llmsched_gym.costs import load_profile, make_cost_model

SIZE = ["--max-tokens", "256", "--max-seqs", "64", "--num-blocks", "512"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("calibration")
    profile = ["calibrate", "profile", "--design", "small", *SIZE, "--max-context", "768", "--n-random", "12"]
    assert main([*profile, "--rounds", "1", "--repeats", "2", "--out", str(out / "m.json")]) == 0
    assert main(["calibrate", "fit", str(out / "m.json"), "--out", str(out / "p.json"), "--tiles", "0,16",
                 "--starts", "2"]) == 0  # fmt: skip
    return out


def test_profile_records_grid_fit_validation_and_provenance(run_dir: Path) -> None:
    profile = load_profile(run_dir / "p.json")
    assert profile.schema_version == 2 and profile.source == "measured" and profile.fit.form == "operator"
    assert profile.gpu_name == "CPU" and profile.model.name == "tiny-llama" and profile.block_size == 16
    info = profile.executor_info
    assert info["clock"] == "cpu" and info["torch"] and info["dtype"] == "float32" and info["device"] == "cpu"
    assert {p.role for p in profile.grid} == {"train", "holdout"}
    assert sum(p.role == "holdout" for p in profile.grid) == profile.validation.n_holdout == 12
    v = profile.validation
    assert v.median_abs_error is not None and v.p90_abs_error is not None
    assert 0 <= v.median_abs_error <= v.p90_abs_error <= v.max_abs_rel_error < math.inf
    assert all(p.repeats in (2, 4) and p.spread is not None for p in profile.grid)  # noisy ones measured twice
    overhead = info["engine_overhead_s"]
    assert 0 < overhead < 0.05 and profile.fit_info["engine_overhead_s"] == overhead
    assert profile.fit.fixed_s >= overhead  # the fit charges the live engine's time per decision


def test_validate_writes_the_plot_and_checks_goals(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "validate", str(run_dir / "p.json"), "--plot", str(run_dir / "fit.png")]) == 0
    assert (run_dir / "fit.png").stat().st_size > 10_000
    assert "held-out per-iteration error median" in capsys.readouterr().out
    assert main(["calibrate", "validate", str(run_dir / "p.json"), "--max-median", "0.0"]) == 1


def test_compare_serves_live_and_simulates_with_the_profile(run_dir: Path) -> None:
    args = ["calibrate", "compare", "--profile", str(run_dir / "p.json"), *SIZE, "--workload", "synthetic-sharegpt",
            "--n-requests", "12", "--rate", "8", "--max-total", "384", "--live-runs", "2",
            "--out", str(run_dir / "cmp")]  # fmt: skip
    assert main(args) == 0
    data = json.loads((run_dir / "cmp" / "comparison.json").read_text())
    metrics = {m["metric"]: m for m in data["metrics"]}
    assert {"TTFT p50", "TTFT p99", "TBT p50", "TBT p99", "output tok/s"} <= set(metrics)
    assert all(math.isfinite(m["live"]) and math.isfinite(m["sim"]) for m in metrics.values())
    assert data["live"][0]["finished"] == data["live"][1]["finished"] == data["sim"]["finished"] == data["requests"] > 0
    assert all(m["live_min"] <= m["live"] <= m["live_max"] for m in metrics.values())
    assert data["iterations"]["n"] > 10 and (run_dir / "cmp" / "comparison.png").is_file()


def test_a_profile_passed_by_path_must_match_the_run(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(run_dir / "p.json")
    args = ["calibrate", "compare", "--profile", path, *SIZE, "--block-size", "32", "--n-requests", "2"]
    assert main(args) == 2
    assert "block_size=16 but the run uses block_size=32" in capsys.readouterr().err
    with pytest.raises(Exception, match="measured with model=tiny-llama but the run uses model=Llama-2-7B"):
        make_cost_model("profile", path=path, gpu="CPU", model="Llama-2-7B")
    assert make_cost_model("profile", path=path, gpu="cpu", block_size=16).iteration_time  # type: ignore[truthy-function]
