"""Measurement files and the points CSV format: round trips and errors that name the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_calibration.measurement import Measurement, load_measurement, read_points_csv, write_points_csv
from llmsched_gym.costs import MeasuredPoint
from llmsched_gym.errors import ProfileError
from llmsched_gym.hardware import get_model

POINTS = (
    MeasuredPoint((512, 7), (1024, 0), 32, 40960, 34, 0.0251, role="train", spread=0.012, repeats=7),
    MeasuredPoint((), (), 64, 65536, 64, 0.0198, role="holdout", flag="noisy"),
    MeasuredPoint((3,), (0,), 0, 0, 1, 0.004),
)


def test_points_csv_round_trips(tmp_path: Path) -> None:
    path = write_points_csv(tmp_path / "p.csv", POINTS)
    assert read_points_csv(path) == list(POINTS)
    assert path.read_text().splitlines()[0].startswith("prefill_tokens,prefill_context,n_decodes")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("prefill_tokens,seconds\n1,0.1\n", "lacks column\\(s\\) prefill_context"),
        (
            "prefill_tokens,prefill_context,n_decodes,decode_context_sum,n_seqs,seconds\n5;6,0,0,0,2,0.1\n",
            "line 2: .*prefill_tokens has 2 entries but prefill_context has 1",
        ),
        ("prefill_tokens,prefill_context,n_decodes,decode_context_sum,n_seqs,seconds\n5,0,0,0,1,-1\n", "line 2"),
        ("prefill_tokens,prefill_context,n_decodes,decode_context_sum,n_seqs,seconds\n", "has no rows"),
    ],
)
def test_bad_points_csv_names_the_line_and_field(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ProfileError, match=match):
        read_points_csv(path)


def test_measurement_round_trips_and_refuses_other_files(tmp_path: Path) -> None:
    m = Measurement("CPU", 1 << 34, get_model("Llama-2-7B"), 1, 16, "x 0.1", "2026-01-31T10:00:00+00:00",
                    "tests", POINTS, {"clock": "cpu"})  # fmt: skip
    path = m.save(tmp_path / "m.json")
    assert load_measurement(path) == m
    (tmp_path / "other.json").write_text('{"schema_version": 2}')
    with pytest.raises(ProfileError, match="is not a measurement file"):
        load_measurement(tmp_path / "other.json")
    with pytest.raises(ProfileError, match="does not exist"):
        load_measurement(tmp_path / "missing.json")
