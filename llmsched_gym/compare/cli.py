"""``llmsched compare``: schedulers × load sweep × seeds on one workload, with table, CSV and plots."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmsched_gym.cli.setup import add_setup_arguments, build_setup, scheduler_params
from llmsched_gym.compare import plots
from llmsched_gym.compare.sweep import SweepPoint, SweepSpec, run_sweep
from llmsched_gym.metrics.capacity import SLOCriterion

CSV_FIELDS = (
    "scheduler", "rate", "seed", "finished", "ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99", "e2e_p50",
    "sched_delay_p50", "output_tok_per_s", "goodput_req_per_s", "preemptions", "kv_util_mean", "wall_s",
)  # fmt: skip


def add_compare_parser(sub: Any) -> None:
    """Register ``llmsched compare``."""
    p = sub.add_parser(
        "compare",
        help="compare schedulers over a load sweep: table, CSV and PNG plots",
        description="Run several schedulers on the same arrival sequences over a load sweep and seeds.",
    )
    p.add_argument("--schedulers", default="vllm-v1,sarathi", help="comma-separated registered names")
    p.add_argument("--rates", default=None, help="comma-separated arrival rates (default: the single --rate)")
    p.add_argument("--seeds", default="0", help="comma-separated workload seeds (replications)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--out-dir", type=Path, default=Path("compare-out"), help="folder for CSV and PNGs")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--p99-tbt", type=float, default=None, help="SLO for the capacity bars: max P99 TBT (s)")
    p.add_argument("--median-ttft", type=float, default=None, help="SLO for the capacity bars: max median TTFT")
    p.add_argument("--median-sched-delay", type=float, default=2.0, help="SLO: max median scheduling delay")
    add_setup_arguments(p)
    p.set_defaults(handler=run_compare)


def _floats(text: str | None) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()] if text else []


def sweep_capacity(points: Sequence[SweepPoint], criterion: SLOCriterion) -> dict[str, float]:
    """Per scheduler, the largest swept rate at which every seed, and every lower rate, meets the SLO."""
    out: dict[str, float] = {}
    for name in dict.fromkeys(p.scheduler for p in points):
        best = 0.0
        for rate in sorted({p.rate for p in points if p.scheduler == name and p.rate is not None}):
            if not all(criterion.holds(p.summary) for p in points if p.scheduler == name and p.rate == rate):
                break
            best = rate
        out[name] = best
    return out


def _row(p: SweepPoint) -> list[object]:
    s = p.summary
    return [p.scheduler, p.rate, p.seed, s.finished, s.ttft["p50"], s.ttft["p99"], s.tbt["p50"], s.tbt["p99"],
            s.e2e["p50"], s.scheduling_delay["p50"], s.output_tok_per_s, s.goodput_req_per_s, s.preemptions,
            s.kv_util_mean, s.wall_s]  # fmt: skip


def _print_table(points: Sequence[SweepPoint]) -> None:
    print(f"{'scheduler':<18}{'rate':>8}{'seed':>6}{'TTFT p50':>10}{'TBT p99':>10}{'E2E p50':>10}{'tok/s':>9}")
    for p in points:
        s = p.summary
        rate = "trace" if p.rate is None else f"{p.rate:.3g}"
        print(f"{p.scheduler:<18}{rate:>8}{p.seed:>6}{s.ttft['p50']:>10.3f}{s.tbt['p99']:>10.4f}"
              f"{s.e2e['p50']:>10.3f}{s.output_tok_per_s:>9.0f}")  # fmt: skip


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``compare``."""
    setup = build_setup(args)
    names = tuple(n.strip() for n in args.schedulers.split(",") if n.strip())
    rates: tuple[float | None, ...] = tuple(_floats(args.rates)) or (args.rate,)
    params = scheduler_params(args.param)
    spec = SweepSpec(
        schedulers=names, rates=rates, seeds=tuple(int(s) for s in args.seeds.split(",")), workload=args.workload,
        workload_kwargs={
            "n_requests": args.n_requests, "duration": args.duration, "trace_dir": args.trace_dir,
            **scheduler_params(args.workload_option, "--workload-option"),
        },
        cost_model=args.cost_model, cost_kwargs={"gpu": args.gpu, "model": args.model, "tp": args.tp},
        engine=setup.engine_config, scheduler_params={n: params for n in names},
    )  # fmt: skip
    total = len(names) * len(rates) * len(spec.seeds)
    from tqdm import tqdm

    with tqdm(total=total, unit="run", desc="compare") as bar:
        points = run_sweep(spec, jobs=args.jobs, on_done=lambda _p: bar.update(1))
    _print_table(points)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with (args.out_dir / "compare.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_FIELDS)
        writer.writerows(_row(p) for p in points)
    criterion = SLOCriterion(args.p99_tbt, args.median_sched_delay, args.median_ttft)
    capacity = sweep_capacity(points, criterion)
    print("capacity (largest swept rate meeting the SLO):", {k: v for k, v in capacity.items()})
    if not args.no_plots:
        _plots(points, capacity, args.out_dir)
    print(f"results in {args.out_dir}/")
    return 0


def _plots(points: Sequence[SweepPoint], capacity: dict[str, float], out: Path) -> None:
    swept = len({p.rate for p in points}) > 1
    if swept:
        plots.latency_load(points, out / "latency_load.png")
        plots.capacity_bars(capacity, out / "capacity.png")
    plots.cdfs(points, out / "cdfs.png")
    plots.kv_over_time(points, out / "kv_util.png")
    if any(p.client_service.ndim == 2 and p.client_service.shape[1] > 1 for p in points):
        plots.service_over_time(points, out / "service.png")
