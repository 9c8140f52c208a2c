"""A short training run of a char-level language model: lstm_ext.LSTM follows nn.LSTM step by step.

Both models start from the same weights (state_dict copy) and see the same batches; the loss at
every step and the final parameters must agree to the float64 tolerance. A second run swaps the
layers in with lstm_ext.convert after the optimizer was built (so it must keep the Parameters).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn as nn

import lstm_ext
from conftest import BACKENDS
from tolerances import assert_close

F64 = torch.float64
STEPS = 30

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Long short-term memory networks learn what to forget, what to remember and what to use. "
    "A cell state carries the long-term memory; the hidden state is the short-term memory. "
    "Gradients flow back through time, one step after another, until the first character."
)
VOCAB = sorted(set(TEXT))
IDS = torch.tensor([VOCAB.index(ch) for ch in TEXT])


class CharLM(nn.Module):
    def __init__(self, lstm_cls=nn.LSTM, **lstm_kwargs):
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), 12, dtype=F64)
        self.lstm = lstm_cls(12, 16, num_layers=2, batch_first=True, dtype=F64, **lstm_kwargs)
        self.head = nn.Linear(16, len(VOCAB), dtype=F64)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.head(out)


class CellLM(nn.Module):
    """The same task with an LSTMCell unrolled by hand (batch-first ids)."""

    def __init__(self, cell_cls=nn.LSTMCell, **cell_kwargs):
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), 12, dtype=F64)
        self.cell = cell_cls(12, 16, dtype=F64, **cell_kwargs)
        self.head = nn.Linear(16, len(VOCAB), dtype=F64)

    def forward(self, ids):
        x = self.embed(ids)
        h = c = x.new_zeros(x.shape[0], 16)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return self.head(torch.stack(outs, 1))


def batches(steps, batch=4, seq=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(IDS) - seq - 1, (batch,), generator=g)
        window = torch.stack([IDS[s:s + seq + 1] for s in starts.tolist()])
        yield window[:, :-1], window[:, 1:]


def train(model, optimizer, steps=STEPS):
    losses = []
    for inputs, targets in batches(steps):
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)


OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params, lr=1e-2),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.5, momentum=0.9),
}


@functools.lru_cache(maxsize=None)
def nn_run(model_cls, optimizer, steps):
    """The torch.nn run every backend is compared with (computed once per configuration)."""
    torch.manual_seed(0)
    ref = model_cls()
    initial = copy.deepcopy(ref.state_dict())
    losses = train(ref, OPTIMIZERS[optimizer](ref.parameters()), steps)
    return initial, losses, {n: p.detach().clone() for n, p in ref.named_parameters()}


def _assert_same_run(actual_losses, expected_losses, actual_model, expected_params):
    assert_close(actual_losses, expected_losses)
    # the run learned something (else equal curves would mean little)
    assert expected_losses[-5:].mean() < expected_losses[:5].mean() - 0.5, expected_losses
    actual_params = dict(actual_model.named_parameters())
    assert list(actual_params) == list(expected_params)
    for name, p in expected_params.items():
        assert_close(actual_params[name], p, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_char_lm_matches_nn(backend, optimizer):
    initial, expected, expected_params = nn_run(CharLM, optimizer, STEPS)
    ours = CharLM(lstm_ext.LSTM, backend=backend)
    ours.load_state_dict(initial)
    actual = train(ours, OPTIMIZERS[optimizer](ours.parameters()))
    _assert_same_run(actual, expected, ours, expected_params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_char_lm_cell_matches_nn(backend):
    initial, expected, expected_params = nn_run(CellLM, "adam", 20)
    ours = CellLM(lstm_ext.LSTMCell, backend=backend)
    ours.load_state_dict(initial)
    actual = train(ours, OPTIMIZERS["adam"](ours.parameters()), steps=20)
    _assert_same_run(actual, expected, ours, expected_params)


@pytest.mark.parametrize("model_cls", [CharLM, CellLM], ids=["LSTM", "LSTMCell"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_char_lm_via_convert(backend, model_cls):
    """Build the optimizer on the nn model, then convert: training continues on the same Parameters."""
    initial, expected, expected_params = nn_run(model_cls, "adam", 20)
    model = model_cls()
    model.load_state_dict(initial)
    optimizer = OPTIMIZERS["adam"](model.parameters())
    converted = lstm_ext.convert(model, backend=backend)
    assert converted is model
    layer = model.lstm if model_cls is CharLM else model.cell
    assert type(layer) is (lstm_ext.LSTM if model_cls is CharLM else lstm_ext.LSTMCell)
    assert layer.backend == backend
    actual = train(model, optimizer, steps=20)
    _assert_same_run(actual, expected, model, expected_params)
