from __future__ import annotations

import gzip
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads import ServeGenModel, ServeGenWorkload
from llmsched_gym.workloads.servegen import LENGTHS_FILE, QUANTILE_COLUMNS, WINDOWS_FILE, RateWindow

WINDOW_HEADER = "model,client_id,window_start_s,rate_rps,iat_cv,iat_dist,iat_shape,iat_scale"
LENGTH_HEADER = "model,client_id,window_start_s,field,mean," + ",".join(QUANTILE_COLUMNS)
Q_IN = "10,10,10,10,10,100,100,100,100,100,100"
Q_OUT = "1,1,2,3,4,5,6,7,8,9,10"


def write_gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """Client 1: Gamma then Weibull windows, own lengths; client 2: one window, no length rows (pooled)."""
    write_gz(
        tmp_path / WINDOWS_FILE,
        [
            WINDOW_HEADER,
            "toy,1,0,2.0,1.0,Gamma,1.0,0.5",
            "toy,1,600,4.0,2.0,Weibull,0.6,0.2",
            "toy,2,600,1.0,1.0,Gamma,2.0,0.5",
            "other,1,0,100.0,1.0,Gamma,1.0,0.01",
        ],
    )
    write_gz(
        tmp_path / LENGTHS_FILE,
        [
            LENGTH_HEADER,
            f"toy,1,0,input_tokens,50,{Q_IN}",
            f"toy,1,0,output_tokens,5,{Q_OUT}",
        ],
    )
    return tmp_path


def test_iats_are_rescaled_to_the_window_rate_for_gamma_and_weibull() -> None:
    rng = np.random.default_rng(0)
    for window in (RateWindow(0.0, 3.0, "Gamma", 0.3, 10.0), RateWindow(0.0, 3.0, "Weibull", 0.5, 7.0)):
        assert window.iats(200_000, 3.0, rng).mean() == pytest.approx(1 / 3.0, rel=0.05)


def test_toy_stream_follows_windows_and_rates(tiny_dir: Path) -> None:
    data = ServeGenModel.load(tiny_dir, "toy")
    requests = list(ServeGenWorkload(data).generate(np.random.default_rng(1), duration=1200))
    assert [r.id for r in requests] == list(range(len(requests)))
    assert all(a.arrival <= b.arrival for a, b in itertools.pairwise(requests))
    first = Counter(r.client for r in requests if r.arrival < 600)
    second = Counter(r.client for r in requests if r.arrival >= 600)
    assert set(first) == {1}
    assert first[1] == pytest.approx(1200, rel=0.12)
    assert second[1] == pytest.approx(2400, rel=0.25)
    assert second[2] == pytest.approx(600, rel=0.15)


def test_lengths_use_own_quantiles_else_the_pooled_fallback(tiny_dir: Path) -> None:
    data = ServeGenModel.load(tiny_dir, "toy")
    requests = list(ServeGenWorkload(data).generate(np.random.default_rng(2), duration=1200))
    own = np.array([r.prompt_len for r in requests if r.client == 1])
    assert own.min() >= 10 and own.max() <= 100
    assert np.median(own) == pytest.approx(100, abs=5)
    assert np.mean(own <= 10) == pytest.approx(0.25, abs=0.03)
    assert np.array_equal(data.quantile_vector(2, "input_tokens", 700.0), data.pooled["input_tokens"])
    assert np.array_equal(data.quantile_vector(1, "input_tokens", 99_999.0), data.quantile_vector(1, "input_tokens", 0))
    assert all(1 <= r.output_len <= 10 for r in requests)


def test_target_rate_sets_the_aggregate_rate_and_top_k_the_clients(tiny_dir: Path) -> None:
    data = ServeGenModel.load(tiny_dir, "toy")
    requests = list(ServeGenWorkload(data, target_rate=10.0).generate(np.random.default_rng(3), duration=1200))
    assert len(requests) / 1200 == pytest.approx(10.0, rel=0.15)
    top = list(ServeGenWorkload(data, top_k=1).generate(np.random.default_rng(3), duration=1200))
    assert {r.client for r in top} == {1}
    late = list(ServeGenWorkload(data, start_s=900.0).generate(np.random.default_rng(3), duration=100))
    assert all(0 <= r.arrival < 100 for r in late)


def test_servegen_stream_is_seeded_and_stops_at_n(tiny_dir: Path) -> None:
    workload = ServeGenWorkload(ServeGenModel.load(tiny_dir, "toy"))
    first = list(workload.generate(np.random.default_rng(4), n=100))
    assert len(first) == 100
    assert first == list(workload.generate(np.random.default_rng(4), n=100))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"top_k": 0}, "top_k=0"),
        ({"target_rate": -1.0}, "target_rate=-1.0"),
        ({"clients": (1, 99)}, r"clients \[99\]"),
        ({"start_s": 5_000.0}, "past the record's end"),
    ],
)
def test_servegen_workload_rejects_bad_options(tiny_dir: Path, kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ServeGenWorkload(ServeGenModel.load(tiny_dir, "toy"), **kwargs)  # type: ignore[arg-type]


def test_servegen_malformed_files_are_reported(tmp_path: Path, tiny_dir: Path) -> None:
    write_gz(tmp_path / WINDOWS_FILE, [WINDOW_HEADER, "toy,1,0,2.0,1.0,Pareto,1.0,0.5"])
    with pytest.raises(TraceFormatError, match=r"line 2, field 'iat_dist'"):
        ServeGenModel.load(tmp_path, "toy")
    write_gz(tmp_path / WINDOWS_FILE, [WINDOW_HEADER, "toy,1,0,2.0,1.0,Gamma,0,0.5"])
    with pytest.raises(TraceFormatError, match=r"line 2, field 'iat_shape'"):
        ServeGenModel.load(tmp_path, "toy")
    with pytest.raises(TraceFormatError, match=r"no rows for model 'absent'"):
        ServeGenModel.load(tiny_dir, "absent")


@pytest.fixture(scope="module")
def deepseek(traces_dir: Path) -> ServeGenModel:
    return ServeGenModel.load(traces_dir, "deepseek-r1")


def test_real_deepseek_statistics_load_with_all_clients(deepseek: ServeGenModel) -> None:
    assert len(deepseek.windows) == 73
    assert deepseek.end_s == 86_400
    assert {client for client, _ in deepseek.quantiles} == set(deepseek.windows)


def test_real_deepseek_stream_is_multi_client_and_well_formed(deepseek: ServeGenModel) -> None:
    workload = ServeGenWorkload(deepseek, start_s=43_200.0, target_rate=20.0, top_k=10)
    requests = list(workload.generate(np.random.default_rng(5), duration=600))
    assert len(requests) / 600 == pytest.approx(20.0, rel=0.25)
    assert 2 <= len({r.client for r in requests}) <= 10
    assert [r.id for r in requests] == list(range(len(requests)))
    outputs = np.array([r.output_len for r in requests])
    assert 200 < np.median(outputs) < 2_000


def test_real_m_small_clients_without_length_rows_use_pooled_quantiles(
    trace_path: Callable[[str], Path],
) -> None:
    data = ServeGenModel.load(trace_path(WINDOWS_FILE).parent, "m-small")
    assert len(data.windows) == 43
    missing = {1, 5, 8, 11, 38}
    with_lengths = {client for client, _ in data.quantiles}
    assert missing.isdisjoint(with_lengths)
    assert len(with_lengths) == 43 - 5
    assert np.array_equal(data.quantile_vector(5, "input_tokens", 0.0), data.pooled["input_tokens"])
    assert data.end_s == 14 * 86_400
