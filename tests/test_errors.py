"""Bad arguments: lstm_ext.LSTM / LSTMCell raise what nn.LSTM / nn.LSTMCell raise.

Most cases compare the exception type and the full message with torch's own module, called
on the same arguments. A few conditions have no check in torch: nn.LSTM fails somewhere inside
an ATen kernel with words that depend on the kernel it happened to pick (oneDNN, cuDNN or the
native one). For those (``TYPE_ONLY_*``) we match the exception type and assert our own clear
message. PyTorch's ModuleInfo error inputs run through our classes at the end.
"""

from __future__ import annotations

import re
import warnings
from typing import Callable

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence

import lstm_ext
from lstm_ext import _library
from tolerances import assert_close, tol

FUSED = _library.LOAD_ERROR is None
BACKENDS = [
    "reference",
    "auto",
    pytest.param("fused", marks=pytest.mark.skipif(not FUSED, reason=f"kernels not loaded: {_library.LOAD_ERROR!r}")),
]
OURS = {nn.LSTM: lstm_ext.LSTM, nn.LSTMCell: lstm_ext.LSTMCell}


def _raised(fn: Callable[[], object]) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def _seeded_args(make_args: Callable[[], tuple]) -> tuple:
    """A case's arguments, drawn from the same global seed for nn and for us."""
    torch.manual_seed(0)
    return make_args()


def assert_same_error(expected: Callable[[], object], actual: Callable[[], object]) -> BaseException:
    """Both callables raise; same exception type, same message. Returns ours."""
    want = _raised(expected)
    got = _raised(actual)
    assert type(got) is type(want), f"raised {type(got).__name__}: {got}\nnn raised {type(want).__name__}: {want}"
    assert str(got) == str(want)
    return got


def _t(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, dtype=dtype, device=device)


def _packed(lengths=(4, 2, 1), features=3, enforce_sorted=True, dtype=torch.float32):
    seqs = [_t(n, features, dtype=dtype) for n in lengths]
    return pack_sequence(seqs, enforce_sorted=enforce_sorted)


# ---- constructors -------------------------------------------------------------------------

LSTM_CTOR_CASES = {
    "hidden_size_0": ((10, 0), {}),
    "num_layers_0": ((10, 10, 0), {}),
    "num_layers_neg": ((10, 10, -2), {}),
    "num_layers_float": ((10, 10, 1.5), {}),
    "input_size_0": ((0, 5), {}),
    "input_size_neg": ((-1, 5), {}),
    "input_size_float": ((3.0, 5), {}),
    "input_size_str": (("10", 5), {}),
    "hidden_size_float": ((3, 5.0), {}),
    "hidden_size_neg": ((3, -5), {}),
    "bias_int": ((3, 5), {"bias": 1}),
    "bias_str": ((3, 5), {"bias": "True"}),
    "batch_first_int": ((3, 5), {"batch_first": 0}),
    "batch_first_str": ((3, 5), {"batch_first": "False"}),
    "dropout_neg": ((3, 5, 2), {"dropout": -0.1}),
    "dropout_above_1": ((3, 5, 2), {"dropout": 1.5}),
    "dropout_bool": ((3, 5, 2), {"dropout": True}),
    "dropout_str": ((3, 5, 2), {"dropout": "0.5"}),
    "proj_size_neg": ((3, 5), {"proj_size": -1}),
    "proj_size_eq_hidden": ((3, 5), {"proj_size": 5}),
    "proj_size_gt_hidden": ((3, 5), {"proj_size": 7}),
    "unknown_kwarg": ((3, 5), {"nonlinearity": "tanh"}),
    "bad_dtype": ((3, 5), {"dtype": torch.int64}),
}

CELL_CTOR_CASES = {
    "input_size_neg": ((-1, 5), {}),
    "hidden_size_neg": ((3, -5), {}),
    "input_size_float": ((3.0, 5), {}),
    "hidden_size_str": ((3, "5"), {}),
    "unknown_kwarg": ((3, 5), {"nonlinearity": "tanh"}),
    "bad_dtype": ((3, 5), {"dtype": torch.int64}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(LSTM_CTOR_CASES))
def test_lstm_constructor_errors(backend, case):
    args, kwargs = LSTM_CTOR_CASES[case]
    assert_same_error(lambda: nn.LSTM(*args, **kwargs), lambda: lstm_ext.LSTM(*args, **kwargs, backend=backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CELL_CTOR_CASES))
def test_cell_constructor_errors(backend, case):
    args, kwargs = CELL_CTOR_CASES[case]
    assert_same_error(
        lambda: nn.LSTMCell(*args, **kwargs), lambda: lstm_ext.LSTMCell(*args, **kwargs, backend=backend)
    )


def test_lstm_dropout_single_layer_warns_like_nn():
    def warned(make):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make()
        return [(w.category, str(w.message)) for w in caught]

    expected = warned(lambda: nn.LSTM(3, 5, dropout=0.5))
    assert expected, "nn.LSTM no longer warns about dropout with one layer"
    assert warned(lambda: lstm_ext.LSTM(3, 5, dropout=0.5)) == expected


@pytest.mark.parametrize("cls", [lstm_ext.LSTM, lstm_ext.LSTMCell])
@pytest.mark.parametrize("backend", ["cuda", "", None, "Fused", 1])
def test_unknown_backend_raises_value_error(cls, backend):
    with pytest.raises(ValueError, match=re.escape(repr(backend))) as info:
        cls(3, 5, backend=backend)
    assert "'auto', 'fused', 'reference'" in str(info.value)


# ---- LSTM.forward ---------------------------------------------------------------------------

# name -> (constructor kwargs, a function making the forward arguments)
LSTM_FORWARD_CASES: dict[str, tuple[dict, Callable[[], tuple]]] = {
    "input_1d": ({}, lambda: (_t(3),)),
    "input_4d": ({}, lambda: (_t(1, 4, 2, 3),)),
    "input_size": ({}, lambda: (_t(4, 2, 4),)),
    "input_size_unbatched": ({}, lambda: (_t(4, 4),)),
    "input_size_batch_first": ({"batch_first": True}, lambda: (_t(2, 4, 7),)),
    "input_float64": ({}, lambda: (_t(4, 2, 3, dtype=torch.float64),)),
    "input_int64": ({}, lambda: (torch.ones(4, 2, 3, dtype=torch.int64),)),
    "input_float16": ({}, lambda: (_t(4, 2, 3, dtype=torch.float16),)),
    "hx_2d_for_batched": ({"num_layers": 2}, lambda: (_t(4, 2, 3), (_t(2, 5), _t(2, 5)))),
    "cx_2d_for_batched": ({"num_layers": 2}, lambda: (_t(4, 2, 3), (_t(2, 2, 5), _t(2, 5)))),
    "hx_3d_for_unbatched": ({"num_layers": 2}, lambda: (_t(4, 3), (_t(2, 1, 5), _t(2, 1, 5)))),
    "cx_3d_for_unbatched": ({"num_layers": 2}, lambda: (_t(4, 3), (_t(2, 5), _t(2, 1, 5)))),
    "hx_4d": ({}, lambda: (_t(4, 2, 3), (_t(1, 1, 2, 5), _t(1, 2, 5)))),
    "hx_a_tensor": ({"num_layers": 2}, lambda: (_t(4, 2, 3), _t(2, 2, 5))),
    "hx_layers": ({"num_layers": 2}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(2, 2, 5)))),
    "hx_batch": ({}, lambda: (_t(4, 2, 3), (_t(1, 3, 5), _t(1, 2, 5)))),
    "hx_hidden": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 6), _t(1, 2, 5)))),
    "cx_hidden": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(1, 2, 4)))),
    "cx_batch": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(1, 1, 5)))),
    "hx_directions": ({"bidirectional": True}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(1, 2, 5)))),
    "hx_unbatched_hidden": ({"num_layers": 2}, lambda: (_t(4, 3), (_t(2, 4), _t(2, 5)))),
    "cx_unbatched_layers": ({"num_layers": 2}, lambda: (_t(4, 3), (_t(2, 5), _t(3, 5)))),
    "hx_batch_first_batch": ({"batch_first": True}, lambda: (_t(2, 4, 3), (_t(1, 4, 5), _t(1, 4, 5)))),
    "proj_hx_has_hidden_size": ({"proj_size": 2}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(1, 2, 5)))),
    "proj_cx_has_proj_size": ({"proj_size": 2}, lambda: (_t(4, 2, 3), (_t(1, 2, 2), _t(1, 2, 2)))),
    "hx_one_state": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 5),))),
    "hx_three_states": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 5),) * 3)),
    "seq_len_0": ({}, lambda: (_t(0, 2, 3),)),
    "seq_len_0_with_hx": ({"num_layers": 2}, lambda: (_t(0, 2, 3), (_t(2, 2, 5), _t(2, 2, 5)))),
    "seq_len_0_batch_0": ({}, lambda: (_t(0, 0, 3),)),
    "seq_len_0_batch_first": ({"batch_first": True}, lambda: (_t(2, 0, 3),)),
    "seq_len_0_unbatched": ({}, lambda: (_t(0, 3),)),
    "hx_on_meta": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 5, device="meta"), _t(1, 2, 5)))),
    "cx_on_meta": ({}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(1, 2, 5, device="meta")))),
    "input_on_meta": ({}, lambda: (_t(4, 2, 3, device="meta"),)),
    "input_on_meta_hx_on_cpu": ({}, lambda: (_t(4, 2, 3, device="meta"), (_t(1, 2, 5), _t(1, 2, 5)))),
    "packed_hx_2d": ({}, lambda: (_packed(), (_t(3, 5), _t(3, 5)))),
    "packed_cx_1d": ({}, lambda: (_packed(), (_t(1, 3, 5), _t(5)))),
    "packed_three_states": ({}, lambda: (_packed(), (_t(1, 3, 5),) * 3)),
    "packed_one_state": ({}, lambda: (_packed(), (_t(1, 3, 5),))),
    "packed_unsorted_hx_batch": ({}, lambda: (_packed((2, 4, 1), enforce_sorted=False), (_t(1, 2, 5), _t(1, 2, 5)))),
    "packed_unsorted_hx_1d": ({}, lambda: (_packed((2, 4, 1), enforce_sorted=False), (_t(5), _t(5)))),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(LSTM_FORWARD_CASES))
def test_lstm_forward_errors_match_nn(backend, case):
    kwargs, make_args = LSTM_FORWARD_CASES[case]
    args = _seeded_args(make_args)
    theirs = nn.LSTM(3, 5, **kwargs)
    ours = lstm_ext.LSTM(3, 5, **kwargs, backend=backend)
    assert_same_error(lambda: theirs(*args), lambda: ours(*args))


# Conditions nn.LSTM has no check for: it fails inside whichever ATen kernel it picked, in that
# kernel's words (CPU float32 says "get_mkldnn_dtype: unsupported data type" for a float64 hx).
# We raise the same exception type with a message that names the problem.
TYPE_ONLY_LSTM_CASES: dict[str, tuple[dict, Callable[[], tuple], str]] = {
    "hx_float64": (
        {}, lambda: (_t(4, 2, 3), (_t(1, 2, 5, dtype=torch.float64), _t(1, 2, 5))),
        "Input and hidden tensors are not the same dtype, found input tensor with Float and hidden tensor with Double",
    ),
    "cx_float64": (
        {}, lambda: (_t(4, 2, 3), (_t(1, 2, 5), _t(1, 2, 5, dtype=torch.float64))),
        "Input and hidden tensors are not the same dtype, found input tensor with Float and hidden tensor with Double",
    ),
    "hx_bfloat16": (
        {}, lambda: (_t(4, 2, 3), (_t(1, 2, 5, dtype=torch.bfloat16), _t(1, 2, 5))),
        "Input and hidden tensors are not the same dtype, found input tensor with Float and hidden tensor with BFloat16",
    ),
    "packed_hx_batch": (
        {}, lambda: (_packed(), (_t(1, 2, 5), _t(1, 3, 5))),
        "Expected hidden[0] size (1, 3, 5), got [1, 2, 5]",
    ),
    "packed_cx_hidden": (
        {}, lambda: (_packed(), (_t(1, 3, 5), _t(1, 3, 4))),
        "Expected hidden[1] size (1, 3, 5), got [1, 3, 4]",
    ),
    "packed_input_size": (
        {}, lambda: (PackedSequence(_t(7, 4), torch.tensor([3, 2, 1, 1])),),
        "input.size(-1) must be equal to input_size. Expected 3, got 4",
    ),
    "packed_data_3d": (
        {}, lambda: (PackedSequence(_t(7, 1, 3), torch.tensor([3, 2, 1, 1])),),
        "input must have 2 dimensions, got 3",
    ),
    "packed_float64": (
        {}, lambda: (_packed(dtype=torch.float64),),
        "RNN input dtype (torch.float64) does not match weight dtype (torch.float32)",
    ),
    "packed_hx_float64": (
        {}, lambda: (_packed(), (_t(1, 3, 5, dtype=torch.float64), _t(1, 3, 5))),
        "Input and hidden tensors are not the same dtype, found input tensor with Float and hidden tensor with Double",
    ),
    "packed_hx_on_meta": (
        {}, lambda: (_packed(), (_t(1, 3, 5, device="meta"), _t(1, 3, 5))),
        "Input and hidden tensors are not at the same device, found input tensor at cpu and hidden tensor at meta",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(TYPE_ONLY_LSTM_CASES))
def test_lstm_unchecked_conditions_raise_same_type(backend, case):
    kwargs, make_args, message = TYPE_ONLY_LSTM_CASES[case]
    args = _seeded_args(make_args)
    want = _raised(lambda: nn.LSTM(3, 5, **kwargs)(*args))
    got = _raised(lambda: lstm_ext.LSTM(3, 5, **kwargs, backend=backend)(*args))
    assert type(got) is type(want), f"raised {type(got).__name__}: {got}\nnn raised {type(want).__name__}: {want}"
    assert message in str(got)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_parameter_of_another_dtype_raises_same_type(backend):
    torch.manual_seed(0)
    theirs = nn.LSTM(3, 5, num_layers=2)
    ours = lstm_ext.LSTM(3, 5, num_layers=2, backend=backend)
    for module in (theirs, ours):
        module.weight_hh_l1 = nn.Parameter(module.weight_hh_l1.detach().double())
    x = _t(4, 2, 3)
    want = _raised(lambda: theirs(x))
    got = _raised(lambda: ours(x))
    assert type(got) is type(want)
    assert str(got) == (
        "Input and parameter tensors are not the same dtype, found input tensor with Float and parameter tensor with Double"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_casts_instead_of_refusing_dtypes(backend):
    """Under autocast nn.LSTM skips its dtype checks and runs in the autocast dtype: so do we."""
    torch.manual_seed(0)
    theirs = nn.LSTM(3, 5, num_layers=2)
    ours = lstm_ext.LSTM(3, 5, num_layers=2, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    x, hx = _t(4, 2, 3), (_t(2, 2, 5, dtype=torch.bfloat16), _t(2, 2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_out, (want_h, want_c) = theirs(x, hx)
        got_out, (got_h, got_c) = ours(x, hx)
    assert [t.dtype for t in (got_out, got_h, got_c)] == [t.dtype for t in (want_out, want_h, want_c)]
    for got, want in ((got_out, want_out), (got_h, want_h), (got_c, want_c)):
        assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_fine_cases_do_not_raise(backend):
    """The neighbours of the error cases work: the checks are not simply always raising."""
    torch.manual_seed(0)
    ours = lstm_ext.LSTM(3, 5, num_layers=2, backend=backend)
    ours(_t(4, 2, 3), [_t(2, 2, 5), _t(2, 2, 5)])  # a list is as good as a tuple
    ours(_t(4, 3), (_t(2, 5), _t(2, 5)))
    ours(_t(4, 3), (_t(2, 5), _t(2, 5), _t(2, 5)))  # nn.LSTM drops a third unbatched state too
    ours(_t(4, 0, 3))  # an empty batch is fine, an empty sequence is not
    ours(_packed(), (_t(2, 3, 5), _t(2, 3, 5)))
    ours(_packed((2, 4, 1), enforce_sorted=False), (_t(2, 3, 5), _t(2, 3, 5)))
    lstm_ext.LSTM(3, 5, proj_size=2, backend=backend)(_t(4, 2, 3), (_t(1, 2, 2), _t(1, 2, 5)))


def test_lstm_fused_without_kernel_raises():
    ours = lstm_ext.LSTM(3, 5, dtype=torch.float16, backend="fused")
    x = _t(4, 2, 3, dtype=torch.float16)
    assert not _library.has_kernel("lstm_layer", x.device, x.dtype)
    with pytest.raises(RuntimeError) as info:
        ours(x)
    assert str(info.value) == _library.missing_kernel_message(x.device, x.dtype)
    assert "lstm_ext" in str(info.value)
    # "auto" takes the reference for the same input and agrees with nn.LSTM
    auto = lstm_ext.LSTM(3, 5, dtype=torch.float16)
    theirs = nn.LSTM(3, 5, dtype=torch.float16)
    auto.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        assert_close(auto(x)[0], theirs(x)[0])


# ---- LSTMCell.forward -----------------------------------------------------------------------

CELL_FORWARD_CASES: dict[str, Callable[[], tuple]] = {
    "input_0d": lambda: (torch.tensor(1.0),),
    "input_3d": lambda: (_t(1, 2, 3),),
    "hx0_3d": lambda: (_t(2, 3), (_t(1, 2, 5), _t(2, 5))),
    "hx1_3d": lambda: (_t(2, 3), (_t(2, 5), _t(1, 2, 5))),
    "hx_0d": lambda: (_t(2, 3), (torch.tensor(0.0), _t(2, 5))),
    "hx_4d_both": lambda: (_t(2, 3), (_t(2, 1, 1, 5), _t(2, 1, 1, 5))),
    "input_size": lambda: (_t(2, 4),),
    "input_size_unbatched": lambda: (_t(4),),
    "hx_hidden": lambda: (_t(2, 3), (_t(2, 4), _t(2, 5))),
    "cx_hidden": lambda: (_t(2, 3), (_t(2, 5), _t(2, 4))),
    "hx_batch": lambda: (_t(2, 3), (_t(3, 5), _t(2, 5))),
    "cx_batch": lambda: (_t(2, 3), (_t(2, 5), _t(3, 5))),
    "hx_1d_for_batched": lambda: (_t(2, 3), (_t(5), _t(5))),
    "hx_1d_matching_batch": lambda: (_t(2, 3), (_t(2), _t(2, 5))),
    "hx_mixed_dims": lambda: (_t(2, 3), (_t(2, 5), _t(5))),
    "hx_2d_for_unbatched": lambda: (_t(3), (_t(1, 5), _t(1, 5))),
    "hx_unbatched_hidden": lambda: (_t(3), (_t(4), _t(5))),
    "hx_unbatched_mixed": lambda: (_t(3), (_t(5), _t(1, 5))),
    "hx_one_state": lambda: (_t(2, 3), (_t(2, 5),)),
    "hx_one_state_unbatched": lambda: (_t(3), (_t(5),)),
    "hx_three_states": lambda: (_t(2, 3), (_t(2, 5),) * 3),
    "hx_none_states": lambda: (_t(2, 3), (None, None)),
    "input_float64": lambda: (_t(2, 3, dtype=torch.float64),),
    "input_float64_with_hx": lambda: (_t(2, 3, dtype=torch.float64), (_t(2, 5), _t(2, 5))),
    "input_int64": lambda: (torch.ones(2, 3, dtype=torch.int64),),
    "hx_float64": lambda: (_t(2, 3), (_t(2, 5, dtype=torch.float64), _t(2, 5))),
    "hx_float16": lambda: (_t(2, 3), (_t(2, 5, dtype=torch.float16), _t(2, 5))),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CELL_FORWARD_CASES))
def test_cell_forward_errors_match_nn(backend, case):
    torch.manual_seed(0)
    args = CELL_FORWARD_CASES[case]()
    theirs = nn.LSTMCell(3, 5)
    ours = lstm_ext.LSTMCell(3, 5, backend=backend)
    assert_same_error(lambda: theirs(*args), lambda: ours(*args))


# nn.LSTMCell's device errors come from whichever op meets the stray tensor first
# ("Tensor on device cpu is not on the expected device meta!"); ours name the tensor.
TYPE_ONLY_CELL_CASES: dict[str, tuple[Callable[[], tuple], str]] = {
    "hx_on_meta": (
        lambda: (_t(2, 3), (_t(2, 5, device="meta"), _t(2, 5))),
        "Input and hidden tensors are not at the same device, found input tensor at cpu and hidden tensor at meta",
    ),
    "cx_on_meta": (
        lambda: (_t(2, 3), (_t(2, 5), _t(2, 5, device="meta"))),
        "Input and hidden tensors are not at the same device, found input tensor at cpu and hidden tensor at meta",
    ),
    "input_on_meta": (
        lambda: (_t(2, 3, device="meta"),),
        "Input and parameter tensors are not at the same device, found input tensor at meta and parameter tensor at cpu",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(TYPE_ONLY_CELL_CASES))
def test_cell_unchecked_conditions_raise_same_type(backend, case):
    make_args, message = TYPE_ONLY_CELL_CASES[case]
    args = _seeded_args(make_args)
    want = _raised(lambda: nn.LSTMCell(3, 5)(*args))
    got = _raised(lambda: lstm_ext.LSTMCell(3, 5, backend=backend)(*args))
    assert type(got) is type(want), f"raised {type(got).__name__}: {got}\nnn raised {type(want).__name__}: {want}"
    assert str(got) == message


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_cell_promotes_cx_dtype_like_nn(backend):
    """nn.LSTMCell accepts a c_0 of another dtype and promotes (h_1, c_1) to it: so do we."""
    torch.manual_seed(0)
    theirs = nn.LSTMCell(3, 5)
    ours = lstm_ext.LSTMCell(3, 5, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    args = (_t(2, 3), (_t(2, 5), _t(2, 5, dtype=torch.float64)))
    want, got = theirs(*args), ours(*args)
    assert [t.dtype for t in got] == [t.dtype for t in want]
    # the gates are float32 arithmetic; only the cell update runs in float64
    assert_close(got[0], want[0], **tol(torch.float32))
    assert_close(got[1], want[1], **tol(torch.float32))


@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cell_autocast_like_nn(backend, input_dtype):
    """Under CPU autocast nn.LSTMCell's products run in bfloat16; the state keeps c_0's dtype."""
    torch.manual_seed(0)
    theirs = nn.LSTMCell(3, 5)
    ours = lstm_ext.LSTMCell(3, 5, backend=backend)
    ours.load_state_dict(theirs.state_dict())
    x = _t(2, 3).to(input_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = theirs(x), ours(x)
    assert [t.dtype for t in got] == [t.dtype for t in want]
    for g, w in zip(got, want):
        assert_close(g, w, **tol(torch.bfloat16))  # bfloat16 products either way


@pytest.mark.skipif(not FUSED, reason="kernels not loaded")
def test_cell_fused_refuses_mixed_cx_dtype():
    ours = lstm_ext.LSTMCell(3, 5, backend="fused")
    with pytest.raises(RuntimeError, match="in one dtype, got \\['torch.float32', 'torch.float64'\\]"):
        ours(_t(2, 3), (_t(2, 5), _t(2, 5, dtype=torch.float64)))


def test_cell_fused_without_kernel_raises():
    ours = lstm_ext.LSTMCell(3, 5, dtype=torch.float16, backend="fused")
    x = _t(2, 3, dtype=torch.float16)
    with pytest.raises(RuntimeError) as info:
        ours(x)
    assert str(info.value) == _library.missing_kernel_message(x.device, x.dtype)


# ---- PyTorch's own ModuleInfo error inputs ----------------------------------------------

def _module_infos():
    # common_utils freezes torch.backends flags on import (disable_global_flags); give the
    # rest of the test session its normal flags back.
    flag = "__allow_nonbracketed_mutation_flag"
    saved = getattr(torch.backends, flag)
    try:
        from torch.testing._internal.common_modules import ModuleErrorEnum, module_db
    finally:
        setattr(torch.backends, flag, saved)
    return {info.module_cls: info for info in module_db if info.module_cls in OURS}, ModuleErrorEnum


MODULE_INFOS, ModuleErrorEnum = _module_infos()
_DTYPES = (torch.float32, torch.float64)


def _error_inputs(module_cls, dtype):
    info = MODULE_INFOS.get(module_cls)
    if info is None or info.module_error_inputs_func is None:
        return []
    return info.module_error_inputs_func(info, device="cpu", dtype=dtype, requires_grad=False, training=True)


MODULE_ERROR_CASES = [
    pytest.param(module_cls, dtype, index, id=f"{module_cls.__name__}-{str(dtype)[6:]}-{index}")
    for module_cls in OURS
    for dtype in _DTYPES
    for index in range(len(_error_inputs(module_cls, dtype)))
]


@pytest.mark.parametrize("module_cls", list(OURS), ids=lambda c: c.__name__)
def test_module_db_lists_lstm_error_inputs(module_cls):
    """Say plainly how many ModuleInfo error inputs this torch has for the module."""
    assert module_cls in MODULE_INFOS, f"torch's module_db has no entry for {module_cls.__name__}"
    if MODULE_INFOS[module_cls].module_error_inputs_func is None:
        pytest.skip(f"torch {torch.__version__} defines no module_error_inputs_func for {module_cls.__name__}")
    assert len(_error_inputs(module_cls, torch.float32)) > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module_cls, dtype, index", MODULE_ERROR_CASES)
def test_module_db_error_inputs(backend, module_cls, dtype, index):
    error_input = _error_inputs(module_cls, dtype)[index]
    module_input = error_input.module_error_input
    ctor, fwd = module_input.constructor_input, module_input.forward_input
    ours_cls = OURS[module_cls]

    def run(cls, **extra):
        module = cls(*ctor.args, **ctor.kwargs, **extra)
        if error_input.error_on == ModuleErrorEnum.FORWARD_ERROR:
            module(*fwd.args, **fwd.kwargs)

    # torch's own module still fails this way (otherwise the entry tests nothing)
    with pytest.raises(error_input.error_type, match=error_input.error_regex):
        run(module_cls)
    with pytest.raises(error_input.error_type, match=error_input.error_regex):
        run(ours_cls, backend=backend)
