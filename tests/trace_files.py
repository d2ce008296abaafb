"""Small trace files of every supported format, written by the tests that need them (no trace data is shipped)."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = ((0.0, 120, 8), (0.5, 300, 12), (1.25, 64, 5), (2.0, 900, 20))
"""``(arrival seconds, prompt tokens, output tokens)`` of the sample requests."""

SUFFIX = {
    "azure": ".csv",
    "burstgpt": ".csv",
    "mooncake": ".jsonl",
    "length-stats": ".csv",
    "vtc": ".csv",
    "native": ".csv",
    "native-jsonl": ".jsonl",
}


def lines(fmt: str, rows: tuple[tuple[float, int, int], ...] = ROWS) -> list[str]:
    """The text lines of a trace of format ``fmt`` (``native-jsonl`` is the JSON Lines variant of ``native``)."""
    if fmt == "azure":
        return ["TIMESTAMP,ContextTokens,GeneratedTokens", *(f"{t},{p},{o}" for t, p, o in rows)]
    if fmt == "burstgpt":
        head = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
        return [head, *(f"{t},ChatGPT,{p},{o},{p + o},Conversation log" for t, p, o in rows)]
    if fmt == "mooncake":
        return [json.dumps({"timestamp": int(t * 1000), "input_length": p, "output_length": o}) for t, p, o in rows]
    if fmt == "length-stats":
        head = "num_prefill_tokens,num_decode_tokens,num_total_tokens"
        return [head, *(f"{p},{o},{p + o}" for _, p, o in rows)]
    if fmt == "vtc":
        head = "req_id,client_id,arrival_s,prompt_tokens,output_tokens"
        return [head, *(f"{i},{i % 2},{t},{p},{o}" for i, (t, p, o) in enumerate(rows))]
    if fmt == "native":
        return ["arrival_s,prompt_tokens,output_tokens", *(f"{t},{p},{o}" for t, p, o in rows)]
    if fmt == "native-jsonl":
        return [json.dumps({"arrival_s": t, "prompt_tokens": p, "output_tokens": o}) for t, p, o in rows]
    raise ValueError(fmt)


def write(folder: Path, fmt: str, rows: tuple[tuple[float, int, int], ...] = ROWS, name: str = "trace") -> Path:
    """Write a trace of format ``fmt`` into ``folder`` and return its path."""
    path = folder / f"{name}-{fmt}{SUFFIX[fmt]}"
    path.write_text("\n".join(lines(fmt, rows)) + "\n")
    return path


def header_only(folder: Path, fmt: str) -> Path:
    """A CSV trace with its header and no rows (``fmt`` a CSV format)."""
    path = folder / f"empty-{fmt}.csv"
    path.write_text(lines(fmt)[0] + "\n")
    return path
