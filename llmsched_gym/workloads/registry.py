"""Named workloads for the CLI and experiment configs.

``make_workload(name, rng=..., n_requests=..., rate=..., duration=..., trace_dir=..., **options)`` returns a lazy
iterator of requests numbered 0..N-1 in arrival order. Shared arguments:

* ``n_requests``: stop after this many requests (synthetic workloads default to 1000 when neither ``n_requests``
  nor ``duration`` is given; trace workloads default to the whole trace; ServeGen to 600 s).
* ``rate``: requests/s. Synthetic and length-only workloads: the Poisson rate (default 1.0). Timestamped traces:
  rescale arrival times to this mean rate (``None`` keeps the recorded timing). ServeGen: the aggregate target
  rate (``None`` keeps the recorded rates).
* ``duration``: keep arrivals before this time (seconds, after any rate scaling).
* ``trace_dir``: where trace files are; see :func:`resolve_trace_file`.

The package ships no trace data. Trace files are looked up in ``trace_dir`` if given, else in
``$LLMSCHED_TRACE_DIR``, else in ``../shared/traces`` relative to the repository root and to the working directory.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.core.request import Request
from llmsched_gym.errors import UnknownNameError
from llmsched_gym.workloads import transforms
from llmsched_gym.workloads.arrivals import GammaArrivals, PoissonArrivals
from llmsched_gym.workloads.formats import (
    CV,
    FMT,
    TRACE_SUFFIXES,
    Option,
    detect_format,
    load_trace,
    trace_format,
)
from llmsched_gym.workloads.lengths import IndependentLengths, LognormalTokens
from llmsched_gym.workloads.servegen import LENGTHS_FILE, SERVEGEN_MODELS, WINDOWS_FILE, ServeGenModel, ServeGenWorkload
from llmsched_gym.workloads.synthetic import ClientMix, ClientSpec

TRACE_DIR_ENV = "LLMSCHED_TRACE_DIR"
SHAREGPT_FILE = "lengths_sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
ARXIV_FILE = "lengths_arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv"
AZURE_CONV_2023_FILE = "azure2023_AzureLLMInferenceTrace_conv.csv"
MOONCAKE_CONVERSATION_FILE = "mooncake_fast25_conversation_trace.jsonl"
MOONCAKE_SYNTHETIC_FILE = "mooncake_fast25_synthetic_trace.jsonl"
VTC_FILE = "vtc_lmsys_real_trace_27clients.csv"
DEFAULT_SYNTHETIC_REQUESTS = 1000
DEFAULT_SERVEGEN_DURATION_S = 600.0
SERVEGEN_OPTIONS = (
    Option("start_s", float, 0.0, "where in the record the stream starts (s)"),
    Option("top_k", int | None, None, "keep only the k clients with the largest volume"),
    Option("clients", tuple[int, ...] | None, None, "keep only these client ids"),
)


@dataclass(frozen=True, slots=True)
class _Args:
    rng: np.random.Generator
    n: int | None
    rate: float | None
    duration: float | None
    trace_dir: Path | str | None
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, allowed: Sequence[Option], name: str) -> dict[str, Any]:
        """The options merged over ``allowed``'s defaults; unknown option names are an error."""
        names = [o.name for o in allowed]
        unknown = sorted(set(self.options) - set(names))
        if unknown:
            raise TypeError(f"workload {name!r} got unknown option(s) {unknown}; it accepts {sorted(names)}")
        return {**{o.name: o.default for o in allowed}, **self.options}


Factory = Callable[[_Args, str], Iterator[Request]]


def trace_search_dirs(trace_dir: Path | str | None = None) -> list[Path]:
    """Directories searched for trace files, in order (see the module docstring)."""
    if trace_dir is not None:
        return [Path(trace_dir)]
    env = os.environ.get(TRACE_DIR_ENV)
    if env:
        return [Path(env)]
    repo_root = Path(__file__).resolve().parents[2]
    candidates = [repo_root.parent / "shared" / "traces", Path.cwd().resolve().parent / "shared" / "traces"]
    return list(dict.fromkeys(candidates))


def resolve_trace_file(filename: str, trace_dir: Path | str | None = None) -> Path:
    """Find ``filename`` in the trace search directories.

    Raises:
        FileNotFoundError: Not found; the message lists every path searched and how to point elsewhere.
    """
    searched = [directory / filename for directory in trace_search_dirs(trace_dir)]
    for path in searched:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"trace file {filename!r} not found; searched {[str(p) for p in searched]}. Pass trace_dir=... or set "
        f"{TRACE_DIR_ENV} to the folder holding the public traces (the package ships no trace data)"
    )


def _bounded(stream: Iterator[Request], args: _Args) -> Iterator[Request]:
    if args.duration is not None:
        stream = transforms.time_window(stream, 0.0, args.duration)
    if args.n is not None:
        stream = transforms.head(stream, args.n)
    return stream


def _synthetic(clients: Callable[[float, dict[str, Any]], tuple[ClientSpec, ...]], *extra: Option) -> Factory:
    def factory(args: _Args, name: str) -> Iterator[Request]:
        options = args.option((CV, *extra), name)
        rate = 1.0 if args.rate is None else args.rate
        n = DEFAULT_SYNTHETIC_REQUESTS if args.n is None and args.duration is None else args.n
        return ClientMix(clients(rate, options)).generate(args.rng, n=n, duration=args.duration)

    return factory


def _arrivals(rate: float, cv: float | None) -> PoissonArrivals | GammaArrivals:
    return PoissonArrivals(rate) if cv is None else GammaArrivals(rate, cv)


def _sharegpt_like(rate: float, options: dict[str, Any]) -> tuple[ClientSpec, ...]:
    """ShareGPT-like lengths.

    The prompt lognormal (median 2560, sigma 1.43 before the cap) was fitted so that after the default 8192 total
    cap the prompts have mean ~2340, median ~1730 and p99 ~7470 (the sharegpt_8k file: 2340 / 1730 / 7434). The
    output lognormal has mean 439 and median 415; about 22 % of draws are redrawn by the cap.
    """
    prompt = LognormalTokens(mu=math.log(2560.0), sigma=1.43)
    lengths = IndependentLengths(prompt, LognormalTokens.from_mean_median(439, 415), options["max_total"])
    return (ClientSpec(_arrivals(rate, options["cv"]), lengths),)


def _wait_types(*types: tuple[float, int, int]) -> Callable[[float, dict[str, Any]], tuple[ClientSpec, ...]]:
    """WAIT synthetic types: ``(share of the rate, prompt, output)``, type label = position."""

    def clients(rate: float, options: dict[str, Any]) -> tuple[ClientSpec, ...]:
        return tuple(
            ClientSpec(_arrivals(rate * share, options["cv"]), IndependentLengths.fixed(p, o), client=0, type_label=j)
            for j, (share, p, o) in enumerate(types)
        )

    return clients


def trace_options(fmt: str, *, shuffle: bool = False, max_total: int | None = None) -> tuple[Option, ...]:
    """The options of a workload read from a file of format ``fmt`` (with the given defaults)."""
    defaults = {"shuffle": shuffle, "max_total": max_total}
    return tuple(replace(o, default=defaults.get(o.name, o.default)) for o in trace_format(fmt).options)


def _from_file(path: Path, fmt: str, args: _Args, options: dict[str, Any]) -> Iterator[Request]:
    """A file's requests: timestamped formats rescale to ``rate``; length statistics get arrivals at ``rate``."""
    if not trace_format(fmt).timestamped:
        return _bounded(load_trace(path, fmt, rng=args.rng, rate=args.rate, **options), args)
    stream = load_trace(path, fmt, **options)
    if args.rate is not None:
        stream = transforms.scale_to_rate(stream, args.rate)
    return _bounded(stream, args)


def _named_file(filename: str, fmt: str, options: tuple[Option, ...]) -> Factory:
    def factory(args: _Args, name: str) -> Iterator[Request]:
        return _from_file(resolve_trace_file(filename, args.trace_dir), fmt, args, args.option(options, name))

    return factory


def _path_file(args: _Args, name: str) -> Iterator[Request]:
    """A workload read from the file ``name`` (format from option ``fmt`` or its header)."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"trace file {name} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    fmt = args.options.get("fmt")
    kind = trace_format(fmt).name if fmt is not None else detect_format(path)
    options = args.option((*trace_options(kind), FMT), name)
    options.pop("fmt")
    return _from_file(path, kind, args, options)


def is_trace_path(name: str) -> bool:
    """Whether a workload name is a file path (it has a ``/`` or a trace suffix, or names an existing file)."""
    if "/" in name or "\\" in name or Path(name).suffix.lower() in TRACE_SUFFIXES:
        return True
    return Path(name).is_file()


def _servegen(model: str) -> Factory:
    def factory(args: _Args, name: str) -> Iterator[Request]:
        options = args.option(SERVEGEN_OPTIONS, name)
        windows = resolve_trace_file(WINDOWS_FILE, args.trace_dir)
        resolve_trace_file(LENGTHS_FILE, windows.parent)
        workload = ServeGenWorkload(ServeGenModel.load(windows.parent, model), target_rate=args.rate, **options)
        duration = DEFAULT_SERVEGEN_DURATION_S if args.n is None and args.duration is None else args.duration
        return workload.generate(args.rng, n=args.n, duration=duration)

    return factory


@dataclass(frozen=True, slots=True)
class _Entry:
    description: str
    factory: Factory
    options: tuple[Option, ...]


SHAREGPT_MAX_TOTAL = Option("max_total", int, 8192, "redraw (prompt, output) pairs whose total exceeds this")


def _built_in_entries() -> dict[str, _Entry]:
    """Workloads that need no trace files."""
    wait = "built-in: WAIT {}, Poisson (option cv)"
    return {
        "synthetic-sharegpt": _Entry(
            "built-in, no files: Poisson arrivals, lognormal lengths fitted to ShareGPT (after the total <= 8192 cap: "
            "prompt mean 2340 median 1730, output mean 439 median 415) (options max_total, cv for Gamma arrivals)",
            _synthetic(_sharegpt_like, SHAREGPT_MAX_TOTAL),
            (CV, SHAREGPT_MAX_TOTAL),
        ),
        "wait-p512d20": _Entry(
            wait.format("single type, prompt 512, output 20, type 0"), _synthetic(_wait_types((1.0, 512, 20))), (CV,)
        ),
        "wait-p512d20-p512d50": _Entry(
            wait.format("two types, 0.7 x p512d20 (type 0) + 0.3 x p512d50 (type 1)"),
            _synthetic(_wait_types((0.7, 512, 20), (0.3, 512, 50))),
            (CV,),
        ),
        "wait-p512d1000": _Entry(
            wait.format("single type, prompt 512, output 1000, type 0"),
            _synthetic(_wait_types((1.0, 512, 1000))),
            (CV,),
        ),
    }


_TRACES: tuple[tuple[str, str, str, dict[str, Any], str], ...] = (
    ("sharegpt", SHAREGPT_FILE, "length-stats", {"shuffle": True, "max_total": 8192}, "30,731 length pairs, shuffled"),
    ("arxiv", ARXIV_FILE, "length-stats", {"shuffle": True, "max_total": 16384}, "28,257 length pairs, shuffled"),
    ("azure-conv-2023", AZURE_CONV_2023_FILE, "azure", {}, "19,366 requests over 3,502 s"),
    ("mooncake-conversation", MOONCAKE_CONVERSATION_FILE, "mooncake", {}, "12,031 Kimi requests, 3,537 s"),
    ("mooncake-synthetic", MOONCAKE_SYNTHETIC_FILE, "mooncake", {}, "3,993 requests, Poisson arrivals"),
    ("vtc-lmsys", VTC_FILE, "vtc", {}, "1,500 requests of 27 clients over 600 s"),
)
"""Named public traces: name, file, format, option defaults, description."""


def _trace_entries() -> dict[str, _Entry]:
    """Workloads backed by files of the public traces folder."""
    entries: dict[str, _Entry] = {}
    for name, filename, fmt, defaults, what in _TRACES:
        options = trace_options(fmt, **defaults)
        timing = "" if trace_format(fmt).timestamped else ", Poisson at `rate`"
        described = f"{filename}: {what}{timing} (options {', '.join(o.name for o in options)})"
        entries[name] = _Entry(described, _named_file(filename, fmt, options), options)
    for model in SERVEGEN_MODELS:
        entries[f"servegen-{model}"] = _Entry(
            f"ServeGen {model} per-client statistics: multi-client stream (options start_s, top_k, clients)",
            _servegen(model),
            SERVEGEN_OPTIONS,
        )
    return entries


def _entries() -> dict[str, _Entry]:
    """The registry, built on each call (no module-level mutable state)."""
    return {**_built_in_entries(), **_trace_entries()}


def list_workloads() -> dict[str, str]:
    """Workload names mapped to a one-line description."""
    return {name: entry.description for name, entry in _entries().items()}


def workload_options(name: str, trace_dir: Path | str | None = None) -> tuple[Option, ...]:
    """The options a workload takes (``--workload-option``), with types and defaults.

    For a trace file path the format decides (read from the header), plus ``fmt``.

    Raises:
        UnknownNameError: ``name`` is neither registered nor a path.
    """
    canonical = resolve_workload(name)
    entries = _entries()
    if canonical in entries:
        return entries[canonical].options
    return (*trace_options(detect_format(canonical)), FMT)


def resolve_workload(name: str) -> str:
    """The registered spelling of ``name`` (case-insensitive), or ``name`` itself when it is a trace file path.

    Raises:
        UnknownNameError: Neither; the message suggests the closest registered name.
    """
    entries = _entries()
    if name in entries:
        return name
    for registered in entries:
        if registered.lower() == name.strip().lower():
            return registered
    if is_trace_path(name):
        return name
    close = difflib.get_close_matches(name.lower(), list(entries), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownNameError(
        f"unknown workload {name!r}{hint}; choose one of {sorted(entries)} (see `llmsched workloads`) or give the "
        "path of a trace file"
    )


def make_workload(
    name: str,
    *,
    rng: np.random.Generator,
    n_requests: int | None = None,
    rate: float | None = None,
    duration: float | None = None,
    trace_dir: Path | str | None = None,
    **options: Any,
) -> Iterator[Request]:
    """Build a named workload, or read a trace file (see the module docstring for the shared arguments).

    Args:
        name: A name from :func:`list_workloads` (case-insensitive), or the path of a trace file of any format of
            :data:`~llmsched_gym.workloads.formats.FORMATS` (detected from its header; option ``fmt`` forces one).
        rng: The only source of randomness.
        n_requests: Stop after this many requests.
        rate: Requests/s; meaning depends on the workload kind.
        duration: Keep arrivals before this many seconds.
        trace_dir: Folder with the trace files.
        **options: Workload-specific options (:func:`workload_options`).

    Returns:
        A lazy iterator of requests sorted by arrival, ids 0..N-1.

    Raises:
        UnknownNameError: ``name`` is not registered and not a path.
        FileNotFoundError: A trace file is missing.
        TypeError: An option is not accepted by this workload.
    """
    canonical = resolve_workload(name)
    if n_requests is not None and (isinstance(n_requests, bool) or n_requests < 0):
        raise ValueError(f"make_workload: n_requests={n_requests!r} must be an integer >= 0")
    if rate is not None and not (rate > 0 and np.isfinite(rate)):
        raise ValueError(f"make_workload: rate={rate!r} must be a positive number of requests/s")
    if duration is not None and not (duration >= 0 and np.isfinite(duration)):
        raise ValueError(f"make_workload: duration={duration!r} must be a finite number of seconds >= 0")
    args = _Args(rng, n_requests, rate, duration, trace_dir, dict(options))
    entries = _entries()
    return entries[canonical].factory(args, canonical) if canonical in entries else _path_file(args, canonical)


def all_option_names() -> frozenset[str]:
    """Every option name any workload or trace format takes (to speak of them in command-line terms)."""
    from llmsched_gym.workloads.formats import FORMATS

    names = {o.name for entry in _entries().values() for o in entry.options}
    return frozenset(names | {o.name for f in FORMATS.values() for o in f.options} | {FMT.name})
