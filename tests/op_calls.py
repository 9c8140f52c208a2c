"""A well-formed call of every torch.ops.lstm_ext op, and what a clear error from one looks like:
the starting points of the raw-op fuzz tests (test_fuzz_ops.py, test_fuzz_ops_layouts.py); and a
runner for code that must run under each CPU capability."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from op_args import (
    gru_cell_args, gru_layer_args, lstm_cell_args, lstm_layer_args, variant_backward_args, variant_layer_case,
    variant_op_args,
)

ops = torch.ops.lstm_ext
OK_ERRORS = (RuntimeError, ValueError)  # NotImplementedError is a RuntimeError too


def arg_names(op) -> list[str]:
    return [a.name for a in op.default._schema.arguments]


def detach_all(args):
    return [a.detach() if isinstance(a, torch.Tensor) else a for a in args]


def good_calls() -> dict[str, tuple[object, list]]:
    """A well-formed call of every op: name -> (op, args)."""
    dense = detach_all(lstm_layer_args(T=4, B=3, I=5, H=6, requires_grad=False, seed=1))
    packed = detach_all(lstm_layer_args(T=5, B=4, I=3, H=5, proj=2, packed=True, reverse=True, requires_grad=False,
                                        seed=2))
    calls = {"lstm_layer-dense": (ops.lstm_layer, dense), "lstm_layer-packed-proj": (ops.lstm_layer, packed)}
    g = torch.Generator().manual_seed(3)
    for name, args in (("dense", dense), ("packed-proj", packed)):
        input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse = args
        out, h_n, c_n, gates, cells = ops.lstm_layer(*args)
        grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (out, h_n, c_n)]
        calls[f"lstm_layer_backward-{name}"] = (
            ops.lstm_layer_backward,
            [*grads, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, out, gates, cells, [True, True, True]],
        )
    cell = detach_all(lstm_cell_args(B=3, I=4, H=5, seed=4))
    calls["lstm_cell"] = (ops.lstm_cell, cell)
    input, hx, cx, w_ih, w_hh, _, _ = cell
    hy, cy, gates = ops.lstm_cell(*cell)
    grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (hy, cy)]
    calls["lstm_cell_backward"] = (
        ops.lstm_cell_backward, [*grads, input, hx, cx, w_ih, w_hh, gates, cy, [True, True, True]]
    )
    calls.update(_variant_calls(g))
    calls.update(_gru_calls(g))
    linear = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in ((7, 5), (6, 5), (6,))]
    calls["linear"] = (ops.linear, linear)
    calls["bernoulli_mask"] = (ops.bernoulli_mask, [torch.tensor(4, dtype=torch.int64), 0.5, [3, 2], torch.float32])
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, _, _, _ = dense  # one layer, one direction, hx given
    calls["lstm_inference-dense"] = (
        ops.lstm_inference, [input, [h0[None], c0[None]], [w_ih, w_hh, b_ih, b_hh], True, 1, False, False]
    )
    return calls


def _gru_calls(g: torch.Generator) -> dict[str, tuple[object, list]]:
    """The GRU ops: a dense and a packed reverse layer, and a cell, forward and backward."""
    calls = {}
    for name, case in (("dense", dict(T=4, B=3, I=5, H=6)), ("packed", dict(T=5, B=4, I=3, H=5, packed=True, reverse=True))):
        args = detach_all(gru_layer_args(**case, requires_grad=False, seed=6))
        calls[f"gru_layer-{name}"] = (ops.gru_layer, args)
        input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = args
        output, h_n, gates = ops.gru_layer(*args)
        grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (output, h_n)]
        calls[f"gru_layer_backward-{name}"] = (
            ops.gru_layer_backward,
            [*grads, input, h0, w_ih, w_hh, batch_sizes, reverse, output, gates, [True, True, True]],
        )
    cell = detach_all(gru_cell_args(B=3, I=4, H=5, seed=7))
    calls["gru_cell"] = (ops.gru_cell, cell)
    input, hx, w_ih, w_hh, _, _ = cell
    hy, gates = ops.gru_cell(*cell)
    calls["gru_cell_backward"] = (
        ops.gru_cell_backward,
        [torch.randn(hy.shape, generator=g, dtype=hy.dtype), input, hx, w_ih, w_hh, gates, [True, True, True]],
    )
    return calls


def _variant_calls(g: torch.Generator) -> dict[str, tuple[object, list]]:
    """The variant op with every optional feature on (peephole, zoneout, layer norm, lesson) and
    a packed call with only a peephole, forward and backward."""
    cases = {
        "dense-all": dict(peephole=True, zoneout_h=0.3, zoneout_c=0.2, layer_norm=True),
        "dense-lesson": dict(peephole=True, zoneout_h=0.3, lesson=True),
        "packed-peephole": dict(packed=True, reverse=True, peephole=True),
    }
    calls = {}
    for name, variant in cases.items():
        args = list(variant_op_args(*variant_layer_case(T=4, B=3, I=5, H=6, **variant, seed=5)))
        calls[f"lstm_variant_layer-{name}"] = (ops.lstm_variant_layer, args)
        output, h_n, c_n, *saved = ops.lstm_variant_layer(*args)
        grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (output, h_n, c_n)]
        calls[f"lstm_variant_layer_backward-{name}"] = (
            ops.lstm_variant_layer_backward, list(variant_backward_args(args, grads, output, saved, [True] * 3))
        )
    return calls


def assert_clear_error(error: BaseException, op) -> None:
    """error is one of OK_ERRORS and names op, so a user can tell which call was wrong."""
    assert isinstance(error, OK_ERRORS), f"{type(error).__name__}: {error}"
    message = str(error)
    op_name = op.default._schema.name  # e.g. "lstm_ext::lstm_layer"
    # Our own checks name the op; ATen's dispatch errors name the op and the dtype or backend.
    assert op_name in message or op_name.replace("lstm_ext::", "lstm_ext_") in message, message


def run_under_capability(script: str, capability: str, timeout: int = 600) -> str:
    """Run ``script`` in a fresh Python process under ``ATEN_CPU_CAPABILITY=capability`` (ATen and
    lstm_ext pick their kernel build once per process), with tests/ importable; assert it exits
    cleanly and return its stdout. A capability the CPU lacks falls back to a lower one, as ATen's
    own kernels do."""
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability,
           "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def aten_products(call) -> list[str]:
    """The ATen matrix products ``call`` dispatched, one name per call: how a test tells a path that
    runs a library GEMM per step from the fused step, whose results can be bitwise the same."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        call()
    return [e.name for e in prof.events() if e.name in ("aten::addmm_", "aten::addmm", "aten::mm", "aten::matmul")]
