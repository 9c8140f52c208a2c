"""PyTorch's own ModuleInfo samples for nn.LSTM / nn.LSTMCell (and nn.GRU / nn.GRUCell), run through lstm_ext's modules.

For every sample of ``torch.testing._internal.common_modules.module_db``'s LSTM and LSTMCell
entries: build nn's module and ours from the same constructor arguments, copy nn's state_dict
into ours, run the same forward inputs through both, compare outputs and the gradients of every
input and parameter. The entries' error inputs must raise the same exception type as nn's.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db

import lstm_ext
from conftest import BACKENDS
from tolerances import assert_close

OURS = {nn.LSTM: lstm_ext.LSTM, nn.LSTMCell: lstm_ext.LSTMCell}
OURS.update({nn.GRU: lstm_ext.GRU, nn.GRUCell: lstm_ext.GRUCell})
INFOS = {info.module_cls: info for info in module_db if info.module_cls in OURS}
DTYPES = [torch.float32, torch.float64]


def test_module_db_has_lstm_entries():
    assert set(INFOS) == set(OURS), f"module_db has entries for {sorted(c.__name__ for c in INFOS)}"


def _samples(module_cls, dtype, training, requires_grad=True):
    info = INFOS[module_cls]
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=requires_grad, training=training)


def _sample_ids():
    """(module_cls, index) for every sample, with a readable id; the count doesn't depend on dtype."""
    params = []
    for cls in OURS:
        for i, sample in enumerate(_samples(cls, torch.float64, training=False)):
            c = sample.constructor_input
            args = ",".join([*map(str, c.args), *(_short(k, v) for k, v in c.kwargs.items())])
            f = sample.forward_input
            shapes = "+".join(_describe(a) for a in f.args)
            params.append(pytest.param(cls, i, id=f"{cls.__name__}-{i}[{args}]({shapes})"))
    return params


_SHORT = {"input_size": "I", "hidden_size": "H", "num_layers": "L", "proj_size": "P"}
_FLAGS = {"batch_first": "bf", "bias": "bias", "bidirectional": "bi"}


def _short(key, value):
    if key in _SHORT:
        return f"{_SHORT[key]}{value}"
    if key in _FLAGS and isinstance(value, bool):
        return _FLAGS[key] if value else f"no_{_FLAGS[key]}"
    return f"{key}={value}"


def _describe(arg):
    if isinstance(arg, PackedSequence):
        return "packed" + "x".join(map(str, arg.data.shape))
    if isinstance(arg, torch.Tensor):
        return "x".join(map(str, arg.shape))
    if isinstance(arg, (tuple, list)):
        return "(" + ",".join(_describe(a) for a in arg) + ")"
    return type(arg).__name__


def _leaves(obj, out):
    """Tensors in obj (nested tuples, PackedSequence) that require grad, in a fixed order."""
    if isinstance(obj, PackedSequence):
        _leaves(obj.data, out)
    elif isinstance(obj, torch.Tensor):
        if obj.requires_grad:
            out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _leaves(item, out)
    elif isinstance(obj, dict):
        for item in obj.values():
            _leaves(item, out)
    return out


def _flatten(obj, out):
    if isinstance(obj, PackedSequence):
        out.append(obj.data)
        out.append(obj.batch_sizes)
    elif isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            _flatten(item, out)
    else:
        raise TypeError(f"unexpected output {type(obj)}")
    return out


def _run(module, args, kwargs):
    """Forward on a private copy of the inputs, backprop a fixed random linear loss, collect grads."""
    args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    inputs = _leaves((args, kwargs), [])
    outputs = _flatten(module(*args, **kwargs), [])
    g = torch.Generator().manual_seed(0)
    floats = [o for o in outputs if o.is_floating_point()]
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum() for o in floats)
    grads = []
    if loss.requires_grad:
        loss.backward()
        grads = [t.grad for t in inputs] + [p.grad for p in module.parameters()]
    return outputs, grads


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module_cls,index", _sample_ids())
def test_module_db_sample(module_cls, index, backend, dtype, training):
    sample = _samples(module_cls, dtype, training)[index]
    c, f = sample.constructor_input, sample.forward_input
    torch.manual_seed(0)
    ref = module_cls(*c.args, **c.kwargs).to(dtype=dtype).train(training)
    ours = OURS[module_cls](*c.args, **c.kwargs, backend=backend).to(dtype=dtype).train(training)
    ours.load_state_dict(ref.state_dict())

    expected, expected_grads = _run(ref, f.args, f.kwargs)
    actual, actual_grads = _run(ours, f.args, f.kwargs)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape and a.dtype == e.dtype, f"output {i}: {a.shape}/{a.dtype} vs {e.shape}/{e.dtype}"
        assert_close(a, e, msg=lambda m, i=i: f"output {i}: {m}")
    assert len(expected_grads) > 0, "the sample should have something to differentiate"
    assert len(actual_grads) == len(expected_grads)
    for i, (a, e) in enumerate(zip(actual_grads, expected_grads)):
        assert (a is None) == (e is None), f"grad {i}: ours {a}, nn {e}"
        if e is not None:
            assert_close(a, e, msg=lambda m, i=i: f"grad {i}: {m}")

    # the sample's own reference (unbatched input == batch of one, squeezed)
    if sample.reference_fn is not None:
        args = copy.deepcopy(f.args)
        with torch.no_grad():
            want = _flatten(sample.reference_fn(ours, *args, **f.kwargs), [])
            got = _flatten(ours(*copy.deepcopy(f.args), **f.kwargs), [])
        assert len(got) == len(want)
        for i, (a, e) in enumerate(zip(got, want)):
            assert_close(a, e, msg=lambda m, i=i: f"reference_fn output {i}: {m}")


def _error_ids():
    params = []
    for cls in OURS:
        info = INFOS[cls]
        if info.module_error_inputs_func is None:
            continue
        errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=False, training=False)
        for i, err in enumerate(errors):
            params.append(pytest.param(cls, i, id=f"{cls.__name__}-{i}-{err.error_type.__name__}"))
    return params


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module_cls,index", _error_ids())
def test_module_db_error_input(module_cls, index, backend):
    """nn's error inputs: ours raises the exception type (and message) ModuleInfo declares."""
    info = INFOS[module_cls]
    err = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=False, training=False)[index]
    c, f = err.module_error_input.constructor_input, err.module_error_input.forward_input
    ours_cls = OURS[module_cls]
    with pytest.raises(err.error_type, match=err.error_regex):
        m = ours_cls(*c.args, **c.kwargs, backend=backend)
        if err.error_on == ModuleErrorEnum.FORWARD_ERROR:
            m(*f.args, **f.kwargs)
