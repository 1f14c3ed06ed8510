#!/usr/bin/env bash
# The GPU checks, as one command for a lent CUDA machine (CI has no GPU).
#
#   OUT=/some/folder bash scripts/device_check.sh [budget-seconds]
#
# 1. the tests that need CUDA (CPU/CUDA agreement of operators, solvers, score, ia, multi-coil);
# 2. `bench speed --quick --device cuda` and the mosaic scaling benchmark on CUDA;
# 3. with the time left, the non-GUI test suite with CUDA as the default device ("auto").
# Each step has its own time limit and writes its log under $OUT as it goes, so a cut-off run
# still says what it reached. Where the machine lacks a dependency, wheels in .whl/ (if any) are
# installed to /tmp/site first (the device tool's README says how to fetch them).
set -u
OUT=${OUT:-/tmp/device-check}
BUDGET=${1:-520}
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
LOG="$OUT/device-check.log"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
} >"$LOG" 2>&1

echo "== 1. CUDA tests ($(left) s left)" >>"$LOG"
timeout 150 python3 -m pytest -p no:xvfb -p no:cacheprovider -n0 -q -o addopts="" \
    -k "cuda" tests/test_operators.py tests/test_reconstruct.py tests/test_score.py \
    tests/test_adaptive.py tests/test_multicoil.py tests/test_tv_pixelwise.py >>"$LOG" 2>&1
echo "rc $?" >>"$LOG"

echo "== 2a. mosaic on CUDA ($(left) s left)" >>"$LOG"
timeout 180 python3 benchmarks/mosaic.py --sizes 256 512 1024 2048 --steps 10 --threads 1 \
    --max-batch 256 --device cuda >>"$LOG" 2>&1
echo "rc $?" >>"$LOG"
cp benchmarks/results/mosaic-cuda.* "$OUT"/ 2>>"$LOG"

echo "== 2b. bench speed --quick on CUDA ($(left) s left)" >>"$LOG"
timeout $(($(left) > 200 ? 200 : $(left))) python3 -m napari_genprior.cli bench speed --quick \
    --device cuda --out "$OUT" >>"$LOG" 2>&1
echo "rc $?" >>"$LOG"
rm -f "$OUT"/*.png

T=$(($(left) - 10))
echo "== 3. non-GUI tests, CUDA by default ($T s left)" >>"$LOG"
if [ "$T" -gt 60 ]; then
    timeout "$T" python3 -m pytest -p no:xvfb -p no:cacheprovider -q -o addopts="" -n 12 \
        -m "not gui and not slow" --maxfail=30 --continue-on-collection-errors \
        --ignore=tests/test_style.py --ignore=tests/test_docs.py --ignore=tests/test_install.py \
        --ignore=tests/test_layering.py tests >"$OUT/tests-cuda.log" 2>&1
    echo "rc $?" >>"$LOG"
fi
echo "done after $(($(date +%s) - START)) s" >>"$LOG"
