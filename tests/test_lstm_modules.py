"""lstm_ext.LSTM as a module: its contract against nn.LSTM (names, state_dict, init, repr),
factory kwargs, bad inputs raising like nn, convert(), copy / save, double backward and
activation checkpointing."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import lstm_ext
from conftest import BACKENDS, make_cell_pair, make_lstm_pair
from module_parity import F64, B, H, I, P, T, check_lstm, lstm_dense_build, lstm_state_leaves, rnd
from module_plumbing import assert_convert_in_place, assert_copy_save_flatten_setattr, assert_same_contract, call_raises_like_nn
from tolerances import assert_close


# ---------------------------------------------------------------------------------------------
# LSTM: module contract (names, state_dict, init, repr, errors, conversions)
# ---------------------------------------------------------------------------------------------

CONFIGS = {
    "default": dict(),
    "L3-bi-proj-nobias-bf": dict(num_layers=3, bidirectional=True, proj_size=P, bias=False, batch_first=True),
    "L2-dropout": dict(num_layers=2, dropout=0.25),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_lstm_module_contract(backend, config):
    assert_same_contract(nn.LSTM, lstm_ext.LSTM, backend, ("input_size", "hidden_size", "num_layers", "bias",
                                                           "batch_first", "dropout", "bidirectional", "proj_size"),
                         input_size=I, hidden_size=H, **CONFIGS[config])


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_lstm_factory_kwargs(backend):
    m = lstm_ext.LSTM(I, H, 2, dtype=F64, device="cpu", backend=backend)
    assert all(p.dtype == F64 and p.device.type == "cpu" for p in m.parameters())
    m = lstm_ext.LSTM(I, H, 2, True, True, 0.0, True, 2, backend=backend)  # positional, like nn.LSTM
    assert (m.bias, m.batch_first, m.bidirectional, m.proj_size) == (True, True, True, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_sees_parameter_updates(backend, gen):
    """No stale cached weights: in-place edits, .to(dtype) and load_state_dict all take effect."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, proj_size=P)
    ref, ours = make_lstm_pair(backend, dtype=torch.float32, gen=gen, **kwargs)
    x = torch.randn(T, B, I, generator=gen)
    ours(x)  # warm any cache
    with torch.no_grad():
        for m in (ref, ours):
            m.weight_hh_l1.mul_(-1.5)
            m.weight_hr_l0.add_(0.25)
    assert_close(ours(x)[0], ref(x)[0])
    ref, ours = ref.double(), ours.double()
    assert_close(ours(x.double())[0], ref(x.double())[0])
    other = nn.LSTM(**kwargs, dtype=F64)
    ref.load_state_dict(other.state_dict())
    ours.load_state_dict(other.state_dict())
    assert_close(ours(x.double())[0], ref(x.double())[0])


def _bad_lstm_inputs():
    x = torch.randn(T, B, I)
    return {
        "wrong_input_size": (torch.randn(T, B, I + 1),),
        "4d_input": (torch.randn(1, T, B, I),),
        "1d_input": (torch.randn(I),),
        "h0_wrong_batch": (x, (torch.randn(1, B + 1, H), torch.randn(1, B, H))),
        "c0_wrong_hidden": (x, (torch.randn(1, B, H), torch.randn(1, B, H + 1))),
        "h0_wrong_layers": (x, (torch.randn(2, B, H), torch.randn(2, B, H))),
        "unbatched_3d_hx": (torch.randn(T, I), (torch.randn(1, B, H), torch.randn(1, B, H))),
        "dtype_mismatch": (x.double(),),
    }


@pytest.mark.parametrize("case", list(_bad_lstm_inputs()))
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_bad_inputs_raise_like_nn(backend, case):
    call_raises_like_nn(nn.LSTM(I, H), lstm_ext.LSTM, backend, _bad_lstm_inputs()[case])


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, dtype=F64)
        self.blocks = nn.Sequential(nn.Linear(2 * P, I, dtype=F64), nn.ModuleList([nn.LSTMCell(I, H, dtype=F64)]))

    def forward(self, x):
        y, _ = self.encoder(x)
        z = self.blocks[0](y[-1])
        h, c = self.blocks[1][0](z)
        return y.sum() + (h * c).sum()


def test_convert_in_place_shares_parameters(gen):
    torch.manual_seed(0)
    net = _Net()
    assert_convert_in_place(net, torch.randn(T, B, I, generator=gen, dtype=F64))
    assert type(net.encoder) is lstm_ext.LSTM
    assert type(net.blocks[1][0]) is lstm_ext.LSTMCell
    assert type(net.blocks[0]) is nn.Linear


def test_convert_twice_and_keeps_mode():
    net = nn.Sequential(nn.LSTM(I, H, num_layers=2, dropout=0.5), nn.LSTMCell(I, H)).eval()
    params = list(net.parameters())
    lstm_ext.convert(net)
    lstm_ext.convert(net)
    assert type(net[0]) is lstm_ext.LSTM and type(net[1]) is lstm_ext.LSTMCell
    assert all(p is q for p, q in zip(net.parameters(), params)) and len(list(net.parameters())) == len(params)
    assert not net[0].training and not net[1].training
    assert net[0].dropout == 0.5 and net[0].num_layers == 2


# ---------------------------------------------------------------------------------------------
# module plumbing nn.LSTM users rely on; double backward
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_copy_save_flatten_setattr(backend, gen):
    ref, ours = make_lstm_pair(backend, gen=gen, input_size=I, hidden_size=H, num_layers=2, proj_size=P)
    x = torch.randn(T, B, I, generator=gen, dtype=F64)
    expected = assert_copy_save_flatten_setattr(ref, ours, backend, x, gen)
    assert not torch.allclose(ours(x)[0], expected)


@pytest.mark.parametrize("kind", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward(backend, kind, gen):
    """nn.LSTM / nn.LSTMCell support double backward on CPU. Ours must match it, or (fused) refuse
    with an error that says double backward is unsupported (not an internal mm()/out= error)."""
    if kind == "LSTM":
        ref, ours = make_lstm_pair(backend, gen=gen, input_size=3, hidden_size=4, num_layers=2, proj_size=2)
        x = rnd(gen, 4, 2, 3)
    else:
        ref, ours = make_cell_pair(backend, gen=gen, input_size=3, hidden_size=4)
        x = rnd(gen, 2, 3)

    def gradgrad(m):
        xx = x.detach().clone().requires_grad_()
        out = m(xx)
        y = out[0] if kind == "LSTM" else out[0] * out[1]
        (g,) = torch.autograd.grad(y.square().sum(), xx, create_graph=True)
        return torch.autograd.grad(g.square().sum(), [xx, *m.parameters()], allow_unused=True)

    expected = gradgrad(ref)
    try:
        actual = gradgrad(ours)
    except RuntimeError as error:
        if backend == "reference":
            raise
        assert any(w in str(error).lower() for w in ("double backward", "second order", "second-order",
                                                      "higher order", "higher-order", "create_graph")), (
            f"fused double backward failed with an unclear error: {error}")
        return
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert (a is None) == (e is None), i
        if e is not None:
            assert_close(a, e, msg=lambda m, i=i: f"grad-of-grad {i}: {m}")


@pytest.mark.parametrize("use_reentrant", [True, False], ids=["reentrant", "non_reentrant"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_activation_checkpointing(backend, use_reentrant, gen):
    """torch.utils.checkpoint recomputes the forward inside backward: grads still match nn.LSTM."""
    from torch.utils.checkpoint import checkpoint

    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, proj_size=P)
    leaves = {"x": rnd(gen, T, B, I), **lstm_state_leaves(gen, 2, True, P, B)}

    def prepare(m):
        forward = m.forward

        def flat(inp, h0, c0):
            out, (h, c) = forward(inp, (h0, c0))
            return out, h, c

        def checkpointed(inp, hx):
            out, h, c = checkpoint(flat, inp, *hx, use_reentrant=use_reentrant)
            return out, (h, c)

        m.forward = checkpointed

    res = check_lstm(backend, kwargs, leaves, lstm_dense_build(True), gen=gen, prepare=prepare)
    assert all(res[k] is not None for k in ("grad[x]", "grad[h0]", "grad[c0]", "param_grad[weight_hh_l1]"))
