"""Workloads: synthetic generators, public-trace loaders, stream transforms and a named registry.

Every source yields :class:`~llmsched_gym.core.request.Request` objects sorted by arrival with ids 0..N-1, and
every random choice comes from a passed ``numpy.random.Generator``. See ``docs/workloads.md``.
"""

from __future__ import annotations

from llmsched_gym.workloads.annotate import with_predictions, with_slo_classes, with_type_labels
from llmsched_gym.workloads.arrivals import (
    ArrivalProcess,
    DeterministicArrivals,
    GammaArrivals,
    OnOffArrivals,
    PoissonArrivals,
)
from llmsched_gym.workloads.lengths import (
    EmpiricalLengths,
    FixedTokens,
    IndependentLengths,
    LengthDistribution,
    LognormalTokens,
    TokenDistribution,
    UniformTokens,
)
from llmsched_gym.workloads.loaders import (
    iter_length_stats,
    load_azure,
    load_burstgpt,
    load_length_stats,
    load_mooncake,
    load_vtc,
)
from llmsched_gym.workloads.native import load_native, write_native
from llmsched_gym.workloads.registry import list_workloads, make_workload, resolve_trace_file, trace_search_dirs
from llmsched_gym.workloads.servegen import ServeGenModel, ServeGenWorkload
from llmsched_gym.workloads.synthetic import ClientMix, ClientSpec
from llmsched_gym.workloads.transforms import (
    filter_lengths,
    filter_max_total,
    head,
    keep,
    mean_rate,
    merge_streams,
    renumber,
    scale_time,
    scale_to_rate,
    shrink_to_max_total,
    time_window,
)

__all__ = [
    "ArrivalProcess",
    "ClientMix",
    "ClientSpec",
    "DeterministicArrivals",
    "EmpiricalLengths",
    "FixedTokens",
    "GammaArrivals",
    "IndependentLengths",
    "LengthDistribution",
    "LognormalTokens",
    "OnOffArrivals",
    "PoissonArrivals",
    "ServeGenModel",
    "ServeGenWorkload",
    "TokenDistribution",
    "UniformTokens",
    "filter_lengths",
    "filter_max_total",
    "head",
    "iter_length_stats",
    "keep",
    "list_workloads",
    "load_azure",
    "load_burstgpt",
    "load_length_stats",
    "load_mooncake",
    "load_native",
    "load_vtc",
    "make_workload",
    "mean_rate",
    "merge_streams",
    "renumber",
    "resolve_trace_file",
    "scale_time",
    "scale_to_rate",
    "shrink_to_max_total",
    "time_window",
    "trace_search_dirs",
    "with_predictions",
    "with_slo_classes",
    "with_type_labels",
    "write_native",
]
