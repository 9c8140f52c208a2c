"""lstm_ext.GRU / GRUCell as modules: nn's contract (parameters, init, state_dict, repr), nn's
errors (type and words), torch.compile(fullgraph=True), convert(), copy / save, double backward."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import BACKENDS, copy_weights, make_pair, requires_fused
from module_parity import rnd
from module_plumbing import assert_convert_in_place, assert_copy_save_flatten_setattr, assert_same_contract, call_raises_like_nn, raises_like
from tolerances import assert_close, tol

F64 = torch.float64
I, H, T, B = 4, 5, 6, 3

CONFIGS = {
    "default": dict(),
    "L3-bi-nobias-bf": dict(num_layers=3, bidirectional=True, bias=False, batch_first=True),
    "L2-dropout": dict(num_layers=2, dropout=0.25),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_gru_module_contract(backend, config):
    assert_same_contract(nn.GRU, lstm_ext.GRU, backend, ("mode", "input_size", "hidden_size", "num_layers", "bias",
                                                         "batch_first", "dropout", "bidirectional"),
                         input_size=I, hidden_size=H, **CONFIGS[config])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_cell_module_contract(backend, bias):
    assert_same_contract(nn.GRUCell, lstm_ext.GRUCell, backend, ("input_size", "hidden_size", "bias"),
                         input_size=I, hidden_size=H, bias=bias)


def test_gru_factory_kwargs_and_positional_arguments():
    m = lstm_ext.GRU(I, H, 2, True, True, 0.0, True, device="cpu", dtype=F64)  # positional, like nn.GRU
    assert (m.num_layers, m.bias, m.batch_first, m.bidirectional) == (2, True, True, True)
    assert all(p.dtype == F64 and p.device.type == "cpu" for p in m.parameters())


@pytest.mark.parametrize("cls", [lstm_ext.GRU, lstm_ext.GRUCell])
def test_invalid_backend_raises(cls):
    with pytest.raises(ValueError, match="backend must be one of"):
        cls(I, H, backend="cuda")


# ---- errors: nn.GRU's exception type and words ------------------------------------------------


def _bad_gru_constructions():
    return {
        "proj_size_kw": dict(kwargs=dict(input_size=I, hidden_size=H, proj_size=2)),
        "dropout_out_of_range": dict(kwargs=dict(input_size=I, hidden_size=H, dropout=1.5)),
        "zero_hidden": dict(kwargs=dict(input_size=I, hidden_size=0)),
        "zero_layers": dict(kwargs=dict(input_size=I, hidden_size=H, num_layers=0)),
        "float_hidden": dict(kwargs=dict(input_size=I, hidden_size=2.5)),
    }


@pytest.mark.parametrize("case", list(_bad_gru_constructions()))
def test_gru_bad_construction_raises_like_nn(case):
    spec = _bad_gru_constructions()[case]
    args, kwargs = spec.get("args", ()), spec.get("kwargs", {})
    raises_like(lambda: nn.GRU(*args, **kwargs), lambda: lstm_ext.GRU(*args, **kwargs))


def _bad_gru_inputs():
    x = torch.randn(T, B, I)
    packed = pack_padded_sequence(torch.randn(T, B, I), torch.tensor([T, 3, 1]))
    return {
        "wrong_input_size": (torch.randn(T, B, I + 1),),
        "4d_input": (torch.randn(1, T, B, I),),
        "1d_input": (torch.randn(I),),
        "h0_wrong_batch": (x, torch.randn(1, B + 1, H)),
        "h0_wrong_hidden": (x, torch.randn(1, B, H + 1)),
        "h0_wrong_layers": (x, torch.randn(2, B, H)),
        "batched_2d_hx": (x, torch.randn(B, H)),
        "unbatched_3d_hx": (torch.randn(T, I), torch.randn(1, B, H)),
        "dtype_mismatch": (x.double(),),
        "empty_sequence": (torch.randn(0, B, I),),
        "packed_wrong_hidden": (packed, torch.randn(1, B, H + 1)),
        "packed_wrong_input_size": (pack_padded_sequence(torch.randn(T, B, I + 1), torch.tensor([T, 3, 1])),),
    }


def _bad_cell_inputs():
    return {
        "wrong_input_size": (torch.randn(B, I + 1),),
        "3d_input": (torch.randn(1, B, I),),
        "3d_hx": (torch.randn(B, I), torch.randn(1, B, H)),
        "hx_wrong_batch": (torch.randn(B, I), torch.randn(B + 1, H)),
        "hx_wrong_hidden": (torch.randn(B, I), torch.randn(B, H + 1)),
        "unbatched_input_batched_hx": (torch.randn(I), torch.randn(B, H)),
        "input_dtype": (torch.randn(B, I, dtype=F64), torch.randn(B, H)),
    }


BAD_INPUTS = {**{("GRU", k): v for k, v in _bad_gru_inputs().items()},
              **{("GRUCell", k): v for k, v in _bad_cell_inputs().items()}}


@pytest.mark.parametrize("kind,case", list(BAD_INPUTS), ids=[f"{k}-{c}" for k, c in BAD_INPUTS])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_raise_like_nn(backend, kind, case):
    call_raises_like_nn(getattr(nn, kind)(I, H), getattr(lstm_ext, kind), backend, BAD_INPUTS[kind, case])


# ---- torch.compile ----------------------------------------------------------------------------


@pytest.fixture
def _reset_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class SeqModel(nn.Module):
    def __init__(self, gru_cls, **kwargs):
        super().__init__()
        self.inp = nn.Linear(5, 6, dtype=F64)
        self.gru = gru_cls(6, 7, num_layers=2, bidirectional=True, dtype=F64, **kwargs)
        self.cell = (lstm_ext.GRUCell if gru_cls is lstm_ext.GRU else nn.GRUCell)(14, 7, dtype=F64, **kwargs)

    def forward(self, x, h0):
        y, h = self.gru(torch.tanh(self.inp(x)), h0)
        return y, h, self.cell(y[-1])


def _forward_backward(model, x, h0):
    x, h0 = x.detach().clone().requires_grad_(), h0.detach().clone().requires_grad_()
    model.zero_grad(set_to_none=True)
    outs = model(x, h0)
    sum((o * torch.linspace(-1, 1, o.numel(), dtype=F64).view(o.shape)).sum() for o in outs).backward()
    return [o.detach() for o in outs] + [x.grad, h0.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("compile_backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_compile_fullgraph_matches_eager(backend, compile_backend, _reset_dynamo):
    torch.manual_seed(0)
    model = SeqModel(lstm_ext.GRU, backend=backend)
    x, h0 = torch.randn(5, 3, 5, dtype=F64), torch.randn(4, 3, 7, dtype=F64)
    explanation = torch._dynamo.explain(model)(x, h0)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1, explanation.break_reasons
    if backend == "fused":  # one fused op per layer and direction, and the cell's
        ops = [str(op) for graph_ops in explanation.ops_per_graph for op in graph_ops]
        assert sum("gru_layer" in op for op in ops) == 4 and sum("gru_cell" in op for op in ops) == 1, ops
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=compile_backend)
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        x, h0 = torch.randn(5, 3, 5, generator=g, dtype=F64), torch.randn(4, 3, 7, generator=g, dtype=F64)
        for a, e in zip(_forward_backward(compiled, x, h0), _forward_backward(model, x, h0)):
            assert_close(a, e)


def test_nn_gru_does_graph_break(_reset_dynamo):
    """The contrast: dynamo will not capture torch.nn.GRU, so fullgraph=True raises."""
    model = SeqModel(nn.GRU)
    with pytest.raises(Exception, match="(?i)rnn|gru"):
        torch.compile(model, fullgraph=True, backend="eager")(
            torch.randn(5, 3, 5, dtype=F64), torch.randn(4, 3, 7, dtype=F64))


@requires_fused()
def test_compile_dynamic_shapes_fused(_reset_dynamo):
    torch.manual_seed(0)
    model = SeqModel(lstm_ext.GRU, backend="fused")
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=True)
    for t, b in [(5, 3), (7, 2), (2, 4)]:
        x, h0 = torch.randn(t, b, 5, dtype=F64), torch.randn(4, b, 7, dtype=F64)
        for a, e in zip(_forward_backward(compiled, x, h0), _forward_backward(model, x, h0)):
            assert_close(a, e)


# ---- convert -----------------------------------------------------------------------------------


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(I, H, num_layers=2, bidirectional=True, dtype=F64)
        self.lstm = nn.LSTM(2 * H, H, dtype=F64)
        self.cells = nn.ModuleList([nn.GRUCell(H, H, dtype=F64), nn.LSTMCell(H, H, dtype=F64)])

    def forward(self, x):
        y, h = self.encoder(x)
        z, _ = self.lstm(y)
        g = self.cells[0](z[-1])
        a, b = self.cells[1](g)
        return y.sum() + h.sum() + (a * b).sum()


def test_convert_gru_in_place_shares_parameters(gen):
    torch.manual_seed(0)
    net = _Net()
    assert_convert_in_place(net, torch.randn(T, B, I, generator=gen, dtype=F64))
    assert type(net.encoder) is lstm_ext.GRU and type(net.cells[0]) is lstm_ext.GRUCell
    assert type(net.lstm) is lstm_ext.LSTM and type(net.cells[1]) is lstm_ext.LSTMCell
    assert (net.encoder.num_layers, net.encoder.bidirectional) == (2, True)


def test_convert_returns_new_module_for_a_bare_gru():
    gru = nn.GRU(I, H, batch_first=True, dropout=0.0).eval()
    new = lstm_ext.convert(gru, backend="reference")
    assert type(new) is lstm_ext.GRU and new.backend == "reference" and not new.training
    assert new.weight_hh_l0 is gru.weight_hh_l0 and type(gru) is nn.GRU
    x = torch.randn(B, T, I)
    assert_close(new(x)[0], gru(x)[0])


# ---- module plumbing; double backward ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_copy_save_flatten_setattr_to(backend, gen):
    ref, ours = make_pair(nn.GRU, lstm_ext.GRU, backend, gen=gen, input_size=I, hidden_size=H, num_layers=2)
    x = torch.randn(T, B, I, generator=gen, dtype=F64)
    assert_copy_save_flatten_setattr(ref, ours, backend, x, gen)
    ref, ours = ref.float(), ours.float()
    assert_close(ours(x.float())[0], ref(x.float())[0])


@pytest.mark.parametrize("kind", ["GRU", "GRUCell"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward(backend, kind, gen):
    """The reference matches nn's second derivatives; the fused kernels refuse clearly."""
    if kind == "GRU":
        ref, ours = make_pair(nn.GRU, lstm_ext.GRU, backend, gen=gen, input_size=3, hidden_size=4, num_layers=2)
        x = rnd(gen, 4, 2, 3)
    else:
        ref, ours = make_pair(nn.GRUCell, lstm_ext.GRUCell, backend, gen=gen, input_size=3, hidden_size=4)
        x = rnd(gen, 2, 3)

    def gradgrad(m):
        xx = x.detach().clone().requires_grad_()
        out = m(xx)
        y = out[0] if kind == "GRU" else out
        (g,) = torch.autograd.grad(y.square().sum(), xx, create_graph=True)
        return torch.autograd.grad(g.square().sum(), [xx, *m.parameters()], allow_unused=True)

    expected = gradgrad(ref)
    if backend == "fused":
        with pytest.raises(RuntimeError, match="do not support double backward"):
            gradgrad(ours)
        return
    for i, (a, e) in enumerate(zip(gradgrad(ours), expected)):
        assert (a is None) == (e is None), i
        if e is not None:
            assert_close(a, e, msg=lambda m, i=i: f"grad-of-grad {i}: {m}")


@pytest.mark.parametrize("kind", ["GRU", "GRUCell"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cpu_autocast_gives_nn_dtypes(backend, kind):
    """Under CPU autocast nn.GRU / nn.GRUCell cast only their matrix products (to bfloat16) and
    return float32; ours return float32 too, within bfloat16's tolerance of nn's values."""
    torch.manual_seed(0)
    ref = getattr(nn, kind)(I, H)
    ours = copy_weights(ref, getattr(lstm_ext, kind)(I, H, backend=backend))
    x = torch.randn(T, B, I) if kind == "GRU" else torch.randn(B, I)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, actual = ref(x), ours(x)
    for a, e in zip(actual if kind == "GRU" else [actual], expected if kind == "GRU" else [expected]):
        assert a.dtype == e.dtype
        assert_close(a, e, **tol(torch.bfloat16))
