"""The engine's small rules, each written once: compiled for kernels, callable from Python.

Every rule is a numba function (``cache=True``). Compiled code (the engine's kernels, the schedulers'
compiled plans, the env's packers) calls it directly; Python code calls the same source through
``rule.py_func``. Rules spell their arithmetic out instead of calling each other or numpy, so that ``py_func`` is
plain arithmetic: fast on Python and numpy scalars and, except :func:`new_blocks` and :func:`arrival_fit`,
elementwise on arrays.

Request progress (docs/engine.md "Request progress"): a request has ``prompt`` tokens, has generated
``generated`` tokens since its last full restart and holds ``computed`` KV tokens in ``held`` blocks of
``bs`` tokens. Its *pending* tokens are ``prompt + generated - computed``; its next row is a *decode* when
exactly one token is pending and it has generated before.

State codes of the request table's ``state`` column: :data:`WAITING`, :data:`RUNNING`, :data:`FINISHED`,
:data:`REJECTED` (names in :data:`STATE_NAMES`). Arrival checks return :data:`FITS`, :data:`NEVER_FITS` or
:data:`PROMPT_ABOVE_WATERMARK`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

WAITING = 1
RUNNING = 2
FINISHED = 3
REJECTED = 4
STATE_NAMES = {0: "unknown", WAITING: "waiting", RUNNING: "running", FINISHED: "finished", REJECTED: "rejected"}

ONE = np.int64(1)  # pass constants to compiled rules as int64: numba compiles a rule once per literal int argument

FITS = 0
NEVER_FITS = 1  # its KV at completion exceeds the pool
PROMPT_ABOVE_WATERMARK = 2  # its prompt's blocks exceed the pool above the watermark


@njit(cache=True)
def pending(prompt, generated, computed):  # type: ignore[no-untyped-def]
    """Tokens a request must process before it emits its next token."""
    return prompt + generated - computed


@njit(cache=True)
def is_decode(prompt, generated, computed):  # type: ignore[no-untyped-def]
    """Whether the request's next row is a decode: one pending token (:func:`pending`) after a generated one."""
    return (prompt + generated - computed == 1) & (generated >= 1)


@njit(cache=True)
def blocks_for(tokens, bs):  # type: ignore[no-untyped-def]
    """KV blocks of ``bs`` tokens that hold ``tokens`` tokens (ceil division; ``tokens >= 0``)."""
    return (tokens + bs - 1) // bs


@njit(cache=True)
def decode_blocks(computed, held, bs):  # type: ignore[no-untyped-def]
    """New blocks a request holding ``held`` blocks for ``computed`` tokens needs to cache one more token."""
    need = (computed + bs) // bs - held  # blocks_for(computed + 1) - held
    return need * (need > 0)


@njit(cache=True)
def admission_blocks(prompt, generated, held, bs):  # type: ignore[no-untyped-def]
    """New blocks reserved at admission in "prompt" allocation mode: the whole (re-)prefill's blocks."""
    need = (prompt + generated + bs - 1) // bs - held  # blocks_for(prompt + generated) - held
    return need * (need > 0)


@njit(cache=True)
def new_blocks(computed, tokens, k, prompt, generated, held, bs, reserve):  # type: ignore[no-untyped-def]
    """New blocks a row of ``tokens`` tokens needs after ``k`` repetitions.

    The request then caches ``computed + k * tokens`` tokens; ``reserve`` (a waiting request in "prompt"
    allocation mode) raises the need to the admission reservation :func:`admission_blocks`.
    """
    after = (computed + k * tokens + bs - 1) // bs  # blocks_for(computed + k * tokens)
    if reserve:
        after = max(after, (prompt + generated + bs - 1) // bs)
    return max(after - held, 0)


@njit(cache=True)
def arrival_fit(prompt, target, bs, total, usable):  # type: ignore[no-untyped-def]
    """Whether an arriving request can ever run: ``(status, blocks at completion, prompt blocks)``.

    ``usable`` is the pool above the watermark. The request's KV at completion holds
    ``prompt + target - 1`` tokens (the last token is never cached).
    """
    need = (prompt + target - 1 + bs - 1) // bs  # blocks_for(prompt + target - 1)
    admit = (prompt + bs - 1) // bs
    if need > total:
        return NEVER_FITS, need, admit
    if admit > usable:
        return PROMPT_ABOVE_WATERMARK, need, admit
    return FITS, need, admit
