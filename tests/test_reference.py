"""lstm_ext.reference against torch: the four gates, one step, one layer (dense and packed)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_sequence

from lstm_ext import reference
from tolerances import assert_close, assert_tree_close

DTYPE = torch.float64




@pytest.fixture
def g() -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(1234)
    return gen


def rand(*shape, g, scale=1.0, requires_grad=False):
    return (torch.randn(*shape, generator=g, dtype=DTYPE) * scale).requires_grad_(requires_grad)


def randomize(module: nn.Module, g: torch.Generator) -> nn.Module:
    """Weights in [-0.6, 0.6): bigger than torch's default init, so the gates saturate a little."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=DTYPE) * 1.2 - 0.6)
    return module


# ---- the gates, each against its formula written out elementwise ----------------------

def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _elementwise(fn, *tensors):
    flat = [t.flatten().tolist() for t in tensors]
    return torch.tensor([fn(*vals) for vals in zip(*flat)], dtype=DTYPE).reshape(tensors[0].shape)


# Each gate of the lesson, its formula on one element, and the scale of its random arguments
# (wide enough to reach the activations' flat regions; the remember gate has none).
GATE_FORMULAS = {
    "learn": (reference.learn_gate, lambda combine, ignore: math.tanh(combine) * _sigmoid(ignore), 3),
    "forget": (reference.forget_gate, lambda long_term, forget: long_term * _sigmoid(forget), 3),
    "remember": (reference.remember_gate, lambda learned, kept: learned + kept, 1),
    "use": (reference.use_gate, lambda long_term, use: math.tanh(long_term) * _sigmoid(use), 3),
}


@pytest.mark.parametrize("gate", list(GATE_FORMULAS))
def test_gate_formula(gate, g):
    fn, formula, scale = GATE_FORMULAS[gate]
    first, second = rand(3, 4, g=g, scale=scale), rand(3, 4, g=g, scale=scale)
    assert_close(fn(first, second), _elementwise(formula, first, second))


def test_gates_argument_order_matters(g):
    """The two arguments of learn/forget/use are not interchangeable (catches swapped roles)."""
    a, b = rand(3, 4, g=g, scale=3), rand(3, 4, g=g, scale=3)
    for gate in (reference.learn_gate, reference.forget_gate, reference.use_gate):
        assert not torch.allclose(gate(a, b), gate(b, a))


def test_lesson_use_gate_differs_from_torch(g):
    """The lesson's use gate (tanh of the forgotten memory) is not what torch computes."""
    cell = randomize(nn.LSTMCell(3, 4, dtype=DTYPE), g)
    x, h, c = rand(2, 3, g=g), rand(2, 4, g=g), rand(2, 4, g=g)
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, gg, o = gates.chunk(4, dim=1)
    lesson_h = reference.use_gate(reference.forget_gate(c, f), o)
    torch_h, _ = cell(x, (h, c))
    assert not torch.allclose(lesson_h, torch_h)
    new_c = reference.remember_gate(reference.learn_gate(gg, i), reference.forget_gate(c, f))
    assert_close(reference.use_gate(new_c, o), torch_h)


# ---- lstm_cell ---------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [0, 1, 5])
def test_lstm_cell_matches_nn(bias, batch, g):
    cell = randomize(nn.LSTMCell(3, 4, bias=bias, dtype=DTYPE), g)
    x, h, c = rand(batch, 3, g=g), rand(batch, 4, g=g), rand(batch, 4, g=g)
    expected = cell(x, (h, c))
    actual = reference.lstm_cell(x, (h, c), cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    assert_tree_close(actual, expected)


def test_lstm_cell_bias_defaults_to_none(g):
    cell = randomize(nn.LSTMCell(3, 4, bias=False, dtype=DTYPE), g)
    x, h, c = rand(2, 3, g=g), rand(2, 4, g=g), rand(2, 4, g=g)
    assert_tree_close(reference.lstm_cell(x, (h, c), cell.weight_ih, cell.weight_hh), cell(x, (h, c)))


def test_lstm_cell_gradients_match_nn(g):
    cell = randomize(nn.LSTMCell(3, 4, dtype=DTYPE), g)
    x, h, c = (rand(2, n, g=g, requires_grad=True) for n in (3, 4, 4))
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    w = rand(2, 4, g=g), rand(2, 4, g=g)

    def grads(fn):
        hy, cy = fn()
        return torch.autograd.grad((hy * w[0]).sum() + (cy * w[1]).sum(), [x, h, c, *params])

    expected = grads(lambda: cell(x, (h, c)))
    actual = grads(lambda: reference.lstm_cell(x, (h, c), *params))
    for a, e in zip(actual, expected):
        assert_close(a, e)


def test_lstm_cell_gradcheck(g):
    cell = randomize(nn.LSTMCell(3, 4, dtype=DTYPE), g)
    params = [p.detach().requires_grad_() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    x, h, c = (rand(2, n, g=g, requires_grad=True) for n in (3, 4, 4))
    assert torch.autograd.gradcheck(lambda x, h, c, *p: reference.lstm_cell(x, (h, c), *p), (x, h, c, *params))


# ---- lstm_layer: one layer-direction of nn.LSTM ------------------------------------------

def layer_weights(lstm: nn.LSTM, layer: int = 0, reverse: bool = False):
    """(w_ih, w_hh, b_ih, b_hh, w_hr) of one layer-direction of an nn.LSTM, None where absent."""
    suffix = f"l{layer}" + ("_reverse" if reverse else "")
    get = lambda name: getattr(lstm, f"{name}_{suffix}", None)  # noqa: E731
    return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")


def direction_slices(lstm: nn.LSTM, output, h_n, c_n, reverse: bool, layer: int = 0):
    """nn.LSTM's outputs for one direction of one layer."""
    width = lstm.proj_size or lstm.hidden_size
    index = layer * (2 if lstm.bidirectional else 1) + int(reverse)
    part = output[..., width:] if reverse else output[..., :width]
    return part, h_n[index], c_n[index]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (6, 3), (5, 0)], ids=lambda s: f"T{s[0]}B{s[1]}")
def test_lstm_layer_dense_matches_nn(reverse, proj_size, bias, shape, g):
    steps, batch = shape
    lstm = randomize(nn.LSTM(3, 4, bias=bias, proj_size=proj_size, bidirectional=True, dtype=DTYPE), g)
    width = proj_size or 4
    x = rand(steps, batch, 3, g=g)
    h0, c0 = rand(2, batch, width, g=g), rand(2, batch, 4, g=g)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    expected = direction_slices(lstm, output, h_n, c_n, reverse)
    d = int(reverse)
    actual = reference.lstm_layer(x, h0[d], c0[d], *layer_weights(lstm, reverse=reverse), None, reverse)
    assert actual[0].shape == (steps, batch, width)
    assert_tree_close(actual, expected)


def test_lstm_layer_dense_no_steps_returns_initial_state(g):
    lstm = randomize(nn.LSTM(3, 4, dtype=DTYPE), g)
    h0, c0 = rand(2, 4, g=g), rand(2, 4, g=g)
    output, h_n, c_n = reference.lstm_layer(rand(0, 2, 3, g=g), h0, c0, *layer_weights(lstm), None, False)
    assert output.shape == (0, 2, 4)
    assert_close(h_n, h0)
    assert_close(c_n, c0)


PACKED_LENGTHS = [(5,), (4, 4, 4), (6, 3, 3, 1), (2, 1, 1, 1, 1), (7, 6, 2)]


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("proj_size", [0, 3])
@pytest.mark.parametrize("lengths", PACKED_LENGTHS, ids=lambda lens: "-".join(map(str, lens)))
def test_lstm_layer_packed_matches_nn(reverse, proj_size, lengths, g):
    lstm = randomize(nn.LSTM(3, 5, proj_size=proj_size, bidirectional=True, dtype=DTYPE), g)
    width = proj_size or 5
    packed = pack_sequence([rand(n, 3, g=g) for n in lengths])  # sorted: no permutation involved
    batch = len(lengths)
    h0, c0 = rand(2, batch, width, g=g), rand(2, batch, 5, g=g)
    output, (h_n, c_n) = lstm(packed, (h0, c0))
    expected = direction_slices(lstm, output.data, h_n, c_n, reverse)
    d = int(reverse)
    actual = reference.lstm_layer(
        packed.data, h0[d], c0[d], *layer_weights(lstm, reverse=reverse), packed.batch_sizes, reverse
    )
    assert actual[0].shape == (sum(lengths), width)
    assert_tree_close(actual, expected)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lstm_layer_packed_equals_per_sequence_dense(reverse, g):
    """Each packed sequence gives what it gives alone, from its own h0 row (the padding is never seen)."""
    lstm = randomize(nn.LSTM(3, 4, dtype=DTYPE), g)
    weights = layer_weights(lstm)
    lengths = [5, 3, 3, 1]
    seqs = [rand(n, 3, g=g) for n in lengths]
    packed = pack_sequence(seqs)
    h0, c0 = rand(len(lengths), 4, g=g), rand(len(lengths), 4, g=g)
    output, h_n, c_n = reference.lstm_layer(packed.data, h0, c0, *weights, packed.batch_sizes, reverse)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), packed.batch_sizes.cumsum(0)[:-1]])
    for row, seq in enumerate(seqs):
        alone, h_alone, c_alone = reference.lstm_layer(
            seq.unsqueeze(1), h0[row : row + 1], c0[row : row + 1], *weights, None, reverse
        )
        rows_of_seq = offsets[: len(seq)] + row
        assert_close(output[rows_of_seq], alone[:, 0])
        assert_close(h_n[row], h_alone[0])
        assert_close(c_n[row], c_alone[0])


@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_lstm_layer_gradients_match_nn(packed, reverse, g):
    lstm = randomize(nn.LSTM(3, 4, proj_size=2, bidirectional=True, dtype=DTYPE), g)
    lengths = [4, 3, 1]
    if packed:
        seq = pack_sequence([rand(n, 3, g=g) for n in lengths])
        x, batch_sizes = seq.data.requires_grad_(), seq.batch_sizes
    else:
        x, batch_sizes = rand(4, 3, 3, g=g, requires_grad=True), None
    h0, c0 = rand(2, 3, 2, g=g, requires_grad=True), rand(2, 3, 4, g=g, requires_grad=True)
    d = int(reverse)
    weights = layer_weights(lstm, reverse=reverse)

    def loss(output, h_n, c_n):
        w = torch.linspace(-1, 1, output.numel(), dtype=DTYPE).reshape(output.shape)
        return (output * w).sum() + (h_n * 0.5).sum() - c_n.sum()

    def nn_loss():
        arg = torch.nn.utils.rnn.PackedSequence(x, batch_sizes) if packed else x
        output, (h_n, c_n) = lstm(arg, (h0, c0))
        return loss(*direction_slices(lstm, output.data if packed else output, h_n, c_n, reverse))

    inputs = [x, h0, c0, *weights]
    expected = torch.autograd.grad(nn_loss(), inputs)
    actual = torch.autograd.grad(loss(*reference.lstm_layer(x, h0[d], c0[d], *weights, batch_sizes, reverse)), inputs)
    for a, e in zip(actual, expected):
        assert_close(a, e)


def test_lstm_layer_gradcheck_packed_reverse_proj(g):
    lstm = randomize(nn.LSTM(2, 3, proj_size=2, dtype=DTYPE), g)
    seq = pack_sequence([rand(n, 2, g=g) for n in (3, 2, 2)])
    x = seq.data.requires_grad_()
    h0, c0 = rand(3, 2, g=g, requires_grad=True), rand(3, 3, g=g, requires_grad=True)
    weights = [w.detach().requires_grad_() for w in layer_weights(lstm)]

    def fn(x, h0, c0, *w):
        return reference.lstm_layer(x, h0, c0, *w, seq.batch_sizes, True)

    assert torch.autograd.gradcheck(fn, (x, h0, c0, *weights))
