"""The options shared by the commands that run a workload, with their validating argparse types.

``add_setup_arguments`` (workload, hardware, scheduler groups) serves ``simulate``, ``capacity`` and ``compare``;
``add_workload_arguments`` alone serves ``live``. Every value is checked when parsed (see
:mod:`llmsched_gym.cli.validate`); :mod:`llmsched_gym.cli.setup` turns the parsed values into a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmsched_gym.cli.validate import UsageError, in_file, integer, lookup, name_of, number

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
    src.add_argument("--workload", type=workload_name, default=None, metavar="NAME",
                     help=f"workload name (see `llmsched workloads`; default {DEFAULT_WORKLOAD})")  # fmt: skip
    src.add_argument("--trace", type=in_file, default=None, metavar="PATH",
                     help="your own trace file (CSV or JSON Lines, .gz allowed; format from the header)")  # fmt: skip
    w.add_argument("--trace-format", type=name_of("trace format", _formats), default=None, metavar="FORMAT",
                   help="azure | burstgpt | mooncake | length-stats | vtc | native (default: detected)")  # fmt: skip
    w.add_argument("--trace-dir", type=folder, default=None, metavar="DIR",
                   help="folder of the public traces (default: $LLMSCHED_TRACE_DIR or ../shared/traces)")  # fmt: skip
    w.add_argument("--workload-option", action="append", default=[], metavar="KEY=VALUE",
                   help="workload option, repeatable (e.g. max_total=4096; see `llmsched workloads`)")  # fmt: skip
    _add_load_arguments(w, n_help)


def _add_load_arguments(w: argparse._ArgumentGroup, n_help: str) -> None:
    """How much of the workload, how fast, which draw, and the SLO targets given to every request."""
    seconds = number(low=0, low_open=True, what="seconds")
    w.add_argument("--n-requests", type=integer(low=1), default=None, help=f"number of requests ({n_help})")
    w.add_argument("--rate", type=number(low=0, low_open=True, what="requests/s"), default=None,
                   help="arrival rate in requests/s (default: the workload's; rescales timed traces)")  # fmt: skip
    w.add_argument("--duration", type=seconds, default=None, help="keep arrivals before this many seconds")
    w.add_argument("--seed", type=integer(low=0), default=0, help="seed of every random draw (default 0)")
    w.add_argument("--slo-ttft", type=seconds, default=None, metavar="S",
                   help="give every request this TTFT target (SLO attainment and goodput use it)")  # fmt: skip
    w.add_argument("--slo-tbt", type=seconds, default=None, metavar="S",
                   help="give every request this time-between-tokens target")  # fmt: skip


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
