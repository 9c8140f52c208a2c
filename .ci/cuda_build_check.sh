#!/usr/bin/env bash
# Compile lstm_ext's CUDA kernels on a machine without a GPU, then prove they registered.
#
# Builds in a throwaway copy of the tree (the CPU build the tests use is never replaced),
# imports that copy, and checks torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA") for
# every lstm_ext op. Exits non-zero on a compile error, a load error or a missing CUDA kernel.
# By default it compiles what the CUDA build adds (LSTM_EXT_CUDA_ONLY=1: the host C++ outside
# csrc/**/cpu/, and csrc/**/cuda/) and leaves out the CPU kernels, which CI's main build compiles
# anyway: on 2 busy cores the whole library takes longer than CI's 15 minutes.
# LSTM_EXT_CHECK_FULL=1 builds everything.
#
# Needs: a torch built with CUDA (pip's default torch wheel; a +cpu wheel cannot build CUDA
# extensions), nvcc under CUDA_HOME (default /usr/local/cuda). The CUDA library headers torch's
# headers include (cublas_v2.h, cusparse.h, ...) are taken from the torch wheel's nvidia/*
# packages when the toolkit lacks them.
#
# Environment:
#   CUDA_HOME               the toolkit (default /usr/local/cuda)
#   TORCH_CUDA_ARCH_LIST    architectures to compile (default "8.0;9.0", as setup.py)
#   LSTM_EXT_CPU_ONLY_OPS   comma list of lstm_ext ops allowed to have no CUDA kernel (default none)
#   LSTM_EXT_CHECK_FULL=1   build the whole library (CPU kernels too), as a user's CUDA build
#   KEEP_BUILD=1            keep the build folder and print its path
set -euo pipefail
start=$(date +%s)
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"

fail() { echo "cuda_build_check: FAILED: $*" >&2; echo "cuda_build_check: after $(( $(date +%s) - start )) s" >&2; exit 1; }

# 1. A torch that can build CUDA extensions.
torch_cuda="$("$python" -c 'import torch; print(torch.version.cuda or "")')" || fail "cannot import torch"
torch_version="$("$python" -c 'import torch; print(torch.__version__)')"
if [ -z "$torch_cuda" ]; then
  fail "torch $torch_version has no CUDA (a CPU-only wheel): it cannot build CUDA extensions. \
Install a CUDA build of torch (pip's default wheel on Linux, e.g. pip install torch) to run this check."
fi

# 2. nvcc.
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
[ -x "$CUDA_HOME/bin/nvcc" ] || fail "no nvcc at $CUDA_HOME/bin/nvcc; set CUDA_HOME to a CUDA toolkit"
nvcc_version="$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
echo "cuda_build_check: torch $torch_version (CUDA $torch_cuda), nvcc $nvcc_version at $CUDA_HOME"

# 3. The CUDA library headers and libraries from the torch wheel's nvidia packages (cu13 keeps
#    them in nvidia/cu13/{include,lib}; cu12 wheels in nvidia/<library>/{include,lib}).
nvidia_paths="$("$python" - <<'EOF'
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
inc, lib = [], []
for root in nvidia.__path__:
    inc += sorted(glob.glob(os.path.join(root, "*", "include")))
    lib += sorted(glob.glob(os.path.join(root, "*", "lib")))
print(":".join(inc))
print(":".join(lib))
EOF
)"
nv_include="$(sed -n 1p <<<"$nvidia_paths")"
nv_lib="$(sed -n 2p <<<"$nvidia_paths")"
export CPATH="${nv_include}${CPATH:+:$CPATH}"
export LIBRARY_PATH="${nv_lib}${LIBRARY_PATH:+:$LIBRARY_PATH}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export LSTM_EXT_CUDA=1
if [ "${LSTM_EXT_CHECK_FULL:-0}" = 1 ]; then export LSTM_EXT_CUDA_ONLY=0; else export LSTM_EXT_CUDA_ONLY=1; fi

# 4. A throwaway copy of the tree: tracked and untracked-but-not-ignored files, no build outputs.
work="$(mktemp -d "${TMPDIR:-/tmp}/lstm_ext_cuda_check.XXXXXX")"
if [ "${KEEP_BUILD:-0}" = 1 ]; then echo "cuda_build_check: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work"
else
  (cd "$repo" && tar --exclude=./build --exclude='*.so' --exclude=./.git -cf - .) | tar -xf - -C "$work"
fi

echo "cuda_build_check: building in $work (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, LSTM_EXT_CUDA_ONLY=$LSTM_EXT_CUDA_ONLY)"
build_start=$(date +%s)
(cd "$work" && "$python" setup.py build_ext --inplace >"$work/build.log" 2>&1) || {
  grep -E "error|Error" "$work/build.log" | head -40 >&2 || true
  tail -20 "$work/build.log" >&2
  fail "the CUDA build failed (log above)"
}
echo "cuda_build_check: built in $(( $(date +%s) - build_start )) s"

# 5. Import the copy (not an installed lstm_ext) and ask the dispatcher about every lstm_ext op.
(cd "$work" && PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}" LSTM_EXT_CPU_ONLY_OPS="${LSTM_EXT_CPU_ONLY_OPS:-}" "$python" - "$work" <<'EOF'
import os, sys
import torch
import lstm_ext
from lstm_ext import _library

work = os.path.realpath(sys.argv[1])
if not os.path.realpath(lstm_ext.__file__).startswith(work + os.sep):
    sys.exit(f"imported lstm_ext from {lstm_ext.__file__}, not from the build copy {work}")
if _library.LOAD_ERROR is not None:
    sys.exit(f"the CUDA build does not load: {_library.LOAD_ERROR}")
allowed = {f"lstm_ext::{n.strip()}" for n in os.environ["LSTM_EXT_CPU_ONLY_OPS"].split(",") if n.strip()}
names = sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith("lstm_ext::"))
if not names:
    sys.exit("no lstm_ext ops registered")
missing = []
for name in names:
    has = torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA")
    composite = torch._C._dispatch_has_kernel_for_dispatch_key(name, "CompositeExplicitAutograd")
    if composite:  # one kernel for every device, built on the ops below it (lstm_inference)
        print(f"  {name:40s} composite kernel (every device)")
        continue
    note = "CUDA kernel" if has else ("no CUDA kernel (allowed: LSTM_EXT_CPU_ONLY_OPS)" if name in allowed else "NO CUDA KERNEL")
    print(f"  {name:40s} {note}")
    if not has and name not in allowed:
        missing.append(name)
if missing:
    sys.exit(f"ops without a CUDA kernel: {', '.join(missing)}")
EOF
) || fail "registration check"
echo "cuda_build_check: OK: every lstm_ext op has a CUDA kernel; total $(( $(date +%s) - start )) s"
