"""Rendering: an ANSI text dashboard and an RGB picture of the queue and KV occupancy (numpy only)."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llmsched_gym.env.context import DecisionContext
    from llmsched_gym.env.stats import EpisodeTracker

WIDTH = 256
ROW = 6
BAR = 16
_COLOURS = MappingProxyType(
    {
        "background": (24, 24, 28),
        "used": (214, 85, 60),
        "free": (60, 160, 90),
        "running": (70, 170, 110),
        "waiting": (110, 130, 200),
        "preempted": (230, 160, 40),
        "output": (120, 200, 230),
        "queue": (200, 200, 200),
    }
)


def _bar(used: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, used)) * width)
    return "#" * filled + "." * (width - filled)


def render_ansi(ctx: DecisionContext, tracker: EpisodeTracker, steps: int, max_rows: int = 12) -> str:
    """A text dashboard: clock, queues, KV use, SLO attainment and the first slots."""
    e = ctx.engine
    t = e.table
    used = 1.0 - e.pool.free / e.pool.total
    lines = [
        f"t={e.now:10.3f}s  step={steps:<7d} waiting={ctx.waiting.size:<5d} running={ctx.running.size:<5d} "
        f"finished={tracker.finished:<6d} slo={tracker.attainment:5.1%}",
        f"KV [{_bar(used)}] {used:6.1%} ({e.pool.free} of {e.pool.total} blocks free)  "
        f"last iteration {1e3 * e.last_duration:7.2f} ms",
        f"{'slot':>4} {'id':>7} {'state':>9} {'prompt':>7} {'pending':>7} {'emitted':>7} {'blocks':>6} {'age s':>8}",
    ]
    for i, rid in enumerate(ctx.slots[:max_rows].tolist()):
        state = "running" if i < ctx.n_run_slots else ("preempted" if t.preemptions[rid] else "waiting")
        pending = int(t.prompt[rid] + t.generated[rid] - t.computed[rid])
        lines.append(
            f"{i:>4} {rid:>7} {state:>9} {int(t.prompt[rid]):>7} {pending:>7} {int(t.emitted[rid]):>7} "
            f"{int(t.blocks[rid]):>6} {e.now - float(t.arrival[rid]):>8.2f}"
        )
    hidden = ctx.slots.size - min(ctx.slots.size, max_rows)
    if hidden:
        lines.append(f"     ... {hidden} more slots")
    return "\n".join(lines) + "\n"


def render_rgb(ctx: DecisionContext, slots: int) -> np.ndarray:
    """An ``(16 + 6K + 16, 256, 3)`` uint8 picture.

    Top band: KV blocks used (red) and free (green). One row per slot: the request's state colour over its
    prefill progress (left half) and its emitted tokens on a log scale (right half, blue). Bottom band: waiting
    (blue) and running (green) counts relative to ``2K``.
    """
    e = ctx.engine
    t = e.table
    img = np.empty((2 * BAR + ROW * slots, WIDTH, 3), dtype=np.uint8)
    img[:] = _COLOURS["background"]
    used = round((1.0 - e.pool.free / e.pool.total) * WIDTH)
    img[1 : BAR - 1, :used] = _COLOURS["used"]
    img[1 : BAR - 1, used:] = _COLOURS["free"]
    ids = ctx.slots
    if ids.size:
        full = np.maximum(t.prompt[ids] + t.generated[ids], 1)
        progress = np.minimum(t.computed[ids] / full, 1.0)
        out = np.minimum(np.log1p(t.emitted[ids]) / np.log1p(4096), 1.0)
        half = WIDTH // 2
        for i, rid in enumerate(ids.tolist()):
            y = BAR + ROW * i
            kind = "running" if i < ctx.n_run_slots else ("preempted" if t.preemptions[rid] else "waiting")
            img[y + 1 : y + ROW - 1, : max(1, int(progress[i] * half))] = _COLOURS[kind]
            img[y + 1 : y + ROW - 1, half : half + int(out[i] * half)] = _COLOURS["output"]
    y = BAR + ROW * slots
    scale = WIDTH / (2.0 * slots)
    w = min(WIDTH, int(ctx.waiting.size * scale))
    r = min(WIDTH, int(ctx.running.size * scale))
    img[y + 1 : y + BAR // 2, :w] = _COLOURS["waiting"]
    img[y + BAR // 2 : y + BAR - 1, :r] = _COLOURS["running"]
    return img
