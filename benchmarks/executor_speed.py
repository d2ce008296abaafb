"""Speed of the live executor against the physical floor and plain HF transformers (see docs/executor.md).

Measures, on one GPU (Llama-2-7B shape, random bf16 weights by default):

* ceilings: device-to-device copy bandwidth and the bf16 8192^3 matmul rate;
* decode iteration time for B = 1, 8, 32, 64, 128 at context 1024 (CUDA-graph path), against the HBM floor
  ``(weight bytes + KV bytes) / bandwidth`` and against HF eager (``DynamicCache``, SDPA);
* prefill throughput for 512..8192 tokens against the measured GEMM peak (``2 * params * tokens`` FLOP);
* the end-to-end workload of executor.md: 64 ShareGPT prompt lengths capped at 2048, 128 greedy output
  tokens each, all at t=0, Sarathi-style chunked batching with an 8192-token budget, against its floor
  (prefill FLOP at the GEMM peak plus 127 decode steps reading weights and KV at the copy bandwidth).

Goals: decode <= 1.3x floor for B >= 8 and <= 1.8x at B = 1; prefill >= 60 % of the GEMM peak at >= 2048 tokens;
end to end <= 1.5x its floor. The last output line is one JSON object with every figure.

Usage (H100):  python benchmarks/executor_speed.py [--trace-dir DIR]  (traces: $LLMSCHED_TRACE_DIR or ../shared/traces)
CPU smoke run: python benchmarks/executor_speed.py --device cpu --model tiny-llama --quick
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmsched_gym.errors import DeviceUnavailableError  # noqa: E402

GIB = 1 << 30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="llama-2-7b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="1,8,32,64,128")
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--prefill", default="512,1024,2048,4096,8192")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--e2e-requests", type=int, default=64)
    p.add_argument("--e2e-output", type=int, default=128)
    p.add_argument("--e2e-cap", type=int, default=2048)
    p.add_argument("--trace", default=None, help="ShareGPT length-stats csv (default: the trace search path)")
    p.add_argument("--trace-dir", default=None, help="folder holding the public traces")
    p.add_argument("--skip-hf", action="store_true", help="skip the HF eager decode baseline")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run of the code path)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.context, args.prefill, args.repeats = "1,4", 48, "32,96", 3
        args.e2e_requests, args.e2e_output, args.e2e_cap = 4, 6, 100
    return args


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Any, device: Any, repeats: int, warmup: int = 2) -> float:
    """Median wall seconds of ``fn()`` (synchronised) over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ceilings(device: Any, dtype: Any, quick: bool) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and matmul FLOP/s."""
    import torch

    n_bytes = (64 << 20) if quick else GIB
    src = torch.empty(n_bytes // 2, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    t_copy = median_time(lambda: dst.copy_(src), device, 10)
    size = 512 if quick else 8192
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    t_mm = median_time(lambda: a @ b, device, 10)
    return {"copy_bytes_per_s": 2 * n_bytes / t_copy, "gemm_flops": 2 * size**3 / t_mm}


def hf_decode_ms(model: Any, batch: int, context: int, repeats: int) -> float | None:
    """Median decode step of plain HF eager with a DynamicCache of ``context`` random tokens (None on OOM)."""
    import torch
    from transformers import DynamicCache

    from llmsched_gym.executor.models import ModelShape

    shape = ModelShape.of(model.config)
    dev, dt = next(model.parameters()).device, next(model.parameters()).dtype
    model.set_attn_implementation("sdpa")
    cache: Any = None
    try:
        cache = DynamicCache(config=model.config)
        kv_shape = (batch, shape.num_kv_heads, context, shape.head_dim)
        for layer in range(shape.num_layers):
            cache.update(
                torch.randn(kv_shape, dtype=dt, device=dev), torch.randn(kv_shape, dtype=dt, device=dev), layer
            )
        ids = torch.ones(batch, 1, dtype=torch.long, device=dev)
        pos = torch.full((batch, 1), context, dtype=torch.long, device=dev)

        def step() -> None:
            with torch.inference_mode():
                model(input_ids=ids, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1)

        return 1e3 * median_time(step, dev, repeats)
    except torch.OutOfMemoryError:
        return None
    finally:
        cache = None
        if dev.type == "cuda":
            torch.cuda.empty_cache()


class Bench:
    """One LiveRunner shared by the decode, prefill and end-to-end measurements."""

    def __init__(self, model: Any, args: argparse.Namespace, num_blocks: int) -> None:
        from llmsched_gym.executor.models import ModelShape, parameter_count
        from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig

        self.model, self.args = model, args
        self.runner = LiveRunner(model, LiveRunnerConfig(num_blocks=num_blocks, max_seqs=2048, seed=args.seed))
        self.runner.warmup()
        self.device = self.runner.device
        self.shape = ModelShape.of(model.config)
        self.params = parameter_count(model)
        elem = next(model.parameters()).element_size()
        self.weight_bytes = self.params * elem
        self.kv_per_token = 2 * self.shape.num_layers * self.shape.num_kv_heads * self.shape.head_dim * elem
        self.next_id = 0

    def new_ids(self, prompt_lens: list[int]) -> list[int]:
        """Fresh request ids with these prompt lengths (declared to the runner)."""
        ids = list(range(self.next_id, self.next_id + len(prompt_lens)))
        self.next_id += len(prompt_lens)
        self.runner.add_requests(dict(zip(ids, prompt_lens, strict=True)))
        return ids

    def prefill(self, ids: list[int], lens: list[int], budget: int = 8192) -> None:
        """Whole-prompt prefills packed into iterations of at most ``budget`` tokens."""
        from llmsched_gym.executor.driver import make_work

        batch: list[int] = []
        for i in range(len(ids)):
            batch.append(i)
            if i == len(ids) - 1 or sum(lens[j] for j in batch) + lens[i + 1] > budget:
                sel = [ids[j] for j in batch]
                n = [lens[j] for j in batch]
                self.runner.run(make_work(sel, n, [0] * len(sel), [False] * len(sel), [True] * len(sel)))
                batch = []

    def decode(self, batch: int, context: int) -> float:
        """Median decode iteration (ms) of ``batch`` rows around ``context`` cached tokens."""
        from llmsched_gym.executor.driver import make_work

        warm = 3
        lens = [context - warm] * batch
        ids = self.new_ids(lens)
        self.prefill(ids, lens)
        times = []
        for step in range(warm + self.args.repeats):
            pos = context - warm + step
            work = make_work(ids, [1] * batch, [pos] * batch, [True] * batch, [True] * batch)
            t = self.runner.run(work)
            if step >= warm:
                times.append(t)
        self.runner.forget(np.array(ids))
        return 1e3 * statistics.median(times)

    def prefill_ms(self, tokens: int) -> float:
        """Median time (ms) of one whole prefill of ``tokens`` tokens."""
        times = []
        for _ in range(2 + self.args.repeats):
            ids = self.new_ids([tokens])
            sync(self.device)
            t0 = time.perf_counter()
            self.prefill(ids, [tokens], budget=max(tokens, 8192))
            times.append(time.perf_counter() - t0)
            self.runner.forget(np.array(ids))
        return 1e3 * statistics.median(times[2:])


def decode_grid(bench: Bench, ceil: dict[str, float], hf: dict[int, float | None]) -> list[dict[str, Any]]:
    args = bench.args
    out = []
    free_tokens = bench.runner.blocks.num_free * bench.runner.config.block_size
    order = ints(args.batches)
    np.random.default_rng(args.seed).shuffle(order)
    for b in order:
        need = b * (args.context + args.repeats + bench.runner.config.block_size)
        floor = 1e3 * (bench.weight_bytes + b * args.context * bench.kv_per_token) / ceil["copy_bytes_per_s"]
        row: dict[str, Any] = {"batch": b, "context": args.context, "floor_ms": floor, "hf_eager_ms": hf.get(b)}
        if need > free_tokens:
            row["skipped"] = f"needs {need * bench.kv_per_token / GIB:.1f} GiB of KV, pool has fewer blocks"
        else:
            row["ms"] = bench.decode(b, args.context)
            row["ratio_to_floor"] = row["ms"] / floor
            if row["hf_eager_ms"]:
                row["speedup_vs_hf"] = row["hf_eager_ms"] / row["ms"]
        out.append(row)
    return sorted(out, key=lambda r: r["batch"])


def prefill_grid(bench: Bench, ceil: dict[str, float]) -> list[dict[str, Any]]:
    out = []
    for n in ints(bench.args.prefill):
        ms = bench.prefill_ms(n)
        flops = 2 * bench.params * n / (ms / 1e3)
        out.append({"tokens": n, "ms": ms, "tflops": flops / 1e12, "frac_of_gemm_peak": flops / ceil["gemm_flops"]})
    return out


def sharegpt_prompts(path: str, n: int, cap: int, seed: int) -> list[int]:
    """``n`` prompt lengths drawn without replacement from the ShareGPT stats file, capped at ``cap``."""
    with open(path) as f:
        lens = np.array([int(r["num_prefill_tokens"]) for r in csv.DictReader(f)], dtype=np.int64)
    pick = np.random.default_rng(seed).choice(lens, size=n, replace=False)
    return [int(x) for x in np.clip(pick, 1, cap)]


def end_to_end(bench: Bench, ceil: dict[str, float]) -> dict[str, Any]:
    from llmsched_gym.executor.driver import ChunkedDriver

    args = bench.args
    from llmsched_gym.workloads.registry import SHAREGPT_FILE, resolve_trace_file

    trace = args.trace or str(resolve_trace_file(SHAREGPT_FILE, args.trace_dir))
    lens = sharegpt_prompts(trace, args.e2e_requests, args.e2e_cap, args.seed)
    outs = [args.e2e_output] * len(lens)
    ids = bench.new_ids(lens)
    shifted = _ShiftedRunner(bench.runner, ids[0])
    driver = ChunkedDriver(shifted, lens, outs, num_blocks=bench.runner.blocks.num_free, token_budget=8192)
    sync(bench.device)
    t0 = time.perf_counter()
    driver.run()
    sync(bench.device)
    wall = time.perf_counter() - t0
    prefill_floor = 2 * bench.params * sum(lens) / ceil["gemm_flops"]
    steps = range(1, args.e2e_output)
    decode_floor = sum(
        (bench.weight_bytes + sum(p + j for p in lens) * bench.kv_per_token) / ceil["copy_bytes_per_s"] for j in steps
    )
    floor = prefill_floor + decode_floor
    return {
        "requests": len(lens), "prompt_tokens": sum(lens), "output_tokens": sum(outs), "wall_s": wall,
        "floor_s": floor, "ratio_to_floor": wall / floor, "iterations": len(driver.works),
        "preemptions": driver.preemptions, "output_tok_per_s": sum(outs) / wall,
    }  # fmt: skip


class _ShiftedRunner:
    """Maps the driver's ids 0..n-1 to the bench's ids base..base+n-1."""

    supports_stretch = False

    def __init__(self, inner: Any, base: int) -> None:
        self.inner, self.base = inner, base

    def run(self, work: Any) -> float:
        from dataclasses import replace

        return float(self.inner.run(replace(work, ids=work.ids + self.base)))

    def run_stretch(self, work: Any, k: int) -> Any:
        raise NotImplementedError

    def release(self, ids: Any) -> None:
        self.inner.release(ids + self.base)

    def forget(self, ids: Any) -> None:
        self.inner.forget(ids + self.base)


def goals(res: dict[str, Any]) -> dict[str, bool | None]:
    dec = {r["batch"]: r.get("ratio_to_floor") for r in res["decode"]}
    big = [v for b, v in dec.items() if b >= 8 and v is not None]
    pre = [r["frac_of_gemm_peak"] for r in res["prefill"] if r["tokens"] >= 2048]
    e2e = res.get("e2e") or {}
    return {
        "decode_b1_le_1.8x_floor": None if dec.get(1) is None else dec[1] <= 1.8,
        "decode_b8plus_le_1.3x_floor": None if not big else max(big) <= 1.3,
        "prefill_2048plus_ge_60pct_gemm_peak": None if not pre else min(pre) >= 0.6,
        "e2e_le_1.5x_floor": None if "ratio_to_floor" not in e2e else e2e["ratio_to_floor"] <= 1.5,
    }


def pool_blocks(model: Any, block_size: int, device: Any, quick: bool) -> int:
    import torch

    from llmsched_gym.executor.kv_pool import KVCache
    from llmsched_gym.executor.models import ModelShape

    dt = next(model.parameters()).dtype
    if device.type != "cuda":
        return 512 if quick else 4096
    free, _ = torch.cuda.mem_get_info(device)
    return KVCache.blocks_for_memory(ModelShape.of(model.config), block_size, dt, int(free - 2 * GIB))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from llmsched_gym.executor.models import build_model, resolve_device, resolve_dtype

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)
    ceil = ceilings(device, resolve_dtype(args.dtype), args.quick)
    model = build_model(args.model, dtype=args.dtype, device=device, seed=args.seed)
    hf = {} if args.skip_hf else {b: hf_decode_ms(model, b, args.context, args.repeats) for b in ints(args.batches)}
    bench = Bench(model, args, pool_blocks(model, 16, device, args.quick))
    res: dict[str, Any] = {"device": _device_name(device), "model": args.model, "dtype": args.dtype, **ceil}
    res["decode"] = decode_grid(bench, ceil, hf)
    res["prefill"] = prefill_grid(bench, ceil)
    res["e2e"] = None if args.skip_e2e else end_to_end(bench, ceil)
    res["goals"] = goals(res)
    return res


def _device_name(device: Any) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def report(res: dict[str, Any]) -> None:
    print(
        f"{res['device']}  copy {res['copy_bytes_per_s'] / 1e12:.2f} TB/s  gemm {res['gemm_flops'] / 1e12:.0f} TFLOP/s"
    )
    for r in res["decode"]:
        got = f"{r['ms']:.2f} ms ({r['ratio_to_floor']:.2f}x floor)" if "ms" in r else r["skipped"]
        hf = f"  HF eager {r['hf_eager_ms']:.1f} ms" if r.get("hf_eager_ms") else ""
        print(f"decode B={r['batch']:<4} ctx={r['context']}: {got}  floor {r['floor_ms']:.2f} ms{hf}")
    for r in res["prefill"]:
        print(f"prefill {r['tokens']:>5} tokens: {r['ms']:.1f} ms  {r['tflops']:.0f} TFLOP/s  "
              f"{100 * r['frac_of_gemm_peak']:.0f}% of GEMM peak")  # fmt: skip
    if res.get("e2e"):
        e = res["e2e"]
        print(f"end to end: {e['wall_s']:.2f} s for {e['requests']} requests ({e['prompt_tokens']} prompt tokens), "
              f"floor {e['floor_s']:.2f} s, {e['ratio_to_floor']:.2f}x")  # fmt: skip
    print(f"goals: {res['goals']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        res = run(args)
    except DeviceUnavailableError as err:
        print(f"executor_speed: {err}", file=sys.stderr)
        print(json.dumps({"error": str(err)}))
        return 2
    report(res)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
