"""Module plumbing nn.LSTM / nn.GRU users rely on, checked alike for lstm_ext's layers.

Each check takes an nn module and lstm_ext's (or a model holding them) and asserts; the test
files add what is particular to their layer.
"""

from __future__ import annotations

import copy
import io

import pytest
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


def raises_like(ref_call, our_call, same_message: bool = True) -> None:
    """``our_call()`` raises what ``ref_call()`` (nn's) raises: the same exception type and, unless
    ``same_message`` is False, the same message."""
    with pytest.raises(Exception) as expected:
        ref_call()
    with pytest.raises(expected.type) as actual:
        our_call()
    if same_message:
        assert str(actual.value) == str(expected.value)


def assert_same_contract(nn_cls, ours_cls, backend: str, attrs: tuple, **kwargs) -> None:
    """nn_cls(**kwargs) and ours_cls(**kwargs, backend=backend), built under the same seed, have the
    same hyper-parameters, Parameters (names, order, shapes, dtypes, values: the init drawn in nn's
    order), state_dict keys (loading both ways) and repr (plus backend)."""
    torch.manual_seed(123)
    ref = nn_cls(**kwargs)
    torch.manual_seed(123)
    ours = ours_cls(**kwargs, backend=backend)
    for attr in attrs:
        assert getattr(ours, attr) == getattr(ref, attr), attr
    ref_params, our_params = list(ref.named_parameters()), list(ours.named_parameters())
    assert [n for n, _ in our_params] == [n for n, _ in ref_params]
    for (name, p), (_, q) in zip(our_params, ref_params):
        assert isinstance(p, nn.Parameter) and p.shape == q.shape and p.dtype == q.dtype, name
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"{name}: init differs from nn's under the same seed")
    assert list(ours.state_dict()) == list(ref.state_dict())
    nn_cls(**kwargs).load_state_dict(ours.state_dict())
    ours_cls(**kwargs, backend=backend).load_state_dict(ref.state_dict())
    assert repr(ours).startswith(repr(ref)[:-1]), f"{repr(ours)!r} vs nn's {repr(ref)!r}"


def call_raises_like_nn(nn_module: nn.Module, ours_cls, backend: str, args: tuple) -> None:
    """lstm_ext's ``ours_cls`` with ``nn_module``'s weights, called with ``args``, raises what
    ``nn_module(*args)`` raises (type and message)."""
    ours = ours_cls(nn_module.input_size, nn_module.hidden_size, backend=backend)
    ours.load_state_dict(nn_module.state_dict(), strict=True)
    raises_like(lambda: nn_module(*args), lambda: ours(*args))
