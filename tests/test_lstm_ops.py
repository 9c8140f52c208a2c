"""The raw ops: opcheck, float64 gradcheck, and the C++ argument checks."""

import textwrap

import pytest
import torch

from lstm_ext import _library
from lstm_ext.lstm import ops as fused_lstm
from op_calls import run_under_capability
from op_args import LSTM_LAYER_CASES, lstm_cell_args, lstm_layer_args, replace_arg

pytestmark = pytest.mark.skipif(_library.LOAD_ERROR is not None, reason=f"extension not built: {_library.LOAD_ERROR}")

ops = torch.ops.lstm_ext


@pytest.mark.parametrize("case", LSTM_LAYER_CASES, ids=list(LSTM_LAYER_CASES))
def test_opcheck_lstm_layer(case):
    torch.library.opcheck(ops.lstm_layer, lstm_layer_args(**LSTM_LAYER_CASES[case]))


@pytest.mark.parametrize("case", ["dense", "packed-reverse-proj"])
@pytest.mark.parametrize("mask", [(True, True, True), (False, False, True), (True, False, False)], ids=str)
def test_opcheck_lstm_layer_backward(case, mask):
    args = lstm_layer_args(**LSTM_LAYER_CASES[case], requires_grad=False)
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse = args
    output, h_n, c_n, gates, cells = ops.lstm_layer(*args)
    grads = (torch.randn_like(output), torch.randn_like(h_n), torch.randn_like(c_n))
    torch.library.opcheck(
        ops.lstm_layer_backward,
        (*grads, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, output, gates, cells, list(mask)),
    )


@pytest.mark.parametrize("bias", [True, False])
def test_opcheck_lstm_cell(bias):
    torch.library.opcheck(ops.lstm_cell, lstm_cell_args(bias=bias))


def test_opcheck_lstm_cell_backward():
    input, hx, cx, w_ih, w_hh, b_ih, b_hh = (t.detach() if t is not None else t for t in lstm_cell_args())
    hy, cy, gates = ops.lstm_cell(input, hx, cx, w_ih, w_hh, b_ih, b_hh)
    torch.library.opcheck(
        ops.lstm_cell_backward,
        (torch.randn_like(hy), torch.randn_like(cy), input, hx, cx, w_ih, w_hh, gates, cy, [True, True, True]),
    )


@pytest.mark.parametrize("case", LSTM_LAYER_CASES, ids=list(LSTM_LAYER_CASES))
def test_gradcheck_lstm_layer(case):
    args = lstm_layer_args(**LSTM_LAYER_CASES[case])
    tensors = [a for a in args[:8]]
    rest = args[8:]

    def fn(*ts):
        out, h_n, c_n = fused_lstm.lstm_layer(*ts, *rest)
        return out, h_n, c_n

    assert torch.autograd.gradcheck(fn, tensors)


def test_gradcheck_lstm_cell():
    assert torch.autograd.gradcheck(fused_lstm.lstm_cell, lstm_cell_args())


def test_bfloat16_keeps_float32_state():
    """Saved gates and cells are float32 for bfloat16 input, and close to the float64 result."""
    args64 = lstm_layer_args(T=8, B=3, I=5, H=7, requires_grad=False)
    cast = lambda a: a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a  # noqa: E731
    out, h_n, c_n, gates, cells = ops.lstm_layer(*map(cast, args64))
    assert gates.dtype == cells.dtype == torch.float32 and out.dtype == torch.bfloat16
    ref = ops.lstm_layer(*args64)
    from tolerances import assert_close

    for got, want in zip((out, h_n, c_n), ref[:3]):
        assert_close(got.double(), want, **__import__("tolerances").tol(torch.bfloat16))


def test_masked_gradients_come_back_empty():
    args = lstm_layer_args(requires_grad=False)
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse = args
    output, h_n, c_n, gates, cells = ops.lstm_layer(*args)
    grads = ops.lstm_layer_backward(
        torch.ones_like(output), torch.zeros_like(h_n), torch.zeros_like(c_n), input, h0, c0, w_ih, w_hh, w_hr,
        batch_sizes, reverse, output, gates, cells, [False, True, False],
    )
    assert [g.numel() == 0 for g in grads] == [True, False, False, True, True, True, True]


# ---- arguments: a direct call with bad input raises, never reads out of bounds ----------------


def bad_layer_calls():
    good = lstm_layer_args(requires_grad=False)
    packed = lstm_layer_args(packed=True, T=6, B=4, requires_grad=False)
    bs = packed[8]
    yield "input-2d-dense", replace_arg(good, 0, good[0][0]), "expected a 3-D input"
    yield "input-size", replace_arg(good, 0, torch.randn(5, 3, 9, dtype=torch.float64)), "expected w_ih of shape"
    yield "h0-batch", replace_arg(good, 1, torch.randn(2, 6, dtype=torch.float64)), "input has batch 3 but h0 has batch 2"
    yield "c0-shape", replace_arg(good, 2, torch.randn(3, 5, dtype=torch.float64)), "expected c0 of shape"
    yield "w_hh-rows", replace_arg(good, 4, torch.randn(23, 6, dtype=torch.float64)), "multiple of 4"
    yield "bias-size", replace_arg(good, 5, torch.randn(7, dtype=torch.float64)), "expected b_ih of shape"
    yield "dtype-mismatch", replace_arg(good, 3, good[3].float()), "expected w_ih to have dtype"
    yield "int-input", replace_arg(good, 0, torch.ones(5, 3, 4, dtype=torch.long)), "floating-point input"
    yield "w_hr-shape", replace_arg(good, 7, torch.randn(3, 2, dtype=torch.float64)), "expected w_hr of shape"
    yield "bs-unsorted", replace_arg(packed, 8, bs.flip(0)), "batch_sizes"
    yield "bs-zero", replace_arg(packed, 8, torch.cat([bs[:-1], bs.new_zeros(1)])), "at least one sequence"
    yield "bs-too-long", replace_arg(packed, 8, torch.cat([bs, bs[-1:]])), "batch_sizes sum to"
    yield "bs-dtype", replace_arg(packed, 8, bs.int()), "int64"
    yield "bs-2d", replace_arg(packed, 8, bs[None]), "1-D"
    yield "bs-exceeds-batch", replace_arg(packed, 8, bs + 1), "exceeds the batch"


@pytest.mark.parametrize("name,args,message", list(bad_layer_calls()), ids=lambda v: v if isinstance(v, str) else "")
def test_lstm_layer_rejects_bad_arguments(name, args, message):
    with pytest.raises(RuntimeError, match=message):
        ops.lstm_layer(*args)


def test_lstm_cell_rejects_bad_arguments():
    input, hx, cx, w_ih, w_hh, b_ih, b_hh = (t.detach() for t in lstm_cell_args())
    with pytest.raises(RuntimeError, match="expected hx of shape"):
        ops.lstm_cell(input, hx[:, :4], cx, w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(RuntimeError, match="expected input of shape"):
        ops.lstm_cell(input[0], hx, cx, w_ih, w_hh, b_ih, b_hh)
    with pytest.raises(RuntimeError, match="expected gates of shape"):
        ops.lstm_cell_backward(hx, cx, input, hx, cx, w_ih, w_hh, cx, cx, [True, True, True])


def test_backward_rejects_mismatched_saved_tensors():
    args = lstm_layer_args(requires_grad=False)
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse = args
    output, h_n, c_n, gates, cells = ops.lstm_layer(*args)
    with pytest.raises(RuntimeError, match="expected gates of shape"):
        ops.lstm_layer_backward(output, h_n, c_n, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, output,
                                gates[:-1], cells, [True, True, True])
    with pytest.raises(RuntimeError, match="expected grad_output of shape"):
        ops.lstm_layer_backward(output[:-1], h_n, c_n, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse,
                                output, gates, cells, [True, True, True])


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_every_cpu_capability_gives_the_same_result(capability):
    """Each compiled variant of the pointwise kernels agrees with the float64 result.

    ATEN_CPU_CAPABILITY picks the variant at start-up, so each runs in its own process;
    a capability this CPU lacks falls back to a lower one, as ATen's own kernels do.
    """

    script = textwrap.dedent(
        """
        import torch
        from op_args import lstm_layer_args
        from tolerances import tol
        from lstm_ext.lstm import ops as fused_lstm
        ops = torch.ops.lstm_ext
        for dtype in (torch.float32, torch.float64):
            args = lstm_layer_args(T=4, B=3, I=5, H=37, proj=0, dtype=dtype)  # 37: vector body and tail
            out, h_n, c_n = fused_lstm.lstm_layer(*args)
            (out.sum() + h_n.sum() + c_n.sum()).backward()
            grads = [a.grad for a in args[:7] if a is not None]
            args64 = [a.detach().double().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
            ref = fused_lstm.lstm_layer(*args64)
            (ref[0].sum() + ref[1].sum() + ref[2].sum()).backward()
            for got, want in zip((out, h_n, c_n), ref):
                torch.testing.assert_close(got.double(), want.detach(), **tol(dtype))
            for got, want in zip(grads, [a.grad for a in args64[:7] if a is not None]):
                torch.testing.assert_close(got.double(), want, **tol(dtype))
        print("capability", torch.backends.cpu.get_cpu_capability())
        """
    )
    assert "capability" in run_under_capability(script, capability)


def test_double_backward_raises_a_clear_error():
    args = lstm_layer_args()
    out, h_n, c_n = fused_lstm.lstm_layer(*args)
    with pytest.raises(RuntimeError, match="do not support double backward"):
        torch.autograd.grad(out.sum(), args[0], create_graph=True)
    cell = lstm_cell_args()
    hy, cy = fused_lstm.lstm_cell(*cell)
    with pytest.raises(RuntimeError, match="do not support double backward"):
        torch.autograd.grad(hy.sum(), cell[0], create_graph=True)


@pytest.mark.parametrize("case", ["dense", "packed-reverse", "proj"])
def test_large_steps_match_float64(case):
    """Steps of >= 8 MFLOP take the packed-weight (oneDNN) GEMM path in float32: the float32
    result, gradients included, must agree with the float64 result (which runs at::addmm)."""
    # nn.LSTM's init scale, 1/sqrt(H): realistic pre-activations for a float32 comparison
    kwargs = dict(T=5, B=32, I=32, H=256, dtype=torch.float32, scale=256**-0.5)  # 16.8 MFLOP a step
    kwargs.update({"dense": {}, "packed-reverse": dict(packed=True, reverse=True), "proj": dict(proj=160)}[case])
    args = lstm_layer_args(**kwargs)
    args64 = [a.detach().double().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    from tolerances import tol

    results = []
    for call in (args, args64):
        out, h_n, c_n = fused_lstm.lstm_layer(*call)
        (out.square().sum() + h_n.sum() + c_n.sum()).backward()
        results.append([out, h_n, c_n] + [a.grad for a in call[:8] if isinstance(a, torch.Tensor)])
    for got, want in zip(*results):
        torch.testing.assert_close(got.double(), want, **tol(torch.float32))
