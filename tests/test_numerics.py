"""NaN, Inf and huge inputs give what nn.LSTM gives: NaN where it has NaN, saturation where it saturates."""

import pytest
import torch

import lstm_ext
from tolerances import assert_close

BACKENDS = ["fused", "reference"] if lstm_ext._ops.LOAD_ERROR is None else ["reference"]


def _pair(dtype, backend, seed=0):
    torch.manual_seed(seed)
    theirs = torch.nn.LSTM(4, 6, dtype=dtype)
    ours = lstm_ext.LSTM(4, 6, dtype=dtype, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def _poisoned_input(kind, dtype):
    x = torch.randn(5, 3, 4, dtype=dtype)
    if kind == "nan":
        x[2, 1, 0] = float("nan")
    elif kind == "inf":
        x[1, 0, 2] = float("inf")
        x[3, 2, 1] = float("-inf")
    elif kind == "huge":
        x[:, 0] = 1e4
        x[:, 2] = -1e4
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["nan", "inf", "huge"])
def test_special_values_match_nn_lstm(kind, dtype, backend):
    theirs, ours = _pair(dtype, backend)
    x = _poisoned_input(kind, dtype)
    x_theirs, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_t, (h_t, c_t) = theirs(x_theirs)
    out_o, (h_o, c_o) = ours(x_ours)
    for got, want in [(out_o, out_t), (h_o, h_t), (c_o, c_t)]:
        assert torch.equal(got.isnan(), want.isnan())
        assert_close(got, want, equal_nan=True)
    if kind == "nan":
        assert out_o.isnan().any()
    if kind == "huge":
        assert not out_o.isnan().any()  # saturates, like nn.LSTM
    (out_t.sum() + c_t.sum()).backward()
    (out_o.sum() + c_o.sum()).backward()
    assert torch.equal(x_ours.grad.isnan(), x_theirs.grad.isnan())
    assert_close(x_ours.grad, x_theirs.grad, equal_nan=True)
    for (name, p_t), p_o in zip(theirs.named_parameters(), ours.parameters()):
        assert torch.equal(p_o.grad.isnan(), p_t.grad.isnan()), name
        assert_close(p_o.grad, p_t.grad, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_stays_in_its_own_sequence(backend):
    """A NaN in one sequence of the batch never reaches another sequence's output."""
    _, ours = _pair(torch.float32, backend)
    x = _poisoned_input("nan", torch.float32)
    out, (h, c) = ours(x)
    assert out[2:, 1].isnan().all() and not out[:2, 1].isnan().any()
    assert not out[:, [0, 2]].isnan().any()
