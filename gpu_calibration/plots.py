"""Plots of a profile's fit and of a sim-vs-live comparison (matplotlib, imported when called)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.costs.profile import Profile, ProfileCostModel
from llmsched_gym.costs.profile_fit import MeasuredPoint


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _kind(p: MeasuredPoint) -> str:
    if p.flag == "outlier":
        return "outlier (excluded)"
    if p.role == "holdout":
        return "held out"
    return "fitted"


def plot_fit(profile: Profile, path: str | os.PathLike[str], *, extra: Sequence[MeasuredPoint] = ()) -> Path:
    """Predicted vs measured for every grid point (fitted, held out, outliers) and the relative error by tokens."""
    plt = _pyplot()
    model = ProfileCostModel(profile)
    points = [*profile.grid, *extra]
    measured = np.array([p.seconds for p in points]) * 1e3
    predicted = np.array([model.iteration_time(p.summary()) for p in points]) * 1e3
    kinds = [_kind(p) if i < len(profile.grid) else "extra" for i, p in enumerate(points)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    styles = {"fitted": ("o", "tab:blue"), "held out": ("s", "tab:orange"), "outlier (excluded)": ("x", "tab:red"),
              "extra": ("^", "tab:green")}  # fmt: skip
    tokens = np.array([p.total_tokens for p in points])
    for kind, (marker, color) in styles.items():
        sel = np.array([k == kind for k in kinds])
        if sel.any():
            ax1.scatter(measured[sel], predicted[sel], marker=marker, s=14, color=color, label=kind)
            ax2.scatter(tokens[sel], (predicted[sel] / measured[sel] - 1) * 100, marker=marker, s=14, color=color)
    lo, hi = measured.min() * 0.8, measured.max() * 1.25
    ax1.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    ax1.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)")
    v = profile.validation
    med = f"{v.median_abs_error:.1%}" if v.median_abs_error is not None else "n/a"
    p90 = f"{v.p90_abs_error:.1%}" if v.p90_abs_error is not None else "n/a"
    method = profile.fit_info.get("validation", "held-out points")
    title = f"{profile.gpu_name} / {profile.model.name} TP{profile.tp}"
    ax1.set_title(f"{title}\nvalidation ({method}): median {med}, p90 {p90}", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set(xscale="log", xlabel="batch tokens", ylabel="error (%)", title="predicted / measured - 1 (final fit)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_comparison(rows: Sequence[Any], errors: np.ndarray, path: str | os.PathLike[str],
                    title: str = "sim vs live") -> Path:  # fmt: skip
    """Bars of live (median, range) and simulated latency percentiles, and the histogram of per-iteration errors.

    Args:
        rows: :class:`gpu_calibration.compare.Row` records.
        errors: Per-iteration relative errors.
        path: Where to write the PNG.
        title: Title of the left panel.
    """
    plt = _pyplot()
    latency = [r for r in rows if r.metric.startswith(("TTFT", "TBT", "E2E"))]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(latency))
    live = np.array([r.live for r in latency]) * 1e3
    spread = np.array([[r.live - r.live_min, r.live_max - r.live] for r in latency]).T * 1e3
    ax1.bar(x - 0.2, live, width=0.4, yerr=spread, capsize=3, label="live (median, range)")
    ax1.bar(x + 0.2, [r.sim * 1e3 for r in latency], width=0.4, label="sim (profile)")
    for i, r in enumerate(latency):
        ax1.annotate(f"{r.rel_diff:+.1%}", (x[i], max(r.live_max, r.sim) * 1e3), ha="center", va="bottom", fontsize=8)
    ax1.set_xticks(x, [r.metric for r in latency], fontsize=8)
    ax1.set(yscale="log", ylabel="ms", title=title)
    ax1.legend(fontsize=8)
    ax2.hist(np.clip(errors * 100, -50, 50), bins=40, color="tab:blue")
    ax2.set(xlabel="per-iteration error (%), clipped to ±50", ylabel="iterations",
            title=f"profile vs live iterations: median |err| {np.median(np.abs(errors)):.1%}")  # fmt: skip
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_roofline_errors(table: dict[str, dict[str, float]], path: str | os.PathLike[str]) -> Path:
    """Grouped bars: median error of each roofline parameter set (keys of the inner dicts) per public setup."""
    plt = _pyplot()
    setups = list(table)
    names = list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(11, 4))
    x = np.arange(len(setups))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        ax.bar(x + (j - (len(names) - 1) / 2) * width, [table[s][name] * 100 for s in setups], width, label=name)
    ax.axhline(15, color="red", lw=0.8, ls="--", label="goal 15 %")
    ax.set_xticks(x, setups, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="median |error| (%)", title="roofline vs the public measurements, per setup")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
