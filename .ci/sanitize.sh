#!/usr/bin/env bash
# CI sanitizer job: build the CPU extension with AddressSanitizer + UndefinedBehaviorSanitizer
# in a throwaway copy of the tree (the normal build is never touched), then run the test suite
# against that build. Any sanitizer report fails the job, also one printed by a subprocess
# whose test would otherwise pass.
#
#   .ci/sanitize.sh                 # build + the default selection (see SELECTION below)
#   .ci/sanitize.sh tests/test_fuzz_ops.py    # build + these pytest arguments instead
#
# Environment:
#   SANITIZE_DIR   where to build (default: a fresh temporary directory, removed at the end).
#                  An existing directory with a built extension is reused: no rebuild.
#   SANITIZE_JOBS  parallel compile jobs (default: nproc).
#
# Why it is set up this way:
#   - python is not linked with ASan, so the ASan runtime must be the first library loaded:
#     LD_PRELOAD=libasan.so (gcc's own, matching the compiler that built the extension).
#   - libstdc++ is preloaded right after it. python itself does not link libstdc++, so without
#     this ASan starts before any C++ runtime exists, cannot find the real __cxa_throw, and the
#     first C++ exception (every TORCH_CHECK that fails) aborts with
#     "CHECK failed: asan_interceptors.cpp:320 ((__interception::real___cxa_throw)) != (0)".
#   - libubsan comes in as a dependency of the extension; it need not be preloaded.
#   - detect_leaks=0: CPython and torch keep allocations alive until exit on purpose
#     (interned objects, registries, thread pools); LeakSanitizer would report them all.
#     tests/test_leaks.py measures growth instead.
#   - CFLAGS=-fno-wrapv: Python's own build flags (sysconfig) pass -fwrapv, which defines signed
#     overflow as wrapping, and UBSan's signed-integer-overflow check then never fires.
#   - UBSan reports are recoverable by default: halt_on_error=1 makes the first one fatal.
#   - log_path: every report of every process goes to a file, and the job fails when one
#     exists, so a report in a subprocess cannot be lost in a test's captured output.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
START=$(date +%s)

# Tests left out, and why (also in docs/testing.md):
#   test_benchmarks.py  times things; under ASan the times mean nothing, and its correctness
#                       gate runs the same kernels the parity tests already run.
#   test_compile.py     torch.compile runs inductor's own C++ compiler and codegen under the
#                       preloaded runtime: many minutes of compile time and no extension code
#                       beyond what test_lstm_parity.py runs.
#   test_distributed.py gloo on 2 processes: the same kernels as test_lstm_parity.py, and
#                       process start-up under ASan takes most of the job's time budget.
#   -m "not slow"       the 10,000-iteration and T=100,000 runs of test_leaks.py (minutes
#                       under ASan); their shorter siblings run.
# test_onnx_export.py is left to the plain job: the graphs it builds run in ONNX Runtime, not in
# lstm_ext's C++, and its eager side calls the kernels the other tests cover.
SELECTION=(tests
  --ignore=tests/test_benchmarks.py --ignore=tests/test_compile.py --ignore=tests/test_distributed.py
  --ignore=tests/test_onnx_export.py -m "not slow")
if [ "$#" -gt 0 ]; then SELECTION=("$@"); fi

if [ -n "${SANITIZE_DIR:-}" ]; then
  WORK="$SANITIZE_DIR"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d -t lstm_ext_sanitize.XXXXXX)"
  trap 'rm -rf "$WORK"' EXIT
fi
TREE="$WORK/tree"
LOGS="$WORK/reports"

# The tree as git sees it (tracked plus untracked, not ignored): no build outputs come along.
if ! ls "$TREE"/lstm_ext/_C*.so >/dev/null 2>&1; then
  rm -rf "$TREE" && mkdir -p "$TREE"
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - --) | tar -xf - -C "$TREE"
  echo "sanitize: building in $TREE with -fsanitize=address,undefined"
  (cd "$TREE" && MAX_JOBS="${SANITIZE_JOBS:-$(nproc)}" LSTM_EXT_SANITIZE=address,undefined CFLAGS="${CFLAGS:-} -fno-wrapv" \
    python setup.py build_ext --inplace >"$WORK/build.log" 2>&1) || { tail -40 "$WORK/build.log"; exit 1; }
fi
BUILT=$(date +%s)

ASAN_LIB="$(gcc -print-file-name=libasan.so)"
CXX_LIB="$(gcc -print-file-name=libstdc++.so.6)"
for lib in "$ASAN_LIB" "$CXX_LIB"; do
  [ -e "$lib" ] || { echo "sanitize: gcc cannot find $lib" >&2; exit 1; }
done
rm -rf "$LOGS" && mkdir -p "$LOGS"

set +e
(
  cd "$TREE"
  export PYTHONPATH="$TREE"
  export LD_PRELOAD="$ASAN_LIB:$CXX_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:detect_stack_use_after_return=0:log_path=$LOGS/asan"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$LOGS/ubsan"
  # The extension must be the sanitized one, or the job proves nothing.
  python - <<'EOF' || exit 2
import lstm_ext, lstm_ext._library as o, os
assert o.LOAD_ERROR is None, o.LOAD_ERROR
so = o._C.__file__
assert so.startswith(os.environ["PYTHONPATH"]), so
assert b"__asan_report_load" in open(so, "rb").read(), "the extension is not built with ASan"
print("sanitize: testing", so)
EOF
  python -m pytest -q -p no:cacheprovider "${SELECTION[@]}"
)
STATUS=$?
set -e
END=$(date +%s)

REPORTS=$(find "$LOGS" -type f | sort)
if [ -n "$REPORTS" ]; then
  for f in $REPORTS; do echo "===== $f"; cat "$f"; done
  echo "sanitize: FAILED: sanitizer reports above" >&2
  [ "$STATUS" -ne 0 ] || STATUS=1
fi
echo "sanitize: build $((BUILT - START)) s, tests $((END - BUILT)) s, exit status $STATUS"
exit "$STATUS"
