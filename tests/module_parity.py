"""Helpers shared by the module parity tests (LSTM, GRU, CUDA): build inputs, run a module
forward and backward under a fixed random loss, and compare every output and gradient.

The LSTM layer and cell helpers (`run_lstm`, `check_lstm`, ...) compare lstm_ext's module with
nn's (same weights) and, for backend="fused", also with backend="reference".
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstm_ext
from conftest import BACKENDS, copy_weights, make_pair
from tolerances import assert_close, tol

F64 = torch.float64
I, H, P, T, B = 4, 5, 3, 6, 3  # input, hidden, projection, time, batch for the grids
NO_KERNEL_MESSAGE = r"(?i)lstm_ext|fused|kernel"  # a clear message, whatever its exact words


def bool_ids(name):
    return lambda flag: name if flag else f"no_{name}"


def cotangent(like, seed):
    """A fixed random cotangent of like's shape, dtype and device (the same values on every
    device), so every output element gets a distinct weight in the loss."""
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(like.shape, generator=g, dtype=F64).to(device=like.device, dtype=like.dtype)


def clone_leaves(leaves):
    return {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in leaves.items()}


def run_module(module, leaves, build, loss_on, outputs):
    """Forward `build(leaves)` through `module`, backprop a random linear loss, collect everything.

    leaves:  name -> tensor (fresh copies are made, so the same dict can feed several modules).
    build:   leaves -> (input, hx or None); may make views (non-contiguous, packed, ...).
    outputs: the module's result -> {name: tensor}; `loss_on` names which of them enter the loss
             ("output" is the key "out" with a PackedSequence's data).
    """
    leaves = clone_leaves(leaves)
    inp, hx = build(leaves)
    res = outputs(module(inp) if hx is None else module(inp, hx))
    pieces = {("output" if k == "out" else k): (v.data if isinstance(v, PackedSequence) else v) for k, v in res.items()}
    loss = sum((pieces[k] * cotangent(pieces[k], i)).sum() for i, k in enumerate(loss_on))
    if loss.requires_grad:
        loss.backward()
    res.update({f"grad[{k}]": v.grad for k, v in leaves.items()})
    res.update({f"param_grad[{k}]": p.grad for k, p in module.named_parameters()})
    return res


def run_lstm(module, leaves, build, loss_on=("output", "h_n", "c_n")):
    return run_module(module, leaves, build, loss_on, lambda r: {"out": r[0], "h_n": r[1][0], "c_n": r[1][1]})


def run_lstm_cell(module, leaves, build, loss_on=("h", "c")):
    return run_module(module, leaves, build, loss_on, lambda r: {"h": r[0], "c": r[1]})


def run_gru(module, leaves, build, loss_on=("output", "h_n")):
    return run_module(module, leaves, build, loss_on, lambda r: {"out": r[0], "h_n": r[1]})


def run_gru_cell(module, leaves, build, loss_on=("h",)):
    return run_module(module, leaves, build, loss_on, lambda h: {"h": h})


def check_bfloat16_vs_float64(run, ref, ours, leaves, build):
    """`ours` (bfloat16) against `ref` (float64) on the same bfloat16-representable leaves: every
    result in bfloat16, within bfloat16's tolerance."""
    leaves64 = {k: v.detach().to(torch.bfloat16).to(F64).requires_grad_() for k, v in leaves.items()}
    leaves16 = {k: v.detach().to(torch.bfloat16).requires_grad_() for k, v in leaves64.items()}
    expected, actual = run(ref, leaves64, build), run(ours, leaves16, build)
    for key in expected:
        assert actual[key].dtype == torch.bfloat16, f"{key}: {actual[key].dtype}"
        assert_close(actual[key].to(F64), expected[key], msg=lambda m, key=key: f"{key}: {m}", **tol(torch.bfloat16))


def assert_same(actual: dict, expected: dict, **tolerance):
    assert actual.keys() == expected.keys()
    for key in expected:
        a, e = actual[key], expected[key]
        if e is None or a is None:
            assert a is None and e is None, f"{key}: ours {'None' if a is None else 'a tensor'}, expected {'None' if e is None else 'a tensor'}"
            continue
        if isinstance(e, PackedSequence):
            assert isinstance(a, PackedSequence), f"{key}: expected a PackedSequence, got {type(a)}"
            torch.testing.assert_close(a.batch_sizes, e.batch_sizes, rtol=0, atol=0, msg=f"{key}.batch_sizes")
            for idx in ("sorted_indices", "unsorted_indices"):
                ai, ei = getattr(a, idx), getattr(e, idx)
                assert (ai is None) == (ei is None), f"{key}.{idx}: {ai} vs {ei}"
                if ei is not None:
                    torch.testing.assert_close(ai, ei, rtol=0, atol=0, msg=f"{key}.{idx}")
            a, e = a.data, e.data
        assert a.shape == e.shape, f"{key}: shape {tuple(a.shape)} vs expected {tuple(e.shape)}"
        assert a.dtype == e.dtype, f"{key}: dtype {a.dtype} vs expected {e.dtype}"
        assert_close(a, e, msg=lambda m, key=key: f"{key}: {m}", **tolerance)


def check_against_nn(nn_cls, ours_cls, run, backend, kwargs, leaves, build, *, gen, dtype=F64, loss_on=None,
                     prepare=None, expected_tol=None):
    """ours(backend) vs nn's module with the same weights, and for fused also vs ours(reference).
    Returns ours' results. `loss_on=None` takes `run`'s default; `prepare` is applied to every module."""
    ref, ours = make_pair(nn_cls, ours_cls, backend, dtype=dtype, gen=gen, **kwargs)
    modules = [ref, ours]
    if backend == "fused":
        modules.append(copy_weights(ref, ours_cls(**kwargs, dtype=dtype, backend="reference")))
    if prepare is not None:
        for m in modules:
            prepare(m)
    results = [run(m, leaves, build) if loss_on is None else run(m, leaves, build, loss_on) for m in modules]
    assert_same(results[1], results[0], **(expected_tol or {}))
    if backend == "fused":
        assert_same(results[1], results[2], **(expected_tol or {}))
    return results[1]


def check_lstm(backend, kwargs, leaves, build, **kw):
    return check_against_nn(nn.LSTM, lstm_ext.LSTM, run_lstm, backend, kwargs, leaves, build, **kw)


def check_lstm_cell(backend, kwargs, leaves, build, **kw):
    return check_against_nn(nn.LSTMCell, lstm_ext.LSTMCell, run_lstm_cell, backend, kwargs, leaves, build, **kw)


def cell_grid(test):
    """Parametrizes a cell test over bias, an initial state or none, batched or unbatched input,
    and the backend: the grid every cell's parity runs."""
    for mark in (
        pytest.mark.parametrize("backend", BACKENDS),
        pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"]),
        pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx")),
        pytest.mark.parametrize("bias", [True, False], ids=bool_ids("bias")),
    ):
        test = mark(test)
    return test


def rnd(gen, *shape, dtype=F64, requires_grad=True):
    return torch.randn(*shape, generator=gen, dtype=F64).to(dtype).requires_grad_(requires_grad)


def lstm_state_leaves(gen, num_layers, bidirectional, proj_size, batch, dtype=F64):
    d = 2 if bidirectional else 1
    out = proj_size or H
    shape = (num_layers * d,) if batch is None else (num_layers * d, batch)
    return {"h0": rnd(gen, *shape, out, dtype=dtype), "c0": rnd(gen, *shape, H, dtype=dtype)}


def lstm_dense_build(with_hx):
    return lambda lv: (lv["x"], (lv["h0"], lv["c0"]) if with_hx else None)


def lstm_packed_build(lengths, batch_first, enforce_sorted, with_hx):
    def build(lv):
        packed = pack_padded_sequence(lv["x"], torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
        return packed, ((lv["h0"], lv["c0"]) if with_hx else None)
    return build


MIXED_LENGTHS = [7, 1, 4, 7, 2]  # unsorted, a length-1 sequence, a repeated maximum


def noncontig(kind, lv, batch_first):
    """Build a non-contiguous input view of the logical shape (T, B, I) / (B, T, I) from the leaf."""
    x = lv["x"]
    if kind == "transposed":  # leaf has the other layout
        x = x.transpose(0, 1)
    elif kind == "strided_time":  # every other step of a longer sequence
        x = x[::2] if not batch_first else x[:, ::2]
    elif kind == "strided_feature":  # last dimension not unit-stride
        x = x[..., ::2]
    elif kind == "expanded":  # stride 0 along the batch
        x = x.expand(-1, B, -1) if not batch_first else x.expand(B, -1, -1)
    assert not x.is_contiguous()
    return x


def noncontig_leaf(kind, batch_first, gen):
    tb = (B, T, I) if batch_first else (T, B, I)
    if kind == "transposed":
        return rnd(gen, tb[1], tb[0], I)
    if kind == "strided_time":
        return rnd(gen, *((B, 2 * T, I) if batch_first else (2 * T, B, I)))
    if kind == "strided_feature":
        return rnd(gen, *tb[:2], 2 * I)
    if kind == "expanded":
        return rnd(gen, *((1, T, I) if batch_first else (T, 1, I)))
    raise AssertionError(kind)



def round_to(module, dtype):
    """Round module's parameters to `dtype` and back, in place (so float64 sees the same values)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).to(p.dtype))
    return module
