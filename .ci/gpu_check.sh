#!/usr/bin/env bash
# The checks that need a GPU, as one script for a lent GPU machine (CI has none):
#   1. build lstm_ext in place with its CUDA kernels (LSTM_EXT_CUDA=1);
#   2. the GPU tests (tests/test_cuda.py) and torch.compile's (tests/test_compile.py) under this
#      machine's torch (the GPU image has the oldest torch lstm_ext supports, 2.11);
#   3. compute-sanitizer memcheck over every CUDA op (.ci/cuda_workload.py);
#   4. the benchmark against cuDNN: fp32 (TF32 off) and bf16, fastrnns' shape and the default preset's;
#   5. (stage "suite", not in the default list) the whole CPU test suite under this torch, in parallel.
#
#   bash .ci/gpu_check.sh OUT_DIR [STAGE ...]     STAGE: build tests sanitizer bench suite
#                                                 (default: build tests sanitizer bench)
#
# A lent machine keeps the in-place build between calls, so the stages can be split across calls
# (build tests sanitizer in one, bench in the next) to stay within one call's time limit.
# Each stage has its own time limit, so a slow one cannot starve the rest; each writes its log to
# OUT_DIR, and the summary line of each stage is printed. Exits non-zero if any stage failed.
# Environment: TORCH_CUDA_ARCH_LIST (default: the GPU's own), MAX_JOBS (default: all cores).
set -uo pipefail
out="${1:?usage: bash .ci/gpu_check.sh OUT_DIR [build tests sanitizer bench]}"
shift
stages=" ${*:-build tests sanitizer bench} "
wants() { [[ "$stages" == *" $1 "* ]]; }
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TORCH_CPP_LOG_LEVEL=ERROR
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the in-place build, also for scripts run from .ci/
py="${PYTHON:-python3}"
start=$(date +%s)
status=0
stage() { echo "=== gpu_check: $1 ($(( $(date +%s) - start )) s in)"; }
# stage_run NAME LIMIT_S CMD...: run, log to $out/NAME.log, print its tail, remember a failure.
stage_run() {
  local name="$1" limit="$2"; shift 2
  stage "$name"
  timeout --signal=INT --kill-after=20 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n "${TAIL:-15}" "$out/$name.log"
  echo "--- $name: exit $rc"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

stage "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
arch="${TORCH_CUDA_ARCH_LIST:-$("$py" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}"

# 1. Build. The toolkit may lack the CUDA library headers torch's headers include; torch's
#    nvidia wheels carry them (as in .ci/cuda_build_check.sh).
if wants build; then
nv_include="$("$py" -c 'import glob, os, nvidia; print(":".join(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "*", "include")))))' 2>/dev/null || true)"
TAIL=25 stage_run build 240 env LSTM_EXT_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
  LSTM_EXT_NVCC_THREADS=1 CPATH="${nv_include}${CPATH:+:$CPATH}" "$py" setup.py build_ext --inplace || exit 1
fi
"$py" -c 'import torch, lstm_ext; print("CUDA kernel registered:", torch._C._dispatch_has_kernel_for_dispatch_key("lstm_ext::lstm_layer", "CUDA"))'

# 1b. One argument error from the C++ checks must raise, not crash (it crashed on the H200 image
#     with torch 2.11; see README, CUDA): a segmentation fault shows here as exit 139.
wants tests && stage_run errors 60 "$py" -c '
import torch, lstm_ext
try:
    torch.ops.lstm_ext.lstm_layer(torch.randn(2, 3, 4, 1), torch.zeros(3, 5), torch.zeros(3, 5), torch.randn(20, 4),
                                  torch.randn(20, 5), None, None, None, None, False)
except RuntimeError as error:
    print("raised as it should:", str(error).splitlines()[0])
else:
    raise SystemExit("no error for a 4-D input")
'

# 2. GPU tests.
wants tests && stage_run tests 180 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_compile.py \
  -W ignore::UserWarning --durations=5

# 3. compute-sanitizer: out-of-bounds and misaligned accesses, in every CUDA op.
if ! wants sanitizer; then :
elif command -v compute-sanitizer >/dev/null; then
  stage_run sanitizer 100 compute-sanitizer --tool memcheck --error-exitcode 86 --print-limit 20 \
    "$py" .ci/cuda_workload.py
else
  echo "compute-sanitizer not found: memcheck stage skipped"; status=1
fi

# 4. Against cuDNN, side by side in one run each.
if wants bench; then
bench_dir="${BENCH_DIR:-/tmp/lstm_ext_gpu_bench}"  # results.md is appended to each log; OUT_DIR keeps logs only
TAIL=30 stage_run bench-fp32 120 "$py" benchmarks/run.py --preset fastrnns --device cuda --impl fused,nn \
  --no-charlm --no-plots --no-progress --out "$bench_dir/fp32"
TAIL=30 stage_run bench-bf16 90 "$py" benchmarks/run.py --preset fastrnns --device cuda --dtype bfloat16 --impl fused,nn \
  --no-charlm --no-plots --no-progress --out "$bench_dir/bf16"
TAIL=40 stage_run bench-default 150 "$py" benchmarks/run.py --preset default --device cuda --impl fused,nn \
  --no-charlm --no-plots --no-progress --out "$bench_dir/default"
for name in fp32 bf16 default; do
  [ -f "$bench_dir/$name/results.md" ] && cat "$bench_dir/$name/results.md" >>"$out/bench-$name.log"
done
fi

# 5. The CPU suite under this machine's torch (pytest-xdist where present).
if wants suite; then
  # expecttest (for torch.testing._internal) is not on the GPU image: carried as a wheel in .whl/
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --target /tmp/gpu_check_site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/gpu_check_site"
  fi
  xdist=(); "$py" -c 'import xdist' 2>/dev/null && xdist=(-n "$(nproc)")
  stage_run suite "${SUITE_LIMIT:-240}" "$py" -m pytest -q -p no:cacheprovider "${xdist[@]}" -m "not slow" \
    -W ignore::UserWarning
fi

stage "done: exit $status"
exit "$status"
