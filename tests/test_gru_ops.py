"""The raw GRU ops: opcheck, float64 gradcheck, the C++ argument checks, every CPU capability."""

import textwrap

import pytest
import torch

from lstm_ext import _library
from lstm_ext.gru import ops as fused_gru
from op_calls import run_under_capability
from op_args import LAYER_CASES, gru_cell_args, gru_layer_args, replace_arg
from tolerances import assert_close, tol

pytestmark = pytest.mark.skipif(_library.LOAD_ERROR is not None, reason=f"extension not built: {_library.LOAD_ERROR}")

ops = torch.ops.lstm_ext


CASES = LAYER_CASES


def detached(args):
    return [a.detach() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]


@pytest.mark.parametrize("case", CASES)
def test_opcheck_gru_layer(case):
    torch.library.opcheck(ops.gru_layer, gru_layer_args(**CASES[case]))


@pytest.mark.parametrize("case", ["dense", "packed-reverse", "no-bias"])
@pytest.mark.parametrize("mask", [(True, True, True), (False, False, True), (True, False, False)], ids=str)
def test_opcheck_gru_layer_backward(case, mask):
    args = gru_layer_args(**CASES[case], requires_grad=False)
    input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = args
    output, h_n, gates = ops.gru_layer(*args)
    torch.library.opcheck(
        ops.gru_layer_backward,
        (torch.randn_like(output), torch.randn_like(h_n), input, h0, w_ih, w_hh, batch_sizes, reverse, output, gates,
         list(mask)),
    )


@pytest.mark.parametrize("bias", [True, False])
def test_opcheck_gru_cell(bias):
    torch.library.opcheck(ops.gru_cell, gru_cell_args(bias=bias))


@pytest.mark.parametrize("mask", [(True, True, True), (False, True, False)], ids=str)
def test_opcheck_gru_cell_backward(mask):
    input, hx, w_ih, w_hh, b_ih, b_hh = detached(gru_cell_args())
    hy, gates = ops.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)
    torch.library.opcheck(ops.gru_cell_backward, (torch.randn_like(hy), input, hx, w_ih, w_hh, gates, list(mask)))


@pytest.mark.parametrize("case", CASES)
def test_gradcheck_gru_layer(case):
    args = gru_layer_args(**CASES[case])
    rest = args[6:]
    assert torch.autograd.gradcheck(lambda *ts: fused_gru.gru_layer(*ts, *rest), args[:6])


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_gru_cell(bias):
    assert torch.autograd.gradcheck(fused_gru.gru_cell, gru_cell_args(bias=bias))


def test_saved_gates_are_reset_update_candidate_and_hn():
    """gates = [r, z, n, h W_hn + b_hn], computed independently here."""
    input, hx, w_ih, w_hh, b_ih, b_hh = detached(gru_cell_args(B=2, I=3, H=4))
    _, gates = ops.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)
    x_r, x_z, x_n = (input @ w_ih.T + b_ih).chunk(3, 1)
    h_r, h_z, h_n = (hx @ w_hh.T + b_hh).chunk(3, 1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    assert_close(gates, torch.cat([r, z, torch.tanh(x_n + r * h_n), h_n], 1))


def test_bfloat16_keeps_float32_gates():
    args64 = gru_layer_args(T=8, B=3, I=5, H=7, requires_grad=False)
    cast = lambda a: a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a  # noqa: E731
    out, h_n, gates = ops.gru_layer(*map(cast, args64))
    assert gates.dtype == torch.float32 and out.dtype == h_n.dtype == torch.bfloat16
    ref = ops.gru_layer(*args64)
    for got, want in zip((out, h_n), ref[:2]):
        assert_close(got.double(), want, **tol(torch.bfloat16))


def test_masked_gradients_come_back_empty():
    args = gru_layer_args(requires_grad=False)
    input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = args
    output, h_n, gates = ops.gru_layer(*args)
    grads = ops.gru_layer_backward(torch.ones_like(output), torch.zeros_like(h_n), input, h0, w_ih, w_hh,
                                   batch_sizes, reverse, output, gates, [False, True, False])
    assert [g.numel() == 0 for g in grads] == [True, False, True, True, True, True]


def test_double_backward_raises_a_clear_error():
    args = gru_layer_args()
    out, h_n = fused_gru.gru_layer(*args)
    with pytest.raises(RuntimeError, match="do not support double backward"):
        torch.autograd.grad(out.sum(), args[0], create_graph=True)
    cell = gru_cell_args()
    with pytest.raises(RuntimeError, match="do not support double backward"):
        torch.autograd.grad(fused_gru.gru_cell(*cell).sum(), cell[0], create_graph=True)


@pytest.mark.parametrize("case", ["dense", "packed-reverse"])
def test_large_steps_match_float64(case):
    """Steps of >= 8 MFLOP take the packed-weight (oneDNN) GEMM path in float32, forward and
    backward: the float32 results must agree with float64 (which runs at::addmm)."""
    kwargs = dict(T=5, B=32, I=32, H=256, dtype=torch.float32, scale=256**-0.5)  # 12.6 MFLOP a step
    kwargs.update({"dense": {}, "packed-reverse": dict(packed=True, reverse=True)}[case])
    args = gru_layer_args(**kwargs)
    args64 = [a.detach().double().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    results = []
    for call in (args, args64):
        out, h_n = fused_gru.gru_layer(*call)
        (out.square().sum() + h_n.sum()).backward()
        results.append([out, h_n] + [a.grad for a in call[:6]])
    for got, want in zip(*results):
        torch.testing.assert_close(got.double(), want, **tol(torch.float32))


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_every_cpu_capability_gives_the_same_result(capability):
    """Each compiled variant of the GRU row kernels agrees with the float64 result (one process
    per ATEN_CPU_CAPABILITY; a capability this CPU lacks falls back to a lower one, as in ATen).
    float32 and float64 only: bfloat16 runs the same scalar code in every build (see
    test_bfloat16_keeps_float32_gates and test_gru.py's bfloat16 tests)."""
    script = textwrap.dedent(
        """
        import torch
        from op_args import gru_layer_args
        from tolerances import tol
        from lstm_ext.gru import ops as fused_gru
        for dtype in (torch.float32, torch.float64):
            for reverse in (False, True):
                args = gru_layer_args(T=4, B=3, I=5, H=37, dtype=dtype, reverse=reverse, packed=reverse)  # 37: body and tail
                out, h_n = fused_gru.gru_layer(*args)
                (out.sum() + h_n.sum()).backward()
                args64 = [a.detach().double().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point()
                          else a for a in args]
                ref = fused_gru.gru_layer(*args64)
                (ref[0].sum() + ref[1].sum()).backward()
                for got, want in zip([out, h_n] + [a.grad for a in args[:6]], list(ref) + [a.grad for a in args64[:6]]):
                    torch.testing.assert_close(got.double(), want.detach(), **tol(dtype))
        print("capability", torch.backends.cpu.get_cpu_capability())
        """
    )
    assert "capability" in run_under_capability(script, capability)


# ---- arguments: a direct call with bad input raises, never reads out of bounds ----------------


def bad_layer_calls():
    good = gru_layer_args(requires_grad=False)
    packed = gru_layer_args(packed=True, T=6, B=4, requires_grad=False)
    bs = packed[6]
    f64 = dict(dtype=torch.float64)
    yield "input-2d-dense", replace_arg(good, 0, good[0][0]), "expected a 3-D input"
    yield "input-size", replace_arg(good, 0, torch.randn(5, 3, 9, **f64)), "expected w_ih of shape"
    yield "h0-batch", replace_arg(good, 1, torch.randn(2, 6, **f64)), "input has batch 3 but h0 has batch 2"
    yield "h0-hidden", replace_arg(good, 1, torch.randn(3, 5, **f64)), "expected h0 of shape"
    yield "w_hh-rows", replace_arg(good, 3, torch.randn(17, 6, **f64)), "positive multiple of 3"
    yield "w_hh-lstm-shaped", replace_arg(good, 3, torch.randn(24, 6, **f64)), "expected w_hh of shape"
    yield "bias-size", replace_arg(good, 4, torch.randn(7, **f64)), "expected b_ih of shape"
    yield "b_hh-dtype", replace_arg(good, 5, good[5].float()), "expected b_hh to have dtype"
    yield "dtype-mismatch", replace_arg(good, 2, good[2].float()), "expected w_ih to have dtype"
    yield "int-input", replace_arg(good, 0, torch.ones(5, 3, 4, dtype=torch.long)), "floating-point input"
    yield "bs-unsorted", replace_arg(packed, 6, bs.flip(0)), "batch_sizes"
    yield "bs-zero", replace_arg(packed, 6, torch.cat([bs[:-1], bs.new_zeros(1)])), "at least one sequence"
    yield "bs-too-long", replace_arg(packed, 6, torch.cat([bs, bs[-1:]])), "batch_sizes sum to"
    yield "bs-int32", replace_arg(packed, 6, bs.int()), "int64"


@pytest.mark.parametrize("name,args,message", list(bad_layer_calls()), ids=[c[0] for c in bad_layer_calls()])
def test_gru_layer_rejects_bad_arguments(name, args, message):
    with pytest.raises(RuntimeError, match=message):
        ops.gru_layer(*args)


def test_gru_layer_backward_rejects_bad_saved_tensors():
    args = gru_layer_args(requires_grad=False)
    input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = args
    output, h_n, gates = ops.gru_layer(*args)
    call = lambda **kw: ops.gru_layer_backward(  # noqa: E731
        kw.get("grad_output", output), kw.get("grad_h_n", h_n), input, h0, w_ih, w_hh, batch_sizes, reverse,
        kw.get("output", output), kw.get("gates", gates), [True, True, True])
    with pytest.raises(RuntimeError, match="expected gates of shape"):
        call(gates=gates[:, :-1])
    with pytest.raises(RuntimeError, match="expected gates of dtype"):
        call(gates=gates.float())
    with pytest.raises(RuntimeError, match="expected grad_output of shape"):
        call(grad_output=output[:-1])
    with pytest.raises(RuntimeError, match="expected grad_h_n of shape"):
        call(grad_h_n=h_n[:, :-1])


def test_gru_cell_ops_reject_bad_arguments():
    input, hx, w_ih, w_hh, b_ih, b_hh = detached(gru_cell_args())
    with pytest.raises(RuntimeError, match="lstm_ext::gru_cell: expected input of shape"):
        ops.gru_cell(input[0], hx, w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(RuntimeError, match="expected hx of shape"):
        ops.gru_cell(input, hx[:2], w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(RuntimeError, match="positive multiple of 3"):
        ops.gru_cell(input, hx, w_ih, w_hh[:-1], b_ih, b_hh)
    hy, gates = ops.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(RuntimeError, match="lstm_ext::gru_cell_backward: expected gates of shape"):
        ops.gru_cell_backward(hy, input, hx, w_ih, w_hh, gates[:, :-1], [True, True, True])
    with pytest.raises(RuntimeError, match="expected grad_hy of shape"):
        ops.gru_cell_backward(hy[1:], input, hx, w_ih, w_hh, gates, [True, True, True])
