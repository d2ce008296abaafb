"""Handlers of ``llmsched calibrate`` (parsers in :mod:`gpu_calibration.cli`); torch is imported here only."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gpu_calibration.clocks import resolve_clock
from gpu_calibration.fitting import executor_fit
from gpu_calibration.measurement import Measurement, load_measurement, read_points_csv
from gpu_calibration.overhead import measure_engine_overhead
from llmsched_gym.costs.operator_fit import OperatorFitConfig
from llmsched_gym.costs.profile import Profile, load_profile
from llmsched_gym.costs.profile_fit import MeasuredPoint, relative_errors
from llmsched_gym.errors import ProfileError


def _target(args: argparse.Namespace) -> object:
    from gpu_calibration.target import TargetConfig

    return TargetConfig(
        model=args.model, device=args.device, dtype=args.dtype, block_size=args.block_size,
        num_blocks=args.num_blocks, cuda_graphs=not args.no_cuda_graphs, max_tokens=args.max_tokens,
        max_seqs=args.max_seqs, seed=getattr(args, "seed", 0),
    )  # fmt: skip


def _progress(done: int, planned: int) -> None:
    if done == planned or done % max(1, planned // 10) == 0:
        print(f"  {done}/{planned} visits", file=sys.stderr, flush=True)


def run_profile(args: argparse.Namespace) -> int:
    """``calibrate profile``: build the executor, time the design, write the measurement."""
    from gpu_calibration import target as tg
    from gpu_calibration.profiler import ProfilerConfig, profile_batches

    config = _target(args)
    assert isinstance(config, tg.TargetConfig)
    runner = tg.build_runner(config)
    batches, max_context = _design_for(args, runner, config)
    clock = resolve_clock(args.clock, runner.device.type)
    pcfg = ProfilerConfig(warmup=args.warmup, repeats=args.repeats, rounds=args.rounds, seed=args.seed,
                          time_budget_s=args.time_budget, clock=clock)  # fmt: skip
    parts = ", ".join(f"{n} {k}" for k, n in Counter(b.part for b in batches).items())
    print(f"profiling {len(batches)} batches ({parts}) on {runner.device} ...", file=sys.stderr)
    timings = profile_batches(runner, batches, pcfg, progress=_progress)
    info = {**tg.executor_info(runner, config), "clock": clock}
    info["timer"] = (
        ("thread CPU time" if clock == "cpu" else "perf_counter")
        + " around LiveRunner.run"
        + (", CUDA events around the forward" if runner.device.type == "cuda" else "")
    )
    if clock == "wall":
        info["forward_share"] = round(timings.forward_share(), 4)
    if args.engine_overhead != "none":
        cost = measure_engine_overhead(args.engine_overhead, runner.config.num_blocks,
                                       runner.config.block_size, max_context)  # fmt: skip
        print(f"engine overhead ({cost.scheduler}): {cost.seconds * 1e3:.3f} ms per decision", file=sys.stderr)
        info.update(engine_overhead_s=cost.seconds, engine_overhead_scheduler=cost.scheduler)
    gpu, memory = tg.device_identity(runner.device)
    provenance = (
        f"gpu_calibration profile: {len(batches)} batches ({parts}); {pcfg.rounds} rounds x {pcfg.repeats} timed runs "
        f"after {pcfg.warmup} warm-up per visit, batches in a new random order each round (seed {args.seed}), noisy "
        f"batches re-measured; medians; {timings.elapsed_s:.0f} s"
    )
    measurement = Measurement(
        gpu_name=gpu, gpu_memory_bytes=memory, model=tg.model_spec(runner, config.model), tp=1,
        block_size=config.block_size, executor_version=tg.EXECUTOR_VERSION, created=tg.now_iso(),
        provenance=provenance, points=tuple(timings.points(pcfg.noisy_spread)), executor_info=info,
    )  # fmt: skip
    path = measurement.save(args.out)
    noisy = sum(p.flag == "noisy" for p in measurement.points)
    print(f"wrote {len(measurement.points)} points ({noisy} noisy) to {path} in {timings.elapsed_s:.0f} s")
    return 0


def _design_for(args: argparse.Namespace, runner: Any, config: Any) -> tuple[list[Any], int]:
    """The designed batches for ``runner`` (``--design``, ``--max-context``, ``--n-random``) and the context cap."""
    from gpu_calibration import target as tg
    from gpu_calibration.design import DesignConfig, design

    limits = tg.limits_of(runner, config)
    if args.max_context is not None:
        limits = replace(limits, max_context=min(limits.max_context, args.max_context))
    dcfg = DesignConfig.small() if args.design == "small" else DesignConfig()
    if args.n_random is not None:
        dcfg = replace(dcfg, n_random=args.n_random)
    return design(dcfg, limits, np.random.default_rng(args.seed)), limits.max_context


def _measurement(args: argparse.Namespace) -> Measurement:
    if args.measurement.suffix.lower() != ".csv":
        return load_measurement(args.measurement)
    if args.gpu is None or args.model is None:
        raise ProfileError("a points CSV carries no header: pass --gpu and --model (catalog names) with it")
    from gpu_calibration.target import now_iso
    from llmsched_gym.hardware import get_gpu, get_model

    gpu, model = get_gpu(args.gpu), get_model(args.model)
    return Measurement(
        gpu_name=gpu.name, gpu_memory_bytes=gpu.memory_bytes, model=model, tp=args.tp, block_size=args.block_size,
        executor_version="unknown (points CSV)", created=now_iso()[:10],
        provenance=f"points CSV {args.measurement.name}", points=tuple(read_points_csv(args.measurement)),
        source="imported", reference=str(args.measurement),
    )  # fmt: skip


def run_fit(args: argparse.Namespace) -> int:
    """``calibrate fit``: measurement (or points CSV) to profile."""
    from gpu_calibration.fitting import fit_measurement

    tiles = tuple(int(t) for t in args.tiles.split(",") if t.strip())
    cfg = OperatorFitConfig(tiles=tiles, holdout_fraction=args.holdout_fraction, folds=args.folds,
                            starts=args.starts, seed=args.seed)  # fmt: skip
    profile = fit_measurement(_measurement(args), cfg)
    path = profile.save(args.out)
    print(f"wrote {path}")
    print(validation_text(profile))
    return 0


def validation_text(profile: Profile) -> str:
    """One paragraph: the held-out errors, the outliers and the tile of a profile."""
    v = profile.validation
    flagged = Counter(p.flag for p in profile.grid if p.flag)
    med = "n/a" if v.median_abs_error is None else f"{v.median_abs_error:.2%}"
    p90 = "n/a" if v.p90_abs_error is None else f"{v.p90_abs_error:.2%}"
    return (
        f"{profile.gpu_name} / {profile.model.name} TP{profile.tp}: held-out per-iteration error median {med}, "
        f"p90 {p90}, mean {v.mape:.2%}, max {v.max_abs_rel_error:.2%} ({v.n_holdout} held out, {v.n_train} fitted; "
        f"flags: {dict(flagged) or 'none'}; method: {profile.fit_info.get('validation', 'n/a')})"
    )


def _extra_points(path: Path | None) -> list[MeasuredPoint]:
    """Points of a measurement JSON or a points CSV (none without a path)."""
    if path is None:
        return []
    if path.suffix.lower() == ".csv":
        return read_points_csv(path)
    return list(load_measurement(path).points)


def run_validate(args: argparse.Namespace) -> int:
    """``calibrate validate``: held-out errors, optional further points, plot, goal check."""
    profile = load_profile(args.profile)
    print(validation_text(profile))
    extra = _extra_points(args.points)
    if extra:
        err = np.abs(relative_errors(executor_fit(profile), extra))
        print(f"further points ({len(extra)}): median {np.median(err):.2%}, p90 {np.quantile(err, 0.9):.2%}")
    if args.plot is not None:
        from gpu_calibration.plots import plot_fit

        print(f"plot: {plot_fit(profile, args.plot, extra=extra)}")
    v = profile.validation
    failed = [
        f"{name} {value:.2%} > {limit:.2%}"
        for name, value, limit in (
            ("median", v.median_abs_error, args.max_median),
            ("p90", v.p90_abs_error, args.max_p90),
        )
        if limit is not None and value is not None and value > limit
    ]
    if failed:
        print(f"validation goal missed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """``calibrate compare``: live vs simulated on the same trace."""
    from gpu_calibration import target as tg
    from gpu_calibration.compare import compare_runs

    config = _target(args)
    assert isinstance(config, tg.TargetConfig)
    profile = load_profile(args.profile)
    runner = tg.build_runner(config)
    clock = _check_profile(args, profile, runner, config)
    requests = _compare_requests(args, runner.max_context)
    print(f"serving {len(requests)} requests live with {args.scheduler}, then simulating them ...", file=sys.stderr)
    result = compare_runs(requests, runner, profile, scheduler=args.scheduler,
                          scheduler_params=_scheduler_params(args.param), seed=args.seed, clock=clock,
                          live_runs=args.live_runs)  # fmt: skip
    print(result.table())
    if args.out is not None:
        _write_comparison(args, result, len(requests))
    if args.max_error is not None and result.worst_goal_error() > args.max_error:
        print(f"sim vs live: {result.worst_goal_error():.1%} > {args.max_error:.1%}", file=sys.stderr)
        return 1
    return 0


def _check_profile(args: argparse.Namespace, profile: Profile, runner: Any, config: Any) -> str:
    """Raise unless ``profile`` was measured on this executor (GPU, model, TP, block size, clock); the clock."""
    from gpu_calibration import target as tg

    gpu, _ = tg.device_identity(runner.device)
    profile.check_run(gpu=gpu, model=tg.model_spec(runner, config.model), tp=1, block_size=config.block_size,
                      source=f"profile {args.profile}")  # fmt: skip
    clock = resolve_clock(args.clock, runner.device.type)
    measured = profile.executor_info.get("clock", "wall")
    if measured != clock:
        raise ProfileError(f"profile {args.profile} was measured with the {measured} clock but the run uses {clock}: "
                           f"pass --clock {measured} or profile again")  # fmt: skip
    return clock


def _compare_requests(args: argparse.Namespace, max_context: int) -> list[Any]:
    """The workload of ``compare``, without requests longer than the model's context, ids renumbered."""
    from llmsched_gym.workloads import make_workload

    options = {} if args.max_total is None else {"max_total": args.max_total}
    stream = make_workload(args.workload, rng=np.random.default_rng(args.seed), n_requests=args.n_requests,
                           rate=args.rate, trace_dir=args.trace_dir, **options)  # fmt: skip
    fitting = [r for r in stream if r.prompt_len + r.target_output_len <= max_context]
    return [replace(r, id=i) for i, r in enumerate(fitting)]


def _write_comparison(args: argparse.Namespace, result: Any, n_requests: int) -> None:
    from gpu_calibration.plots import plot_comparison

    args.out.mkdir(parents=True, exist_ok=True)
    data = {"profile": str(args.profile), "scheduler": args.scheduler, "workload": args.workload,
            "requests": n_requests, "rate": args.rate, **result.as_dict()}  # fmt: skip
    (args.out / "comparison.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    plot_comparison(result.rows(), result.iteration_errors, args.out / "comparison.png",
                    title=f"{args.scheduler} on {n_requests} {args.workload} requests")  # fmt: skip
    print(f"wrote {args.out / 'comparison.json'} and comparison.png")


def _scheduler_params(pairs: list[str]) -> dict[str, object]:
    """``["chunk_size=512", ...]`` as a dict; values parse as int, float, true/false, else text."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {pair!r}: expected KEY=VALUE, e.g. --param chunk_size=512")
        value: object = text.strip()
        for cast in (int, float):
            try:
                value = cast(text)
                break
            except ValueError:
                continue
        if text.strip().lower() in ("true", "false"):
            value = text.strip().lower() == "true"
        out[key.strip()] = value
    return out


def run_import(args: argparse.Namespace) -> int:
    """``calibrate import-splitwise``."""
    from gpu_calibration import splitwise

    argv = [*(["--csv", str(args.csv)] if args.csv else []), *(["--out", str(args.out)] if args.out else [])]
    splitwise.main(argv)
    return 0
