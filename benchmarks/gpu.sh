#!/usr/bin/env bash
# Run the CUDA tests and the CUDA benchmark on a GPU machine, within about 5 minutes.
#
#   bash benchmarks/gpu.sh                 # results in ./bench-gpu
#   OUT=/tmp/gpu-run bash benchmarks/gpu.sh
#
# Runs from the source tree (PYTHONPATH=src; needs torch, numpy, safetensors,
# matplotlib, pytest and hypothesis installed), prints the GPU and the versions, runs
# the tests that exercise CUDA (pytest -k cuda, 120 s at most; log in
# $OUT/pytest.log), then `nsteplstm bench --device cuda` (whatever is left of 290 s,
# at least 170; bench.json, bench.md, bench.png and bench.log in $OUT: the bench
# writes them only at its end), also when a test failed. Exits non-zero
# when no CUDA device is visible to torch, a test failed or the bench failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-bench-gpu}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
mkdir -p "$OUT"

# Float32 means float32: no TF32 forced by the environment (some containers set the
# override), which would make the measured peak TF32's and every roofline too low.
unset TORCH_ALLOW_TF32_CUBLAS_OVERRIDE
export NVIDIA_TF32_OVERRIDE=0
# Deterministic cuBLAS (seed_everything asks torch for deterministic algorithms).
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"
# Unbuffered: what a timeout kills still reaches the logs (tee), the bench's table too.
export PYTHONUNBUFFERED=1

echo "== GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi || echo "nvidia-smi failed (continuing: torch decides below)"
else
    echo "nvidia-smi not found"
fi

echo "== packages"
# The source tree, not an install: GPU machines often cannot fetch pip's build tools.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" - <<'PY'
import importlib.util, sys
missing = [m for m in ("torch", "numpy", "safetensors", "matplotlib", "pytest", "hypothesis")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)} (pip install them, then run again)")
PY

echo "== versions"
"$PYTHON" - <<'PY'
import sys
import torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version() if torch.cuda.is_available() else None)
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch: nothing to measure here")
for k in range(torch.cuda.device_count()):
    print(f"cuda:{k}", torch.cuda.get_device_name(k))
PY

echo "== CUDA tests"
# A failing test must not cost the bench (device time is scarce): run both, fail after.
# The log is kept in $OUT: what comes back of stdout is only its end.
set +e
timeout -k 10 120 "$PYTHON" -m pytest -q -rs -k cuda tests 2>&1 | tee "$OUT/pytest.log"
tests=${PIPESTATUS[0]}
set -e

echo "== bench (CUDA)"
set +e
left=$((290 - SECONDS))
timeout -k 10 "$((left > 170 ? left : 170))" "$PYTHON" -m nsteplstm.cli bench --device cuda \
    --out "$OUT" --force 2>&1 \
    | tee "$OUT/bench.log"
bench=${PIPESTATUS[0]}
set -e
if [ "$bench" -ne 0 ]; then
    echo "== the bench failed (exit $bench): see $OUT/bench.log"
    exit "$bench"
fi
echo "== done: $OUT/bench.json $OUT/bench.md $OUT/bench.png"
if [ "$tests" -ne 0 ]; then
    echo "== the CUDA tests failed (exit $tests): see above"
    exit "$tests"
fi
