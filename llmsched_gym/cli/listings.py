"""Listing commands: ``schedulers``, ``params NAME``, ``workloads``, ``cost-models``, ``gpus``, ``models``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from llmsched_gym.cli.arguments import scheduler_name, workload_name
from llmsched_gym.cli.values import spell, type_text

Sub = Any  # argparse's private _SubParsersAction
GIB = 1 << 30


def _columns(rows: Iterable[tuple[str, str]]) -> str:
    rows = list(rows)
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{key.ljust(width)}  {text}" for key, text in rows)


def _schedulers(args: argparse.Namespace) -> str:
    from llmsched_gym.cli.params import describe
    from llmsched_gym.schedulers import list_schedulers

    if args.params is not None:
        return describe(args.params)
    footer = "\nparameters of one scheduler: llmsched params NAME (or llmsched schedulers --params NAME)"
    return _columns(list_schedulers().items()) + footer


def _params(args: argparse.Namespace) -> str:
    from llmsched_gym.cli.params import describe

    return describe(args.name)


def _workloads(args: argparse.Namespace) -> str:
    from llmsched_gym.workloads.formats import FORMATS
    from llmsched_gym.workloads.registry import list_workloads, workload_options

    if args.options is not None:
        lines = [f"{args.options}: options (--workload-option NAME=VALUE)"]
        for o in workload_options(args.options):
            lines.append(f"  {o.name}: {type_text(o.kind)}, default {spell(o.default)}  {o.doc}".rstrip())
        return "\n".join(lines)
    formats = ", ".join(FORMATS)
    footer = (
        f"\nyour own file: --trace PATH (formats {formats}; detected from the header, or --trace-format)"
        "\noptions of one workload: llmsched workloads --options NAME"
    )
    return _columns(list_workloads().items()) + footer


def _cost_models(args: argparse.Namespace) -> str:
    from llmsched_gym.costs import list_cost_models

    return _columns(list_cost_models().items())


def _gpus(args: argparse.Namespace) -> str:
    from llmsched_gym.hardware import GPUS

    def row(g: Any) -> str:
        nvlink = "" if g.interconnect_bandwidth is None else f", NVLink {g.interconnect_bandwidth / 1e9:.0f} GB/s"
        return (
            f"{g.memory_bytes / GIB:.1f} GiB, {g.peak_flops / 1e12:.0f} TFLOP/s bf16, "
            f"HBM {g.hbm_bandwidth / 1e12:.2f} TB/s{nvlink}"
        )

    return _columns((name, row(g)) for name, g in GPUS.items()) + "\nchoose with --gpu NAME (case-insensitive)"


def _models(args: argparse.Namespace) -> str:
    from llmsched_gym.hardware import MODELS

    def row(m: Any) -> str:
        attention = "MHA" if m.n_heads == m.n_kv_heads else f"GQA {m.n_kv_heads} KV heads"
        return (
            f"{m.n_params / 1e9:.1f} B params, {m.n_layers} layers, hidden {m.hidden}, {attention}, "
            f"KV {m.kv_bytes_per_token() / 1024:.0f} KiB/token"
        )

    return _columns((name, row(m)) for name, m in MODELS.items()) + "\nchoose with --model NAME (case-insensitive)"


LISTINGS: tuple[tuple[str, str, Callable[[argparse.Namespace], str]], ...] = (
    ("schedulers", "list registered schedulers (--params NAME: one scheduler's parameters)", _schedulers),
    ("params", "a scheduler's parameters: types, defaults and meaning", _params),
    ("workloads", "list named workloads and trace formats (--options NAME: a workload's options)", _workloads),
    ("cost-models", "list cost models", _cost_models),
    ("gpus", "list the GPU catalog (memory, FLOP/s, bandwidth)", _gpus),
    ("models", "list the model shapes (parameters, layers, KV bytes per token)", _models),
)


def add_listings(sub: Sub) -> None:
    """Register every listing command."""
    for name, help_text, show in LISTINGS:
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        if name == "schedulers":
            p.add_argument(
                "--params",
                type=scheduler_name,
                default=None,
                metavar="NAME",
                help="show this scheduler's parameters instead",
            )
        elif name == "params":
            p.add_argument("name", type=scheduler_name, metavar="NAME", help="a registered scheduler")
        elif name == "workloads":
            p.add_argument(
                "--options",
                type=workload_name,
                default=None,
                metavar="NAME",
                help="show this workload's (or trace file's) options instead",
            )
        p.set_defaults(handler=_printer(show))


def _printer(show: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(show(args))
        return 0

    return handler
