"""Build lstm_ext's C++ (and optionally CUDA) kernels as one torch extension.

The CUDA kernels are built only when asked for: LSTM_EXT_CUDA=1 and a CUDA_HOME
with nvcc. Whether this machine has a GPU never decides it, so a CPU-only CI
machine can compile the CUDA path, and a GPU machine can build a CPU-only wheel.
"""

import glob
import os
import sys

from setuptools import find_packages, setup
import torch
import torch.utils.cpp_extension as cpp_extension
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))


def _cuda_requested() -> bool:
    if os.environ.get("LSTM_EXT_CUDA", "0") != "1":
        return False
    if CUDA_HOME is None:
        raise RuntimeError("LSTM_EXT_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to the folder that holds bin/nvcc")
    return True


def _aten_uses_openmp() -> bool:
    return sys.platform.startswith("linux") and "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _extension():
    debug = os.environ.get("LSTM_EXT_DEBUG", "0") == "1"
    sanitize = os.environ.get("LSTM_EXT_SANITIZE", "")  # e.g. "address,undefined"
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    # No -std flag: torch.utils.cpp_extension adds the standard its own headers need
    # (C++17 up to torch 2.14, C++20 from torch 2.15).
    cxx += ["-fdiagnostics-color=always"]
    # Newer torch defines Py_LIMITED_API itself for py_limited_api extensions; a second,
    # different value would only redefine it.
    if not hasattr(cpp_extension, "min_supported_cpython"):
        cxx += ["-DPy_LIMITED_API=0x03090000"]
    link = []
    # ATen's at::parallel_for only goes parallel in code compiled with OpenMP (ATen/ParallelOpenMP.h
    # tests _OPENMP); without the flag every pointwise pass ran on one thread. Linked by soname, the
    # runtime is torch's own libgomp.so.1, so both share one thread pool.
    if _aten_uses_openmp():
        cxx += ["-fopenmp"]
        link += ["-fopenmp"]
    if sanitize:
        cxx += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]
        link += [f"-fsanitize={sanitize}"]
    # LSTM_EXT_CUDA_ONLY=1 (with LSTM_EXT_CUDA=1; for .ci/cuda_build_check.sh): leave out the CPU
    # kernels, so a CI machine compiles only what the CUDA path adds; the library is then CUDA-only.
    cuda_only = os.environ.get("LSTM_EXT_CUDA_ONLY", "0") == "1"
    if cuda_only and os.environ.get("LSTM_EXT_CUDA", "0") != "1":
        raise RuntimeError("LSTM_EXT_CUDA_ONLY=1 needs LSTM_EXT_CUDA=1")
    # csrc/ holds ops.cpp, runtime/ (shared by every family) and one folder per cell family
    # (lstm/, gru/, lstm_variants/); in each, cpu/ holds CPU kernels and cuda/ CUDA ones. The host
    # C++ outside cpu/ and cuda/ (schemas, argument checks, lstm_inference) serves every backend.
    def backend_dir(path, name):
        return name in os.path.relpath(path, "csrc").split(os.sep)[:-1]

    cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    sources = [p for p in cpp if not backend_dir(p, "cuda") and not (cuda_only and backend_dir(p, "cpu"))]
    kwargs = dict(
        name="lstm_ext._C",
        sources=sources,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_link_args=link,
        py_limited_api=True,
    )
    if _cuda_requested():
        # Explicit: a machine without a GPU has nothing to detect (A100 = 8.0, H100/H200 = 9.0).
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        # csrc/**/cuda: the kernels (.cu, nvcc) and their op registration (.cpp, host compiler).
        cuda_glob = os.path.join("csrc", "**", "cuda", "*")
        kwargs["sources"] += sorted(glob.glob(cuda_glob + ".cu", recursive=True) + glob.glob(cuda_glob + ".cpp", recursive=True))
        nvcc = ["-O3", "-DLSTM_EXT_WITH_CUDA"] + (["-G", "-lineinfo"] if debug else ["-lineinfo"])
        # nvcc compiles the architectures of one .cu in parallel threads (LSTM_EXT_NVCC_THREADS, default 2).
        nvcc += ["--threads", os.environ.get("LSTM_EXT_NVCC_THREADS", "2")]
        kwargs["extra_compile_args"] = {"cxx": cxx + ["-DLSTM_EXT_WITH_CUDA"], "nvcc": nvcc}
        return CUDAExtension(**kwargs)
    kwargs["extra_compile_args"] = {"cxx": cxx}
    return CppExtension(**kwargs)


setup(
    name="lstm_ext",
    version="0.1.0",
    packages=find_packages(include=["lstm_ext", "lstm_ext.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
