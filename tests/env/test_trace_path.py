"""A ``WorkloadSpec`` naming a trace file: the env serves the file's requests (format detected from the header)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.core.request import Request
from llmsched_gym.env.episodes import WorkloadMix, WorkloadSpec
from llmsched_gym.workloads import write_native


def _trace(tmp_path: Path) -> tuple[Path, list[Request]]:
    requests = [Request(i, 0.5 * i, 100 + 10 * i, 5 + i) for i in range(6)]
    path = tmp_path / "mine.csv"
    write_native(requests, path)
    return path, requests


def test_spec_with_a_path_serves_the_trace_file(tmp_path: Path) -> None:
    path, requests = _trace(tmp_path)
    mix = WorkloadMix((WorkloadSpec(str(path), rate=None, n_requests=None, slo=()),), load_range=(1.0, 1.0))
    episode = mix.sample(np.random.default_rng(0))
    assert [(r.arrival, r.prompt_len, r.output_len) for r in episode.requests] == [
        (r.arrival, r.prompt_len, r.output_len) for r in requests
    ]


def test_spec_with_a_path_rescales_to_its_rate_and_takes_a_format_option(tmp_path: Path) -> None:
    path, _ = _trace(tmp_path)
    spec = WorkloadSpec(str(path), rate=4.0, n_requests=4, slo=(), options=(("fmt", "native"),))
    episode = WorkloadMix((spec,), load_range=(1.0, 1.0)).sample(np.random.default_rng(0))
    assert len(episode.requests) == 4
    assert episode.requests[-1].arrival == pytest.approx(3 / 4.0)


def test_spec_with_a_missing_path_names_the_file(tmp_path: Path) -> None:
    mix = WorkloadMix((WorkloadSpec(str(tmp_path / "absent.csv"), rate=None, n_requests=None),))
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        mix.sample(np.random.default_rng(0))
