"""Token histories of requests (prompt plus generated tokens) and where prompts come from.

A request's history survives the release of its KV (a recompute preemption re-prefills positions
``[0, p + g)`` from it) and is dropped only when the engine forgets the request (finish or reject).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from llmsched_gym.core.request import Request

I64 = npt.NDArray[np.int64]
PromptFn = Callable[[int, int], npt.ArrayLike]
PromptSource = PromptFn | Mapping[int, npt.ArrayLike]


def random_prompt(seed: int, request_id: int, prompt_len: int, allowed: I64) -> I64:
    """Deterministic pseudo-random prompt: ids drawn from ``allowed`` by a Generator seeded with (seed, id)."""
    rng = np.random.default_rng([seed, request_id])
    picks: I64 = allowed[rng.integers(0, allowed.size, size=prompt_len, dtype=np.int64)]
    return picks


class TokenStore:
    """Per-request token sequences with overwrite-at-position semantics.

    Args:
        vocab_size: Vocabulary size (prompt ids must be below it).
        special_tokens: Ids never drawn for generated prompts.
        seed: Seed of generated prompts.
        prompt_tokens: ``prompt_tokens(request_id, prompt_len) -> ids`` or a mapping ``request_id -> ids``;
            ``None`` generates prompts with :func:`random_prompt`.
        requests: Requests indexed by engine id (the arrival-sorted workload the engine serves), or a
            mapping ``engine id -> prompt length``. Needed unless ``prompt_tokens`` is a mapping.
    """

    def __init__(
        self,
        vocab_size: int,
        special_tokens: Iterable[int],
        seed: int,
        prompt_tokens: PromptSource | None = None,
        requests: Sequence[Request] | Mapping[int, int] | None = None,
    ) -> None:
        self.vocab_size = vocab_size
        self.seed = seed
        self.allowed: I64 = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), np.fromiter(special_tokens, np.int64))
        self.source = prompt_tokens
        self._lens: dict[int, int] = {}
        self._ext: dict[int, int] = {}
        self._tokens: dict[int, I64] = {}
        self._length: dict[int, int] = {}
        if requests is not None:
            self.add_requests(requests)

    def add_requests(self, requests: Sequence[Request] | Mapping[int, int]) -> None:
        """Declare prompt lengths: a sequence of requests indexed by engine id, or ``{engine id: prompt_len}``."""
        if isinstance(requests, Mapping):
            self._lens.update({int(k): int(v) for k, v in requests.items()})
            return
        base = len(self._ext)
        for i, req in enumerate(requests):
            self._lens[base + i] = req.prompt_len
            self._ext[base + i] = req.id

    def __contains__(self, rid: int) -> bool:
        return rid in self._tokens

    def length(self, rid: int) -> int:
        """Known tokens of ``rid`` (loads its prompt on first use)."""
        self._ensure(rid)
        return self._length[rid]

    def tokens(self, rid: int) -> I64:
        """The known tokens of ``rid`` (a view; prompt followed by generated tokens)."""
        self._ensure(rid)
        return self._tokens[rid][: self._length[rid]]

    def prompt_len(self, rid: int) -> int | None:
        """Declared prompt length of ``rid``, if known."""
        return self._lens.get(rid)

    def put(self, rid: int, position: int, token: int) -> None:
        """Write ``token`` at ``position`` and drop anything after it (overwrite, never blind append)."""
        buf = self._tokens[rid]
        if position >= buf.size:
            grown = np.zeros(max(2 * buf.size, position + 64), dtype=np.int64)
            grown[: buf.size] = buf
            self._tokens[rid] = buf = grown
        buf[position] = token
        self._length[rid] = position + 1

    def forget(self, rid: int) -> I64 | None:
        """Drop ``rid``'s history; returns it (or ``None`` if there was none)."""
        n = self._length.pop(rid, None)
        buf = self._tokens.pop(rid, None)
        return None if buf is None or n is None else buf[:n]

    def _ensure(self, rid: int) -> None:
        if rid in self._tokens:
            return
        prompt = self._load(rid)
        if prompt.ndim != 1 or prompt.size < 1:
            raise ValueError(f"prompt of request {rid} must be a non-empty 1-D sequence of token ids")
        if int(prompt.min()) < 0 or int(prompt.max()) >= self.vocab_size:
            raise ValueError(f"prompt of request {rid} has ids outside [0, {self.vocab_size})")
        buf = np.zeros(prompt.size + 64, dtype=np.int64)
        buf[: prompt.size] = prompt
        self._tokens[rid] = buf
        self._length[rid] = int(prompt.size)

    def _load(self, rid: int) -> I64:
        src = self.source
        if isinstance(src, Mapping):
            if rid not in src:
                raise KeyError(f"no prompt tokens for request {rid} in the prompt_tokens mapping")
            return np.asarray(src[rid], dtype=np.int64)
        n = self._lens.get(rid)
        if n is None:
            raise KeyError(
                f"request {rid} has no declared prompt length; pass requests=... (indexed by engine id) "
                "to LiveRunner or call add_requests()"
            )
        ext = self._ext.get(rid, rid)
        if src is None:
            return random_prompt(self.seed, ext, n, self.allowed)
        return np.asarray(src(ext, n), dtype=np.int64)
