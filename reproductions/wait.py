"""WAIT / Nested WAIT (Ao, Luo, Simchi-Levi, Wang, arXiv 2504.11320 v4, §6): mean latency vs λ against vLLM, Sarathi.

Llama-2-7B on an A100-80GB (the default roofline; the paper used Vidur's A100 profile) with a KV cap of
8,560 blocks × 16 = 136,960 ≈ 1.37e5 tokens; every policy restarts evicted requests from scratch
(``restart_mode="full"``, spec §13.4). Baselines as the authors' Vidur presets: vLLM V0 (batch 128, 4,096 tokens)
and Sarathi (τ = 512). WAIT's cap ``tl`` (and Nested WAIT's) is calibrated per rate on a small grid, taking the best
mean latency, as the paper calibrates tl per rate. Panels:

* p512d20 (single type), roofline cost model: vLLM, Sarathi, WAIT, WAIT-no-wait;
* 0.7·p512d20 + 0.3·p512d50, roofline: vLLM, Sarathi, Nested WAIT (segments 1–20, 21–50; η = 0.05);
* both workloads again under the ``affine_kv`` model fitted to the same roofline (the paper's Eq. 1 world).

Run: ``python -m reproductions.wait [--quick]``; see ``docs/reproductions.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.compare.sweep import SweepSpec, run_point
from llmsched_gym.costs import make_cost_model
from reproductions._common import (
    Stopwatch,
    engine_config,
    finish,
    parallel_map,
    parse_args,
    print_table,
    pyplot,
    save_figure,
    write_csv,
)

COST_KWARGS: dict[str, Any] = {"gpu": "A100-80GB", "model": "Llama-2-7B", "preset": "cuda-graphs"}
KV_BLOCKS = 8_560
NESTED = {"boundaries": (20, 50), "output_dist": ((20, 0.7), (50, 0.3)), "eta": 0.05}
Policy = tuple[str, dict[str, Any], tuple[int, ...]]
"""(scheduler, params, tl grid; empty for untuned baselines)."""
BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "vLLM": ("vllm-v0", {"max_num_seqs": 128, "max_num_batched_tokens": 4096}),
    "Sarathi": ("sarathi", {"chunk_size": 512}),
}


@dataclass(frozen=True, slots=True)
class Panel:
    """One latency-vs-λ experiment.

    Attributes:
        name: Panel key.
        workload: Registered workload.
        cost: Cost-model name (fitted from the A100 roofline when ``affine_kv``).
        rates: Arrival rates (req/s).
        policies: Label → (scheduler, params, tl grid or empty for untuned baselines).
    """

    name: str
    workload: str
    cost: str
    rates: tuple[float, ...]
    policies: dict[str, Policy]


def panels(quick: bool) -> list[Panel]:
    """The experiments (two small ones with ``quick``)."""
    tl: tuple[int, ...] = (21, 42) if quick else (21, 42, 63)
    nested_tl: tuple[int, ...] = (31, 45, 61)  # calibration grid for Nested WAIT (paper: tl per rate)
    base: dict[str, Policy] = {k: (s, p, ()) for k, (s, p) in BASELINES.items()}
    single: dict[str, Policy] = {**base, "WAIT": ("wait", {}, tl), "WAIT-no-wait": ("wait", {"hold": "none"}, tl)}
    nested: dict[str, Policy] = {**base, "Nested WAIT": ("nested-wait", NESTED, nested_tl)}
    affine: dict[str, Policy] = {**base, "WAIT": ("wait", {}, (*tl, 84))}
    if quick:
        return [Panel("p512d20", "wait-p512d20", "roofline", (12.0, 20.0, 22.0), single),
                Panel("two-type", "wait-p512d20-p512d50", "roofline", (12.0, 20.0), nested)]  # fmt: skip
    return [
        Panel("p512d20", "wait-p512d20", "roofline", (12.0, 16.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0), single),
        Panel("two-type", "wait-p512d20-p512d50", "roofline", (12.0, 16.0, 18.0, 19.0, 20.0, 21.0, 22.0), nested),
        Panel("p512d20-affine", "wait-p512d20", "affine_kv", (30.0, 45.0, 55.0, 60.0, 65.0, 70.0), affine),
        Panel("two-type-affine", "wait-p512d20-p512d50", "affine_kv", (30.0, 40.0, 45.0, 50.0, 55.0, 60.0), nested),
    ]


def cost_kwargs(cost: str) -> dict[str, Any]:
    """Cost-model arguments; ``affine_kv`` gets d0/d1 fitted once from the A100 roofline."""
    if cost != "affine_kv":
        return dict(COST_KWARGS)
    fit = make_cost_model("affine_kv", **COST_KWARGS)
    return {"d0": fit.d0, "d1": fit.d1}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Task:
    """One simulation: a policy variant of a panel at a rate and seed."""

    panel: str
    workload: str
    cost: str
    cost_kwargs: dict[str, Any]
    label: str
    scheduler: str
    params: dict[str, Any]
    tl: int | None
    rate: float
    seed: int
    n: int


def run_task(task: Task) -> dict[str, Any]:
    """Run one point with :func:`~llmsched_gym.compare.sweep.run_point`; all policies restart fully."""
    params = dict(task.params)
    if task.scheduler in ("wait", "nested-wait"):
        params.update(restart_mode="full", tl=task.tl)
    engine = engine_config(KV_BLOCKS, restart_mode="full")
    spec = SweepSpec((task.scheduler,), (task.rate,), (task.seed,), task.workload, {"n_requests": task.n},
                     task.cost, task.cost_kwargs, engine, {task.scheduler: params})  # fmt: skip
    s = run_point(spec, task.scheduler, task.rate, task.seed).summary
    return {"panel": task.panel, "label": task.label, "tl": task.tl, "rate": task.rate, "seed": task.seed,
            "mean_e2e_s": s.e2e["mean"], "p99_e2e_s": s.e2e["p99"], "mean_ttft_s": s.ttft["mean"],
            "evictions": s.preemptions, "requests": s.requests}  # fmt: skip


def tasks_for(panel: Panel, seeds: Sequence[int], n: int) -> list[Task]:
    """Every (policy, tl, rate, seed) of a panel."""
    kw = cost_kwargs(panel.cost)
    out = []
    for label, (sched, params, grid) in panel.policies.items():
        for tl in grid or (None,):
            out += [Task(panel.name, panel.workload, panel.cost, kw, label, sched, params, tl, r, s, n)
                    for r in panel.rates for s in seeds]  # fmt: skip
    return out


def best_rows(results: list[dict[str, Any]], panel: Panel) -> list[dict[str, Any]]:
    """Per rate: each policy's seed-mean latency at its best tl, and WAIT's gap to Sarathi."""
    rows = []
    for rate in panel.rates:
        row: dict[str, Any] = {"rate": rate}
        for label in panel.policies:
            by_tl: dict[Any, list[dict[str, Any]]] = {}
            for r in results:
                if r["panel"] == panel.name and r["label"] == label and r["rate"] == rate:
                    by_tl.setdefault(r["tl"], []).append(r)
            tl, runs = min(by_tl.items(), key=lambda kv: np.mean([r["mean_e2e_s"] for r in kv[1]]))
            row[label] = float(np.mean([r["mean_e2e_s"] for r in runs]))
            if tl is not None:
                row[f"{label} tl"] = tl
            row[f"{label} restarts"] = float(np.mean([r["evictions"] / r["requests"] for r in runs]))
        wait_label = next(k for k in panel.policies if k not in BASELINES)
        row[f"{wait_label} vs Sarathi"] = row[wait_label] / row["Sarathi"] - 1.0
        rows.append(row)
    return rows


def plot(tables: dict[str, list[dict[str, Any]]], chosen: list[Panel], out: Path) -> None:
    """Mean end-to-end latency against λ, one panel per experiment."""
    plt = pyplot()
    cols = min(len(chosen), 2)
    rows_n = -(-len(chosen) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.2 * cols, 3.4 * rows_n), squeeze=False)
    for ax, panel in zip(axes.flat, chosen, strict=False):
        rows = tables[panel.name]
        for label in panel.policies:
            ax.plot([r["rate"] for r in rows], [r[label] for r in rows], marker="o", label=label)
        ax.set(xlabel="λ (req/s)", ylabel="mean E2E latency (s)", yscale="log", title=f"{panel.name} ({panel.cost})")
        ax.legend(fontsize=7)
    save_figure(fig, out, "wait_latency.png")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the panels, write JSON/CSV/PNG and print the tables."""
    args = parse_args("WAIT / Nested WAIT vs vLLM and Sarathi: mean latency against arrival rate", argv)
    clock = Stopwatch()
    chosen = panels(args.quick)
    seeds, n = ((0,), 1000) if args.quick else ((0, 1), 2000)
    tasks = [t for p in chosen for t in tasks_for(p, seeds, n)]
    results = parallel_map(run_task, tasks, args.jobs)
    tables = {p.name: best_rows(results, p) for p in chosen}
    for p in chosen:
        write_csv(args.out, f"wait_{p.name}.csv", tables[p.name])
        print_table(f"{p.name} ({p.workload}, {p.cost}): mean E2E latency (s), best tl per rate", tables[p.name])
    plot(tables, chosen, args.out)
    setup = {**COST_KWARGS, "kv_blocks": KV_BLOCKS, "kv_tokens": KV_BLOCKS * 16, "requests": n, "seeds": seeds,
             "affine_kv": cost_kwargs("affine_kv")}  # fmt: skip
    finish(args.out, "wait.json", {"setup": setup, "tables": tables, "runs": results}, clock, args.quick)


if __name__ == "__main__":
    main()
