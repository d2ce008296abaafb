"""Turning parsed options (:mod:`llmsched_gym.cli.arguments`) into a validated run setup.

Everything is checked before any simulation starts: names (case-insensitive, with suggestions), numbers and
ranges (by the argparse types of :mod:`llmsched_gym.cli.validate`), workload options and scheduler parameters
(typed by introspection), the cost model and the KV pool.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from llmsched_gym.cli.arguments import DEFAULT_WORKLOAD
from llmsched_gym.cli.metadata import RunRecord
from llmsched_gym.cli.params import coerce_params
from llmsched_gym.cli.validate import CommandError, UsageError, pairs, suggest
from llmsched_gym.cli.values import ConversionError, convert, spell, type_text
from llmsched_gym.core.request import Request, SLOClass

if TYPE_CHECKING:  # the engine (and numba) load only when a command runs, so listings start fast
    from llmsched_gym.core.engine import EngineConfig
    from llmsched_gym.core.protocols import CostModel, Scheduler


@dataclass(frozen=True, slots=True)
class WorkloadChoice:
    """The validated workload of a command (picklable, for worker processes).

    Attributes:
        name: Registered workload name or trace file path.
        options: Typed workload options (``fmt`` included for a trace with ``--trace-format``).
        n_requests: Request count, or ``None`` for the workload's default.
        rate: Arrival rate, or ``None`` for the workload's own.
        duration: Keep arrivals before this time, or ``None``.
        trace_dir: Folder of the public traces.
        seed: Seed of the draws.
        slo: SLO class given to every request (``--slo-ttft``/``--slo-tbt``), or ``None``.
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    n_requests: int | None = None
    rate: float | None = None
    duration: float | None = None
    trace_dir: str | None = None
    seed: int = 0
    slo: SLOClass | None = None

    def stream(self, *, rate: float | None = None, seed: int | None = None) -> Iterator[Request]:
        """The workload as a lazy stream (at another rate or seed if given), SLO targets attached."""
        from llmsched_gym.workloads import make_workload

        rng = np.random.default_rng(self.seed if seed is None else seed)
        stream = make_workload(
            self.name,
            rng=rng,
            n_requests=self.n_requests,
            rate=self.rate if rate is None else rate,
            duration=self.duration,
            trace_dir=self.trace_dir,
            **self.options,
        )
        slo = self.slo
        return stream if slo is None else (dataclasses.replace(r, slo=slo) for r in stream)

    def requests(self, *, rate: float | None = None, seed: int | None = None) -> list[Request]:
        """Draw the whole workload (at another rate or seed if given), SLO targets attached."""
        return list(self.stream(rate=rate, seed=seed))

    def asked(self, rate: float | None = None) -> str:
        """The workload in words, for messages: ``"trace x.csv (first 100 requests, rate 2/s)"``."""
        parts = [
            f"first {self.n_requests} requests" if self.n_requests else "",
            f"rate {rate or self.rate:g}/s" if (rate or self.rate) else "",
            f"arrivals before {self.duration:g} s" if self.duration else "",
        ]
        detail = ", ".join(p for p in parts if p)
        return f"{self.name}" + (f" ({detail})" if detail else "")


def _options(name: str, texts: dict[str, str], trace_dir: str | None) -> dict[str, Any]:
    from llmsched_gym.workloads.registry import workload_options

    allowed = {o.name: o for o in workload_options(name, trace_dir)}
    out: dict[str, Any] = {}
    for key, text in texts.items():
        option = allowed.get(key)
        if option is None:
            known = ", ".join(allowed) or "none"
            raise UsageError(
                f"--workload-option {key}={text}",
                f"workload {name!r} has no option {key!r}{suggest(key, allowed)}; it takes {known}",
            )
        try:
            out[key] = convert(text, option.kind)
        except ConversionError as exc:
            raise UsageError(
                f"--workload-option {key}={text}",
                f"{exc}; {key} is {type_text(option.kind)}, default {spell(option.default)}",
            ) from None
    return out


def workload_choice(args: argparse.Namespace, *, n_requests: int | None = None) -> WorkloadChoice:
    """The validated workload of parsed arguments (``n_requests`` is the command's default count)."""
    name = str(args.trace) if args.trace is not None else (args.workload or DEFAULT_WORKLOAD)
    texts = pairs(args.workload_option, "--workload-option")
    if args.trace_format is not None:
        from llmsched_gym.workloads.registry import list_workloads

        if name in list_workloads():
            raise UsageError(
                f"--trace-format {args.trace_format}", "applies to a trace file; give one with --trace PATH"
            )
        texts["fmt"] = args.trace_format
    trace_dir = None if args.trace_dir is None else str(args.trace_dir)
    slo = None
    if args.slo_ttft is not None or args.slo_tbt is not None:
        slo = SLOClass("cli", ttft_s=args.slo_ttft, tbt_s=args.slo_tbt)
    n = args.n_requests if args.n_requests is not None or args.duration is not None else n_requests
    options = _options(name, texts, trace_dir)
    return WorkloadChoice(name, options, n, args.rate, args.duration, trace_dir, args.seed, slo)


def nothing_asked(choice: WorkloadChoice, rate: float | None = None) -> CommandError:
    """The error of a workload without requests, naming what was asked."""
    hint = "check --duration against the trace's timestamps" if choice.duration else "the file has no data rows"
    return CommandError(None, f"the workload {choice.asked(rate)} has no requests, so nothing was asked ({hint})")


def draw_requests(choice: WorkloadChoice, *, rate: float | None = None, seed: int | None = None) -> list[Request]:
    """The workload's requests; none at all is an error naming what was asked."""
    requests = choice.requests(rate=rate, seed=seed)
    if not requests:
        raise nothing_asked(choice, rate)
    return requests


@dataclass(frozen=True, slots=True)
class Setup:
    """Everything a run needs except the scheduler instance and the requests.

    Attributes:
        cost_model: The iteration-time model.
        engine_config: KV pool, fast-forward and recorder settings.
        hardware: What was chosen, for the run record (GPU, model, tp, cost model, KV pool).
    """

    cost_model: CostModel
    engine_config: EngineConfig
    hardware: dict[str, Any]


def build_setup(args: argparse.Namespace, *, sample_dt: float | None = 1.0) -> Setup:
    """Cost model, KV pool and engine configuration from parsed arguments."""
    from llmsched_gym.core.engine import EngineConfig
    from llmsched_gym.core.kv import KVConfig
    from llmsched_gym.core.recorder import RecorderConfig
    from llmsched_gym.costs import make_cost_model
    from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks

    cost = make_cost_model(args.cost_model, gpu=args.gpu, model=args.model, tp=args.tp, block_size=args.block_size)
    blocks = args.num_blocks
    if blocks is None:
        blocks = kv_capacity_blocks(
            get_gpu(args.gpu),
            get_model(args.model),
            tp=args.tp,
            memory_utilization=args.memory_utilization,
            block_size=args.block_size,
        )
    config = EngineConfig(
        KVConfig(num_blocks=blocks, block_size=args.block_size),
        fast_forward=not args.no_fast_forward,
        recorder=RecorderConfig(sample_dt=sample_dt),
    )
    hardware = {
        "gpu": args.gpu,
        "model": args.model,
        "tp": args.tp,
        "cost_model": args.cost_model,
        "num_blocks": blocks,
        "block_size": args.block_size,
    }
    return Setup(cost, config, hardware)


def scheduler_params(name: str, param_texts: list[str]) -> dict[str, Any]:
    """Typed ``--param`` values for ``name`` (unknown keys and wrong types are :class:`UsageError`)."""
    return coerce_params(name, pairs(param_texts, "--param"))


def build_scheduler(name: str, params: dict[str, Any]) -> Scheduler:
    """A registered scheduler with typed overrides; a value its config refuses is a :class:`UsageError`."""
    from llmsched_gym.cli.errors import speak_cli
    from llmsched_gym.schedulers import make_scheduler

    try:
        return make_scheduler(name, **params)
    except (ValueError, TypeError) as exc:
        text = speak_cli(str(exc), {}).replace("__init__() ", "")
        raise UsageError("--param", f"scheduler {name!r} refused its parameters: {text}") from None


def effective_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The registered preset with the overrides applied (what the run used), for the run record."""
    from llmsched_gym.schedulers import REGISTRY

    entry = REGISTRY.get(name)
    return {**(dict(entry.kwargs) if entry is not None else {}), **params}


def run_record(
    command: str, scheduler: str, params: dict[str, Any], choice: WorkloadChoice, requests: int, setup: Setup
) -> RunRecord:
    """The run record of one run of a command."""
    return RunRecord(
        command=command,
        scheduler=scheduler,
        scheduler_params=effective_params(scheduler, params),
        workload=choice.name,
        workload_options=dict(choice.options),
        requests=requests,
        n_requests=choice.n_requests,
        rate=choice.rate,
        duration=choice.duration,
        seed=choice.seed,
        slo_ttft_s=None if choice.slo is None else choice.slo.ttft_s,
        slo_tbt_s=None if choice.slo is None else choice.slo.tbt_s,
        hardware=dict(setup.hardware),
    )
