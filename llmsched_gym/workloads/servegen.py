"""Multi-client workloads from Alibaba ServeGen's per-client statistics (see the traces README, section 5).

Two summary files are read (gzip + csv, streamed, filtered to one model):

* ``servegen_client_windows.csv.gz``: per client and 600-s window, ``rate_rps``, ``iat_cv`` and a fitted IAT
  distribution ``iat_dist`` (``Gamma`` or ``Weibull``, scipy-style ``iat_shape``/``iat_scale``); only active
  windows are listed, so a client is silent in windows without a row.
* ``servegen_client_length_quantiles.csv.gz``: per client and 6-h window, quantiles p0..p100 of each length field.

Generation, window by window:

* Arrivals: within each active window a renewal process starts at the window start. IATs are drawn from the fitted
  distribution (``rng.gamma(shape) * scale`` or ``scale * rng.weibull(shape)``) and rescaled so that their mean is
  ``1 / (rate_rps * rate_scale)``: as in ServeGen, the fitted shape sets the burstiness and the window rate the
  level. ``rate_scale`` is 1, or ``target_rate`` divided by the selected clients' mean aggregate rate over the span
  (ServeGen treats client rates as relative shares).
* Lengths: inverse-CDF sampling, ``u ~ U(0, 1)`` interpolated linearly between the quantile levels, rounded, at
  least 1. The quantiles come from the client's 6-h window containing the arrival; else the client's nearest
  window; else (55 heavy clients have no length rows) the model's **pooled** quantiles: the element-wise median
  of all of the model's quantile vectors for that field. Multimodal models without ``input_tokens`` use
  ``text_tokens + image_count * image_tokens`` as the prompt.
* ``Request.client`` is the ServeGen ``client_id``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmsched_gym.core.request import Request
from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads._parse import csv_rows, parse_count, parse_seconds, where
from llmsched_gym.workloads._validate import require_int_at_least, require_non_negative, require_positive, require_stop

WINDOWS_FILE = "servegen_client_windows.csv.gz"
LENGTHS_FILE = "servegen_client_length_quantiles.csv.gz"
RATE_WINDOW_S = 600.0
LENGTH_WINDOW_S = 21600.0
QUANTILE_COLUMNS = ("p0", "p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "p100")
QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1.0)
SERVEGEN_MODELS = ("m-large", "m-mid", "m-small", "deepseek-r1", "mm-image")
_WINDOW_COLUMNS = ("model", "client_id", "window_start_s", "rate_rps", "iat_dist", "iat_shape", "iat_scale")
_LENGTH_COLUMNS = ("model", "client_id", "window_start_s", "field", *QUANTILE_COLUMNS)
_FIELDS = ("input_tokens", "output_tokens", "text_tokens", "image_tokens", "image_count")


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One active 600-s window of a client.

    Attributes:
        start_s: Window start (a multiple of 600).
        rate: Requests per second in the window.
        dist: ``"Gamma"`` or ``"Weibull"``.
        shape: Fitted shape parameter.
        scale: Fitted scale parameter.
    """

    start_s: float
    rate: float
    dist: str
    shape: float
    scale: float

    def iats(self, size: int, rate: float, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` IATs from the fitted distribution, rescaled to mean ``1 / rate``."""
        if self.dist == "Gamma":
            draws = rng.gamma(self.shape, self.scale, size)
            mean = self.shape * self.scale
        else:
            draws = self.scale * rng.weibull(self.shape, size)
            mean = self.scale * math.exp(math.lgamma(1.0 + 1.0 / self.shape))
        return draws / (mean * rate)


@dataclass(frozen=True, slots=True, eq=False)
class ServeGenModel:
    """The parsed ServeGen statistics of one model (read-only after loading).

    Attributes:
        model: Model name, e.g. ``"m-large"``.
        windows: Client id -> its active windows keyed by window start.
        quantiles: ``(client, field)`` -> 6-h window start -> quantile vector (11 values).
        pooled: Field -> pooled quantile vector (element-wise median over the model's rows).
    """

    model: str
    windows: Mapping[int, Mapping[float, RateWindow]]
    quantiles: Mapping[tuple[int, str], Mapping[float, np.ndarray]]
    pooled: Mapping[str, np.ndarray]

    @classmethod
    def load(cls, trace_dir: Path | str, model: str) -> ServeGenModel:
        """Read ``WINDOWS_FILE`` and ``LENGTHS_FILE`` from ``trace_dir``, keeping rows of ``model``.

        Raises:
            TraceFormatError: A file is malformed, or the model has no windows or no length rows.
            FileNotFoundError: A file is missing.
        """
        directory = Path(trace_dir)
        windows = _read_windows(directory / WINDOWS_FILE, model)
        quantiles, pooled = _read_quantiles(directory / LENGTHS_FILE, model)
        if not windows:
            raise TraceFormatError(f"{directory / WINDOWS_FILE}: no rows for model {model!r}; try {SERVEGEN_MODELS}")
        if not pooled:
            raise TraceFormatError(f"{directory / LENGTHS_FILE}: no length rows for model {model!r}")
        return cls(model, windows, quantiles, pooled)

    @property
    def end_s(self) -> float:
        """End of the last active window."""
        return max(max(w) for w in self.windows.values()) + RATE_WINDOW_S

    def volume(self, client: int, start_s: float, end_s: float) -> float:
        """Expected number of the client's requests in ``[start_s, end_s)`` at the recorded rates."""
        total = 0.0
        for w in self.windows.get(client, {}).values():
            overlap = min(end_s, w.start_s + RATE_WINDOW_S) - max(start_s, w.start_s)
            total += w.rate * max(0.0, overlap)
        return total

    def quantile_vector(self, client: int, field: str, time_s: float) -> np.ndarray:
        """The quantiles used for ``client``'s ``field`` at ``time_s`` (own window, nearest window, or pooled)."""
        table = self.quantiles.get((client, field))
        if not table:
            return self.pooled[field]
        slot = math.floor(time_s / LENGTH_WINDOW_S) * LENGTH_WINDOW_S
        if slot in table:
            return table[slot]
        return table[min(table, key=lambda start: (abs(start - slot), start))]

    def sample(self, client: int, field: str, time_s: float, size: int, rng: np.random.Generator) -> np.ndarray:
        """Inverse-CDF samples of ``field`` for ``client`` at ``time_s``, rounded to integers >= 0."""
        values = np.interp(rng.random(size), QUANTILE_LEVELS, self.quantile_vector(client, field, time_s))
        return np.maximum(np.rint(values), 0).astype(np.int64)

    def sample_prompts(self, client: int, time_s: float, size: int, rng: np.random.Generator) -> np.ndarray:
        """Prompt lengths (>= 1): ``input_tokens``, or ``text + image_count * image_tokens`` (multimodal)."""
        if "input_tokens" in self.pooled:
            prompts = self.sample(client, "input_tokens", time_s, size, rng)
        else:
            text = self.sample(client, "text_tokens", time_s, size, rng)
            count = self.sample(client, "image_count", time_s, size, rng)
            prompts = text + count * self.sample(client, "image_tokens", time_s, size, rng)
        return np.maximum(prompts, 1)

    def sample_outputs(self, client: int, time_s: float, size: int, rng: np.random.Generator) -> np.ndarray:
        """Output lengths (>= 1) from ``output_tokens``."""
        return np.maximum(self.sample(client, "output_tokens", time_s, size, rng), 1)


def _read_windows(path: Path, model: str) -> dict[int, dict[float, RateWindow]]:
    windows: dict[int, dict[float, RateWindow]] = defaultdict(dict)
    for line, row in csv_rows(path, _WINDOW_COLUMNS, only=("model", model)):
        client = parse_count(row["client_id"], (path, line, "client_id"), allow_zero=True)
        start = parse_seconds(row["window_start_s"], (path, line, "window_start_s"))
        numbers = [parse_seconds(row[k], (path, line, k)) for k in ("rate_rps", "iat_shape", "iat_scale")]
        for key, value in zip(("rate_rps", "iat_shape", "iat_scale"), numbers, strict=True):
            if value <= 0:
                raise TraceFormatError(f"{where(path, line, key)}: {value!r} must be positive")
        if row["iat_dist"] not in ("Gamma", "Weibull"):
            raise TraceFormatError(f"{where(path, line, 'iat_dist')}: {row['iat_dist']!r} is not Gamma or Weibull")
        windows[client][start] = RateWindow(start, numbers[0], row["iat_dist"], numbers[1], numbers[2])
    return dict(windows)


def _read_quantiles(
    path: Path, model: str
) -> tuple[dict[tuple[int, str], dict[float, np.ndarray]], dict[str, np.ndarray]]:
    table: dict[tuple[int, str], dict[float, np.ndarray]] = defaultdict(dict)
    by_field: dict[str, list[np.ndarray]] = defaultdict(list)
    for line, row in csv_rows(path, _LENGTH_COLUMNS, only=("model", model)):
        if row["field"] not in _FIELDS:
            continue
        client = parse_count(row["client_id"], (path, line, "client_id"), allow_zero=True)
        start = parse_seconds(row["window_start_s"], (path, line, "window_start_s"))
        vector = np.array([parse_seconds(row[k], (path, line, k)) for k in QUANTILE_COLUMNS])
        if np.any(np.diff(vector) < 0):
            raise TraceFormatError(f"{where(path, line)}: quantiles p0..p100 must be non-decreasing")
        vector.flags.writeable = False
        table[(client, row["field"])][start] = vector
        by_field[row["field"]].append(vector)
    pooled = {}
    for field, vectors in by_field.items():
        median = np.median(np.stack(vectors), axis=0)
        median.flags.writeable = False
        pooled[field] = median
    return dict(table), pooled


@dataclass(frozen=True, slots=True, eq=False)
class ServeGenWorkload:
    """A multi-client stream generated from one model's ServeGen statistics.

    Attributes:
        data: The model's parsed statistics (:meth:`ServeGenModel.load`).
        start_s: Where in the 14-day (or 1-day) record the stream starts; arrivals are shifted so it is time 0.
        target_rate: Aggregate mean rate (requests/s) of the selected clients over the span; ``None`` keeps the
            recorded rates.
        top_k: Keep only the ``top_k`` clients with the largest expected volume in the span (ties: lower id).
        clients: Keep only these client ids (applied before ``top_k``); ``None`` keeps all.
    """

    data: ServeGenModel
    start_s: float = 0.0
    target_rate: float | None = None
    top_k: int | None = None
    clients: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Validate the options."""
        if self.clients is not None:
            object.__setattr__(self, "clients", tuple(self.clients))
        require_non_negative("ServeGenWorkload", "start_s", self.start_s, "use a time inside the record, e.g. 0")
        if self.target_rate is not None:
            require_positive("ServeGenWorkload", "target_rate", self.target_rate, "pass requests/s, e.g. 20.0")
        if self.top_k is not None:
            require_int_at_least("ServeGenWorkload", "top_k", self.top_k, 1, "e.g. top_k=10")
        unknown = sorted(set(self.clients or ()) - self.data.windows.keys())
        if unknown:
            raise ValueError(f"ServeGenWorkload: clients {unknown} have no rate windows in {self.data.model}")
        if self.start_s >= self.data.end_s:
            raise ValueError(f"ServeGenWorkload: start_s={self.start_s} is past the record's end {self.data.end_s}")

    def selected_clients(self, end_s: float) -> tuple[int, ...]:
        """Client ids used for a stream ending at ``end_s`` (absolute record time), in id order."""
        pool = self.data.windows.keys() if self.clients is None else set(self.clients)
        volume = {c: self.data.volume(c, self.start_s, end_s) for c in pool}
        active = sorted((c for c in pool if volume[c] > 0), key=lambda c: (-volume[c], c))
        return tuple(sorted(active[: self.top_k] if self.top_k is not None else active))

    def generate(
        self, rng: np.random.Generator, *, n: int | None = None, duration: float | None = None
    ) -> Iterator[Request]:
        """Lazily generate the stream (window by window), numbered 0..N-1 in arrival order.

        Args:
            rng: The only source of randomness.
            n: Stop after this many requests.
            duration: Span in seconds from ``start_s``; without it the stream runs to the record's end.

        Returns:
            Requests sorted by arrival (ties: lower client id first).

        Raises:
            ValueError: Neither ``n`` nor ``duration`` is given, or no client is active in the span.
        """
        require_stop("ServeGenWorkload.generate", n, duration)
        end = self.data.end_s if duration is None else min(self.start_s + duration, self.data.end_s)
        chosen = self.selected_clients(end)
        if not chosen:
            raise ValueError(f"ServeGenWorkload: no client of {self.data.model} is active in [{self.start_s}, {end})")
        scale = 1.0
        if self.target_rate is not None:
            recorded = sum(self.data.volume(c, self.start_s, end) for c in chosen) / (end - self.start_s)
            scale = self.target_rate / recorded
        return self._stream(chosen, end, scale, n, rng)

    def _stream(
        self, chosen: tuple[int, ...], end: float, scale: float, n: int | None, rng: np.random.Generator
    ) -> Iterator[Request]:
        next_id = 0
        slot = math.floor(self.start_s / RATE_WINDOW_S) * RATE_WINDOW_S
        while slot < end:
            for arrival, client, prompt, output in self._slot(chosen, slot, end, scale, rng):
                if n is not None and next_id >= n:
                    return
                yield Request(next_id, arrival - self.start_s, prompt, output, client=client)
                next_id += 1
            slot += RATE_WINDOW_S

    def _slot(
        self, chosen: tuple[int, ...], slot: float, end: float, scale: float, rng: np.random.Generator
    ) -> list[tuple[float, int, int, int]]:
        """All requests of one 600-s window slot, sorted by (arrival, client)."""
        items: list[tuple[float, int, int, int]] = []
        for client in chosen:
            window = self.data.windows[client].get(slot)
            if window is None:
                continue
            times = _window_times(window, window.rate * scale, rng)
            times = times[(times >= self.start_s) & (times < end)]
            if times.size == 0:
                continue
            prompts = self.data.sample_prompts(client, slot, times.size, rng)
            outputs = self.data.sample_outputs(client, slot, times.size, rng)
            items.extend(zip(times.tolist(), [client] * times.size, prompts.tolist(), outputs.tolist(), strict=True))
        items.sort(key=lambda item: (item[0], item[1]))
        return items


def _window_times(window: RateWindow, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Renewal arrival times inside ``[start, start + 600)`` starting at the window start."""
    stop = window.start_s + RATE_WINDOW_S
    block = max(16, math.ceil(rate * RATE_WINDOW_S * 1.25) + 16)
    chunks: list[np.ndarray] = []
    now = window.start_s
    while now < stop:
        times = now + np.cumsum(window.iats(block, rate, rng))
        chunks.append(times[times < stop])
        now = float(times[-1])
    return np.concatenate(chunks) if chunks else np.empty(0)
