from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.core.request import Request
from llmsched_gym.errors import UnknownNameError
from llmsched_gym.workloads import list_workloads, make_workload, mean_rate, trace_search_dirs
from llmsched_gym.workloads.loaders import iter_length_stats
from llmsched_gym.workloads.registry import SHAREGPT_FILE, TRACE_DIR_ENV
from llmsched_gym.workloads.servegen import LENGTHS_FILE, QUANTILE_COLUMNS, SERVEGEN_MODELS, WINDOWS_FILE

NAMES = sorted(list_workloads())
BUILT_IN = ["synthetic-sharegpt", "wait-p512d20", "wait-p512d20-p512d50", "wait-p512d1000"]
REQUIRED = [
    *BUILT_IN,
    "sharegpt",
    "arxiv",
    "azure-conv-2023",
    "mooncake-conversation",
    "vtc-lmsys",
    *(f"servegen-{model}" for model in SERVEGEN_MODELS),
]


@pytest.fixture(scope="session")
def toy_servegen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny ServeGen summaries for every model (the real files take seconds to parse)."""
    directory = tmp_path_factory.mktemp("servegen")
    windows = ["model,client_id,window_start_s,rate_rps,iat_cv,iat_dist,iat_shape,iat_scale"]
    lengths = ["model,client_id,window_start_s,field,mean," + ",".join(QUANTILE_COLUMNS)]
    quantiles = ",".join(str(v) for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
    for model in SERVEGEN_MODELS:
        windows += [f"{model},0,0,3.0,1.0,Gamma,1.0,0.33", f"{model},1,0,1.0,2.0,Weibull,0.6,0.66"]
        fields = ("text_tokens", "image_tokens", "image_count") if model == "mm-image" else ("input_tokens",)
        lengths += [f"{model},0,0,{field},100,{quantiles}" for field in (*fields, "output_tokens")]
    for name, lines in ((WINDOWS_FILE, windows), (LENGTHS_FILE, lengths)):
        with gzip.open(directory / name, "wt") as fh:
            fh.write("\n".join(lines) + "\n")
    return directory


def assert_well_formed(requests: list[Request]) -> None:
    assert requests, "the workload produced no requests"
    assert [r.id for r in requests] == list(range(len(requests)))
    assert all(a.arrival <= b.arrival for a, b in itertools.pairwise(requests))
    assert all(r.prompt_len >= 1 and r.output_len >= 1 and r.arrival >= 0 for r in requests)


def test_registry_lists_every_required_name_with_a_one_line_description() -> None:
    listing = list_workloads()
    assert set(REQUIRED) <= set(listing)
    for name, description in listing.items():
        assert description.strip() and "\n" not in description, name


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_workload_yields_a_well_formed_seeded_stream(
    name: str, traces_dir: Path, toy_servegen_dir: Path
) -> None:
    trace_dir = toy_servegen_dir if name.startswith("servegen-") else traces_dir
    first = list(make_workload(name, rng=np.random.default_rng(11), n_requests=200, trace_dir=trace_dir))
    assert len(first) == 200
    assert_well_formed(first)
    again = list(make_workload(name, rng=np.random.default_rng(11), n_requests=200, trace_dir=trace_dir))
    assert first == again


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_workloads_need_no_trace_files(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACE_DIR_ENV, str(tmp_path))
    requests = list(make_workload(name, rng=np.random.default_rng(0), rate=4.0, duration=50.0))
    assert_well_formed(requests)
    assert requests[-1].arrival < 50.0
    assert len(requests) == pytest.approx(200, rel=0.3)


def test_synthetic_sharegpt_approximates_the_sharegpt_statistics() -> None:
    requests = list(make_workload("synthetic-sharegpt", rng=np.random.default_rng(1), n_requests=30_000, rate=2.0))
    prompts = np.array([r.prompt_len for r in requests])
    outputs = np.array([r.output_len for r in requests])
    assert prompts.mean() == pytest.approx(2340, rel=0.04)
    assert np.median(prompts) == pytest.approx(1730, rel=0.04)
    assert outputs.mean() == pytest.approx(439, rel=0.03)
    assert np.median(outputs) == pytest.approx(415, rel=0.03)
    assert (prompts + outputs).max() <= 8192
    assert mean_rate(requests) == pytest.approx(2.0, rel=0.05)


def test_wait_two_type_workload_labels_types_in_proportion() -> None:
    requests = list(make_workload("wait-p512d20-p512d50", rng=np.random.default_rng(2), n_requests=5_000, rate=20.0))
    labels = np.array([r.type_label for r in requests])
    outputs = np.array([r.output_len for r in requests])
    assert np.all(outputs[labels == 0] == 20) and np.all(outputs[labels == 1] == 50)
    assert np.mean(labels == 1) == pytest.approx(0.3, abs=0.03)


def test_default_synthetic_size_is_bounded() -> None:
    assert len(list(make_workload("wait-p512d20", rng=np.random.default_rng(0)))) == 1000


def test_trace_workload_rate_rescales_and_duration_windows(traces_dir: Path) -> None:
    kwargs = {"rng": np.random.default_rng(0), "trace_dir": traces_dir}
    scaled = list(make_workload("azure-conv-2023", rate=2.0, **kwargs))  # type: ignore[arg-type]
    assert len(scaled) == 19_366
    assert mean_rate(scaled) == pytest.approx(2.0)
    window = list(make_workload("vtc-lmsys", duration=60.0, **kwargs))  # type: ignore[arg-type]
    assert all(r.arrival < 60.0 for r in window)
    assert 100 < len(window) < 250


def test_length_workload_options_filter_and_keep_file_order(traces_dir: Path) -> None:
    requests = list(
        make_workload(
            "sharegpt", rng=np.random.default_rng(0), n_requests=5, trace_dir=traces_dir, shuffle=False, max_total=1100
        )
    )
    expected = [pair for pair in iter_length_stats(traces_dir / SHAREGPT_FILE) if sum(pair) <= 1100][:5]
    assert [(r.prompt_len, r.output_len) for r in requests] == expected


def test_real_servegen_workload_through_the_registry(traces_dir: Path) -> None:
    requests = list(
        make_workload(
            "servegen-deepseek-r1",
            rng=np.random.default_rng(3),
            rate=5.0,
            duration=300.0,
            trace_dir=traces_dir,
            top_k=5,
        )
    )
    assert_well_formed(requests)
    assert len(requests) / 300.0 == pytest.approx(5.0, rel=0.35)
    assert len({r.client for r in requests}) <= 5


def test_missing_trace_file_error_names_the_searched_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"searched.*{tmp_path}.*{TRACE_DIR_ENV}"):
        make_workload("vtc-lmsys", rng=np.random.default_rng(0), trace_dir=tmp_path)


def test_trace_dir_comes_from_the_environment_variable(
    traces_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_DIR_ENV, str(traces_dir))
    assert len(list(make_workload("vtc-lmsys", rng=np.random.default_rng(0)))) == 1500
    monkeypatch.setenv(TRACE_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        make_workload("vtc-lmsys", rng=np.random.default_rng(0))
    assert trace_search_dirs(traces_dir) == [traces_dir]


def test_default_search_looks_next_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_DIR_ENV, raising=False)
    repo_root = Path(__file__).resolve().parents[2]
    assert repo_root.parent / "shared" / "traces" in trace_search_dirs()


def test_unknown_names_and_options_are_rejected() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown workload 'nope'.*synthetic-sharegpt"):
        make_workload("nope", rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"unknown option.*'colour'"):
        make_workload("synthetic-sharegpt", rng=np.random.default_rng(0), colour="red")
    with pytest.raises(ValueError, match=r"rate=-1"):
        make_workload("synthetic-sharegpt", rng=np.random.default_rng(0), rate=-1)
