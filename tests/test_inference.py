"""The inference path: without grad, lstm_ext.LSTM and LSTMCell make one C++ op call.

A streaming step's time is the Python around the kernels, so a plain forward without grad goes
straight to ``lstm_ext::lstm_inference`` (every layer and direction in C++) or, for the cell, to
``lstm_ext::lstm_cell`` below the autograd keys. These tests hold that path to the full one
(bitwise: the same kernels on the same tensors), check when it is and is not taken, and that
bad input still gets nn.LSTM's own errors.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile

import lstm_ext
from conftest import requires_fused
from module_plumbing import raises_like

pytestmark = requires_fused()

DTYPES = [torch.float32, torch.float64, torch.bfloat16]

# name -> (lstm_ext.LSTM kwargs, T, B, with hx)
LSTM_CASES = {
    "stream-step": (dict(input_size=16, hidden_size=24), 1, 1, True),
    "stream-step-zero-state": (dict(input_size=16, hidden_size=24), 1, 1, False),
    "seq-batch": (dict(input_size=7, hidden_size=9), 6, 3, False),
    "2-layer-bi": (dict(input_size=7, hidden_size=9, num_layers=2, bidirectional=True), 5, 2, True),
    "proj-batch-first": (dict(input_size=7, hidden_size=9, num_layers=2, proj_size=4, batch_first=True), 5, 3, True),
    "no-bias-bi-proj": (dict(input_size=5, hidden_size=6, bias=False, bidirectional=True, proj_size=3), 4, 2, True),
    "eval-dropout": (dict(input_size=5, hidden_size=6, num_layers=3, dropout=0.5), 4, 2, False),
    # One step of a few rows: the CPU's streaming fast path (float32 and float64), whole models.
    "stream-2-layer-bi-batch-first": (
        dict(input_size=7, hidden_size=9, num_layers=2, bidirectional=True, batch_first=True), 1, 3, True),
    "stream-no-bias-4-rows-wide": (dict(input_size=5, hidden_size=37, bias=False, num_layers=2), 1, 4, False),
    # Big enough for the threaded team loop (test_team.py), where the inference op skips the saved gates.
    "team-2-layer-bi": (dict(input_size=24, hidden_size=136, num_layers=2, bidirectional=True), 4, 16, True),
}


def _lstm_inputs(kwargs: dict, T: int, B: int, with_hx: bool, dtype: torch.dtype, gen: torch.Generator):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    P = kwargs.get("proj_size") or kwargs["hidden_size"]
    shape = (B, T, kwargs["input_size"]) if kwargs.get("batch_first") else (T, B, kwargs["input_size"])
    x = torch.randn(*shape, generator=gen).to(dtype)
    hx = None
    if with_hx:
        hx = (torch.randn(layers, B, P, generator=gen).to(dtype),
              torch.randn(layers, B, kwargs["hidden_size"], generator=gen).to(dtype))
    return x, hx


def _ops_called(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {event.name for event in prof.events()}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", LSTM_CASES, ids=list(LSTM_CASES))
def test_lstm_inference_path_equals_the_full_path(case, dtype, gen):
    kwargs, T, B, with_hx = LSTM_CASES[case]
    lstm = lstm_ext.LSTM(**kwargs, dtype=dtype).eval()
    x, hx = _lstm_inputs(kwargs, T, B, with_hx, dtype, gen)
    with torch.no_grad():
        assert "lstm_ext::lstm_inference" in _ops_called(lambda: lstm(x, hx)), "the inference op was not taken"
        fast_out, (fast_h, fast_c) = lstm(x, hx)
    full_out, (full_h, full_c) = lstm(x, hx)  # grad mode on, parameters require grad: the full path
    assert full_out.requires_grad
    for fast, full in ((fast_out, full_out), (fast_h, full_h), (fast_c, full_c)):
        assert fast.shape == full.shape and fast.dtype == full.dtype
        assert not fast.requires_grad
        assert torch.equal(fast, full.detach())


STREAMING = ["stream-step", "stream-step-zero-state", "stream-2-layer-bi-batch-first", "stream-no-bias-4-rows-wide"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", STREAMING)
def test_streaming_step_skips_the_layer_op(case, dtype, gen):
    """One step of at most 4 rows runs lstm_inference's fast path: no lstm_layer call inside."""
    kwargs, T, B, with_hx = LSTM_CASES[case]
    lstm = lstm_ext.LSTM(**kwargs, dtype=dtype).eval()
    x, hx = _lstm_inputs(kwargs, T, B, with_hx, dtype, gen)
    with torch.no_grad():
        called = _ops_called(lambda: lstm(x, hx))
    assert "lstm_ext::lstm_inference" in called and "lstm_ext::lstm_layer" not in called, sorted(called)


@pytest.mark.parametrize(
    "kwargs, T, B, dtype",
    [
        (dict(input_size=5, hidden_size=6), 2, 1, torch.float32),  # two steps
        (dict(input_size=5, hidden_size=6), 1, 5, torch.float32),  # five rows
        (dict(input_size=5, hidden_size=6, proj_size=3), 1, 1, torch.float32),
        (dict(input_size=5, hidden_size=6), 1, 1, torch.bfloat16),
    ],
    ids=["two-steps", "five-rows", "proj", "bf16"],
)
def test_other_calls_take_the_layer_op(kwargs, T, B, dtype, gen):
    lstm = lstm_ext.LSTM(**kwargs, dtype=dtype).eval()
    x, _ = _lstm_inputs(kwargs, T, B, False, dtype, gen)
    with torch.no_grad():
        assert "lstm_ext::lstm_layer" in _ops_called(lambda: lstm(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_streaming_step_with_strided_state_equals_the_full_path(dtype, gen):
    """h_0 and c_0 as views with row and layer strides of their own (slices of bigger tensors)."""
    lstm = lstm_ext.LSTM(6, 10, num_layers=2, dtype=dtype).eval()
    x = torch.randn(1, 3, 6, generator=gen).to(dtype)
    h0 = torch.randn(4, 3, 25, generator=gen).to(dtype)[::2, :, 5:15]
    c0 = torch.randn(3, 3, 20, generator=gen).to(dtype)[1:, :, 3:13]
    with torch.no_grad():
        fast = lstm(x, (h0, c0))
    full = lstm(x, (h0.contiguous(), c0.contiguous()))
    for a, b in zip(torch.utils._pytree.tree_leaves(fast), torch.utils._pytree.tree_leaves(full)):
        assert torch.equal(a, b.detach())


def test_lstm_inference_path_equals_nn_lstm(gen):
    """A streaming loop carrying (h, c) from step to step, against torch.nn.LSTM."""
    ref = nn.LSTM(8, 12, num_layers=2)
    ours = lstm_ext.LSTM(8, 12, num_layers=2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(20, 1, 8, generator=gen)
    hx_ref = hx_ours = None
    with torch.no_grad():
        for t in range(20):
            y_ref, hx_ref = ref(x[t : t + 1], hx_ref)
            y_ours, hx_ours = ours(x[t : t + 1], hx_ours)
            torch.testing.assert_close(y_ours, y_ref)
    torch.testing.assert_close(hx_ours, hx_ref)


class _Doubled(nn.Module):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return 2 * weight


@pytest.mark.parametrize("cls", [nn.LSTM, nn.LSTMCell], ids=["LSTM", "LSTMCell"])
def test_inference_path_reads_parametrized_weights(cls, gen):
    """A parametrized weight is computed on every read: the op must get that, not a stale list."""
    from torch.nn.utils import parametrize

    ours_cls = lstm_ext.LSTM if cls is nn.LSTM else lstm_ext.LSTMCell
    ref, ours = cls(4, 5), ours_cls(4, 5)
    ours.load_state_dict(ref.state_dict())
    name = "weight_hh_l0" if cls is nn.LSTM else "weight_hh"
    for module in (ref, ours):
        parametrize.register_parametrization(module, name, _Doubled())
    x = torch.randn(3, 2, 4, generator=gen) if cls is nn.LSTM else torch.randn(2, 4, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_inference_path_reads_a_reassigned_weight(gen):
    """A Parameter assigned after the first call is the one the next call uses."""
    ours = lstm_ext.LSTM(4, 5)
    ref = nn.LSTM(4, 5)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(1, 1, 4, generator=gen)
    with torch.no_grad():
        ours(x)
        new = nn.Parameter(torch.randn(20, 5, generator=gen))
        ours.weight_hh_l0, ref.weight_hh_l0 = new, nn.Parameter(new.detach().clone())
        torch.testing.assert_close(ours(x), ref(x))


def _not_taken_cases():
    x = torch.randn(3, 2, 4)
    yield "grad-mode", lambda: lstm_ext.LSTM(4, 5), x, False
    yield "reference-backend", lambda: lstm_ext.LSTM(4, 5, backend="reference"), x, True
    yield "variant", lambda: lstm_ext.LSTM(4, 5, zoneout=0.1).eval(), x, True
    yield "training-dropout", lambda: lstm_ext.LSTM(4, 5, num_layers=2, dropout=0.5).train(), x, True
    yield "training-recurrent-dropout", lambda: lstm_ext.LSTM(4, 5, recurrent_dropout=0.5).train(), x, True
    yield "unbatched", lambda: lstm_ext.LSTM(4, 5), x[:, 0], True
    yield "packed", lambda: lstm_ext.LSTM(4, 5), nn.utils.rnn.pack_padded_sequence(x, [3, 2]), True


@pytest.mark.parametrize("name, build, input, no_grad", [pytest.param(*c, id=c[0]) for c in _not_taken_cases()])
def test_lstm_inference_path_not_taken(name, build, input, no_grad):
    """Where the op would compute something else (dropout, variants) or cannot take the input."""
    lstm = build()
    with torch.set_grad_enabled(not no_grad):
        called = _ops_called(lambda: lstm(input))
    assert "lstm_ext::lstm_inference" not in called


def test_lstm_inference_path_not_taken_under_autocast():
    lstm = lstm_ext.LSTM(4, 5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        called = _ops_called(lambda: lstm(torch.randn(3, 2, 4)))
        out, _ = lstm(torch.randn(3, 2, 4))
    assert "lstm_ext::lstm_inference" not in called
    assert out.dtype == torch.bfloat16  # as nn.LSTM under autocast


BAD_LSTM_CALLS = {
    "input-size": lambda: (torch.randn(2, 3, 5), None),
    "hx-batch": lambda: (torch.randn(2, 3, 4), (torch.zeros(2, 2, 6), torch.zeros(2, 2, 6))),
    "hx-layers": lambda: (torch.randn(2, 3, 4), (torch.zeros(1, 3, 6), torch.zeros(1, 3, 6))),
    "cx-size": lambda: (torch.randn(2, 3, 4), (torch.zeros(2, 3, 6), torch.zeros(2, 3, 7))),
    "hx-2d": lambda: (torch.randn(2, 3, 4), (torch.zeros(3, 6), torch.zeros(3, 6))),
    "hx-three": lambda: (torch.randn(2, 3, 4), (torch.zeros(2, 3, 6),) * 3),
    "empty-sequence": lambda: (torch.randn(0, 3, 4), None),
    "int-input": lambda: (torch.ones(2, 3, 4, dtype=torch.int64), None),
}


@pytest.mark.parametrize("case", BAD_LSTM_CALLS, ids=list(BAD_LSTM_CALLS))
def test_lstm_inference_path_keeps_nn_errors(case):
    ref = nn.LSTM(4, 6, num_layers=2)
    ours = lstm_ext.LSTM(4, 6, num_layers=2)
    ours.load_state_dict(ref.state_dict())
    x, hx = BAD_LSTM_CALLS[case]()
    with torch.no_grad():
        raises_like(lambda: ref(x, hx), lambda: ours(x, hx))


# ---- LSTMCell -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_hx", [True, False], ids=["hx", "zero-state"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_cell_inference_path_equals_the_full_path(bias, with_hx, dtype, gen):
    cell = lstm_ext.LSTMCell(6, 7, bias=bias, dtype=dtype)
    x = torch.randn(3, 6, generator=gen).to(dtype)
    hx = (torch.randn(3, 7, generator=gen).to(dtype), torch.randn(3, 7, generator=gen).to(dtype)) if with_hx else None
    with torch.no_grad():
        called = _ops_called(lambda: cell(x, hx))
        fast = cell(x, hx)
    assert "lstm_ext::lstm_cell" in called
    full = cell(x, hx)
    assert full[0].requires_grad
    for f, g in zip(fast, full):
        assert torch.equal(f, g.detach())


def test_cell_mixed_dtypes_promote_like_nn(gen):
    """A float64 cx with float32 input: nn.LSTMCell promotes, so the fast op must step aside."""
    ref = nn.LSTMCell(4, 5)
    ours = lstm_ext.LSTMCell(4, 5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, generator=gen)
    hx = (torch.randn(2, 5, generator=gen), torch.randn(2, 5, generator=gen, dtype=torch.float64))
    with torch.no_grad():
        want, got = ref(x, hx), ours(x, hx)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w)


BAD_CELL_CALLS = {
    "input-size": lambda: (torch.randn(3, 5), None),
    "hx-batch": lambda: (torch.randn(3, 4), (torch.zeros(2, 6), torch.zeros(2, 6))),
    "hx-size": lambda: (torch.randn(3, 4), (torch.zeros(3, 7), torch.zeros(3, 7))),
    "hx-three": lambda: (torch.randn(3, 4), (torch.zeros(3, 6),) * 3),
}


@pytest.mark.parametrize("case", BAD_CELL_CALLS, ids=list(BAD_CELL_CALLS))
def test_cell_inference_path_keeps_nn_errors(case):
    ref = nn.LSTMCell(4, 6)
    ours = lstm_ext.LSTMCell(4, 6)
    ours.load_state_dict(ref.state_dict())
    x, hx = BAD_CELL_CALLS[case]()
    with torch.no_grad():
        raises_like(lambda: ref(x, hx), lambda: ours(x, hx))


# ---- the raw op -----------------------------------------------------------------------------


def _raw_args(gen, layers=2, bidirectional=True, proj=3):
    lstm = lstm_ext.LSTM(5, 6, num_layers=layers, bidirectional=bidirectional, proj_size=proj, dtype=torch.float64)
    x = torch.randn(4, 2, 5, generator=gen, dtype=torch.float64)
    weights = [w.detach() for w in lstm._flat_weights]
    return lstm, x, weights


def test_raw_op_opcheck(gen):
    _, x, weights = _raw_args(gen)
    torch.library.opcheck(
        torch.ops.lstm_ext.lstm_inference, (x, [], weights, True, 2, True, False),
        test_utils=("test_schema", "test_faketensor"),
    )


def test_raw_op_refuses_grad_and_a_wrong_weight_count(gen):
    lstm, x, weights = _raw_args(gen)
    with pytest.raises(RuntimeError, match="lstm_ext::lstm_inference: expected 16 or 20 weights"):
        torch.ops.lstm_ext.lstm_inference(x, [], weights[:-1], True, 2, True, False)
    with pytest.raises(RuntimeError, match="lstm_ext::lstm_inference: inference only"):
        torch.ops.lstm_ext.lstm_inference(x, [], list(lstm._flat_weights), True, 2, True, False)
    with pytest.raises(RuntimeError, match=r"lstm_ext::lstm_inference: layer 0, direction 0: lstm_ext::lstm_layer"):
        torch.ops.lstm_ext.lstm_inference(x[..., :4], [], weights, True, 2, True, False)
