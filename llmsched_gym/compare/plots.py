"""Comparison plots (PNG, matplotlib): latency–load curves, CDFs, service and KV over time, capacity.

matplotlib is an optional dependency (``pip install llmsched-gym[plots]``); it is imported only here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.compare.sweep import SweepPoint


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("plots need matplotlib: pip install 'llmsched-gym[plots]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_scheduler(points: Sequence[SweepPoint]) -> dict[str, list[SweepPoint]]:
    out: dict[str, list[SweepPoint]] = {}
    for p in points:
        out.setdefault(p.scheduler, []).append(p)
    return out


def _mean_by_rate(points: list[SweepPoint], metric: str, stat: str) -> tuple[np.ndarray, np.ndarray]:
    rates = sorted({p.rate for p in points if p.rate is not None})
    values = [np.nanmean([getattr(p.summary, metric)[stat] for p in points if p.rate == r]) for r in rates]
    return np.array(rates), np.array(values)


def latency_load(points: Sequence[SweepPoint], path: Path, caption: str = "") -> Path:
    """Median TTFT and P99 TBT against arrival rate, one line per scheduler."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, pts in _by_scheduler(points).items():
        for ax, (metric, stat) in zip(axes, (("ttft", "p50"), ("tbt", "p99")), strict=True):
            x, y = _mean_by_rate(pts, metric, stat)
            ax.plot(x, y, marker="o", label=name)
    axes[0].set(xlabel="arrival rate (req/s)", ylabel="median TTFT (s)", yscale="log", title="TTFT vs load")
    axes[1].set(xlabel="arrival rate (req/s)", ylabel="P99 TBT (s)", yscale="log", title="TBT vs load")
    axes[0].legend(fontsize=8)
    return _save(fig, path, caption)


def _at(points: Sequence[SweepPoint]) -> str:
    """Where the single-run plots look: the highest swept rate, its first seed."""
    p = max(points, key=lambda q: (q.rate or 0.0, -q.seed))
    rate = "the workload's rate" if p.rate is None else f"rate {p.rate:g} req/s"
    return f"{rate}, seed {p.seed}"


def cdfs(points: Sequence[SweepPoint], path: Path, caption: str = "") -> Path:
    """TTFT and TBT CDFs, one line per scheduler, at the highest swept rate (first seed)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, pts in _by_scheduler(points).items():
        p = max(pts, key=lambda q: (q.rate or 0.0, -q.seed))
        ttft = np.sort(p.ttft[np.isfinite(p.ttft)])
        axes[0].plot(ttft, np.arange(1, ttft.size + 1) / max(ttft.size, 1), label=name)
        order = np.argsort(p.tbt_values)
        cum = np.cumsum(p.tbt_weights[order])
        axes[1].plot(p.tbt_values[order], cum / max(cum[-1], 1) if cum.size else cum, label=name)
    at = _at(points)
    axes[0].set(xlabel="TTFT (s)", ylabel="CDF", xscale="log", title=f"TTFT CDF at {at}")
    axes[1].set(xlabel="TBT (s)", ylabel="CDF", xscale="log", title=f"TBT CDF at {at}")
    axes[0].legend(fontsize=8)
    return _save(fig, path, caption)


def service_over_time(points: Sequence[SweepPoint], path: Path, max_clients: int = 6, caption: str = "") -> Path:
    """Cumulative per-client service (VTC cost) over time, one panel per scheduler."""
    plt = _plt()
    groups = _by_scheduler(points)
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.5), squeeze=False)
    for ax, (name, pts) in zip(axes[0], groups.items(), strict=True):
        p = max(pts, key=lambda q: (q.rate or 0.0, -q.seed))
        for c in range(min(max_clients, p.client_service.shape[1] if p.client_service.ndim == 2 else 0)):
            ax.plot(p.sample_times, p.client_service[:, c], label=f"client {c}")
        ax.set(title=f"{name} at {_at(pts)}", xlabel="time (s)", ylabel="service (tokens)")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path, caption)


def kv_over_time(points: Sequence[SweepPoint], path: Path, caption: str = "") -> Path:
    """KV-cache utilisation over time at the highest swept rate, one line per scheduler."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, pts in _by_scheduler(points).items():
        p = max(pts, key=lambda q: (q.rate or 0.0, -q.seed))
        ax.plot(p.sample_times, p.kv_used, label=name)
    ax.set(
        xlabel="time (s)", ylabel="KV blocks used (fraction)", ylim=(0, 1.05), title=f"KV utilisation at {_at(points)}"
    )
    ax.legend(fontsize=8)
    return _save(fig, path, caption)


def capacity_bars(capacity: dict[str, float], path: Path, title: str = "capacity", caption: str = "") -> Path:
    """Bars of each scheduler's capacity (req/s)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(capacity)), 3.5))
    names = list(capacity)
    ax.bar(names, [capacity[n] for n in names], color="tab:blue")
    ax.set(ylabel="capacity (req/s)", title=title)
    ax.tick_params(axis="x", rotation=30)
    return _save(fig, path, caption)


def _save(fig: Any, path: Path, caption: str = "") -> Path:
    """Save as PNG; ``caption`` (what was run: workload, hardware, seeds, SLO) goes above the panels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if caption:
        fig.suptitle(textwrap.fill(caption, 110), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
