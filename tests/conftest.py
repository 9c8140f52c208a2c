"""Shared helpers for the lstm_ext tests: backend parametrization, weight copying, grads."""

from __future__ import annotations

import os
import sys
import zlib

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # so test files can `import tolerances`

import lstm_ext  # noqa: E402
from lstm_ext import _library  # noqa: E402

FUSED_AVAILABLE = _library.LOAD_ERROR is None
FUSED_SKIP_REASON = f"lstm_ext compiled kernels not loaded: {_library.LOAD_ERROR!r}"

# Every parity test runs once per backend; "fused" is skipped (with the load error) when the
# extension is not built, never silently turned into the reference.
BACKENDS = [
    pytest.param("fused", id="fused", marks=pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON)),
    pytest.param("reference", id="reference"),
]


def pytest_configure(config):
    config.addinivalue_line("markers", "distributed: multi-process torch.distributed (gloo) test; runs by default")
    config.addinivalue_line(
        "markers", "slow: long memory/growth runs, AOTInductor compiles; runs by default, the sanitizer job skips them"
    )


def requires_fused():
    return pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            return next((set(line.split(":", 1)[1].split()) for line in info if line.startswith("flags")), set())
    except OSError:
        return set()


# The bfloat16 fused forward runs where ATen runs its AVX512 kernels and the CPU has AVX512-BF16
# (csrc/runtime/cpu/capability.h's cpu_has_avx512_bf16).
FUSED_BF16_AVAILABLE = (
    FUSED_AVAILABLE and torch.backends.cpu.get_cpu_capability() == "AVX512" and "avx512_bf16" in _cpu_flags()
)


def requires_fused_bf16():
    return pytest.mark.skipif(not FUSED_BF16_AVAILABLE, reason="the CPU lacks AVX512-BF16 (or ATen runs below AVX512)")


@pytest.fixture
def two_threads():
    """torch's intra-op threads set to 2 for the test, so the kernels that split work across
    threads do, whatever the machine's default."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def gen(request) -> torch.Generator:
    """A CPU generator seeded from the test id: reproducible, different per test case."""
    g = torch.Generator()
    g.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    return g


def copy_weights(src: torch.nn.Module, dst: torch.nn.Module) -> torch.nn.Module:
    """Load src's parameters into dst (strict: the state_dict keys must be the same)."""
    dst.load_state_dict(src.state_dict(), strict=True)
    return dst


def make_pair(nn_cls, ours_cls, backend, *, dtype=torch.float64, gen=None, **kwargs):
    """(nn module, lstm_ext module) with identical weights; weights drawn from `gen` when given."""
    ref = nn_cls(**kwargs, dtype=dtype)
    if gen is not None:
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64).mul_(1.2).sub_(0.6))
    return ref, copy_weights(ref, ours_cls(**kwargs, dtype=dtype, backend=backend))


def make_lstm_pair(backend, **kwargs):
    """(nn.LSTM, lstm_ext.LSTM) with identical weights, as make_pair."""
    return make_pair(torch.nn.LSTM, lstm_ext.LSTM, backend, **kwargs)


def make_cell_pair(backend, **kwargs):
    """(nn.LSTMCell, lstm_ext.LSTMCell) with identical weights, as make_pair."""
    return make_pair(torch.nn.LSTMCell, lstm_ext.LSTMCell, backend, **kwargs)
