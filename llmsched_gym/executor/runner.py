"""LiveRunner: the engine's runner that executes each iteration on the device and returns its measured time.

Protocol (:class:`llmsched_gym.core.protocols.Runner`) as the engine uses it:

* ``run(work)``: one packed forward of exactly the rows of ``work`` (decode rows and prefill-chunk rows
  together); rows that sample get a greedy token written at position ``start + n_tokens`` of their
  history (overwriting, so recompute and full-restart preemption both work). Returns wall seconds of
  the whole iteration, host-side preparation included.
* ``release(ids)``: the KV blocks of ``ids`` return to the pool; their token histories are kept.
* ``forget(ids)``: drop everything held for ``ids`` (finished or rejected requests).

The ids are engine ids: the position of the request in the arrival-sorted workload the engine serves
(pass that workload as ``requests=`` so prompt lengths are known).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from llmsched_gym.core.batch import FloatArray, IntArray, IterationWork
from llmsched_gym.core.request import Request
from llmsched_gym.executor.attention import META_KWARG, StepMetadata, ensure_registered, select_impls
from llmsched_gym.executor.cuda_graphs import DEFAULT_BUCKETS, DecodeGraphs
from llmsched_gym.executor.history import I64, PromptSource, TokenStore
from llmsched_gym.executor.kv_pool import BlockManager, KVCache
from llmsched_gym.executor.models import ModelShape
from llmsched_gym.executor.triton_decode import SPLIT_CHOICES, choose_num_splits, paged_decode


@dataclass(frozen=True, slots=True)
class LiveRunnerConfig:
    """Executor settings.

    Attributes:
        num_blocks: KV blocks (must equal the engine's ``KVConfig.num_blocks``).
        block_size: Tokens per block (must equal the engine's ``KVConfig.block_size``).
        max_seqs: Requests that may hold KV at once.
        max_context: Longest prompt plus output; ``None`` uses the model's limit.
        cuda_graphs: Replay decode-only iterations from CUDA graphs (CUDA with Triton only).
        graph_buckets: Batch sizes captured as graphs.
        seed: Seed of generated prompts.
        record_logits: Keep the logits of every sampled token (tests; costs host memory).
        keep_outputs: Keep the final token sequence of forgotten requests in ``LiveRunner.outputs``.
        record_timing: Keep a breakdown of the last iteration's time in ``LiveRunner.last_timing`` (profiling:
            the forward is timed with CUDA events on a GPU, the monotonic clock on the CPU).
    """

    num_blocks: int
    block_size: int = 16
    max_seqs: int = 1024
    max_context: int | None = None
    cuda_graphs: bool = True
    graph_buckets: tuple[int, ...] = DEFAULT_BUCKETS
    seed: int = 0
    record_logits: bool = False
    keep_outputs: bool = False
    record_timing: bool = False

    def __post_init__(self) -> None:
        """Validate sizes."""
        if self.num_blocks < 1:
            raise ValueError(f"LiveRunnerConfig: num_blocks={self.num_blocks} must be >= 1 (use the engine's)")
        if self.block_size < 1:
            raise ValueError(f"LiveRunnerConfig: block_size={self.block_size} must be >= 1 (16 is usual)")
        if self.max_seqs < 1:
            raise ValueError(f"LiveRunnerConfig: max_seqs={self.max_seqs} must be >= 1")
        if self.max_context is not None and self.max_context < 1:
            raise ValueError(f"LiveRunnerConfig: max_context={self.max_context} must be >= 1 or None")
        if not self.graph_buckets or min(self.graph_buckets) < 1:
            raise ValueError(f"LiveRunnerConfig: graph_buckets={self.graph_buckets} must be positive batch sizes")


@dataclass(slots=True)
class _Packed:
    """Host-side arrays of one iteration, rows ordered single-token first."""

    order: I64
    ids: I64
    n: I64
    start: I64
    samples: np.ndarray
    n_single: int
    input_ids: I64
    positions: I64
    slots: I64
    logit_rows: I64
    block_tables: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int32))
    kv_slots: I64 | None = None


@dataclass(frozen=True, slots=True)
class IterationTiming:
    """Where one iteration's time went (``LiveRunnerConfig.record_timing``).

    Attributes:
        total_s: What ``run`` returned: wall time of the whole iteration (monotonic clock).
        prepare_s: Host preparation before the forward (packing rows, block tables, slot mappings).
        forward_s: The forward and sampling: device time between CUDA events on a GPU, wall time on the CPU.
        graph: Whether the iteration replayed a CUDA graph.
    """

    total_s: float
    prepare_s: float
    forward_s: float
    graph: bool


class LiveRunner:
    """Executes iterations of an HF causal LM on a paged KV cache.

    Args:
        model: An HF causal LM built by :func:`llmsched_gym.executor.models.build_model`; its attention
            implementation is switched to the paged one.
        config: Executor settings.
        requests: The engine's workload (arrival-sorted; index = engine id) or ``{engine id: prompt_len}``.
        prompt_tokens: ``prompt_tokens(request_id, prompt_len) -> ids``, or ``{engine id: ids}``; default:
            pseudo-random ids seeded with ``(config.seed, request_id)``, avoiding special tokens.
    """

    supports_stretch = False

    def __init__(
        self,
        model: torch.nn.Module,
        config: LiveRunnerConfig,
        *,
        requests: Sequence[Request] | Mapping[int, int] | None = None,
        prompt_tokens: PromptSource | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.shape = ModelShape.of(model.config)  # type: ignore[arg-type]
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.max_context = min(config.max_context or self.shape.max_context, self.shape.max_context)
        width = -(-self.max_context // config.block_size)
        self.blocks = BlockManager(config.num_blocks, config.block_size, width, config.max_seqs)
        self.kv = KVCache(self.shape, config.num_blocks, config.block_size, self.dtype, self.device)
        self.store = TokenStore(self.shape.vocab_size, self.shape.special_tokens, config.seed, prompt_tokens, requests)
        self.decode_impl, self.prefill_impl = select_impls(self.device, self.dtype)
        self.sm_count = 1
        if self.device.type == "cuda":
            torch.backends.cuda.enable_cudnn_sdp(False)
            self.sm_count = torch.cuda.get_device_properties(self.device).multi_processor_count
        self._attn_name = ensure_registered()
        self.model.set_attn_implementation(self._attn_name)  # type: ignore[operator]
        self.graphs: DecodeGraphs | None = None
        if self.device.type == "cuda" and config.cuda_graphs and self.decode_impl == "triton":
            splits = {b: self._splits(b, self.max_context) for b in config.graph_buckets}
            self.graphs = DecodeGraphs(model, self.kv, width, config.graph_buckets, splits)
        self.logits: dict[int, list[tuple[int, np.ndarray]]] = {}
        self.outputs: dict[int, I64] = {}
        self.last_timing: IterationTiming | None = None

    # ---- Runner protocol -------------------------------------------------------------------
    def run(self, work: IterationWork) -> float:
        """Execute one iteration and return its wall time in seconds (host preparation included)."""
        if self.config.record_timing:
            return self._run_timed(work)
        t0 = time.perf_counter()
        packed = self._pack(work)
        tokens, logits = self._forward(packed)
        self._commit(packed, tokens, logits)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0

    def _run_timed(self, work: IterationWork) -> float:
        """:meth:`run` with the breakdown of :class:`IterationTiming` kept in ``last_timing``."""
        cuda = self.device.type == "cuda"
        t0 = time.perf_counter()
        packed = self._pack(work)
        t1 = time.perf_counter()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        tokens, logits = self._forward(packed)
        if cuda:
            end.record()
        t2 = time.perf_counter()
        self._commit(packed, tokens, logits)
        if cuda:
            torch.cuda.synchronize(self.device)
        total = time.perf_counter() - t0
        forward = start.elapsed_time(end) / 1e3 if cuda else t2 - t1
        graph = self.graphs is not None and packed.n_single == packed.ids.size <= self.graphs.max_batch
        self.last_timing = IterationTiming(total, t1 - t0, forward, graph)
        return total

    def run_stretch(self, work: IterationWork, k: int) -> FloatArray:
        """Not available live: every iteration must run (``supports_stretch`` is False)."""
        raise NotImplementedError("LiveRunner executes every iteration; the engine must not fast-forward it")

    def release(self, ids: IntArray) -> None:
        """Free the KV blocks of ``ids``; their token histories are kept for re-prefill."""
        self.blocks.free(np.asarray(ids, dtype=np.int64))

    def forget(self, ids: IntArray) -> None:
        """Drop the KV blocks and token histories of ``ids`` (kept in ``outputs`` if configured)."""
        arr = np.asarray(ids, dtype=np.int64)
        self.blocks.free(arr)
        for rid in arr.tolist():
            seq = self.store.forget(rid)
            if seq is not None and self.config.keep_outputs:
                self.outputs[rid] = seq.copy()

    # ---- public helpers --------------------------------------------------------------------
    def add_requests(self, requests: Sequence[Request] | Mapping[int, int]) -> None:
        """Declare more requests (engine ids continue after those already declared)."""
        self.store.add_requests(requests)

    def prime(self, known: Mapping[int, int], cached: Mapping[int, int]) -> None:
        """Profiling: set up requests for a designed batch without running their prefill.

        Declares each request ``rid`` of ``known`` with ``known[rid]`` pseudo-random prompt tokens and marks the
        first ``cached[rid]`` of them as cached: blocks are allocated as if they had been computed, but their KV
        holds whatever the pool held (timing does not depend on it; outputs are meaningless). Use fresh ids and
        :meth:`forget` them afterwards.

        Raises:
            ValueError: A request is already known, or caches more tokens than it has.
            KVCapacityError: The pool cannot hold the cached tokens.
        """
        clash = [rid for rid in known if rid in self.store or self.blocks.num_cached(rid)]
        if clash:
            raise ValueError(f"LiveRunner.prime: requests {clash[:5]} are already known; prime fresh ids")
        bad = [rid for rid, n in cached.items() if n > known.get(rid, 0)]
        if bad:
            raise ValueError(f"LiveRunner.prime: requests {bad[:5]} cache more tokens than they have")
        self.store.add_requests(dict(known))
        ids = np.fromiter(cached, dtype=np.int64, count=len(cached))
        self.blocks.resize(ids, np.fromiter(cached.values(), dtype=np.int64, count=len(cached)))

    def tokens(self, rid: int) -> I64:
        """Known tokens of request ``rid``: prompt followed by generated tokens (a copy)."""
        return self.store.tokens(rid).copy()

    def warmup(self) -> None:
        """Compile the decode kernel variants and capture all CUDA-graph buckets now (else on first use)."""
        if self.decode_impl == "triton":
            k_cache, v_cache = self.kv.layer(0)
            q = torch.zeros((1, self.shape.num_heads, self.shape.head_dim), dtype=self.dtype, device=self.device)
            lens = torch.ones(1, dtype=torch.int32, device=self.device)
            for width in (1, 16, 17):  # Triton specialises the table stride: == 1, multiple of 16, other
                table = torch.full((1, width), self.kv.scratch_block, dtype=torch.int32, device=self.device)
                for splits in SPLIT_CHOICES:
                    paged_decode(q, k_cache, v_cache, table, lens, 1.0, splits)
        if self.graphs is not None:
            self.graphs.capture_all()

    # ---- one iteration ---------------------------------------------------------------------
    def _splits(self, batch: int, context: int) -> int:
        if self.device.type != "cuda":
            return 1
        return choose_num_splits(batch, self.shape.num_kv_heads, context, self.sm_count)

    def _check(self, ids: I64, n: I64, start: I64) -> None:
        if ids.size == 0:
            raise ValueError("LiveRunner.run: the iteration has no rows")
        if int(n.min()) < 1 or int(start.min()) < 0:
            raise ValueError("LiveRunner.run: every row needs n_tokens >= 1 and start >= 0")
        for rid, s, k in zip(ids.tolist(), start.tolist(), n.tolist(), strict=True):
            cached, known = self.blocks.num_cached(rid), self.store.length(rid)
            if s > cached:
                raise ValueError(
                    f"request {rid}: row starts at position {s} but only {cached} tokens are cached "
                    "(after a release the request must be re-prefilled from position 0)"
                )
            if s + k > known:
                raise ValueError(f"request {rid}: row needs tokens [{s}, {s + k}) but only {known} are known")

    def _pack(self, work: IterationWork) -> _Packed:
        ids = np.asarray(work.ids, dtype=np.int64)
        n = np.asarray(work.n_tokens, dtype=np.int64)
        start = np.asarray(work.start, dtype=np.int64)
        self._check(ids, n, start)
        self.blocks.resize(ids, start + n)
        order = np.argsort(n > 1, kind="stable")
        ids, n, start = ids[order], n[order], start[order]
        samples = np.asarray(work.samples, dtype=bool)[order]
        rows = self.blocks.rows(ids)
        _, positions, slots = self.blocks.slots(rows, start, start + n)
        input_ids = np.concatenate([self.store.tokens(r)[s : s + k] for r, s, k in zip(ids, start, n, strict=True)])
        ends = np.cumsum(n) - 1
        n_single = int(np.count_nonzero(n == 1))
        p = _Packed(order, ids, n, start, samples, n_single, input_ids, positions, slots, ends[samples])
        if n_single:
            width = self.blocks.blocks_for(int(start[:n_single].max()) + 1)
            p.block_tables = self.blocks.block_table(rows[:n_single], width)
        multi = slice(n_single, None)
        if n_single < ids.size and int(start[multi].max()) > 0:
            p.kv_slots = self.blocks.slots(rows[multi], np.zeros_like(start[multi]), start[multi] + n[multi])[2]
        return p

    def _forward(self, p: _Packed) -> tuple[np.ndarray, torch.Tensor | None]:
        if (
            getattr(self.model.config, "_attn_implementation", None) != self._attn_name
        ):  # switched away, e.g. for HF generate()
            self.model.set_attn_implementation(self._attn_name)  # type: ignore[operator]
        with torch.inference_mode():
            if self.graphs is not None and p.n_single == p.ids.size and p.ids.size <= self.graphs.max_batch:
                tok, logits = self.graphs.run(p.input_ids, p.positions, p.slots, p.block_tables, p.start + 1)
                keep = torch.from_numpy(np.flatnonzero(p.samples)).to(self.device)
                tokens = tok.index_select(0, keep).cpu().numpy()
                return tokens, logits.index_select(0, keep) if self.config.record_logits else None
            meta = self._metadata(p)
            dev = self.device
            out = self.model(
                input_ids=torch.from_numpy(p.input_ids).to(dev)[None],
                position_ids=torch.from_numpy(p.positions).to(dev)[None],
                use_cache=False,
                logits_to_keep=torch.from_numpy(p.logit_rows).to(dev),
                **{META_KWARG: meta},
            )
            logits = out.logits[0]
            if logits.shape[0] == 0:
                return np.zeros(0, dtype=np.int64), None
            return logits.argmax(-1).cpu().numpy(), logits if self.config.record_logits else None

    def _metadata(self, p: _Packed) -> StepMetadata:
        dev = self.device
        ns = p.n_single
        seq_lens = torch.from_numpy((p.start[:ns] + 1).astype(np.int32)).to(dev) if ns else None
        bt = torch.from_numpy(np.ascontiguousarray(p.block_tables)).to(dev) if ns else None
        q_lens = p.n[ns:]
        k_lens = p.start[ns:] + q_lens
        cu_q = cu_k = None
        if self.prefill_impl == "flash" and q_lens.size:
            cu_q = torch.from_numpy(np.concatenate(([0], np.cumsum(q_lens))).astype(np.int32)).to(dev)
            cu_k = torch.from_numpy(np.concatenate(([0], np.cumsum(k_lens))).astype(np.int32)).to(dev)
        kv_slots = None if p.kv_slots is None else torch.from_numpy(p.kv_slots).to(dev)
        max_ctx = int(p.start[:ns].max()) + 1 if ns else 1
        return StepMetadata(
            kv=self.kv, slot_mapping=torch.from_numpy(p.slots).to(dev), n_single=ns, block_tables=bt,
            seq_lens=seq_lens, num_splits=self._splits(ns, max_ctx), q_lens=q_lens.tolist(), k_lens=k_lens.tolist(),
            cu_q=cu_q, cu_k=cu_k, kv_slots=kv_slots, decode_impl=self.decode_impl, prefill_impl=self.prefill_impl,
        )  # fmt: skip

    def _commit(self, p: _Packed, tokens: np.ndarray, logits: torch.Tensor | None) -> None:
        rids = p.ids[p.samples]
        where = (p.start + p.n)[p.samples]
        for j, (rid, pos, tok) in enumerate(zip(rids.tolist(), where.tolist(), tokens.tolist(), strict=True)):
            self.store.put(rid, pos, int(tok))
            if logits is not None:
                self.logits.setdefault(rid, []).append((pos, logits[j].float().cpu().numpy()))
