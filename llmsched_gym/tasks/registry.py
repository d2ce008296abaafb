"""The registered tasks. Changing anything that moves a score bumps the task's version."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from llmsched_gym.core.request import SLOClass
from llmsched_gym.costs import make_cost_model
from llmsched_gym.env.episodes import WorkloadSpec
from llmsched_gym.env.events import DecisionEvents
from llmsched_gym.tasks.task import EpisodeSet, Task

PAYING = SLOClass("paying", ttft_s=1.0, tbt_s=0.1)
FREE = SLOClass("free", ttft_s=3.0, tbt_s=0.5)
TWO_CLASSES = (PAYING, FREE)

COST = make_cost_model("roofline", gpu="H100-80GB", model="Llama-2-7B", preset="cuda-graphs")
"""The tasks' iteration costs: the roofline fitted to this project's executor on an H100 with CUDA graphs (pinned,
so that a change of the library's default cost model does not move task scores)."""

HOLD = DecisionEvents(arrival=False, completion=False, kv_shortfall=False, max_iterations=100)
"""Decisions of the tasks: every 100 engine iterations (about 20-40 decisions per episode). A priority rule adapts
to every arrival and completion by itself; re-deciding it at each event makes the credit of a decision too fine to
learn (measured: PPO moved nowhere at ~370 decisions per episode and learned at ~28, docs/results.md)."""

VALIDATION_SEEDS = tuple(range(500_000, 500_020))
TEST_SEEDS = tuple(range(900_000, 900_030))


def _slo_spec(name: str, **kwargs: object) -> WorkloadSpec:
    return WorkloadSpec(name=name, slo=TWO_CLASSES, slo_probs=(0.3, 0.7), **kwargs)  # type: ignore[arg-type]


_SLO_TRAIN = _slo_spec("synthetic-sharegpt", rate=4.0, n_requests=200)
SLO_GOODPUT = Task(
    name="slo-goodput",
    version=0,
    summary="SLO goodput near capacity with two TBT classes (SLAI's paying 0.1 s / free 0.5 s), ShareGPT lengths",
    objective="goodput",
    train=EpisodeSet((_SLO_TRAIN,), (0.75, 1.25)),
    validation=EpisodeSet((_SLO_TRAIN,), (0.75, 1.25), VALIDATION_SEEDS),
    test=EpisodeSet((_slo_spec("sharegpt", rate=4.0, n_requests=200),), (0.75, 1.25), TEST_SEEDS),
    baselines=(
        "vllm-v1",
        "vllm-v0",
        "orca",
        "sarathi",
        "sarathi-spf",
        "sarathi-edf",
        "slai",
        "slai-spf-dynamic",
        "slai-spf-fixed",
        "slai-fcfs-fixed",
        "rad-hybrid",
    ),
    base="sarathi-spf",
    env=(("events", HOLD), ("cost_model", COST)),
)

_KV_TRAIN = WorkloadSpec(
    name="synthetic-sharegpt", rate=2.5, n_requests=200, slo=(), predict_eps=0.2, options=(("max_total", 4096),)
)
KV_LATENCY = Task(
    name="kv-latency",
    version=0,
    summary="Mean latency under KV-memory pressure (WAIT / MC-SF regime): 1,200-block pool, predicted lengths",
    objective="latency",
    train=EpisodeSet((_KV_TRAIN,), (0.75, 1.25)),
    validation=EpisodeSet((_KV_TRAIN,), (0.75, 1.25), VALIDATION_SEEDS),
    test=EpisodeSet(
        (
            WorkloadSpec(
                name="sharegpt", rate=2.5, n_requests=200, slo=(), predict_eps=0.2, options=(("max_total", 4096),)
            ),
        ),
        (0.75, 1.25),
        TEST_SEEDS,
    ),
    baselines=(
        "vllm-v1",
        "vllm-v0",
        "sarathi",
        "sarathi-spf",
        "sarathi-sjf",
        "mcsf",
        "mc-benchmark",
        "alpha-greedy",
        "alpha-beta-clear",
    ),
    base="sarathi-spf",
    env=(("num_blocks", 1200), ("events", HOLD), ("cost_model", COST)),
    reward_kwargs=(("scale", 0.01),),
)

_FAIR = {"name": "vtc-lmsys", "rate": None, "n_requests": None, "window_s": 120.0, "slo": ()}
FAIR_SHARE = Task(
    name="fair-share",
    version=0,
    summary="Fair service among backlogged clients (VTC's windowed service difference), LMSYS trace, 800 blocks",
    objective="service_gap",
    train=EpisodeSet((WorkloadSpec(**_FAIR, window_range=(0.0, 0.7)),), (6.0, 10.0)),  # type: ignore[arg-type]
    validation=EpisodeSet(
        (WorkloadSpec(**_FAIR, window_range=(0.0, 0.7)),),  # type: ignore[arg-type]
        (6.0, 10.0),
        VALIDATION_SEEDS,
    ),
    test=EpisodeSet((WorkloadSpec(**_FAIR, window_range=(0.7, 1.0)),), (6.0, 10.0), TEST_SEEDS),  # type: ignore[arg-type]
    baselines=(
        "vllm-v1",
        "sarathi",
        "sarathi-lcs",
        "vtc",
        "vtc-chunked",
        "lcf",
        "fcfs-vtc-runtime",
        "vtc-predict",
        "rpm-20",
    ),
    base="sarathi-lcs",
    env=(("num_blocks", 800), ("events", HOLD), ("cost_model", COST)),
)

_AZURE = {"name": "azure-conv-2023", "rate": None, "n_requests": 200, "window_s": 60.0, "slo": TWO_CLASSES}
BURSTY_GOODPUT = Task(
    name="bursty-goodput",
    version=0,
    summary="SLO goodput under bursty real arrivals: Azure conversation trace windows (test: later windows)",
    objective="goodput",
    train=EpisodeSet(
        (WorkloadSpec(**_AZURE, slo_probs=(0.3, 0.7), window_range=(0.0, 0.7)),),  # type: ignore[arg-type]
        (3.0, 5.0),
    ),
    validation=EpisodeSet(
        (WorkloadSpec(**_AZURE, slo_probs=(0.3, 0.7), window_range=(0.0, 0.7)),),  # type: ignore[arg-type]
        (3.0, 5.0),
        VALIDATION_SEEDS,
    ),
    test=EpisodeSet(
        (WorkloadSpec(**_AZURE, slo_probs=(0.3, 0.7), window_range=(0.7, 1.0)),),  # type: ignore[arg-type]
        (3.0, 5.0),
        TEST_SEEDS,
    ),
    baselines=(
        "vllm-v1",
        "vllm-v0",
        "sarathi",
        "sarathi-spf",
        "sarathi-edf",
        "slai",
        "slai-spf-dynamic",
        "rad-hybrid",
    ),
    base="sarathi-spf",
    env=(("events", HOLD), ("cost_model", COST)),
)

TASKS: Mapping[str, Task] = MappingProxyType({t.name: t for t in (SLO_GOODPUT, KV_LATENCY, FAIR_SHARE, BURSTY_GOODPUT)})
"""Every registered task by name."""
