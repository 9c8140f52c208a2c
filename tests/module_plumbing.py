"""Module plumbing nn.LSTM / nn.GRU users rely on, checked alike for lstm_ext's layers.

Each check takes an nn module and lstm_ext's (or a model holding them) and asserts; the test
files add what is particular to their layer.
"""

from __future__ import annotations

import copy
import io

import torch
import torch.nn as nn

import lstm_ext
from tolerances import assert_close


def assert_copy_save_flatten_setattr(
    ref: nn.RNNBase, ours: nn.RNNBase, backend: str, x: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """``ours`` (weights equal to ``ref``'s, at least 2 layers) survives flatten_parameters,
    deepcopy and torch.save / torch.load with its type and backend, and a replaced Parameter
    takes effect (as nn.utils.parametrize / weight tying do). Returns ``ours(x)[0]`` from before
    the replacement."""
    expected = ours(x)[0]
    ours.flatten_parameters()  # a no-op nn users call; must exist and not break anything
    assert torch.equal(ours(x)[0], expected)
    clone = copy.deepcopy(ours)
    assert clone.backend == backend and torch.equal(clone(x)[0], expected)
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert type(loaded) is type(ours) and loaded.backend == backend and torch.equal(loaded(x)[0], expected)
    new = nn.Parameter(torch.randn(ours.weight_hh_l1.shape, generator=gen, dtype=x.dtype))
    ours.weight_hh_l1 = new
    ref.weight_hh_l1 = new
    assert_close(ours(x)[0], ref(x)[0])
    return expected


def assert_convert_in_place(net: nn.Module, x: torch.Tensor) -> None:
    """``lstm_ext.convert(net)`` returns ``net`` itself, keeps its Parameter objects (names and
    order too), gives the same output, and the gradients land on the original Parameters.
    ``net(x)`` is a scalar."""
    params_before = dict(net.named_parameters())
    expected = net(x)
    expected.backward()
    grads_before = {n: p.grad.clone() for n, p in params_before.items()}
    net.zero_grad(set_to_none=True)

    assert lstm_ext.convert(net) is net
    params_after = dict(net.named_parameters())
    assert list(params_after) == list(params_before)
    for name, p in params_after.items():
        assert p is params_before[name], f"{name}: convert made a new Parameter"
    actual = net(x)
    assert_close(actual, expected)
    actual.backward()
    for name, p in params_before.items():
        assert_close(p.grad, grads_before[name], msg=lambda m, name=name: f"{name}: {m}")
