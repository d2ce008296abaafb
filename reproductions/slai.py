"""SLAI (Bari, Hegde, de Veciana, arXiv 2508.01002): lower median TTFT and higher capacity than Sarathi-Serve.

Heterogeneous SLOs as in the paper's runs: 5 % "paying" requests with a 0.1 s TBT target, the rest 0.5 s.
Capacity = the largest Poisson QPS whose median TTFT is below 0.5 s while every class's tail TBT target holds
(P99 of the class's token gaps ≤ its target, i.e. at most 1 % of its gaps violate it) and every request finishes.
Mistral-7B on an RTX 6000 Ada (a datasheet :class:`~llmsched_gym.hardware.GPUSpec` with the default roofline
efficiencies) with SLAI's KV pool of 14,733 blocks, the sharegpt length trace.

Run: ``python -m reproductions.slai [--quick]``; see ``docs/reproductions.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.core.request import SLOClass
from llmsched_gym.core.table import FINISHED
from llmsched_gym.costs import make_cost_model
from llmsched_gym.metrics.capacity import capacity_search
from llmsched_gym.metrics.summary import summarize
from llmsched_gym.simulate import SimulationResult
from llmsched_gym.workloads import make_workload, with_slo_classes
from reproductions._common import (
    RTX_6000_ADA,
    Setup,
    Stopwatch,
    engine_config,
    finish,
    parallel_map,
    parse_args,
    print_table,
    pyplot,
    run_requests,
    save_figure,
    write_csv,
)

MODEL = "Mistral-7B"
KV_BLOCKS = 14_733
CLASSES = (SLOClass("paying", tbt_s=0.1), SLOClass("free", tbt_s=0.5))
CLASS_PROBS = (0.05, 0.95)
TTFT_LIMIT_S = 0.5
PARAMS: dict[str, dict[str, Any]] = {
    "vllm-v0": {"max_num_seqs": 128, "max_model_len": 8192},
    "orca": {"max_num_seqs": 8, "max_model_len": 8192},
    "sarathi": {"chunk_size": 512, "max_num_seqs": 128},
    "sarathi-spf": {"chunk_size": 512, "max_num_seqs": 128},
    "slai": {"token_budget": 512, "max_num_seqs": 128, "limit_total_decodes": 128},
}
"""The SLAI repo's baselines (vLLM batch 128, Orca batch 8, Sarathi FCFS/SPF τ = 512) and the final SLAI config."""


def setup() -> Setup:
    """Roofline of Mistral-7B on the RTX 6000 Ada, SLAI's KV pool."""
    return Setup("roofline", {"gpu": RTX_6000_ADA, "model": MODEL, "preset": "cuda-graphs"}, engine_config(KV_BLOCKS))


def chunk_profile() -> list[dict[str, float]]:
    """Mean iteration time and TTFT of one 2048-token prompt chunked at 64…1024 (SLAI's chunk-size profile)."""
    cost = make_cost_model("roofline", gpu=RTX_6000_ADA, model=MODEL, preset="cuda-graphs")
    rows = []
    for chunk in (64, 128, 256, 384, 512, 768, 1024):
        times = [cost.iteration_time(BatchSummary.of([(min(chunk, 2048 - x), x)])) for x in range(0, 2048, chunk)]
        rows.append({"chunk": chunk, "mean_iteration_ms": 1e3 * float(np.mean(times)), "ttft_ms": 1e3 * sum(times)})
    return rows


@dataclass(frozen=True, slots=True)
class Point:
    """One run: a scheduler at a rate on ``n`` requests."""

    scheduler: str
    rate: float
    n: int
    seed: int = 0


def class_stats(res: SimulationResult) -> dict[str, dict[str, float]]:
    """Per SLO class: the fraction of token gaps over the class target and the median TTFT."""
    c = res.columns
    out = {}
    for idx, name in enumerate(res.slo_names):
        mask = (c["slo_class"] == idx) & (c["state"] == FINISHED)
        gaps = int(c["tbt_n"][mask].sum())
        ttft = (c["first_token"] - c["arrival"])[mask]
        out[name] = {
            "violating_gap_fraction": float(c["tbt_viol"][mask].sum()) / gaps if gaps else 0.0,
            "median_ttft_s": float(np.median(ttft)) if ttft.size else math.nan,
        }
    return out


def run_one(point: Point) -> dict[str, Any]:
    """Simulate one point and reduce it to the numbers the tables and the capacity criterion need."""
    stream = make_workload("sharegpt", rng=np.random.default_rng(point.seed), n_requests=point.n, rate=point.rate)
    requests = with_slo_classes(stream, CLASSES, np.random.default_rng(point.seed + 1), probabilities=CLASS_PROBS)
    res = run_requests(requests, point.scheduler, PARAMS[point.scheduler], setup(), seed=point.seed)
    s = summarize(res)
    return {"scheduler": point.scheduler, "rate": point.rate, "median_ttft_s": s.ttft["p50"],
            "p99_ttft_s": s.ttft["p99"], "p99_tbt_s": s.tbt["p99"], "finished": s.finished, "requests": s.requests,
            "preemptions": s.preemptions, "classes": class_stats(res)}  # fmt: skip


class SLAICriterion:
    """SLAI's capacity rule: median TTFT below the limit, every class's P99 TBT within target, all finished."""

    def holds(self, o: dict[str, Any]) -> bool:
        """Whether a :func:`run_one` outcome meets the rule."""
        tails_ok = all(v["violating_gap_fraction"] <= 0.01 for v in o["classes"].values())
        return bool(o["median_ttft_s"] < TTFT_LIMIT_S and tails_ok and o["finished"] == o["requests"])


def run_capacity(task: tuple[str, int, float]) -> dict[str, Any]:
    """Bisect one scheduler's capacity (``task`` = scheduler, requests per trial, relative tolerance)."""
    scheduler, n, tol = task
    outcomes: list[dict[str, Any]] = []

    def run_at(rate: float) -> Any:
        outcomes.append(run_one(Point(scheduler, rate, n)))
        return outcomes[-1]

    lo = 0.8 if scheduler in ("sarathi", "sarathi-spf", "slai") else 0.1  # vLLM and Orca fail at 0.8
    result = capacity_search(run_at, cast(Any, SLAICriterion()), lo=lo, hi=2.0, rel_tol=tol)
    return {"scheduler": scheduler, "capacity": result.capacity, "trials": outcomes}


def ttft_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median TTFT per rate and scheduler, with SLAI's change against Sarathi-Serve (FCFS)."""
    rows = []
    for rate in sorted({p["rate"] for p in points}):
        at = {p["scheduler"]: p for p in points if p["rate"] == rate}
        row: dict[str, Any] = {"rate": rate}
        row.update({f"{s}_ttft50": at[s]["median_ttft_s"] for s in PARAMS if s in at})
        row["slai_vs_sarathi"] = at["slai"]["median_ttft_s"] / at["sarathi"]["median_ttft_s"] - 1.0
        row["slai_paying_ttft50"] = at["slai"]["classes"]["paying"]["median_ttft_s"]
        rows.append(row)
    return rows


def plot(points: list[dict[str, Any]], caps: dict[str, float], out: Path) -> None:
    """Median TTFT against load (with the 0.5 s line) and the capacity bars."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    for s in dict.fromkeys(p["scheduler"] for p in points):
        pts = sorted((p for p in points if p["scheduler"] == s), key=lambda p: p["rate"])
        axes[0].plot([p["rate"] for p in pts], [p["median_ttft_s"] for p in pts], marker="o", label=s)
    axes[0].axhline(TTFT_LIMIT_S, ls="--", lw=0.8, color="grey")
    axes[0].set(xlabel="QPS", ylabel="median TTFT (s)", yscale="log", title=f"{MODEL}, RTX 6000 Ada, sharegpt")
    axes[0].legend(fontsize=8)
    axes[1].bar(list(caps), list(caps.values()), color="tab:blue")
    axes[1].set(ylabel="capacity (QPS)", title="median TTFT < 0.5 s, class P99 TBT ok")
    axes[1].tick_params(axis="x", rotation=20)
    save_figure(fig, out, "slai.png")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the load sweep and capacity searches, write JSON/CSV/PNG and print the tables."""
    args = parse_args("SLAI vs Sarathi-Serve: median TTFT and capacity under heterogeneous TBT SLOs", argv)
    clock = Stopwatch()
    n = 300 if args.quick else 1000
    rates = (1.2, 1.6) if args.quick else (0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
    names = ("sarathi", "slai") if args.quick else tuple(PARAMS)
    cap_names = ("sarathi", "slai") if args.quick else ("vllm-v0", "orca", "sarathi", "sarathi-spf", "slai")
    tol = 0.06 if args.quick else 0.03
    tasks: list[Any] = [(s, n, tol) for s in cap_names] + [Point(s, r, n) for s in names for r in rates]
    done = parallel_map(_dispatch, sorted(tasks, key=_cost, reverse=True), args.jobs)
    caps = {d["scheduler"]: d["capacity"] for d in done if "capacity" in d}
    points = [d for d in done if "capacity" not in d]
    rows = ttft_rows(points)
    cap_rows = [{"scheduler": s, "capacity_qps": caps[s], "vs_sarathi": caps[s] / caps["sarathi"] - 1.0}
                for s in cap_names]  # fmt: skip
    write_csv(args.out, "slai_ttft.csv", rows)
    write_csv(args.out, "slai_capacity.csv", cap_rows)
    plot(points, {s: caps[s] for s in cap_names}, args.out)
    print_table("chunk-size profile (2048-token prompt)", chunk_profile())
    print_table("median TTFT (s) by load", rows)
    print_table("capacity", cap_rows)
    searches = [d for d in done if "capacity" in d]
    results = {"setup": {"model": MODEL, "gpu": RTX_6000_ADA.name, "kv_blocks": KV_BLOCKS, "requests": n},
               "chunk_profile": chunk_profile(), "ttft": rows, "capacity": cap_rows, "points": points,
               "searches": searches}  # fmt: skip
    finish(args.out, "slai.json", results, clock, args.quick)


def _dispatch(task: Any) -> dict[str, Any]:
    return run_one(task) if isinstance(task, Point) else run_capacity(task)


def _cost(task: Any) -> float:
    """Rough relative cost, to start the slowest tasks first (SLAI plans one iteration per decision)."""
    if isinstance(task, Point):
        return 5.0 if task.scheduler == "slai" else 1.0
    return 40.0 if task[0] == "slai" else 8.0


if __name__ == "__main__":
    main()
