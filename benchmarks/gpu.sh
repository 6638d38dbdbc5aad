#!/usr/bin/env bash
# Run the CUDA tests and the CUDA benchmark on a GPU machine, within about 5 minutes.
#
#   bash benchmarks/gpu.sh                 # results in ./bench-gpu
#   OUT=/tmp/gpu-run bash benchmarks/gpu.sh
#
# Installs the project (editable, with the test extras) when `import nsteplstm`
# fails, prints the GPU and the versions, runs the tests that exercise CUDA
# (pytest -k cuda), then `nsteplstm bench --device cuda` (bench.json, bench.md,
# bench.png in $OUT). Exits non-zero when no CUDA device is visible to torch.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-bench-gpu}"
PYTHON="${PYTHON:-python}"

echo "== GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi || echo "nvidia-smi failed (continuing: torch decides below)"
else
    echo "nvidia-smi not found"
fi

echo "== install"
if ! "$PYTHON" -c "import nsteplstm, pytest" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet -e ".[test]"
fi

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
timeout 150 "$PYTHON" -m pytest -q -k cuda tests

echo "== bench (CUDA)"
timeout 240 "$PYTHON" -m nsteplstm.cli bench --device cuda --out "$OUT" --force
echo "== done: $OUT/bench.json $OUT/bench.md $OUT/bench.png"
