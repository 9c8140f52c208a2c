"""lstm_ext.convert: swaps nn.LSTM / nn.LSTMCell for ours, keeping the very same Parameters."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_sequence

import lstm_ext
from lstm_ext import _library
from tolerances import assert_close, assert_tree_close

DTYPE = torch.float64


FUSED = _library.LOAD_ERROR is None
BACKENDS = [
    "reference",
    "auto",
    pytest.param("fused", marks=pytest.mark.skipif(not FUSED, reason=f"kernels not loaded: {_library.LOAD_ERROR!r}")),
]

LSTM_CONFIGS = {
    "plain": dict(),
    "deep-bi": dict(num_layers=2, bidirectional=True),
    "proj-nobias": dict(proj_size=2, bias=False),
    "batch_first-dropout": dict(num_layers=3, batch_first=True, dropout=0.25),
}


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4, dtype=DTYPE)
        self.rnn = nn.LSTM(4, 5, num_layers=2, bidirectional=True, dtype=DTYPE)
        self.cells = nn.ModuleList([nn.LSTMCell(10, 6, dtype=DTYPE), nn.LSTMCell(6, 6, bias=False, dtype=DTYPE)])

    def forward(self, x):
        out, (h, c) = self.rnn(self.embed(x))
        hx = self.cells[0](out[-2])  # from zeros
        hx = self.cells[0](out[-1], hx)
        hx = self.cells[1](hx[0], hx)
        return out.sum() + hx[1].sum() + h.sum() + c.sum(), hx[0]


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.heads = nn.ModuleDict({"a": nn.Sequential(nn.Linear(6, 2, dtype=DTYPE))})

    def forward(self, x):
        total, h = self.encoder(x)
        return total + self.heads["a"](h).sum()


def _lstm_types(module):
    return {name: type(m) for name, m in module.named_modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))}


@pytest.mark.parametrize("config", list(LSTM_CONFIGS))
def test_convert_lstm_itself_keeps_parameters_and_hyperparameters(config):
    old = nn.LSTM(3, 5, dtype=DTYPE, **LSTM_CONFIGS[config])
    old_params = dict(old.named_parameters())
    new = lstm_ext.convert(old)
    assert type(new) is lstm_ext.LSTM
    assert type(old) is nn.LSTM  # the argument itself is not turned into something else
    assert list(dict(new.named_parameters())) == list(old_params)
    for name, param in new.named_parameters():
        assert param is old_params[name], name
    # RNNBase's caches point at the same Parameters
    assert all(a is b for a, b in zip(new._flat_weights, old._flat_weights))
    assert len(new._flat_weights) == len(old._flat_weights)
    assert all(ref() is w for ref, w in zip(new._flat_weight_refs, new._flat_weights))
    hyper = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size")
    for attr in hyper:
        assert getattr(new, attr) == getattr(old, attr), attr
    assert repr(new) == repr(old)
    assert new.backend == "auto"
    assert not any(p.is_meta for p in new.parameters())


def test_convert_cell_itself_keeps_parameters():
    old = nn.LSTMCell(3, 5, bias=False, dtype=DTYPE)
    new = lstm_ext.convert(old, backend="reference")
    assert type(new) is lstm_ext.LSTMCell
    assert new.weight_ih is old.weight_ih and new.weight_hh is old.weight_hh
    assert new.bias_ih is None and new.bias_hh is None
    assert list(new.state_dict()) == list(old.state_dict())
    assert (new.input_size, new.hidden_size, new.bias) == (3, 5, False)
    assert new.backend == "reference"
    assert repr(new) == "LSTMCell(3, 5, bias=False, backend='reference')"


@pytest.mark.parametrize("backend", BACKENDS)
def test_convert_nested_model_in_place(backend):
    torch.manual_seed(0)
    model = Model()
    before = {name: p for name, p in model.named_parameters()}
    keys = list(model.state_dict())
    returned = lstm_ext.convert(model, backend=backend)
    assert returned is model
    assert _lstm_types(model) == {
        "encoder.rnn": lstm_ext.LSTM,
        "encoder.cells.0": lstm_ext.LSTMCell,
        "encoder.cells.1": lstm_ext.LSTMCell,
    }
    assert all(m.backend == backend for m in model.modules() if isinstance(m, (lstm_ext.LSTM, lstm_ext.LSTMCell)))
    after = dict(model.named_parameters())
    assert list(after) == list(before)
    assert all(after[name] is before[name] for name in before)
    assert list(model.state_dict()) == keys
    assert isinstance(model.heads["a"][0], nn.Linear)  # the rest is left alone


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [False, True])
def test_outputs_equal_before_and_after(backend, training):
    torch.manual_seed(0)
    model = Model().train(training)
    model.encoder.rnn.dropout = 0.0  # dropout masks would differ between the two runs
    x = torch.randn(6, 2, 3, dtype=DTYPE)
    expected = model(x)
    lstm_ext.convert(model, backend=backend)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert_close(model(x), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", list(LSTM_CONFIGS))
def test_converted_lstm_matches_original(backend, config):
    torch.manual_seed(0)
    old = nn.LSTM(3, 5, dtype=DTYPE, **LSTM_CONFIGS[config]).eval()
    new = lstm_ext.convert(copy.deepcopy(old), backend=backend)
    batch_first = old.batch_first
    x = torch.randn(2, 4, 3, dtype=DTYPE) if batch_first else torch.randn(4, 2, 3, dtype=DTYPE)
    assert_tree_close(new(x), old(x))
    packed = pack_sequence([torch.randn(n, 3, dtype=DTYPE) for n in (2, 4, 1)], enforce_sorted=False)
    out_new, hidden_new = new(packed)
    out_old, hidden_old = old(packed)
    assert_close(out_new.data, out_old.data)
    assert_tree_close(hidden_new, hidden_old)


@pytest.mark.parametrize("backend", BACKENDS)
def test_optimizer_keeps_working(backend):
    """An optimizer made before the conversion still trains the converted model, as before."""
    torch.manual_seed(0)
    model = Model()
    twin = copy.deepcopy(model)  # stays nn.LSTM: what training should have done
    x = torch.randn(5, 3, 3, dtype=DTYPE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    lstm_ext.convert(model, backend=backend)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for _ in range(2):
        for m, opt in ((model, optimizer), (twin, twin_optimizer)):
            opt.zero_grad()
            m(x).backward()
            opt.step()
    after = dict(model.named_parameters())
    for name, param in twin.named_parameters():
        assert not torch.equal(after[name].detach(), before[name]), f"{name} was not updated"
        assert_close(after[name].detach(), param.detach())
    assert all(p.grad is not None for p in optimizer.param_groups[0]["params"])


def test_shared_module_is_converted_once():
    shared = nn.LSTM(3, 4, dtype=DTYPE)
    model = nn.Sequential(shared, nn.Identity(), shared)
    model.extra = nn.ModuleList([shared])
    lstm_ext.convert(model)
    assert type(model[0]) is lstm_ext.LSTM
    assert model[0] is model[2] is model.extra[0]
    assert len(list(model.parameters())) == len(list(shared.parameters()))


def test_only_exact_types_are_converted():
    class MyLSTM(nn.LSTM):
        pass

    ours = lstm_ext.LSTM(3, 4)
    model = nn.Sequential(MyLSTM(3, 4), ours, nn.GRU(3, 4), nn.RNN(3, 4), nn.GRUCell(3, 4))
    lstm_ext.convert(model)
    assert type(model[0]) is MyLSTM
    assert model[1] is ours
    # nn.GRU / nn.GRUCell are converted too (lstm_ext.GRU / GRUCell); nn.RNN is not
    assert [type(m) for m in model[2:]] == [lstm_ext.GRU, nn.RNN, lstm_ext.GRUCell]
    assert lstm_ext.convert(ours) is ours
    assert isinstance(lstm_ext.convert(nn.Linear(2, 2)), nn.Linear)


def test_convert_twice_is_a_no_op():
    model = nn.Sequential(nn.LSTM(3, 4))
    lstm_ext.convert(model)
    first = model[0]
    lstm_ext.convert(model)
    assert model[0] is first


def test_hooks_buffers_and_attributes_carry_over():
    old = nn.LSTM(3, 4, dtype=DTYPE)
    calls = []
    handle = old.register_forward_hook(lambda m, args, out: calls.append(type(m).__name__))
    old.register_buffer("step", torch.tensor(7))
    old.note = "kept"
    model = nn.Sequential(old)
    lstm_ext.convert(model)
    new = model[0]
    new(torch.randn(2, 1, 3, dtype=DTYPE))
    assert calls == ["LSTM"] and type(new) is lstm_ext.LSTM
    assert new.step.item() == 7 and new.note == "kept"
    assert "step" in new.state_dict()
    handle.remove()  # the handle made on the old module still reaches the new one's hooks
    new(torch.randn(2, 1, 3, dtype=DTYPE))
    assert calls == ["LSTM"]


def test_state_dict_round_trip_and_pickle():
    torch.manual_seed(0)
    old = nn.LSTM(3, 4, num_layers=2, proj_size=2, dtype=DTYPE)
    state = {k: v.clone() for k, v in old.state_dict().items()}
    new = lstm_ext.convert(old, backend="reference")
    assert list(new.state_dict()) == list(state)
    for key, value in new.state_dict().items():
        assert torch.equal(value, state[key])
    fresh = nn.LSTM(3, 4, num_layers=2, proj_size=2, dtype=DTYPE)
    fresh.load_state_dict(new.state_dict())
    buffer = io.BytesIO()
    torch.save(new, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is lstm_ext.LSTM and loaded.backend == "reference"
    x = torch.randn(3, 2, 3, dtype=DTYPE)
    assert_tree_close(loaded(x), fresh(x))
    assert_tree_close(copy.deepcopy(new)(x), fresh(x))


def test_convert_after_to_and_back():
    old = nn.LSTM(3, 4)
    new = lstm_ext.convert(old).double()
    assert all(p.dtype == DTYPE for p in new._flat_weights)
    assert all(a is b for a, b in zip(new._flat_weights, new.parameters()))
    x = torch.randn(3, 2, 3, dtype=DTYPE)
    assert_tree_close(new(x), old.double()(x))


def test_unknown_backend():
    model = nn.Sequential(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="'gpu'"):
        lstm_ext.convert(model, backend="gpu")
    assert type(model[0]) is nn.LSTM


@pytest.mark.parametrize("backend", BACKENDS)
def test_converted_model_compiles_fullgraph(backend):
    """torch.compile(fullgraph=True) breaks on nn.LSTM; the converted model must compile whole."""
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(5, 2, 3, dtype=DTYPE)
    with pytest.raises(Exception):  # the premise: nn.LSTM does not compile with fullgraph
        torch._dynamo.reset()
        torch.compile(copy.deepcopy(model), fullgraph=True, backend="eager")(x)
    expected = model(x)
    lstm_ext.convert(model, backend=backend)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    assert_close(compiled(x), expected)
    unbatched = torch.compile(model.encoder.rnn, fullgraph=True, backend="eager")
    x1 = torch.randn(5, 4, dtype=DTYPE)
    hx = (torch.randn(4, 5, dtype=DTYPE), torch.randn(4, 5, dtype=DTYPE))
    assert_tree_close(unbatched(x1, hx), model.encoder.rnn(x1, hx))
