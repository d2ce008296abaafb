"""Options shared by ``simulate``, ``capacity`` and ``compare``, and turning them into a validated run setup.

Everything is checked before any simulation starts: names (case-insensitive, with suggestions), numbers and
ranges (by the argparse types of :mod:`llmsched_gym.cli.validate`), workload options and scheduler parameters
(typed by introspection), the cost model and the KV pool.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmsched_gym.cli.metadata import RunRecord
from llmsched_gym.cli.params import coerce_params
from llmsched_gym.cli.validate import (
    CommandError,
    UsageError,
    in_file,
    integer,
    lookup,
    name_of,
    number,
    pairs,
    suggest,
)
from llmsched_gym.cli.values import ConversionError, convert, spell, type_text
from llmsched_gym.core.request import Request, SLOClass

if TYPE_CHECKING:  # the engine (and numba) load only when a command runs, so listings start fast
    from llmsched_gym.core.engine import EngineConfig
    from llmsched_gym.core.protocols import CostModel, Scheduler

DEFAULT_WORKLOAD = "synthetic-sharegpt"


def _gpus() -> list[str]:
    from llmsched_gym.hardware import GPUS

    return list(GPUS)


def _models() -> list[str]:
    from llmsched_gym.hardware import MODELS

    return list(MODELS)


def _formats() -> list[str]:
    from llmsched_gym.workloads.formats import FORMATS

    return list(FORMATS)


def scheduler_name(text: str) -> str:
    """An argparse type: a registered scheduler name (case-insensitive) or a ``scheme:ARG`` name."""
    from llmsched_gym.errors import UnknownNameError
    from llmsched_gym.schedulers import resolve_scheduler

    try:
        return resolve_scheduler(text)
    except UnknownNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def workload_name(text: str) -> str:
    """An argparse type: a registered workload name (case-insensitive) or an existing trace file."""
    from llmsched_gym.errors import UnknownNameError
    from llmsched_gym.workloads.registry import list_workloads, resolve_workload

    try:
        name = resolve_workload(text)
    except UnknownNameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name if name in list_workloads() else str(in_file(name))


def cost_model_spec(text: str) -> str:
    """An argparse type: a cost-model name (case-insensitive) or ``profile:PATH`` with an existing file."""
    from llmsched_gym.costs import list_cost_models

    name, sep, path = text.partition(":")
    if sep and name.strip().lower() == "profile":
        return f"profile:{in_file(path)}"
    try:
        return lookup(text, list_cost_models(), kind="cost model", flag=None, listing="llmsched cost-models")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def folder(text: str) -> Path:
    """An argparse type: an existing folder."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder" + (" (it is a file)" if path.exists() else ""))
    return path


def add_workload_arguments(p: argparse.ArgumentParser, *, n_help: str = "default: the workload's") -> None:
    """The workload options: a named workload or a trace file, its size, rate, seed, options and SLO targets."""
    w = p.add_argument_group("workload")
    src = w.add_mutually_exclusive_group()
    src.add_argument(
        "--workload",
        type=workload_name,
        default=None,
        metavar="NAME",
        help=f"workload name (see `llmsched workloads`; default {DEFAULT_WORKLOAD})",
    )
    src.add_argument(
        "--trace",
        type=in_file,
        default=None,
        metavar="PATH",
        help="your own trace file (CSV or JSON Lines, .gz allowed; format detected from the header)",
    )
    w.add_argument(
        "--trace-format",
        type=name_of("trace format", _formats),
        default=None,
        metavar="FORMAT",
        help="azure | burstgpt | mooncake | length-stats | vtc | native (default: detected)",
    )
    w.add_argument("--n-requests", type=integer(low=1), default=None, help=f"number of requests ({n_help})")
    w.add_argument(
        "--rate",
        type=number(low=0, low_open=True, what="requests/s"),
        default=None,
        help="arrival rate in requests/s (default: the workload's; rescales timestamped traces)",
    )
    w.add_argument(
        "--duration",
        type=number(low=0, low_open=True, what="seconds"),
        default=None,
        help="keep arrivals before this many seconds",
    )
    w.add_argument(
        "--trace-dir",
        type=folder,
        default=None,
        metavar="DIR",
        help="folder with the public trace files (default: $LLMSCHED_TRACE_DIR or ../shared/traces)",
    )
    w.add_argument("--seed", type=integer(low=0), default=0, help="seed of every random draw (default 0)")
    w.add_argument(
        "--workload-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="workload option, repeatable (e.g. max_total=4096, sort=true; see `llmsched workloads`)",
    )
    w.add_argument(
        "--slo-ttft",
        type=number(low=0, low_open=True, what="seconds"),
        default=None,
        metavar="S",
        help="give every request this TTFT target (SLO attainment and goodput are measured against it)",
    )
    w.add_argument(
        "--slo-tbt",
        type=number(low=0, low_open=True, what="seconds"),
        default=None,
        metavar="S",
        help="give every request this time-between-tokens target",
    )


def add_hardware_arguments(p: argparse.ArgumentParser) -> None:
    """The GPU, model shape, cost model and KV pool options."""
    h = p.add_argument_group("hardware and cost model")
    h.add_argument(
        "--gpu",
        type=name_of("GPU", _gpus, listing="llmsched gpus"),
        default="H100-80GB",
        help="GPU (see `llmsched gpus`; default H100-80GB)",
    )
    h.add_argument(
        "--model",
        type=name_of("model", _models, listing="llmsched models"),
        default="Llama-2-7B",
        help="model shape (see `llmsched models`; default Llama-2-7B)",
    )
    h.add_argument("--tp", type=integer(low=1), default=1, help="tensor-parallel degree (default 1)")
    h.add_argument(
        "--cost-model",
        type=cost_model_spec,
        default="roofline",
        metavar="NAME",
        help="roofline (default), profile[:PATH], unit, affine_kv, tile_step (see `llmsched cost-models`)",
    )
    h.add_argument(
        "--num-blocks", type=integer(low=1), default=None, help="KV blocks (default: from GPU memory and model)"
    )
    h.add_argument("--block-size", type=integer(low=1), default=16, help="tokens per KV block (default 16)")
    h.add_argument(
        "--memory-utilization",
        type=number(low=0, low_open=True, high=1.0),
        default=0.9,
        help="GPU memory fraction for weights and KV (default 0.9)",
    )


def add_scheduler_arguments(p: argparse.ArgumentParser) -> None:
    """``--param`` and ``--no-fast-forward``."""
    s = p.add_argument_group("scheduler")
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scheduler parameter, repeatable (e.g. chunk_size=512); see `llmsched params NAME`",
    )
    s.add_argument("--no-fast-forward", action="store_true", help="step one iteration at a time (for checking)")


def add_setup_arguments(p: argparse.ArgumentParser) -> None:
    """Workload, hardware and scheduler options (``simulate``, ``capacity``, ``compare``)."""
    add_workload_arguments(p)
    add_hardware_arguments(p)
    add_scheduler_arguments(p)


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

    cost = make_cost_model(args.cost_model, gpu=args.gpu, model=args.model, tp=args.tp)
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
