"""VTC (Sheng et al., "Fairness in Serving Large Language Models", OSDI'24): fair service by virtual token counters.

Four checks, on the S-LoRA/LightLLM runtime model of the artifact (KV pool 10,000 tokens, block size 1, every
client sends its true output length as ``max_tokens``), Llama-2-7B on an A10G (roofline with A10 datasheet numbers):

1. Fig. 3: two backlogged clients at 90 and 180 requests/min (256/256 tokens): accumulated service difference over
   time, VTC bounded, FCFS growing.
2. Thm 4.4: the difference over any interval in which both are backlogged stays within 2U,
   U = max(w_p·L_input, w_q·M) with M the pool's tokens.
3. App. B.1: weighted VTC with weights 1:2:3:4 serves four backlogged clients ≈ 1:2:3:4.
4. Table 2: the 27-client LMSYS trace (``vtc-lmsys``): service difference and throughput of FCFS, LCF, VTC,
   VTC-predict, VTC-oracle and RPM(5/20/30).

Run: ``python -m reproductions.vtc [--quick]``; see ``docs/reproductions.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.compare.sweep import SweepPoint, SweepSpec, run_sweep
from llmsched_gym.metrics.fairness import service_series
from llmsched_gym.metrics.summary import summarize
from llmsched_gym.workloads import ClientMix, ClientSpec, DeterministicArrivals, IndependentLengths, make_workload
from reproductions._common import (
    A10G,
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

MODEL = "Llama-2-7B"
POOL_TOKENS = 10_000
W_P, W_Q = 1.0, 2.0
OVERLOAD = ("fcfs-vtc-runtime", "lcf", "vtc", "vtc-chunked")
TRACE = ("fcfs-vtc-runtime", "lcf", "vtc", "vtc-predict", "vtc-oracle", "rpm-5", "rpm-20", "rpm-30")
LABELS = {"fcfs-vtc-runtime": "FCFS", "lcf": "LCF", "vtc": "VTC", "vtc-predict": "VTC (predict)",
          "vtc-oracle": "VTC (oracle)", "rpm-5": "RPM(5)", "rpm-20": "RPM(20)", "rpm-30": "RPM(30)",
          "vtc-chunked": "VTC-chunked", "vtc-weighted": "weighted VTC"}  # fmt: skip


def setup(pool: int = POOL_TOKENS) -> Setup:
    """Roofline of Llama-2-7B on the A10G; token-granular pool, no watermark, per-client service every second."""
    cost = {"gpu": A10G, "model": MODEL, "preset": "cuda-graphs"}
    return Setup("roofline", cost, engine_config(pool, block_size=1, watermark=0.0, sample_dt=1.0))


def params(name: str) -> dict[str, Any]:
    """The artifact's clients send the true output length as max_tokens (runtime family only)."""
    return {} if name == "vtc-chunked" else {"max_tokens_from": "oracle"}


def bound_2u(pool: int, max_prompt: int) -> float:
    """2U with U = max(w_p·L_input, w_q·M) (spec §9.6)."""
    return 2.0 * max(W_P * max_prompt, W_Q * pool)


def clients_mix(per_minute: Sequence[float], weights: Sequence[float], length: int) -> ClientMix:
    """Evenly spaced arrivals per client, fixed prompt and output length, per-client weights."""
    specs = [ClientSpec(DeterministicArrivals(r / 60.0), IndependentLengths.fixed(length, length), weight=w)
             for r, w in zip(per_minute, weights, strict=True)]  # fmt: skip
    return ClientMix(tuple(specs))


def backlogged_spread(diff: np.ndarray, both: np.ndarray) -> float:
    """The largest |D(t2) − D(t1)| over pairs of samples inside one stretch where both clients stay backlogged."""
    best, start = 0.0, None
    for i, flag in enumerate([*both.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            seg = diff[start:i]
            best, start = max(best, float(seg.max() - seg.min())), None
    return best


@dataclass(frozen=True, slots=True)
class Backlog:
    """A synthetic overload run: clients at fixed rates with 256/256-token requests.

    Attributes:
        scheduler: Registered scheduler.
        duration: Arrivals stop at this time (s); every request is then served to completion.
        pool: KV pool in tokens.
        per_minute: Each client's request rate (requests/min).
        weights: Each client's weight.
    """

    scheduler: str
    duration: float
    pool: int = POOL_TOKENS
    per_minute: tuple[float, ...] = (90.0, 180.0)
    weights: tuple[float, ...] = (1.0, 1.0)


def _serve(task: Backlog) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    mix = clients_mix(task.per_minute, task.weights, 256)
    requests = mix.generate(np.random.default_rng(0), duration=task.duration)
    res = run_requests(requests, task.scheduler, params(task.scheduler), setup(task.pool))
    times, service, backlog = service_series(res)
    keep = times <= task.duration
    return times[keep], service[keep], backlog[keep], summarize(res).output_tok_per_s


def run_overload(task: Backlog) -> dict[str, Any]:
    """Fig. 3: accumulated service difference of two clients and its spread over backlogged stretches."""
    times, service, backlog, tok_s = _serve(task)
    diff = service[:, 1] - service[:, 0]
    both = backlog[:, 0] & backlog[:, 1]
    return {"scheduler": task.scheduler, "times": times, "diff": diff, "spread": backlogged_spread(diff, both),
            "bound_2u": bound_2u(task.pool, 256), "both_backlogged": float(both.mean()),
            "output_tok_per_s": tok_s}  # fmt: skip


def run_weighted(task: Backlog) -> dict[str, Any]:
    """App. B.1: service of every client over the stretch after 20 % of the run where all stay backlogged."""
    times, service, backlog, _ = _serve(task)
    window = (times >= 0.2 * task.duration) & backlog.all(axis=1)
    got = service[window][-1] - service[window][0]
    return {"scheduler": task.scheduler, "service": got, "share": got / got.sum(), "ratio_to_client_1": got / got[0],
            "window_s": [float(times[window][0]), float(times[window][-1])]}  # fmt: skip


def paper_service_diff(point: SweepPoint, demand: dict[str, np.ndarray], horizon: float) -> np.ndarray:
    """VTC §5.1 service difference at 100 ticks over the trace: Σ_j min(max_k s_k − s_j, |d_j − s_j|).

    s_j and d_j are client j's service and demand rates (w_p = 1, w_q = 2) over a 60-s window centred on the tick:
    service from the engine's cumulative per-client samples, demand from the requests that arrived in the window.
    """
    ticks = np.linspace(0.0, horizon, 100, endpoint=False)
    lo, hi = ticks - 30.0, ticks + 30.0
    cum = point.client_service
    served = np.stack([np.interp(hi, point.sample_times, cum[:, j]) - np.interp(lo, point.sample_times, cum[:, j])
                       for j in range(cum.shape[1])], axis=1) / 60.0  # fmt: skip
    clients, arrival, cost = demand["client"], demand["arrival"], demand["cost"]
    asked = np.zeros_like(served)
    for j in range(served.shape[1]):
        mine = clients == j
        cum_cost = np.concatenate([[0.0], np.cumsum(cost[mine])])
        idx = np.searchsorted(arrival[mine], hi, side="right"), np.searchsorted(arrival[mine], lo, side="left")
        asked[:, j] = (cum_cost[idx[0]] - cum_cost[idx[1]]) / 60.0
    gap = np.minimum(served.max(axis=1, keepdims=True) - served, np.abs(asked - served))
    return np.asarray(gap.sum(axis=1))


def trace_table(jobs: int) -> list[dict[str, Any]]:
    """Table 2 on ``vtc-lmsys``: both service-difference measures, Jain's index, throughput, TTFT."""
    env = setup()
    spec = SweepSpec(TRACE, (None,), (0,), "vtc-lmsys", {}, env.cost, env.cost_kwargs, env.engine,
                     {s: params(s) for s in TRACE})  # fmt: skip
    reqs = list(make_workload("vtc-lmsys", rng=np.random.default_rng(0)))
    demand = {"client": np.array([r.client for r in reqs]), "arrival": np.array([r.arrival for r in reqs]),
              "cost": np.array([W_P * r.prompt_len + W_Q * r.output_len for r in reqs], dtype=float)}  # fmt: skip
    horizon = float(demand["arrival"].max())
    rows = []
    for p in run_sweep(spec, jobs=jobs):
        d, s = paper_service_diff(p, demand, horizon), p.summary
        fair = s.fairness
        assert fair is not None
        rows.append({"scheduler": LABELS[p.scheduler], "max_diff": float(d.max()), "avg_diff": float(d.mean()),
                     "diff_var": float(d.var()), "window_spread_max": fair.max_service_diff / 60.0,
                     "window_spread_mean": fair.mean_service_diff / 60.0, "jain": fair.jain_index,
                     "out_tok_s": s.output_tok_per_s, "in_out_tok_s": s.output_tok_per_s + s.input_tok_per_s,
                     "finished": s.finished, "rejected": s.rejected, "ttft_p50_s": s.ttft["p50"]})  # fmt: skip
    return rows


def plot_overload(runs: list[dict[str, Any]], out: Path) -> None:
    """Accumulated service difference (client 2 − client 1) over time, with the ±2U band."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in runs:
        for ax in axes:
            ax.plot(r["times"], r["diff"], label=LABELS[r["scheduler"]])
    bound = runs[0]["bound_2u"]
    for ax in axes:
        ax.axhline(bound, ls="--", lw=0.8, color="grey")
        ax.axhline(-bound, ls="--", lw=0.8, color="grey")
        ax.set(xlabel="time (s)", ylabel="service(client 2) − service(client 1)")
    axes[0].set(title="two backlogged clients (90 vs 180 req/min)")
    axes[1].set(ylim=(-1.5 * bound, 1.5 * bound), title="zoom: ±2U band (dashed)")
    axes[0].legend(fontsize=8)
    save_figure(fig, out, "vtc_overload.png")


def plot_trace(rows: list[dict[str, Any]], out: Path) -> None:
    """Average service difference against throughput on the real trace."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for r in rows:
        ax.scatter(r["in_out_tok_s"], r["avg_diff"])
        ax.annotate(r["scheduler"], (r["in_out_tok_s"], r["avg_diff"]), fontsize=8)
    ax.set(xlabel="throughput, input + output (tok/s)", ylabel="avg service difference", title="vtc-lmsys trace")
    save_figure(fig, out, "vtc_trace.png")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the four checks, write JSON/CSV/PNG and print the tables."""
    args = parse_args("VTC: service difference under overload, the 2U bound, weights and the real trace", argv)
    clock = Stopwatch()
    duration = 150.0 if args.quick else 500.0
    weights = (1.0, 2.0, 3.0, 4.0)
    tasks = [Backlog(s, duration) for s in OVERLOAD]
    tasks += [Backlog(s, duration * 0.6, per_minute=(120.0,) * 4, weights=weights) for s in ("vtc-weighted", "vtc")]
    done = parallel_map(_dispatch, tasks, args.jobs)
    overload, weighted = done[: len(OVERLOAD)], done[len(OVERLOAD) :]
    bound_rows = [{"scheduler": LABELS[r["scheduler"]], "max_backlogged_diff": r["spread"], "2U": r["bound_2u"],
                   "within_2U": r["spread"] <= r["bound_2u"], "final_diff": float(r["diff"][-1]),
                   "out_tok_s": r["output_tok_per_s"]} for r in overload]  # fmt: skip
    weight_rows = [{"scheduler": LABELS[r["scheduler"]], **{f"client{i + 1}": float(x) for i, x in
                    enumerate(r["ratio_to_client_1"])}, **{f"share{i + 1}": float(x) for i, x in
                    enumerate(r["share"])}} for r in weighted]  # fmt: skip
    trace = trace_table(args.jobs)
    write_csv(args.out, "vtc_bound.csv", bound_rows)
    write_csv(args.out, "vtc_weighted.csv", weight_rows)
    write_csv(args.out, "vtc_trace.csv", trace)
    plot_overload(overload, args.out)
    plot_trace(trace, args.out)
    print_table("two backlogged clients: max service difference over backlogged intervals vs 2U", bound_rows)
    print_table("weighted VTC (weights 1:2:3:4): service relative to client 1", weight_rows)
    print_table("vtc-lmsys (27 clients): service difference (VTC §5.1 measure) and throughput", trace)
    series = [{"scheduler": r["scheduler"], "times": r["times"][::5], "diff": r["diff"][::5]} for r in overload]
    results = {"setup": {"model": MODEL, "gpu": A10G.name, "pool_tokens": POOL_TOKENS, "duration_s": duration},
               "bound": bound_rows, "weighted": weight_rows, "weighted_runs": weighted, "trace": trace,
               "overload_series": series}  # fmt: skip
    finish(args.out, "vtc.json", results, clock, args.quick)


def _dispatch(task: Backlog) -> dict[str, Any]:
    return run_overload(task) if len(task.per_minute) == 2 else run_weighted(task)


if __name__ == "__main__":
    main()
