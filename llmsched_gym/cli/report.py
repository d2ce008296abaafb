"""What a command says around a run: the one-time compile notice, rejections, and runs that served nothing."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from llmsched_gym.cli.validate import CommandError

if TYPE_CHECKING:
    from llmsched_gym.metrics.summary import RunSummary
    from llmsched_gym.simulate import SimulationResult

KV_FIX = (
    "raise --num-blocks or --memory-utilization, use a larger --gpu or --tp, or drop long requests with "
    "--workload-option max_total=N"
)
LIVE_KV_FIX = "raise --num-blocks or --gpu-memory-fraction, or drop long requests with --workload-option max_total=N"


def note(message: str) -> None:
    """One informational line on stderr (stdout stays the command's output)."""
    print(f"llmsched: {message}", file=sys.stderr, flush=True)


def announce_compile() -> None:
    """Print the one-time compile notice when the simulator's kernels are not cached yet."""
    from llmsched_gym.jit_cache import compile_message

    message = compile_message()
    if message is not None:
        note(message)


def rejection_text(res: SimulationResult, summary: RunSummary, kv_fix: str = KV_FIX) -> str | None:
    """``"12 of 2000 requests were rejected: 12 can never fit (e.g. request 5: ...)"`` plus a fix, or ``None``."""
    from llmsched_gym.metrics.rejections import rejection_groups

    groups = rejection_groups(res)
    if not groups:
        return None
    parts = []
    for g in groups:
        head, _, rest = g.example.partition(": ")
        parts.append(f"{g.count} {head} (e.g. request {g.example_id}: {rest or head})")
    fix = f"; {kv_fix}" if any("KV" in g.kind for g in groups) else ""
    return f"{summary.rejected} of {summary.requests} requests were rejected: {'; '.join(parts)}{fix}"


def check_served(res: SimulationResult, summary: RunSummary, *, strict: bool = True, kv_fix: str = KV_FIX) -> None:
    """Report rejections on stderr; with ``strict``, a run that finished no request is a :class:`CommandError`.

    ``kv_fix`` is the command's advice for requests that do not fit the KV pool.
    """
    text = rejection_text(res, summary, kv_fix)
    if summary.finished == 0 and strict:
        why = text or "no request finished"
        raise CommandError(None, f"nothing could be served: {why}")
    if text is not None:
        note(f"warning: {text}")
