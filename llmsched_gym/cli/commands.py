"""Subcommand definitions and handlers."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from llmsched_gym.cli.output import summary_table, write_per_request
from llmsched_gym.cli.setup import add_setup_arguments, build_scheduler, build_setup, build_workload
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.metrics.capacity import SLOCriterion, capacity_search
from llmsched_gym.metrics.summary import RunSummary, summarize
from llmsched_gym.simulate import simulate

Sub = Any  # argparse's private _SubParsersAction


def add_simulate(sub: Sub) -> None:
    """``llmsched simulate``."""
    p = sub.add_parser(
        "simulate",
        help="simulate one scheduler on one workload and print a summary",
        description="Simulate a workload with a scheduler on a GPU cost model; print a summary table.",
    )
    p.add_argument("--scheduler", default="sarathi", help="registered scheduler (see `llmsched schedulers`)")
    add_setup_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="write per-request metrics to this .csv or .json file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``simulate``."""
    setup = build_setup(args)
    scheduler = build_scheduler(args.scheduler, setup.scheduler_params)
    res = simulate(
        build_workload(args),
        scheduler,
        SimulatedRunner(setup.cost_model),
        setup.engine_config,
        seed=args.seed,
        progress=not args.no_progress,
        total=args.n_requests,
    )
    summary = summarize(res)
    print(json.dumps(summary.as_dict(), indent=1) if args.json else summary_table([summary]))
    if args.out is not None:
        write_per_request(res, args.out)
        print(f"per-request results written to {args.out}")
    return 0


def add_capacity(sub: Sub) -> None:
    """``llmsched capacity``."""
    p = sub.add_parser(
        "capacity",
        help="largest arrival rate meeting an SLO (bisection, as Sarathi-Serve)",
        description="Bisect the Poisson arrival rate for the largest one whose run meets the SLO criterion.",
    )
    p.add_argument("--scheduler", default="sarathi", help="registered scheduler")
    add_setup_arguments(p)
    p.add_argument("--p99-tbt", type=float, default=None, help="max P99 TBT in s (e.g. 0.1 strict)")
    p.add_argument("--median-sched-delay", type=float, default=2.0, help="max median scheduling delay (default 2)")
    p.add_argument("--median-ttft", type=float, default=None, help="max median TTFT in s (SLAI uses 0.5)")
    p.add_argument("--lo", type=float, default=0.1, help="a rate expected to meet the SLO (default 0.1)")
    p.add_argument("--hi", type=float, default=10.0, help="a rate expected to violate it (default 10)")
    p.add_argument("--rel-tol", type=float, default=0.02, help="relative precision (default 0.02)")
    p.set_defaults(handler=run_capacity)


def run_capacity(args: argparse.Namespace) -> int:
    """Handler of ``capacity``."""
    setup = build_setup(args, sample_dt=None)
    if args.n_requests is None and args.duration is None:
        args.n_requests = 2048
    criterion = SLOCriterion(args.p99_tbt, args.median_sched_delay, args.median_ttft)

    def run_at(rate: float) -> RunSummary:
        sched = build_scheduler(args.scheduler, setup.scheduler_params)
        res = simulate(build_workload(args, rate=rate), sched, SimulatedRunner(setup.cost_model), setup.engine_config)
        summary = summarize(res)
        print(
            f"  rate {rate:8.3f} req/s: p99 TBT {summary.tbt['p99']:.4f} s, median delay "
            f"{summary.scheduling_delay['p50']:.3f} s, median TTFT {summary.ttft['p50']:.3f} s"
        )
        return summary

    result = capacity_search(run_at, criterion, lo=args.lo, hi=args.hi, rel_tol=args.rel_tol)
    print(f"capacity of {args.scheduler} on {args.workload}: {result.capacity:.3f} req/s ({len(result.trials)} trials)")
    return 0


def add_listings(sub: Sub) -> None:
    """``llmsched schedulers | workloads | cost-models``."""
    for name, help_text in (
        ("schedulers", "list registered schedulers"),
        ("workloads", "list named workloads"),
        ("cost-models", "list cost models"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        p.set_defaults(handler=run_listing, listing=name)


def run_listing(args: argparse.Namespace) -> int:
    """Handler of the listing subcommands."""
    if args.listing == "schedulers":
        from llmsched_gym.schedulers import list_schedulers

        items = list_schedulers()
    elif args.listing == "workloads":
        from llmsched_gym.workloads import list_workloads

        items = list_workloads()
    else:
        from llmsched_gym.costs import list_cost_models

        items = list_cost_models()
    width = max(len(k) for k in items)
    for key, description in items.items():
        print(f"{key.ljust(width)}  {description}")
    return 0


def add_optional(sub: Sub) -> None:
    """Subcommands whose code lives in optional packages (the live executor, compare, calibrate)."""
    if importlib.util.find_spec("llmsched_gym.executor.cli") is not None:
        from llmsched_gym.executor.cli import add_live_parser

        add_live_parser(sub)
    if importlib.util.find_spec("llmsched_gym.compare") is not None:
        from llmsched_gym.compare.cli import add_compare_parser

        add_compare_parser(sub)
    if importlib.util.find_spec("gpu_calibration") is not None:
        importlib.import_module("gpu_calibration.cli").add_calibrate_parser(sub)


__all__ = ["summary_table"]
