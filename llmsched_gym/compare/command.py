"""``llmsched compare``: schedulers x load sweep x seeds on one workload, with table, CSV and plots.

Every run is validated before the first starts (names, parameters of every scheduler, the workload and its
options, the output folder, matplotlib for the plots); each finished run is appended to ``compare.csv`` at once,
and running the same command again skips the runs already there (see :mod:`llmsched_gym.compare.store`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from collections.abc import Sequence
from typing import Any

from llmsched_gym.cli.metadata import RunRecord
from llmsched_gym.cli.report import announce_compile, note
from llmsched_gym.cli.setup import (
    WorkloadChoice,
    build_scheduler,
    build_setup,
    nothing_asked,
    run_record,
)
from llmsched_gym.cli.validate import CommandError, UsageError, pairs
from llmsched_gym.compare import plots
from llmsched_gym.compare.cli import COMPARE_REQUESTS
from llmsched_gym.compare.store import SweepStore, load_points, record_cells
from llmsched_gym.compare.sweep import Key, SweepPoint, SweepSpec, run_sweep
from llmsched_gym.metrics.capacity import SLOCriterion


def split_params(texts: list[str], names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``--param KEY=V`` applies to every scheduler; ``--param NAME.KEY=V`` to scheduler NAME only."""
    out: dict[str, dict[str, str]] = {name: {} for name in names}
    for key, value in pairs(texts, "--param").items():
        owner, dot, rest = key.partition(".")
        if dot and owner.lower() in (n.lower() for n in names):
            target = next(n for n in names if n.lower() == owner.lower())
            out[target][rest] = value
        elif dot:
            raise UsageError(f"--param {key}={value}", f"{owner!r} is not one of --schedulers {','.join(names)}")
        else:
            for name in names:
                out[name][key] = value
    return out


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


def _print_table(points: Sequence[SweepPoint]) -> None:
    print(f"{'scheduler':<18}{'rate':>8}{'seed':>6}{'done':>7}{'TTFT p50':>10}{'TBT p99':>10}{'E2E p50':>10}"
          f"{'tok/s':>9}")  # fmt: skip
    for p in points:
        s = p.summary
        rate = "default" if p.rate is None else f"{p.rate:.3g}"
        print(f"{p.scheduler:<18}{rate:>8}{p.seed:>6}{s.finished:>7}{s.ttft['p50']:>10.3f}{s.tbt['p99']:>10.4f}"
              f"{s.e2e['p50']:>10.3f}{s.output_tok_per_s:>9.0f}")  # fmt: skip


def _check_plots(args: argparse.Namespace) -> None:
    if not args.no_plots and importlib.util.find_spec("matplotlib") is None:
        raise UsageError(None, "the plots need matplotlib: pip install -e '.[plots]', or pass --no-plots")


def _records(spec: SweepSpec, choice: WorkloadChoice, setup: Any) -> dict[Key, RunRecord]:
    out = {}
    for key in spec.grid():
        scheduler, rate, seed = key
        at = dataclasses.replace(choice, rate=rate, seed=seed)
        out[key] = run_record("compare", scheduler, spec.scheduler_params[scheduler], at, 0, setup)
    return out


def _plan(args: argparse.Namespace) -> tuple[SweepSpec, WorkloadChoice, Any]:
    """Validate every run of the sweep and return its spec."""
    from llmsched_gym.cli.params import coerce_params
    from llmsched_gym.cli.setup import workload_choice

    _check_plots(args)
    choice = workload_choice(args, n_requests=COMPARE_REQUESTS)
    setup = build_setup(args)
    names = tuple(dict.fromkeys(args.schedulers))
    texts = split_params(args.param, names)
    params = {name: coerce_params(name, texts[name]) for name in names}
    for name in names:
        build_scheduler(name, params[name])
    rates: tuple[float | None, ...] = tuple(args.rates) if args.rates else (args.rate,)
    spec = SweepSpec(
        schedulers=names, rates=rates, seeds=tuple(args.seeds), workload=choice.name,
        workload_kwargs={"n_requests": choice.n_requests, "duration": choice.duration, "trace_dir": choice.trace_dir,
                         **choice.options},
        cost_model=args.cost_model, cost_kwargs={"gpu": args.gpu, "model": args.model, "tp": args.tp},
        engine=setup.engine_config, scheduler_params=params, slo=choice.slo,
    )  # fmt: skip
    if next(choice.stream(rate=rates[0], seed=spec.seeds[0]), None) is None:
        raise nothing_asked(choice, rates[0])
    return spec, choice, setup


def run(args: argparse.Namespace) -> int:
    """Run ``llmsched compare`` (validate, resume, run the rest, report)."""
    spec, choice, setup = _plan(args)
    records = _records(spec, choice, setup)
    store = SweepStore(args.out_dir, overwrite=args.overwrite)
    done = store.done(record_cells(r) for r in records.values())
    todo = [key for key in spec.grid() if key not in done]
    if done:
        note(f"resuming: {len(done)} of {len(records)} runs are already in {store.csv}; running the other {len(todo)}")
    if todo:
        announce_compile()
    _run(spec, todo, store, records, choice, args)
    points = load_points(store, spec.grid())
    _report(points, args, choice, records)
    return 0


def _run(spec: SweepSpec, todo: list[Key], store: SweepStore, records: dict[Key, RunRecord],
         choice: WorkloadChoice, args: argparse.Namespace) -> None:  # fmt: skip
    from tqdm import tqdm

    per_run = choice.n_requests if choice.duration is None else None
    total = None if per_run is None else per_run * len(todo)
    bar = tqdm(total=total, unit="req", desc=f"compare: 0/{len(todo)} runs", mininterval=0.5,
               disable=args.no_progress or not todo)  # fmt: skip
    finished: list[SweepPoint] = []

    def keep(point: SweepPoint) -> None:
        key = (point.scheduler, point.rate, point.seed)
        store.add(point, dataclasses.replace(records[key], requests=point.summary.requests))
        finished.append(point)
        bar.set_description(f"compare: {len(finished)}/{len(todo)} runs")

    warm_up(spec, todo, args.jobs)
    with bar:
        run_sweep(spec, jobs=args.jobs, on_done=keep, on_progress=bar.update, skip=set(spec.grid()) - set(todo))


def warm_up(spec: SweepSpec, todo: Sequence[Key], jobs: int) -> None:
    """Compile the kernels once here, on a few requests per scheduler, before the workers start.

    Without it every worker process compiles the same kernels on a fresh install (about twice the CPU time on two
    workers); with it they load them from the cache. Nothing is done when the kernels are cached already.
    """
    from llmsched_gym.compare.sweep import run_point
    from llmsched_gym.jit_cache import uncached_kernel_files

    if jobs <= 1 or len(todo) <= 1 or not uncached_kernel_files():
        return
    note("compiling the kernels once before starting the workers")
    small = dataclasses.replace(spec, workload_kwargs={**spec.workload_kwargs, "n_requests": 16})
    for scheduler in dict.fromkeys(key[0] for key in todo):
        run_point(small, scheduler, todo[0][1], todo[0][2])


def _report(points: list[SweepPoint], args: argparse.Namespace, choice: WorkloadChoice,
            records: dict[Key, RunRecord]) -> None:  # fmt: skip
    first = next(iter(records.values()))
    names = ", ".join(dict.fromkeys(p.scheduler for p in points))
    rates = ", ".join(dict.fromkeys("the workload's" if p.rate is None else f"{p.rate:g}" for p in points))
    seeds = ",".join(str(s) for s in dict.fromkeys(p.seed for p in points))
    load = f"{points[0].summary.requests} requests per run, rates {rates} req/s, seeds {seeds}"
    print(f"run: {dataclasses.replace(first, scheduler=names, scheduler_params={}).line(load)}")
    _print_table(points)
    for p in points:
        if p.summary.rejected:
            note(f"warning: {p.scheduler} at rate {p.rate} seed {p.seed}: {p.summary.rejected} of "
                 f"{p.summary.requests} requests were rejected (see compare.csv; `llmsched simulate` with the same "
                 "options names the reasons)")  # fmt: skip
    criterion = SLOCriterion(args.p99_tbt, args.median_sched_delay, args.median_ttft)
    from llmsched_gym.cli.commands import criterion_text

    capacity = sweep_capacity(points, criterion)
    slo = criterion_text(criterion)
    if any(p.rate is not None for p in points):
        print(f"capacity (largest swept rate meeting the SLO: {slo}; seeds {seeds}; {choice.asked()}):",
              ", ".join(f"{k} {v:g} req/s" for k, v in capacity.items()))  # fmt: skip
    if not args.no_plots:
        caption = f"{first.workload}, {first.hardware['gpu']} / {first.hardware['model']}, seeds {seeds}; SLO: {slo}"
        _plots(points, capacity, args.out_dir, caption)
    print(f"results in {args.out_dir}/ (compare.csv, one row per run{'' if args.no_plots else ', PNG plots'})")
    if all(p.summary.finished == 0 for p in points):
        raise CommandError(None, "nothing could be served in any run (see the rejected counts in compare.csv)")


def _plots(points: Sequence[SweepPoint], capacity: dict[str, float], out: Any, caption: str) -> None:
    swept = len({p.rate for p in points}) > 1
    if swept:
        plots.latency_load(points, out / "latency_load.png", caption=caption)
        plots.capacity_bars(capacity, out / "capacity.png", caption=caption)
    plots.cdfs(points, out / "cdfs.png", caption=caption)
    plots.kv_over_time(points, out / "kv_util.png", caption=caption)
    if any(p.client_service.ndim == 2 and p.client_service.shape[1] > 1 for p in points):
        plots.service_over_time(points, out / "service.png", caption=caption)
