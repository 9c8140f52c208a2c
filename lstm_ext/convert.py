"""``convert``: swap ``torch.nn.LSTM`` / ``LSTMCell`` / ``GRU`` / ``GRUCell`` for lstm_ext's, in place,
same Parameters."""

from __future__ import annotations

from typing import Union

from torch import nn

from ._recurrent_base import _check_backend
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell

__all__ = ["convert"]

# Module state that convert rebuilds itself instead of carrying over from the old module.
_REBUILT = frozenset({"_parameters", "_buffers", "_modules", "_flat_weights", "_flat_weight_refs", "backend"})


def convert(module: nn.Module, *, backend: str = "auto") -> nn.Module:
    """Replace every ``nn.LSTM``, ``nn.LSTMCell``, ``nn.GRU`` and ``nn.GRUCell`` in ``module`` with
    :class:`lstm_ext.LSTM` / :class:`lstm_ext.LSTMCell` / :class:`lstm_ext.GRU` /
    :class:`lstm_ext.GRUCell`, and return the module.

    Only modules whose type is exactly one of those four are replaced (subclasses,
    parametrized modules and lstm_ext's own modules are left alone). Each replacement holds the
    very same ``Parameter`` objects (``new.weight_ih_l0 is old.weight_ih_l0``), so an optimizer
    built before the conversion keeps updating the model, and ``state_dict()`` keys and values
    are unchanged. The hyper-parameters, the training flag, hooks, buffers and any other attribute
    of the old module carry over; no parameter memory is allocated (the new module is built on
    the meta device, then handed the old Parameters). A module that appears in several places
    is converted once and stays shared.

    If ``module`` itself is one of the four, the new module is returned (the
    argument is not changed in place); otherwise ``module`` is changed in place and returned.

    Args:
        module: any ``nn.Module``.
        backend: passed to every new module: ``"auto"``, ``"fused"`` or ``"reference"``.

    Example::

        >>> model = nn.Sequential(nn.Linear(8, 16), nn.LSTM(16, 32, num_layers=2))
        >>> optimizer = torch.optim.Adam(model.parameters())
        >>> model = lstm_ext.convert(model)
        >>> type(model[1]).__name__
        'LSTM'
        >>> # optimizer still points at the model's parameters: training goes on as before
    """
    _check_backend(backend)
    converted: dict[int, nn.Module] = {}
    new = _convert_one(module, backend, converted)
    if new is not None:
        return new
    _convert_children(module, backend, converted, visited=set())
    return module


def _convert_children(parent: nn.Module, backend: str, converted: dict[int, nn.Module], visited: set[int]) -> None:
    if id(parent) in visited:
        return
    visited.add(id(parent))
    for name, child in list(parent._modules.items()):
        if child is None:
            continue
        new = _convert_one(child, backend, converted)
        if new is not None:
            parent._modules[name] = new
        else:
            _convert_children(child, backend, converted, visited)


def _convert_one(module: nn.Module, backend: str, converted: dict[int, nn.Module]) -> Union[nn.Module, None]:
    """The replacement for ``module``, or None when it is not an nn.LSTM / LSTMCell / GRU / GRUCell."""
    if type(module) in (nn.LSTM, nn.GRU):
        layer, extra = (LSTM, dict(proj_size=module.proj_size)) if type(module) is nn.LSTM else (GRU, {})
        make = lambda: layer(  # noqa: E731
            module.input_size, module.hidden_size, num_layers=module.num_layers, bias=module.bias,
            batch_first=module.batch_first, dropout=module.dropout, bidirectional=module.bidirectional,
            **extra, device="meta", backend=backend,
        )
    elif type(module) in (nn.LSTMCell, nn.GRUCell):
        cell = LSTMCell if type(module) is nn.LSTMCell else GRUCell
        make = lambda: cell(  # noqa: E731
            module.input_size, module.hidden_size, bias=module.bias, device="meta", backend=backend,
        )
    else:
        return None
    if id(module) not in converted:
        converted[id(module)] = _transplant(module, make())
    return converted[id(module)]


def _transplant(old: nn.Module, new: nn.Module) -> nn.Module:
    """Give ``new`` (built on meta) everything ``old`` holds: Parameters, buffers, hooks, flags."""
    # the same Parameter objects, in the same order (this also drops new's meta placeholders)
    new.__dict__["_parameters"] = dict(old._parameters)
    new.__dict__["_buffers"] = dict(old._buffers)
    new.__dict__["_modules"] = dict(old._modules)
    # training flag, hyper-parameters, hook dicts (shared, so existing hook handles still work),
    # and whatever else was set on the old module
    for key, value in vars(old).items():
        if key not in _REBUILT:
            new.__dict__[key] = value
    if isinstance(new, nn.RNNBase):
        new._init_flat_weights()  # _flat_weights must refer to the transplanted Parameters
    return new
