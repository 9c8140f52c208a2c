"""The CUDA kernels: registration, parity, gradcheck, CUDA graphs, streams, torch.compile, devices.

- ``test_every_op_has_a_cuda_kernel`` needs no GPU: it runs wherever the loaded library was built
  with its CUDA kernels (``LSTM_EXT_CUDA=1``) and proves they registered.
- Everything else needs a GPU and a CUDA build, and skips with the reason otherwise.

Parity is checked two ways, per dtype (float32, float64, float16, bfloat16) with that dtype's
tolerance from ``tests/tolerances.py``:
- against float64 on the CPU (torch.nn.LSTM on the same, dtype-representable weights and inputs);
- against torch.nn.LSTM on CUDA (cuDNN) in the same dtype, with TF32 off so float32 is float32.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence

import lstm_ext
from lstm_ext import _library
from lstm_ext.lstm import ops as fused_lstm
from module_parity import MIXED_LENGTHS, lstm_dense_build, lstm_packed_build, rnd, round_to, run_lstm, run_lstm_cell
from op_args import LSTM_LAYER_CASES, lstm_cell_args, lstm_layer_args
from tolerances import assert_close_to_truth, tol
from module_plumbing import raises_like

F64 = torch.float64
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
OPS = ("lstm_layer", "lstm_layer_backward", "lstm_cell", "lstm_cell_backward")


def _has_cuda_kernel(op: str) -> bool:
    return _library.LOAD_ERROR is None and torch._C._dispatch_has_kernel_for_dispatch_key(f"lstm_ext::{op}", "CUDA")


CUDA_BUILT = any(_has_cuda_kernel(op) for op in OPS)
NOT_BUILT_REASON = (
    f"lstm_ext failed to load: {_library.LOAD_ERROR!r}" if _library.LOAD_ERROR is not None
    else "lstm_ext was built without its CUDA kernels (build with LSTM_EXT_CUDA=1 and CUDA_HOME, see README)"
)

requires_cuda_build = pytest.mark.skipif(not CUDA_BUILT, reason=NOT_BUILT_REASON)
# For every test that runs kernels: a GPU and a CUDA build, else skip with what is missing.
needs_gpu = pytest.mark.skipif(
    not (torch.cuda.is_available() and CUDA_BUILT),
    reason="no CUDA GPU: torch.cuda.is_available() is False" if not torch.cuda.is_available() else NOT_BUILT_REASON,
)


@pytest.fixture(autouse=True)
def _no_tf32():
    """float32 means float32: cuDNN and cuBLAS would otherwise be allowed TF32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------
# Registration: no GPU needed
# ---------------------------------------------------------------------------------------------


@requires_cuda_build
@pytest.mark.parametrize("op", OPS)
def test_every_op_has_a_cuda_kernel(op):
    """A CUDA build registers all four ops, not some of them."""
    assert _has_cuda_kernel(op), f"lstm_ext::{op} has no CUDA kernel although others do"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _to(results: dict, dtype=F64, device="cpu") -> dict:
    """Every tensor (and PackedSequence data) of a results dict moved to device / dtype."""
    out = {}
    for key, value in results.items():
        if isinstance(value, PackedSequence):
            value = value.data
        out[key] = None if value is None else value.detach().to(device=device, dtype=dtype)
    return out


def _assert_results_close(actual: dict, expected: dict, dtype: torch.dtype) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        a, e = actual[key], expected[key]
        assert (a is None) == (e is None), f"{key}: one side has no gradient"
        if e is not None:
            torch.testing.assert_close(a, e, msg=lambda m, key=key: f"{key}: {m}", **tol(dtype))


def _assert_results_near_truth(actual: dict, truth: dict, plain: dict) -> None:
    """assert_close_to_truth key by key: ``plain`` is torch's own kernel in actual's dtype."""
    assert actual.keys() == truth.keys() == plain.keys()
    for key in truth:
        assert (actual[key] is None) == (truth[key] is None), f"{key}: one side has no gradient"
        if truth[key] is not None:
            assert_close_to_truth(actual[key], truth[key], plain[key], name=key)


# name -> (nn.LSTM kwargs, packed lengths or None)
LSTM_CASES = {
    "one-layer": (dict(input_size=6, hidden_size=8), None),
    "multi-layer-bi": (dict(input_size=6, hidden_size=8, num_layers=3, bidirectional=True), None),
    "proj-bi": (dict(input_size=6, hidden_size=8, num_layers=2, bidirectional=True, proj_size=5), None),
    "batch-first-no-bias": (dict(input_size=6, hidden_size=8, num_layers=2, batch_first=True, bias=False), None),
    "packed-bi-proj": (dict(input_size=6, hidden_size=8, num_layers=2, bidirectional=True, proj_size=3),
                       MIXED_LENGTHS),
    "wide": (dict(input_size=64, hidden_size=160, num_layers=2), None),  # more units than one block
}


def _lstm_leaves(kwargs: dict, lengths, gen: torch.Generator, dtype: torch.dtype) -> dict:
    """float64 leaves holding dtype-representable values (so float64 sees what dtype sees)."""
    d = 2 if kwargs.get("bidirectional") else 1
    layers = kwargs.get("num_layers", 1) * d
    batch = len(lengths) if lengths else 4
    steps = max(lengths) if lengths else 9
    x_shape = (batch, steps, kwargs["input_size"]) if kwargs.get("batch_first") else (steps, batch,
                                                                                        kwargs["input_size"])
    leaves = {
        "x": rnd(gen, *x_shape),
        "h0": rnd(gen, layers, batch, kwargs.get("proj_size") or kwargs["hidden_size"]),
        "c0": rnd(gen, layers, batch, kwargs["hidden_size"]),
    }
    return {k: v.detach().to(dtype).to(F64).requires_grad_() for k, v in leaves.items()}


def _build(kwargs: dict, lengths):
    if lengths is None:
        return lstm_dense_build(True)
    return lstm_packed_build(lengths, kwargs.get("batch_first", False), enforce_sorted=False, with_hx=True)


def _leaves_on(leaves: dict, dtype: torch.dtype, device: str) -> dict:
    return {k: v.detach().to(device=device, dtype=dtype).requires_grad_() for k, v in leaves.items()}


def _nn_lstm(kwargs: dict, gen: torch.Generator, dtype: torch.dtype) -> nn.LSTM:
    ref = nn.LSTM(**kwargs, dtype=F64)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=F64).mul_(1.2).sub_(0.6))
    return round_to(ref, dtype)


# ---------------------------------------------------------------------------------------------
# Parity: LSTM and LSTMCell, every dtype
# ---------------------------------------------------------------------------------------------


# float16 at H=160 is further from the float64 truth than cuDNN on weight_ih_l0's gradient by more
# than the twice-cuDNN's-error allowance, while float32 and bfloat16 stay within it (the measured
# errors are in docs/performance.md). Likely cause, not yet verified: the backward
# carries dh and the gate gradients in float16 between steps. strict: the day it passes, this mark
# must go.
_FLOAT16_WIDE_GAP = pytest.mark.xfail(
    strict=True, reason="known float16 backward gap against cuDNN at H=160; see docs/performance.md"
)


def _lstm_parity_params():
    for case in LSTM_CASES:
        for dtype in DTYPES:
            marks = _FLOAT16_WIDE_GAP if (case, dtype) == ("wide", torch.float16) else ()
            yield pytest.param(case, dtype, id=f"{case}-{dtype}", marks=marks)


@needs_gpu
@pytest.mark.parametrize("case,dtype", list(_lstm_parity_params()))
def test_lstm_matches_cpu_float64_and_cudnn(case, dtype, gen):
    kwargs, lengths = LSTM_CASES[case]
    ref64 = _nn_lstm(kwargs, gen, dtype)
    leaves = _lstm_leaves(kwargs, lengths, gen, dtype)
    build = _build(kwargs, lengths)

    ours = lstm_ext.LSTM(**kwargs, backend="fused").to(device="cuda", dtype=dtype)
    ours.load_state_dict(ref64.state_dict())
    actual = run_lstm(ours, _leaves_on(leaves, dtype, "cuda"), build)
    for key, value in actual.items():
        data = value.data if isinstance(value, PackedSequence) else value
        assert data.device.type == "cuda" and data.dtype == dtype, f"{key}: {data.device} {data.dtype}"

    expected = run_lstm(ref64, leaves, build)  # float64, CPU: the truth
    cudnn = nn.LSTM(**kwargs).to(device="cuda", dtype=dtype)
    cudnn.load_state_dict(ref64.state_dict())
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        from_cudnn = run_lstm(cudnn, _leaves_on(leaves, dtype, "cuda"), build)
    # Within the table of the truth, or no further from it than twice cuDNN in the same dtype:
    # at H=160 the gradients reach ~20, and neither cuDNN nor oneDNN stays within the table there.
    _assert_results_near_truth(_to(actual, dtype, "cpu"), _to(expected), _to(from_cudnn, dtype, "cpu"))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_cell_matches_cpu_float64_and_cuda_nn(bias, dtype, gen):
    ref64 = round_to(nn.LSTMCell(7, 9, bias=bias, dtype=F64), dtype)
    leaves = {"x": rnd(gen, 5, 7), "h0": rnd(gen, 5, 9), "c0": rnd(gen, 5, 9)}
    leaves = {k: v.detach().to(dtype).to(F64).requires_grad_() for k, v in leaves.items()}
    build = lambda lv: (lv["x"], (lv["h0"], lv["c0"]))  # noqa: E731

    ours = lstm_ext.LSTMCell(7, 9, bias=bias, backend="fused").to(device="cuda", dtype=dtype)
    ours.load_state_dict(ref64.state_dict())
    actual = run_lstm_cell(ours, _leaves_on(leaves, dtype, "cuda"), build)
    assert actual["h"].device.type == "cuda" and actual["h"].dtype == dtype
    _assert_results_close(_to(actual), _to(run_lstm_cell(ref64, leaves, build)), dtype)

    cuda_nn = nn.LSTMCell(7, 9, bias=bias).to(device="cuda", dtype=dtype)
    cuda_nn.load_state_dict(ref64.state_dict())
    _assert_results_close(_to(actual), _to(run_lstm_cell(cuda_nn, _leaves_on(leaves, dtype, "cuda"), build)), dtype)


# ---------------------------------------------------------------------------------------------
# The raw ops on CUDA: opcheck (fake kernels, schema) and float64 gradcheck
# ---------------------------------------------------------------------------------------------


def _cuda_args(args):
    """Floating tensors to CUDA (keeping requires_grad); batch_sizes stays on the CPU, as in PackedSequence."""
    moved = []
    for a in args:
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            a = a.detach().cuda().requires_grad_(a.requires_grad)
        moved.append(a)
    return tuple(moved)


@needs_gpu
@pytest.mark.parametrize("case", LSTM_LAYER_CASES, ids=list(LSTM_LAYER_CASES))
def test_opcheck_lstm_layer_cuda(case):
    torch.library.opcheck(torch.ops.lstm_ext.lstm_layer, _cuda_args(lstm_layer_args(**LSTM_LAYER_CASES[case])))


@needs_gpu
@pytest.mark.parametrize("case", ["dense", "dense-reverse", "proj", "packed", "packed-reverse-proj", "one-step"])
def test_gradcheck_lstm_layer_cuda_float64(case):
    args = _cuda_args(lstm_layer_args(**LSTM_LAYER_CASES[case]))
    tensors, rest = args[:8], args[8:]  # input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr | batch_sizes, reverse

    def layer(*ts):
        return fused_lstm.lstm_layer(*ts, *rest)

    assert torch.autograd.gradcheck(layer, tensors)


@needs_gpu
def test_gradcheck_lstm_cell_cuda_float64():
    args = _cuda_args(lstm_cell_args())
    torch.library.opcheck(torch.ops.lstm_ext.lstm_cell, args)
    assert torch.autograd.gradcheck(fused_lstm.lstm_cell, args)


# ---------------------------------------------------------------------------------------------
# CUDA graphs, streams, torch.compile
# ---------------------------------------------------------------------------------------------


def _cuda_model(gen, dtype=torch.float32, **kwargs):
    kwargs = {**dict(input_size=16, hidden_size=32, num_layers=2, bidirectional=True, proj_size=8), **kwargs}
    ref = _nn_lstm(kwargs, gen, dtype)
    model = lstm_ext.LSTM(**kwargs, backend="fused").to(device="cuda", dtype=dtype)
    model.load_state_dict(ref.state_dict())
    return model


def _x(gen, *shape, dtype=torch.float32):
    return torch.randn(*shape, generator=gen, dtype=F64).to(device="cuda", dtype=dtype)


@needs_gpu
def test_cuda_graph_capture_and_replay(gen):
    """Forward captured once, replayed on new data: the same as eager on that data."""
    model = _cuda_model(gen)
    static_x = _x(gen, 12, 4, 16)
    side = torch.cuda.Stream()  # warm up off the capturing stream, as torch.cuda.graphs' docs say
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(2):
            model(static_x)
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out, (static_h, static_c) = model(static_x)

    for _ in range(3):
        new_x = _x(gen, 12, 4, 16)
        static_x.copy_(new_x)
        graph.replay()
        with torch.no_grad():
            out, (h, c) = model(new_x)
        torch.testing.assert_close(static_out, out, rtol=0, atol=0)
        torch.testing.assert_close(static_h, h, rtol=0, atol=0)
        torch.testing.assert_close(static_c, c, rtol=0, atol=0)


@needs_gpu
def test_cuda_graph_forward_and_backward(gen):
    """make_graphed_callables captures forward and backward; replayed grads match eager."""
    model = _cuda_model(gen)
    eager = copy.deepcopy(model)
    graphed = torch.cuda.make_graphed_callables(model, (_x(gen, 10, 3, 16).requires_grad_(),))

    for _ in range(2):
        x = _x(gen, 10, 3, 16)
        cot = _x(gen, 10, 3, 16)  # output: [T, B, 2 * proj_size]
        results = []
        for call, params in ((graphed, model), (eager, eager)):
            params.zero_grad(set_to_none=True)
            leaf = x.clone().requires_grad_()
            out, _ = call(leaf)
            (out * cot).sum().backward()
            results.append([out.detach().clone(), leaf.grad] + [p.grad for p in params.parameters()])
        for a, e in zip(*results):
            torch.testing.assert_close(a, e, **tol(torch.float32))


@needs_gpu
def test_non_default_stream(gen):
    """Work issued on a busy side stream: every kernel must follow that stream's order.

    The side stream first sleeps, then writes the input. A kernel launched on any other stream
    would read the input before it is written, and the result would differ from the default
    stream's.
    """
    model = _cuda_model(gen)
    source = _x(gen, 20, 5, 16)
    cot = _x(gen, 20, 5, 16)

    def run():
        x = (source * 1).requires_grad_()
        out, (h, c) = model(x)
        (out * cot).sum().backward()
        return [out.detach(), h.detach(), c.detach(), x.grad] + [p.grad.clone() for p in model.parameters()]

    model.zero_grad(set_to_none=True)
    expected = run()
    torch.cuda.synchronize()

    model.zero_grad(set_to_none=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # ~tens of ms of GPU time before the input exists
        actual = run()
    torch.cuda.current_stream().wait_stream(side)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


# Measured on an H200 with torch 2.11: the packed case (which graph-breaks) fails in cudagraph
# trees' recording with "These storage data ptrs are not allocated in pool ... could be a bug in
# inductor aliasing tracking or in a custom op's meta function"; the dense case passes. Cause not
# found yet: the ops' outputs are fresh tensors, as their fake kernels say; a guess is that the CPU
# batch_sizes argument keeps the op out of inductor's CUDA-graph partitions. strict: see above.
_PACKED_REDUCE_OVERHEAD = pytest.mark.xfail(
    strict=True, reason="packed input under mode='reduce-overhead' fails cudagraph trees' pool check (torch 2.11)"
)


@needs_gpu
@pytest.mark.parametrize("packed", [False, pytest.param(True, marks=_PACKED_REDUCE_OVERHEAD)], ids=["dense", "packed"])
def test_compile_reduce_overhead(packed, gen):
    """torch.compile(mode="reduce-overhead") (CUDA graphs under the hood), fullgraph, vs eager."""
    torch._dynamo.reset()
    model = _cuda_model(gen)
    lengths = torch.tensor([8, 8, 5, 2])

    def fn(x, h0, c0):
        if packed:
            x = nn.utils.rnn.pack_padded_sequence(x, lengths)
        out, (h, c) = model(x, (h0, c0))
        if packed:
            out = out.data
        return out, h, c

    compiled = torch.compile(fn, mode="reduce-overhead", fullgraph=not packed)
    for _ in range(3):  # warm-up, record, replay
        torch.compiler.cudagraph_mark_step_begin()
        x, h0, c0 = _x(gen, 8, 4, 16), _x(gen, 4, 4, 8), _x(gen, 4, 4, 32)
        leaves = [t.clone().requires_grad_() for t in (x, h0, c0)]
        out, h, c = compiled(*leaves)
        loss = out.sum() + h.sum() + c.sum()
        grads = torch.autograd.grad(loss, leaves)
        e_leaves = [t.clone().requires_grad_() for t in (x, h0, c0)]
        e_out, e_h, e_c = fn(*e_leaves)
        e_grads = torch.autograd.grad(e_out.sum() + e_h.sum() + e_c.sum(), e_leaves)
        for a, e in zip([out, h, c, *grads], [e_out, e_h, e_c, *e_grads]):
            torch.testing.assert_close(a, e, **tol(torch.float32))


# ---------------------------------------------------------------------------------------------
# Devices: the same errors as nn.LSTM / nn.LSTMCell
# ---------------------------------------------------------------------------------------------


LSTM_DEVICE_CASES = {
    # name -> (module device, input device, hx device)
    "cpu-hx-with-cuda-input": ("cuda", "cuda", "cpu"),
    "cuda-hx-with-cpu-input": ("cpu", "cpu", "cuda"),
    "cpu-weights-with-cuda-input": ("cpu", "cuda", "cuda"),
    "cuda-weights-with-cpu-input": ("cuda", "cpu", "cpu"),
}


@needs_gpu
@pytest.mark.parametrize("backend", ["fused", "reference", "auto"])
@pytest.mark.parametrize("case", LSTM_DEVICE_CASES, ids=list(LSTM_DEVICE_CASES))
def test_lstm_device_mismatch_raises_like_nn(case, backend, gen):
    module_device, input_device, hx_device = LSTM_DEVICE_CASES[case]
    kwargs = dict(input_size=4, hidden_size=5, num_layers=2)
    ref = nn.LSTM(**kwargs).to(module_device)
    ours = lstm_ext.LSTM(**kwargs, backend=backend).to(module_device)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 2, 4, generator=gen).to(input_device)
    hx = (torch.zeros(2, 2, 5, device=hx_device), torch.zeros(2, 2, 5, device=hx_device))
    raises_like(lambda: ref(x, hx), lambda: ours(x, hx))


@needs_gpu
@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_cell_device_mismatch_raises_like_nn(backend, gen):
    """nn.LSTMCell fails inside a matrix product, in words of that kernel: same type, clear words."""
    ref = nn.LSTMCell(4, 5).cuda()
    ours = lstm_ext.LSTMCell(4, 5, backend=backend).cuda()
    x = torch.randn(2, 4, generator=gen).cuda()
    hx = (torch.zeros(2, 5), torch.zeros(2, 5))
    raises_like(lambda: ref(x, hx), lambda: ours(x, hx), same_message=False)
    with pytest.raises(RuntimeError, match="same device"):
        ours(x, hx)


@needs_gpu
@pytest.mark.parametrize("which", ["h0", "w_hh", "b_ih", "w_hr"])
def test_op_refuses_mixed_devices(which):
    """A direct torch.ops call with one tensor on the CPU: a clear error, not a bad pointer."""
    args = list(_cuda_args(lstm_layer_args(proj=3, requires_grad=False)))
    index = {"h0": 1, "w_hh": 4, "b_ih": 5, "w_hr": 7}[which]
    args[index] = args[index].cpu()
    with pytest.raises(RuntimeError, match=rf"expected {which} on device cuda:\d like input, got cpu"):
        torch.ops.lstm_ext.lstm_layer(*args)
