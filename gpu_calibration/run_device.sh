#!/usr/bin/env bash
# The GPU calibration run (docs/calibration.md, "On a GPU"): within 8 minutes on one H200, everything under $OUT.
#
#   1. benchmarks/executor_speed.py                      -> $OUT/executor_speed.log (its last line is a JSON object)
#   2. llmsched calibrate profile, Llama-2-7B, random bf16 weights, CUDA graphs as `llmsched live` uses them
#                                                        -> $OUT/measurement.json
#   3. llmsched calibrate fit + validate                 -> $OUT/profile.json, $OUT/fit.png
#   4. llmsched calibrate compare: a short ShareGPT trace live and simulated with Sarathi-Serve
#                                                        -> $OUT/comparison.json, $OUT/comparison.png
#   everything printed                                   -> $OUT/run.log
#
# Usage (repository root):  OUT=out bash gpu_calibration/run_device.sh [--dry-run]
#   --dry-run   the same steps on the CPU with the tiny model and small sizes (checks the script in ~1 minute)
# Environment: OUT (default ./out), LLMSCHED_TRACE_DIR (folder with lengths_sharegpt_8k_filtered_stats_*.csv;
#   default ../shared/traces, else ./.traces), PROFILE_BUDGET_S (default 150), N_REQUESTS (default 200),
#   RATE (default 2.0 requests/s), PYTHON (default python3).
# Needs torch, transformers, numba, numpy, gymnasium and matplotlib; run from the repository root (no install:
# PYTHONPATH is set here). Wheels of missing packages in ./.whl are installed to /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -z "${LLMSCHED_TRACE_DIR:-}" ]; then
  if [ -d ../shared/traces ]; then export LLMSCHED_TRACE_DIR="$PWD/../shared/traces"; else export LLMSCHED_TRACE_DIR="$PWD/.traces"; fi
fi
exec > >(tee "$OUT/run.log") 2>&1

if [ "${1:-}" = "--dry-run" ]; then
  TARGET=(--model tiny-llama --device cpu --dtype float32 --max-tokens 256 --max-seqs 64 --num-blocks 512)
  SPEED=(--device cpu --model tiny-llama --dtype float32 --quick)
  DESIGN=(--design small --max-context 768 --n-random 12 --rounds 1 --repeats 2)
  FIT=(--tiles 0,16 --starts 2)
  TRACE=(--workload synthetic-sharegpt --n-requests 12 --rate 8 --max-total 384)
else
  TARGET=(--model llama-2-7b --device cuda --dtype bfloat16)
  SPEED=(--trace-dir "$LLMSCHED_TRACE_DIR")
  DESIGN=(--design full --rounds 2 --repeats 3 --time-budget "${PROFILE_BUDGET_S:-150}")
  FIT=(--tiles 0,64,128 --starts 3)
  TRACE=(--workload sharegpt --trace-dir "$LLMSCHED_TRACE_DIR" --n-requests "${N_REQUESTS:-200}"
         --rate "${RATE:-2.0}" --max-total 4096)
fi

stamp() { echo "=== $(date -u +%H:%M:%S) $*"; }
stamp "device"; "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
EOF

stamp "1/4 executor speed"
"$PY" benchmarks/executor_speed.py "${SPEED[@]}" > "$OUT/executor_speed.log" 2>&1 || echo "executor_speed exited $?"
tail -n 3 "$OUT/executor_speed.log"

stamp "2/4 profile"
"$PY" -m llmsched_gym calibrate profile "${TARGET[@]}" "${DESIGN[@]}" --out "$OUT/measurement.json"

stamp "3/4 fit and validate"
"$PY" -m llmsched_gym calibrate fit "$OUT/measurement.json" --out "$OUT/profile.json" "${FIT[@]}"
"$PY" -m llmsched_gym calibrate validate "$OUT/profile.json" --plot "$OUT/fit.png"

stamp "4/4 sim vs live"
"$PY" -m llmsched_gym calibrate compare --profile "$OUT/profile.json" "${TARGET[@]}" "${TRACE[@]}" --out "$OUT"

stamp "done"
ls -l "$OUT"
