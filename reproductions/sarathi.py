"""Sarathi-Serve (Agrawal et al., OSDI'24, §5.1): capacity under strict and relaxed TBT SLOs vs vLLM V0 and Orca.

Capacity = the largest Poisson QPS whose P99 TBT ≤ SLO and whose median scheduling delay ≤ 2 s (bisection,
:func:`~llmsched_gym.metrics.capacity.capacity_search`, each trial a fresh trace of ``n`` requests). SLOs follow the
paper's rule: 5× (strict) and 25× (relaxed) the decode iteration time at batch 32 with 4k context, computed from the
cost model of the chosen GPU/model (Mistral-7B on an H100 here; the paper used one A100).

Run: ``python -m reproductions.sarathi [--quick]``; see ``docs/reproductions.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmsched_gym.compare.sweep import SweepPoint, SweepSpec, run_point, run_sweep
from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.costs import make_cost_model
from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks
from llmsched_gym.metrics.capacity import SLOCriterion, capacity_search
from llmsched_gym.metrics.summary import RunSummary
from reproductions._common import (
    Stopwatch,
    engine_config,
    finish,
    parallel_map,
    parse_args,
    print_table,
    progress,
    pyplot,
    save_figure,
    write_csv,
)

GPU, MODEL = "H100-80GB", "Mistral-7B"
COST_KWARGS: dict[str, Any] = {"gpu": GPU, "model": MODEL, "preset": "cuda-graphs"}
DATASETS = {"sharegpt": 8192, "arxiv": 16384}
"""Workload name → context cap (the paper's max_model_len; totals above it are removed, spec §1.5)."""
SLO_FACTORS = {"strict": 5.0, "relaxed": 25.0}
SCHEDULERS = ("vllm-v0", "orca", "sarathi")
MAX_SCHED_DELAY_S = 2.0


def decode_reference_s() -> float:
    """Decode iteration time at batch 32 with 4k context (the paper's SLO unit) on the chosen GPU/model."""
    cost = make_cost_model("roofline", **COST_KWARGS)
    return cost.iteration_time(BatchSummary.of(n_decodes=32, decode_context_sum=32 * 4096))


def slo_seconds() -> dict[str, float]:
    """The strict and relaxed P99 TBT SLOs (seconds)."""
    base = decode_reference_s()
    return {kind: factor * base for kind, factor in SLO_FACTORS.items()}


def scheduler_params(name: str, slo: str, max_len: int) -> dict[str, Any]:
    """The paper's presets (spec §3, §5, §6): vLLM batch 128, Orca batch 16, Sarathi τ = 512 / 2048.

    Args:
        name: Scheduler name.
        slo: ``"strict"`` or ``"relaxed"`` (Sarathi's token budget depends on it).
        max_len: The dataset's context cap.

    Returns:
        Constructor overrides.
    """
    if name == "vllm-v0":
        return {"max_num_seqs": 128, "max_model_len": max_len, "max_num_batched_tokens": max_len}
    if name == "orca":
        return {"max_num_seqs": 16, "max_model_len": max_len}
    return {"chunk_size": 512 if slo == "strict" else 2048, "max_num_seqs": 128, "max_model_len": max_len}


def engine() -> EngineConfig:
    """KV pool of the model on the GPU at 90 % memory utilisation, 16-token blocks, 1 % watermark."""
    return engine_config(kv_capacity_blocks(get_gpu(GPU), get_model(MODEL)))


def spec_for(dataset: str, slo: str, schedulers: Sequence[str], rates: Sequence[float], n: int) -> SweepSpec:
    """A sweep spec of the given schedulers with their presets for ``dataset`` (context cap 8192 if unlisted)."""
    params = {s: scheduler_params(s, slo, DATASETS.get(dataset, 8192)) for s in schedulers}
    return SweepSpec(tuple(schedulers), tuple(rates), (0,), dataset, {"n_requests": n}, "roofline", COST_KWARGS,
                     engine(), params)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CapacityTask:
    """One capacity search: a scheduler on a dataset under one SLO."""

    dataset: str
    slo: str
    slo_s: float
    scheduler: str
    n: int


def run_capacity(task: CapacityTask) -> dict[str, Any]:
    """Bisect the capacity of one task; every trial's P99 TBT and median scheduling delay are kept."""
    spec = spec_for(task.dataset, task.slo, (task.scheduler,), (1.0,), task.n)
    trials: list[dict[str, float]] = []

    def run_at(rate: float) -> RunSummary:
        s = run_point(spec, task.scheduler, rate, 0).summary
        trials.append({"rate": rate, "p99_tbt_s": s.tbt["p99"], "median_sched_delay_s": s.scheduling_delay["p50"]})
        return s

    criterion = SLOCriterion(p99_tbt_s=task.slo_s, median_sched_delay_s=MAX_SCHED_DELAY_S)
    result = capacity_search(run_at, criterion, lo=0.25, hi=4.0, rel_tol=0.03)
    for trial, (_, holds) in zip(trials, result.trials, strict=True):
        trial["holds"] = holds
    return {"dataset": task.dataset, "slo": task.slo, "slo_s": task.slo_s, "scheduler": task.scheduler,
            "capacity": result.capacity, "trials": trials}  # fmt: skip


def capacity_table(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, SLO): each scheduler's capacity and Sarathi's ratios to vLLM and Orca."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        for slo in SLO_FACTORS:
            cap = {r["scheduler"]: r["capacity"] for r in results if r["dataset"] == dataset and r["slo"] == slo}
            if not cap:
                continue
            slo_s = next(r["slo_s"] for r in results if r["dataset"] == dataset and r["slo"] == slo)
            row: dict[str, Any] = {"dataset": dataset, "slo": slo, "p99_tbt_slo_s": slo_s}
            row.update({f"{s}_qps": cap[s] for s in SCHEDULERS})
            row["sarathi/vllm"] = cap["sarathi"] / cap["vllm-v0"] if cap["vllm-v0"] else float("inf")
            row["sarathi/orca"] = cap["sarathi"] / cap["orca"] if cap["orca"] else float("inf")
            rows.append(row)
    return rows


def plot_capacity(rows: list[dict[str, Any]], out: Path) -> None:
    """Grouped bars: capacity per scheduler for every (dataset, SLO)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(SCHEDULERS)
    for i, s in enumerate(SCHEDULERS):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        ax.bar(xs, [r[f"{s}_qps"] for r in rows], width, label=s)
    ax.set_xticks(range(len(rows)), [f"{r['dataset']}\n{r['slo']} ({r['p99_tbt_slo_s'] * 1e3:.0f} ms)" for r in rows])
    ax.set(ylabel="capacity (QPS)", title=f"Capacity, {MODEL} on {GPU} (P99 TBT SLO, median delay ≤ 2 s)")
    ax.legend(fontsize=8)
    save_figure(fig, out, "sarathi_capacity.png")


def plot_load(points: list[SweepPoint], slos: dict[str, float], out: Path) -> None:
    """P99 TBT and median scheduling delay against load (sharegpt, strict presets), with the SLO lines."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for s in SCHEDULERS:
        pts = sorted((p for p in points if p.scheduler == s), key=lambda p: p.rate or 0.0)
        rates = [p.rate for p in pts]
        axes[0].plot(rates, [p.summary.tbt["p99"] for p in pts], marker="o", label=s)
        axes[1].plot(rates, [p.summary.scheduling_delay["p50"] for p in pts], marker="o", label=s)
    for kind, value in slos.items():
        axes[0].axhline(value, ls="--", lw=0.8, color="grey")
        axes[0].text(0.3, value * 1.05, f"{kind} SLO", fontsize=7, color="grey")
    axes[1].axhline(MAX_SCHED_DELAY_S, ls="--", lw=0.8, color="grey")
    axes[0].set(xlabel="QPS", ylabel="P99 TBT (s)", yscale="log", title="sharegpt: P99 TBT")
    axes[1].set(xlabel="QPS", ylabel="median scheduling delay (s)", yscale="symlog", title="scheduling delay")
    axes[0].legend(fontsize=8)
    save_figure(fig, out, "sarathi_load.png")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the capacity searches and the load sweep, write JSON/CSV/PNG and print the tables."""
    args = parse_args("Sarathi-Serve capacity vs vLLM V0 and Orca under strict/relaxed TBT SLOs", argv)
    clock = Stopwatch()
    n = 256 if args.quick else 2048
    datasets = ("sharegpt",) if args.quick else tuple(DATASETS)
    slos = slo_seconds()
    tasks = [CapacityTask(d, k, slos[k], s, n) for d in datasets for k in SLO_FACTORS for s in SCHEDULERS]
    results = parallel_map(run_capacity, tasks, args.jobs)
    rows = capacity_table(results)
    rates = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0) if args.quick else (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    spec = spec_for("sharegpt", "strict", SCHEDULERS, rates, min(n, 1024))
    with progress(len(spec.grid()), "load sweep") as bar:
        points = run_sweep(spec, jobs=args.jobs, on_done=lambda _p: bar.update(1))
    load = [{"scheduler": p.scheduler, "rate": p.rate, "p99_tbt_s": p.summary.tbt["p99"],
             "median_sched_delay_s": p.summary.scheduling_delay["p50"], "median_ttft_s": p.summary.ttft["p50"]}
            for p in points]  # fmt: skip
    write_csv(args.out, "sarathi_capacity.csv", rows)
    write_csv(args.out, "sarathi_load.csv", load)
    plot_capacity(rows, args.out)
    plot_load(points, slos, args.out)
    print(f"decode iteration (batch 32, 4k context) on {MODEL}/{GPU}: {decode_reference_s() * 1e3:.2f} ms")
    print_table("capacity (QPS)", rows)
    setup = {"gpu": GPU, "model": MODEL, "kv_blocks": engine().kv.num_blocks, "requests_per_trial": n,
             "decode_reference_s": decode_reference_s(), "slo_s": slos}  # fmt: skip
    finish(args.out, "sarathi.json", {"setup": setup, "capacity": rows, "searches": results, "load": load}, clock,
           args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
