"""torch.compile on models holding lstm_ext.LSTM / lstm_ext.LSTMCell.

- fullgraph=True compiles with no graph break (fullgraph raises on any break), and
  torch._dynamo.explain reports one graph and zero breaks;
- compiled forward and backward match eager;
- nn.LSTM, by contrast, cannot be captured (dynamo refuses RNN modules), so the check means something.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch._dynamo
import torch.nn as nn

import lstm_ext
from conftest import BACKENDS, requires_fused
from tolerances import assert_close

F64 = torch.float64


@pytest.fixture(autouse=True)
def _reset_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class SeqModel(nn.Module):
    def __init__(self, lstm_cls, dtype, **lstm_kwargs):
        super().__init__()
        self.inp = nn.Linear(5, 6, dtype=dtype)
        self.lstm = lstm_cls(6, 7, num_layers=2, bidirectional=True, proj_size=4, dtype=dtype, **lstm_kwargs)
        self.out = nn.Linear(8, 3, dtype=dtype)

    def forward(self, x, h0, c0):
        y, (h, c) = self.lstm(torch.tanh(self.inp(x)), (h0, c0))
        return self.out(y), h, c


class CellModel(nn.Module):
    def __init__(self, dtype, **cell_kwargs):
        super().__init__()
        self.cell = lstm_ext.LSTMCell(5, 6, dtype=dtype, **cell_kwargs)
        self.out = nn.Linear(6, 2, dtype=dtype)

    def forward(self, x):  # x [T, B, 5]
        h = x.new_zeros(x.shape[1], 6)
        c = x.new_zeros(x.shape[1], 6)
        outs = []
        for t in range(x.shape[0]):
            h, c = self.cell(x[t], (h, c))
            outs.append(self.out(h))
        return torch.stack(outs), c


def _seq_inputs(dtype, T=5, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: torch.randn(*s, generator=g, dtype=F64).to(dtype).requires_grad_()  # noqa: E731
    return make(T, B, 5), make(4, B, 4), make(4, B, 7)


def _flat(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    return [t for item in obj for t in _flat(item)]


def _forward_backward(model, inputs):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    model.zero_grad(set_to_none=True)
    outs = _flat(model(*inputs))
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=F64).to(o.dtype)).sum() for o in outs)
    loss.backward()
    grads = [t.grad for t in inputs] + [p.grad for p in model.parameters()]
    return [o.detach() for o in outs], grads


def _assert_matches_eager(model, compiled, inputs):
    expected, expected_grads = _forward_backward(model, inputs)
    actual, actual_grads = _forward_backward(compiled, inputs)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, msg=lambda m, i=i: f"output {i}: {m}")
    assert len(actual_grads) == len(expected_grads)
    for i, (a, e) in enumerate(zip(actual_grads, expected_grads)):
        assert a is not None and e is not None, f"grad {i} missing"
        assert_close(a, e, msg=lambda m, i=i: f"grad {i}: {m}")


def _assert_one_graph(fn, *inputs):
    explanation = torch._dynamo.explain(fn)(*inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1, str(explanation)
    return explanation


@pytest.mark.parametrize("compile_backend,dtype", [("eager", torch.float32), ("aot_eager", F64)],
                         ids=["eager-float32", "aot_eager-float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_fullgraph_matches_eager(backend, compile_backend, dtype):
    torch.manual_seed(0)
    model = SeqModel(lstm_ext.LSTM, dtype, backend=backend)
    inputs = _seq_inputs(dtype)
    compiled = torch.compile(model, fullgraph=True, backend=compile_backend)
    _assert_matches_eager(model, compiled, inputs)
    # a second call with other values reuses the graph and is still right
    _assert_matches_eager(model, compiled, _seq_inputs(dtype, seed=3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_no_graph_break(backend):
    torch.manual_seed(0)
    model = SeqModel(lstm_ext.LSTM, torch.float32, backend=backend)
    explanation = _assert_one_graph(model, *_seq_inputs(torch.float32))
    if backend == "fused":  # the fused op is in the graph as one node per layer and direction
        ops = [str(op) for graph_ops in explanation.ops_per_graph for op in graph_ops]
        assert sum("lstm_ext" in op and "lstm_layer" in op for op in ops) == 4, ops


def test_nn_lstm_does_graph_break():
    """The contrast: dynamo will not capture torch.nn.LSTM, so fullgraph=True raises."""
    torch.manual_seed(0)
    model = SeqModel(nn.LSTM, torch.float32)
    inputs = _seq_inputs(torch.float32)
    explanation = torch._dynamo.explain(model)(*inputs)
    assert not (explanation.graph_count == 1 and explanation.graph_break_count == 0), str(explanation)
    torch._dynamo.reset()
    with pytest.raises(Exception, match="(?i)rnn|lstm"):
        torch.compile(model, fullgraph=True, backend="eager")(*inputs)


@pytest.mark.parametrize("compile_backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_fullgraph_matches_eager(backend, compile_backend):
    torch.manual_seed(0)
    model = CellModel(F64, backend=backend)
    x = torch.randn(4, 3, 5, dtype=F64)
    _assert_one_graph(model, x)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=compile_backend)
    _assert_matches_eager(model, compiled, [x])


@requires_fused()
def test_lstm_dynamic_shapes_fused():
    """dynamic=True: one graph serves several sequence lengths and batch sizes (fake kernel shapes)."""
    torch.manual_seed(0)
    model = SeqModel(lstm_ext.LSTM, F64, backend="fused")
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=True)
    for T, B in [(5, 3), (7, 2), (2, 4)]:
        _assert_matches_eager(model, compiled, _seq_inputs(F64, T=T, B=B, seed=T))


@requires_fused()
def test_lstm_batch_first_unbatched_fused_compile():
    torch.manual_seed(0)
    lstm = lstm_ext.LSTM(5, 6, batch_first=True, backend="fused")
    compiled = torch.compile(lstm, fullgraph=True, backend="aot_eager")
    for x in (torch.randn(3, 4, 5), torch.randn(4, 5)):
        _assert_matches_eager(lstm, compiled, [x])


@requires_fused()
def test_lstm_inductor():
    """The default (inductor) backend, once, on the fused path."""
    torch.manual_seed(0)
    model = SeqModel(lstm_ext.LSTM, torch.float32, backend="fused")
    start = time.perf_counter()
    compiled = torch.compile(model, fullgraph=True)
    _assert_matches_eager(model, compiled, _seq_inputs(torch.float32))
    assert time.perf_counter() - start < 120, "inductor compile took unreasonably long"
