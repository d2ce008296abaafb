"""MC-SF (Jaillet et al., arXiv 2502.07115 v5): memory-constrained shortest-first vs FCFS with a memory check.

Two experiments:

1. LMSYS-like short requests (prompt mean 40.6 / median 11, output mean 85.3 / median 45, lognormal), Poisson at
   λ = 50/s (high demand) and 10/s (low), Llama-2-70B TP-2 on A100-80GB (roofline) with M = 16,492 tokens
   (1,030 blocks of 16). MC-SF (exact predictions, α = 0; and ±50 % noisy predictions with α = 0.1) against
   MC-Benchmark (the same check in arrival order), vLLM V0 as the paper's FCFS-threshold baseline and α-protection
   β-clearing (α = 0.21, β = 0.2). Mean end-to-end latency against the number of requests N. Every policy restarts
   evicted requests from scratch (``restart_mode="full"``).
2. The synthetic ratio to the hindsight optimum (:mod:`baselines.mcsf_opt`) in ``unit`` cost mode: M ~ U[30, 50],
   s ~ U[1, 5], o ~ U[1, M − s], all arrivals at t = 0 (model 1) or Poisson at a rate drawn from U[0.5, 1.5]
   (model 2, integer rounds); n = 6 requests per instance (the exact solver's range; the paper uses 40–60).

Run: ``python -m reproductions.mcsf [--quick]``; see ``docs/reproductions.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from baselines.mcsf_opt import TinyInstance, solve_optimal
from llmsched_gym.core.request import Request
from llmsched_gym.errors import LivelockError
from llmsched_gym.metrics.summary import summarize
from llmsched_gym.workloads import ClientSpec, IndependentLengths, LognormalTokens, PoissonArrivals
from reproductions._common import (
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

COST_KWARGS: dict[str, Any] = {"gpu": "A100-80GB", "model": "Llama-2-70B", "tp": 2, "preset": "cuda-graphs"}
KV_BLOCKS = 1_030
FULL = {"restart_mode": "full"}
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "MC-SF": ("mcsf", FULL),
    "MC-SF noisy ±50%": ("mcsf", {**FULL, "predictor": "noisy", "eps": 0.5, "alpha": 0.1}),
    "MC-Benchmark": ("mc-benchmark", FULL),
    "vLLM FCFS": ("vllm-fcfs-threshold", {}),
    "α-β-clearing": ("alpha-beta-clear", {**FULL, "alpha": 0.21, "beta": 0.2}),
}


def lmsys_like() -> IndependentLengths:
    """Lognormal prompt/output lengths with the paper's LMSYS-Chat-1M means and medians (each ≤ 2,000 tokens)."""
    prompt = LognormalTokens.from_mean_median(40.62, 11, max_value=2000)
    return IndependentLengths(prompt, LognormalTokens.from_mean_median(85.32, 45, max_value=2000))


@dataclass(frozen=True, slots=True)
class RealTask:
    """One run of the LMSYS-like experiment."""

    label: str
    rate: float
    n: int
    seed: int = 0


def run_real(task: RealTask) -> dict[str, Any]:
    """Mean E2E latency of one policy on the first ``n`` requests at ``rate`` (``nan`` if it livelocks)."""
    scheduler, params = POLICIES[task.label]
    requests = ClientSpec(PoissonArrivals(task.rate), lmsys_like()).generate(np.random.default_rng(task.seed), n=task.n)
    setup = Setup("roofline", COST_KWARGS, engine_config(KV_BLOCKS, restart_mode="full"))
    out = {"label": task.label, "rate": task.rate, "n": task.n}
    try:
        s = summarize(run_requests(requests, scheduler, params, setup, seed=task.seed))
    except LivelockError:
        return {**out, "mean_e2e_s": math.nan, "evictions": -1, "livelock": True}
    return {**out, "mean_e2e_s": s.e2e["mean"], "evictions": s.preemptions, "livelock": False}


def tiny_instance(seed: int, n: int, online: bool) -> TinyInstance:
    """A §13.5 synthetic instance (model 2 arrivals are floors of Poisson times)."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(30, 51))
    s = tuple(int(rng.integers(1, 6)) for _ in range(n))
    o = tuple(int(rng.integers(1, m - x + 1)) for x in s)
    arrivals = None
    if online:
        times = np.cumsum(rng.exponential(1.0 / rng.uniform(0.5, 1.5), n))
        arrivals = tuple(int(t) for t in np.floor(times - times[0]))
    return TinyInstance(s, o, m, arrivals)


def run_ratio(task: tuple[int, int, bool]) -> dict[str, Any]:
    """MC-SF's and MC-Benchmark's total latency over the hindsight optimum on one tiny instance."""
    seed, n, online = task
    inst = tiny_instance(seed, n, online)
    opt = solve_optimal(inst).total_latency
    arrivals = inst.arrivals or (0,) * n
    reqs = [Request(i, float(a), s + 1, o) for i, (a, s, o) in enumerate(zip(arrivals, inst.prompts, inst.outputs,
                                                                            strict=True))]  # fmt: skip
    setup = Setup("unit", {}, engine_config(inst.memory, block_size=1, watermark=0.0))
    out: dict[str, Any] = {"seed": seed, "online": online, "opt": opt}
    for name in ("mcsf", "mc-benchmark"):
        c = run_requests(reqs, name, {}, setup).columns
        out[name] = float((c["finish"] - c["arrival"]).sum()) / opt
        out[f"{name}_evictions"] = int(c["preemptions"].sum())
    return out


def ratio_rows(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean / worst ratio and optimal count per arrival model and policy."""
    rows = []
    for online in (False, True):
        sub = [r for r in ratios if r["online"] == online]
        for name in ("mcsf", "mc-benchmark"):
            x = np.array([r[name] for r in sub])
            rows.append({"arrivals": "Poisson" if online else "all at t=0", "policy": name, "trials": len(sub),
                         "mean_ratio": float(x.mean()), "worst_ratio": float(x.max()),
                         "optimal": int((x < 1 + 1e-9).sum()),
                         "evictions": sum(r[f"{name}_evictions"] for r in sub)})  # fmt: skip
    return rows


def latency_rows(real: list[dict[str, Any]], rates: Sequence[float], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Mean latency per (rate, N) and policy, MC-SF's change against MC-Benchmark, and per-1000 growth slopes."""
    rows = []
    for rate in rates:
        for n in sizes:
            at = {r["label"]: r for r in real if r["rate"] == rate and r["n"] == n}
            row: dict[str, Any] = {"rate": rate, "N": n, **{k: at[k]["mean_e2e_s"] for k in POLICIES}}
            row["MC-SF vs MC-Benchmark"] = row["MC-SF"] / row["MC-Benchmark"] - 1.0
            row["MC-SF evictions"] = at["MC-SF"]["evictions"]
            row["noisy evictions"] = at["MC-SF noisy ±50%"]["evictions"]
            rows.append(row)
        sub = [r for r in rows if r["rate"] == rate]
        for k in POLICIES:
            y = np.array([r[k] for r in sub])
            slope = np.polyfit(np.array(sizes) / 1000.0, y, 1)[0] if np.all(np.isfinite(y)) else math.nan
            for r in sub:
                r[f"{k} slope/1000"] = float(slope)
    return rows


def plot(rows: list[dict[str, Any]], ratios: list[dict[str, Any]], rates: Sequence[float], out: Path) -> None:
    """Mean latency against N per rate, and the ratio CDFs against the optimum."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rates) + 1, figsize=(4.2 * (len(rates) + 1), 3.6))
    for ax, rate in zip(axes, rates, strict=False):
        sub = [r for r in rows if r["rate"] == rate]
        for k in POLICIES:
            ax.plot([r["N"] for r in sub], [r[k] for r in sub], marker="o", label=k)
        ax.set(xlabel="requests N", ylabel="mean E2E latency (s)", title=f"λ = {rate:g}/s, Llama-2-70B 2×A100")
    axes[0].legend(fontsize=7)
    for online in (False, True):
        x = np.sort([r["mcsf"] for r in ratios if r["online"] == online])
        axes[-1].step(x, np.arange(1, x.size + 1) / x.size, label="Poisson" if online else "all at t=0")
    axes[-1].set(xlabel="MC-SF latency / optimum", ylabel="CDF", title="tiny instances (unit time)")
    axes[-1].legend(fontsize=7)
    save_figure(fig, out, "mcsf.png")


def main(argv: Sequence[str] | None = None) -> None:
    """Run both experiments, write JSON/CSV/PNG and print the tables."""
    args = parse_args("MC-SF vs FCFS with a memory check; ratio to the hindsight optimum", argv)
    clock = Stopwatch()
    rates = (50.0, 10.0)
    sizes = (500, 1000, 2000) if args.quick else (1000, 2500, 5000, 10000)
    trials, n_tiny = (12, 5) if args.quick else (100, 6)
    tasks: list[Any] = [RealTask(k, r, n) for n in sorted(sizes, reverse=True) for r in rates for k in POLICIES]
    tasks += [(seed, n_tiny, online) for online in (False, True) for seed in range(trials)]
    done = parallel_map(_dispatch, tasks, args.jobs)
    real = [d for d in done if "label" in d]
    ratios = [d for d in done if "opt" in d]
    rows, r_rows = latency_rows(real, rates, sizes), ratio_rows(ratios)
    write_csv(args.out, "mcsf_latency.csv", rows)
    write_csv(args.out, "mcsf_ratio.csv", r_rows)
    plot(rows, ratios, rates, args.out)
    print_table("LMSYS-like: mean E2E latency (s) against N", [{k: v for k, v in r.items() if "slope" not in k}
                                                               for r in rows])  # fmt: skip
    slopes = [{"rate": rate, **{k: next(r[f"{k} slope/1000"] for r in rows if r["rate"] == rate) for k in POLICIES}}
              for rate in rates]  # fmt: skip
    print_table("latency growth (s per 1000 requests)", slopes)
    print_table(f"ratio to the hindsight optimum (n = {n_tiny}, unit time)", r_rows)
    setup = {**COST_KWARGS, "kv_blocks": KV_BLOCKS, "kv_tokens": KV_BLOCKS * 16, "sizes": sizes, "tiny_n": n_tiny}
    results = {"setup": setup, "latency": rows, "slopes": slopes, "ratio": r_rows, "ratio_trials": ratios}
    finish(args.out, "mcsf.json", results, clock, args.quick)


def _dispatch(task: Any) -> dict[str, Any]:
    return run_real(task) if isinstance(task, RealTask) else run_ratio(task)


if __name__ == "__main__":
    main()
