"""lstm_ext::linear, the variants' input projection: F.linear's contract on the layer kernels' GEMM.

Against F.linear in float64 and float32 (shapes on each GEMM path: a few rows take the
small-rows GEMM, big ones oneDNN's packed GEMM where torch has it, float64 ATen's), bfloat16
held to the float64 truth; float64 gradcheck and gradgradcheck; opcheck; the argument checks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstm_ext import _library
from tolerances import assert_close, assert_close_to_truth

pytestmark = pytest.mark.skipif(_library.LOAD_ERROR is not None, reason=f"extension not built: {_library.LOAD_ERROR}")

ops = torch.ops.lstm_ext

SHAPES = {  # (rows, in, out)
    "few-rows": (3, 16, 64),
    "big": (512, 128, 256),  # 33 MFLOP: oneDNN's packed GEMM for float32 and bfloat16
    "odd": (37, 19, 23),
    "no-rows": (0, 8, 12),
    "no-features": (5, 0, 12),
}


def _args(shape, dtype, bias=True, requires_grad=False, seed=0):
    rows, fan_in, fan_out = shape
    g = torch.Generator().manual_seed(seed)
    # Weights on nn.Linear's scale (1/sqrt(in)), so outputs are O(1) like the table assumes.
    def make(*sizes, scale=1.0):
        t = torch.randn(sizes, generator=g, dtype=torch.float64) * scale
        return t.to(dtype).requires_grad_(requires_grad)

    return make(rows, fan_in), make(fan_out, fan_in, scale=max(fan_in, 1) ** -0.5), make(fan_out) if bias else None


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_f_linear(shape, dtype, bias):
    input, weight, b = _args(SHAPES[shape], dtype, bias, requires_grad=True)
    out = ops.linear(input, weight, b)
    want = F.linear(input, weight, b)
    assert_close(out, want)
    grad = torch.randn_like(want)
    leaves = [t for t in (input, weight, b) if t is not None]
    for got, expected in zip(torch.autograd.grad(out, leaves, grad), torch.autograd.grad(want, leaves, grad)):
        assert_close(got, expected)


@pytest.mark.parametrize("shape", ["few-rows", "big", "odd"])
def test_bfloat16_held_to_the_truth(shape):
    input, weight, b = _args(SHAPES[shape], torch.bfloat16)
    truth = F.linear(input.double(), weight.double(), b.double())
    plain = F.linear(input, weight, b)
    assert_close_to_truth(ops.linear(input, weight, b), truth, plain, "linear")


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_gradcheck_and_gradgradcheck(bias):
    args = _args((4, 3, 5), torch.float64, bias, requires_grad=True)
    assert torch.autograd.gradcheck(ops.linear, args)
    assert torch.autograd.gradgradcheck(ops.linear, args)


@pytest.mark.parametrize("shape", ["few-rows", "big", "no-rows"])
def test_opcheck(shape):
    torch.library.opcheck(ops.linear, _args(SHAPES[shape], torch.float32, requires_grad=True))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda x, w, b: (x[None], w, b), "expected input of shape \\[rows, in_features\\]"),
        (lambda x, w, b: (x, w[:, :-1], b), "expected weight of shape \\[out_features, 16\\]"),
        (lambda x, w, b: (x, w, b[:-1]), "expected bias of shape \\[64\\]"),
        (lambda x, w, b: (x.half(), w.half(), b.half()), "expected float32, float64 or bfloat16 input"),
        (lambda x, w, b: (x, w.double(), b), "expected weight of dtype Float like input"),
        (lambda x, w, b: (x, w, b.double()), "expected bias of dtype Float"),
    ],
    ids=["input-rank", "weight-columns", "bias-size", "half", "weight-dtype", "bias-dtype"],
)
def test_bad_arguments_name_the_problem(change, match):
    with pytest.raises(RuntimeError, match="lstm_ext::linear: " + match):
        ops.linear(*change(*_args(SHAPES["few-rows"], torch.float32)))
