"""``llmsched simulate`` and ``llmsched capacity``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from llmsched_gym.cli.arguments import add_setup_arguments, scheduler_name
from llmsched_gym.cli.report import announce_compile, check_served, note, rejection_text
from llmsched_gym.cli.setup import (
    build_scheduler,
    build_setup,
    draw_requests,
    run_record,
    scheduler_params,
    workload_choice,
)
from llmsched_gym.cli.validate import integer, number, out_file

if TYPE_CHECKING:  # the handlers import the engine when they run, so that building the parser stays cheap
    from llmsched_gym.metrics.capacity import SLOCriterion
    from llmsched_gym.metrics.summary import RunSummary

Sub = Any  # argparse's private _SubParsersAction
CAPACITY_REQUESTS = 2048
NO_SLO_NOTE = "SLO attainment: the workload sets no SLO targets; give them with --slo-ttft S and/or --slo-tbt S"


def add_simulate(sub: Sub) -> None:
    """``llmsched simulate``."""
    p = sub.add_parser(
        "simulate",
        help="simulate one scheduler on one workload and print a summary",
        description="Simulate a workload (named, or your own --trace file) with a scheduler on a GPU cost model; "
        "print a summary table headed by what was run.",
    )
    p.add_argument(
        "--scheduler",
        type=scheduler_name,
        default="sarathi",
        help="registered scheduler (see `llmsched schedulers`; default sarathi)",
    )
    add_setup_arguments(p)
    p.add_argument(
        "--out",
        type=out_file(".csv", ".json"),
        default=None,
        metavar="PATH",
        help="write per-request metrics (and the run record) to this .csv or .json file",
    )
    p.add_argument("--json", action="store_true", help="print the summary (and the run record) as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``simulate``: validate everything, run, print, write, then report rejections."""
    from llmsched_gym.cli.output import dumps, summary_table, write_per_request
    from llmsched_gym.core.runner import SimulatedRunner
    from llmsched_gym.metrics.summary import summarize
    from llmsched_gym.simulate import simulate

    choice = workload_choice(args)
    setup = build_setup(args)
    params = scheduler_params(args.scheduler, args.param)
    scheduler = build_scheduler(args.scheduler, params)
    requests = draw_requests(choice)
    record = run_record("simulate", args.scheduler, params, choice, len(requests), setup)
    announce_compile()
    res = simulate(
        requests,
        scheduler,
        SimulatedRunner(setup.cost_model),
        setup.engine_config,
        seed=args.seed,
        progress=not args.no_progress,
    )
    summary = summarize(res)
    if args.json:
        print(dumps({"run": record.as_dict(), **summary.as_dict()}))
    else:
        print(f"run: {record.line()}")
        print(summary_table([summary]))
        if "all" not in summary.slo_attainment:
            print(NO_SLO_NOTE)
    if args.out is not None:
        write_per_request(res, args.out, record)
        note(f"per-request results written to {args.out}")
    check_served(res, summary)
    return 0


def add_capacity(sub: Sub) -> None:
    """``llmsched capacity``."""
    p = sub.add_parser(
        "capacity",
        help="largest arrival rate meeting an SLO (bisection, as Sarathi-Serve)",
        description="Bisect the arrival rate for the largest one whose run meets the SLO criterion "
        f"(each trial draws --n-requests requests, default {CAPACITY_REQUESTS}).",
    )
    p.add_argument("--scheduler", type=scheduler_name, default="sarathi", help="registered scheduler")
    add_setup_arguments(p)
    positive = number(low=0, low_open=True, what="seconds")
    p.add_argument("--p99-tbt", type=positive, default=None, help="max P99 TBT in s (e.g. 0.1 strict)")
    p.add_argument("--median-sched-delay", type=positive, default=2.0, help="max median scheduling delay (default 2)")
    p.add_argument("--median-ttft", type=positive, default=None, help="max median TTFT in s (SLAI uses 0.5)")
    rate = number(low=0, low_open=True, what="requests/s")
    p.add_argument("--lo", type=rate, default=0.1, help="a rate expected to meet the SLO (default 0.1)")
    p.add_argument("--hi", type=rate, default=10.0, help="a rate expected to violate it (default 10)")
    p.add_argument(
        "--rel-tol", type=number(low=0, low_open=True, high=1.0), default=0.02, help="relative precision (default 0.02)"
    )
    p.add_argument("--max-trials", type=integer(low=2), default=20, help="most simulations (default 20)")
    p.set_defaults(handler=run_capacity)


def criterion_text(criterion: SLOCriterion) -> str:
    """``"P99 TBT <= 0.1 s, median scheduling delay <= 2 s"``."""
    parts = [
        (criterion.p99_tbt_s, "P99 TBT"),
        (criterion.median_sched_delay_s, "median scheduling delay"),
        (criterion.median_ttft_s, "median TTFT"),
    ]
    text = ", ".join(f"{name} <= {value:g} s" for value, name in parts if value is not None)
    return (text or "no latency limit") + ", every request served"


def run_capacity(args: argparse.Namespace) -> int:
    """Handler of ``capacity``."""
    from llmsched_gym.cli.validate import UsageError
    from llmsched_gym.metrics.capacity import SLOCriterion, capacity_search

    if not args.lo < args.hi:
        raise UsageError(f"--lo {args.lo:g}", f"must be below --hi {args.hi:g}")
    choice = workload_choice(args, n_requests=CAPACITY_REQUESTS)
    setup = build_setup(args, sample_dt=None)
    params = scheduler_params(args.scheduler, args.param)
    build_scheduler(args.scheduler, params)
    criterion = SLOCriterion(args.p99_tbt, args.median_sched_delay, args.median_ttft)
    record = run_record("capacity", args.scheduler, params, choice, choice.n_requests or 0, setup)
    print(f"run: {record.line()}")
    print(f"SLO: {criterion_text(criterion)}; bisecting the rate in [{args.lo:g}, {args.hi:g}] req/s")
    announce_compile()
    trial = _Trial(args, choice, setup, params, criterion)
    result = capacity_search(trial, criterion, lo=args.lo, hi=args.hi, rel_tol=args.rel_tol,
                             max_trials=args.max_trials)  # fmt: skip
    print(f"capacity of {args.scheduler} on {choice.name}: {result.capacity:.3f} req/s "
          f"(SLO: {criterion_text(criterion)}; {choice.n_requests} requests per trial, seed {choice.seed}, "
          f"{len(result.trials)} trials)")  # fmt: skip
    if result.capacity == 0.0:
        note(f"warning: even --lo {args.lo:g} req/s misses the SLO; lower --lo or relax the SLO")
    return 0


class _Trial:
    """One capacity trial: simulate at a rate, print a line, warn once about rejections."""

    def __init__(self, args: argparse.Namespace, choice: Any, setup: Any, params: dict[str, Any],
                 criterion: SLOCriterion) -> None:  # fmt: skip
        self.args, self.choice, self.setup, self.params, self.criterion = args, choice, setup, params, criterion
        self.warned = False

    def __call__(self, rate: float) -> RunSummary:
        from llmsched_gym.core.runner import SimulatedRunner
        from llmsched_gym.metrics.summary import summarize
        from llmsched_gym.simulate import simulate

        a = self.args
        res = simulate(draw_requests(self.choice, rate=rate), build_scheduler(a.scheduler, self.params),
                       SimulatedRunner(self.setup.cost_model), self.setup.engine_config, seed=a.seed)  # fmt: skip
        s = summarize(res)
        verdict = "meets" if self.criterion.holds(s) else "misses"
        print(f"  rate {rate:8.3f} req/s: p99 TBT {s.tbt['p99']:.4f} s, median delay {s.scheduling_delay['p50']:.3f}"
              f" s, median TTFT {s.ttft['p50']:.3f} s: {verdict} the SLO", flush=True)  # fmt: skip
        text = rejection_text(res, s)
        if text is not None and not self.warned:
            self.warned = True
            note(f"warning: at rate {rate:g}: {text} (a run with rejections never meets the SLO)")
        return s


def add_optional(sub: Sub) -> None:
    """Subcommands whose code lives in optional modules (one registration line each)."""
    import importlib.util

    for module, register in (
        ("llmsched_gym.executor.cli", "add_live_parser"),
        ("llmsched_gym.compare.cli", "add_compare_parser"),
        ("gpu_calibration.cli", "add_calibrate_parser"),
    ):
        if importlib.util.find_spec(module) is not None:
            getattr(importlib.import_module(module), register)(sub)


__all__ = ["add_capacity", "add_optional", "add_simulate", "check_served"]
