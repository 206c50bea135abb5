#!/usr/bin/env bash
# The GPU checks in one go, for a host with CUDA: the kernel and CUDA-engine tests compiled
# natively (not interpreted), the engine and kernel benches (3 runs each), and the demo with
# its workers on the GPU (default speed), then again with a hot swap (`--swap`: demo@2 loaded
# beside demo@1 in each CUDA worker, its graphs captured on LOAD, flipped halfway). Everything
# lands in OUT_DIR (default ./gpu-check).
#
#   bash bench/gpu_check.sh [OUT_DIR]
#
# Expects `redline` importable by `python3` (pip install -e . on the GPU host). Each step has
# its own time limit so one slow step still leaves the others' results.
set -uo pipefail
OUT_DIR=${1:-gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
nvidia-smi -L | tee "$OUT_DIR/gpu.txt"
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
    | tee -a "$OUT_DIR/gpu.txt"

echo "== tests (compiled kernels, CUDA engine)"
timeout 180 $PY -m pytest -v -p no:cacheprovider -p no:benchmark -n 16 --timeout 60 -rfEs --tb=short \
    tests/kernels tests/pipeline/workers/test_engines.py tests/pipeline/workers/test_versions.py \
    tests/pipeline/workers/test_cuda_engine.py \
    >"$OUT_DIR/pytest.txt" 2>&1
echo "pytest rc=$?"; grep -E "FAILED|ERROR|passed|failed" "$OUT_DIR/pytest.txt" | tail -40

echo "== bench_engines (3 runs)"
timeout 90 $PY bench/bench_engines.py --events 20000 --runs 3 --json "$OUT_DIR/engines.json" \
    >"$OUT_DIR/engines.txt" 2>&1
echo "rc=$?"; tail -8 "$OUT_DIR/engines.txt"

echo "== bench_kernels (3 runs)"
for i in 1 2 3; do
    timeout 45 $PY bench/bench_kernels.py --calls 5000 --warmup 500 \
        --json "$OUT_DIR/kernels$i.json" >"$OUT_DIR/kernels$i.txt" 2>&1
    echo "run $i rc=$?"
done
tail -22 "$OUT_DIR/kernels3.txt"

echo "== demo, workers on the GPU"
timeout 60 redline demo --seconds 20 --no-progress --json "$OUT_DIR/demo.json" \
    >"$OUT_DIR/demo.txt" 2>&1
echo "demo rc=$?"; tail -25 "$OUT_DIR/demo.txt"

echo "== demo --swap, workers on the GPU (hot swap on CUDA workers)"
timeout 90 redline demo --swap --seconds 20 --no-progress --json "$OUT_DIR/demo_swap.json" \
    >"$OUT_DIR/demo_swap.txt" 2>&1
echo "demo --swap rc=$?"; grep -E "swap|decisions_by_version|lost" "$OUT_DIR/demo_swap.txt" | tail -8
