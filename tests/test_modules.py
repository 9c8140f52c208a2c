"""Parity of lstm_ext.LSTM / lstm_ext.LSTMCell with torch.nn.LSTM / torch.nn.LSTMCell.

Every case runs once per backend ("fused", "reference"). Each compares ours with nn's module
(same weights) on outputs, final states and the gradients of the input, h0, c0 and every
parameter; for backend="fused" it also compares with backend="reference".
Grids are float64 with the float64 tolerance; a few float32 / bfloat16 cases use theirs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstm_ext
from conftest import BACKENDS, FUSED_AVAILABLE, copy_weights, make_cell_pair, make_lstm_pair
from module_plumbing import assert_convert_in_place, assert_copy_save_flatten_setattr
from tolerances import assert_close, tol

F64 = torch.float64
NO_KERNEL_MESSAGE = r"(?i)lstm_ext|fused|kernel"  # a clear message, whatever its exact words
I, H, P, T, B = 4, 5, 3, 6, 3  # input, hidden, projection, time, batch for the grids


def _bool_ids(name):
    return lambda flag: name if flag else f"no_{name}"


def _cot(like, seed):
    """A fixed random cotangent of like's shape, dtype and device (the same values on every
    device), so every output element gets a distinct weight in the loss."""
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(like.shape, generator=g, dtype=F64).to(device=like.device, dtype=like.dtype)


def _clone_leaves(leaves):
    return {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in leaves.items()}


def run_lstm(module, leaves, build, loss_on=("output", "h_n", "c_n")):
    """Forward `build(leaves)` through `module`, backprop a random linear loss, collect everything.

    leaves: name -> tensor (fresh copies are made, so the same dict can feed several modules).
    build:  leaves -> (input, hx or None); may make views (non-contiguous, packed, ...).
    """
    leaves = _clone_leaves(leaves)
    inp, hx = build(leaves)
    out, (h_n, c_n) = module(inp) if hx is None else module(inp, hx)
    out_t = out.data if isinstance(out, PackedSequence) else out
    pieces = {"output": out_t, "h_n": h_n, "c_n": c_n}
    loss = sum((pieces[k] * _cot(pieces[k], i)).sum() for i, k in enumerate(loss_on))
    if loss.requires_grad:
        loss.backward()
    res = {"out": out, "h_n": h_n, "c_n": c_n}
    res.update({f"grad[{k}]": v.grad for k, v in leaves.items()})
    res.update({f"param_grad[{k}]": p.grad for k, p in module.named_parameters()})
    return res


def run_cell(module, leaves, build, loss_on=("h", "c")):
    leaves = _clone_leaves(leaves)
    inp, hx = build(leaves)
    h, c = module(inp) if hx is None else module(inp, hx)
    pieces = {"h": h, "c": c}
    loss = sum((pieces[k] * _cot(pieces[k], i)).sum() for i, k in enumerate(loss_on))
    if loss.requires_grad:
        loss.backward()
    res = {"h": h, "c": c}
    res.update({f"grad[{k}]": v.grad for k, v in leaves.items()})
    res.update({f"param_grad[{k}]": p.grad for k, p in module.named_parameters()})
    return res


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


def _check(make_pair, cls, run, backend, kwargs, leaves, build, *, gen, dtype, loss_on, prepare):
    """ours(backend) vs nn's module, and for fused also vs ours(reference). Returns ours' results."""
    ref, ours = make_pair(backend, dtype=dtype, gen=gen, **kwargs)
    modules = [ref, ours]
    if backend == "fused":
        modules.append(copy_weights(ref, cls(**kwargs, dtype=dtype, backend="reference")))
    if prepare is not None:
        for m in modules:
            prepare(m)
    results = [run(m, leaves, build, loss_on) for m in modules]
    assert_same(results[1], results[0])
    if backend == "fused":
        assert_same(results[1], results[2])
    return results[1]


def check_lstm(backend, kwargs, leaves, build, *, gen, dtype=F64, loss_on=("output", "h_n", "c_n"), prepare=None):
    return _check(make_lstm_pair, lstm_ext.LSTM, run_lstm, backend, kwargs, leaves, build, gen=gen, dtype=dtype,
                  loss_on=loss_on, prepare=prepare)


def check_cell(backend, kwargs, leaves, build, *, gen, dtype=F64, loss_on=("h", "c"), prepare=None):
    return _check(make_cell_pair, lstm_ext.LSTMCell, run_cell, backend, kwargs, leaves, build, gen=gen, dtype=dtype,
                  loss_on=loss_on, prepare=prepare)


def rnd(gen, *shape, dtype=F64, requires_grad=True):
    return torch.randn(*shape, generator=gen, dtype=F64).to(dtype).requires_grad_(requires_grad)


def state_leaves(gen, num_layers, bidirectional, proj_size, batch, dtype=F64):
    d = 2 if bidirectional else 1
    out = proj_size or H
    shape = (num_layers * d,) if batch is None else (num_layers * d, batch)
    return {"h0": rnd(gen, *shape, out, dtype=dtype), "c0": rnd(gen, *shape, H, dtype=dtype)}


def dense_build(with_hx):
    return lambda lv: (lv["x"], (lv["h0"], lv["c0"]) if with_hx else None)


# ---------------------------------------------------------------------------------------------
# LSTM: dense 3-D input, the full grid
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_hx", [False, True], ids=_bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=_bool_ids("batch_first"))
@pytest.mark.parametrize("bias", [True, False], ids=_bool_ids("bias"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dense(backend, num_layers, bidirectional, proj_size, bias, batch_first, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, *((B, T, I) if batch_first else (T, B, I)))}
    if with_hx:
        leaves.update(state_leaves(gen, num_layers, bidirectional, proj_size, B))
    res = check_lstm(backend, kwargs, leaves, dense_build(with_hx), gen=gen)
    d = 2 if bidirectional else 1
    assert res["out"].shape == ((B, T, d * (proj_size or H)) if batch_first else (T, B, d * (proj_size or H)))
    assert res["h_n"].shape == (num_layers * d, B, proj_size or H)
    assert res["c_n"].shape == (num_layers * d, B, H)


@pytest.mark.parametrize("seq_len", [1, 7], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("batch", [1, 5], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("sizes", [(1, 1), (8, 8), (8, 2), (2, 8)], ids=lambda s: f"I{s[0]}H{s[1]}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_shapes(backend, sizes, batch, seq_len, gen):
    """Odd sizes: hidden 1, input 1, input > hidden and the reverse, T=1, B=1."""
    i, h = sizes
    kwargs = dict(input_size=i, hidden_size=h, num_layers=2, bidirectional=True)
    leaves = {"x": rnd(gen, seq_len, batch, i), "h0": rnd(gen, 4, batch, h), "c0": rnd(gen, 4, batch, h)}
    check_lstm(backend, kwargs, leaves, dense_build(True), gen=gen)


@pytest.mark.parametrize("loss_on", [("output",), ("h_n",), ("c_n",), ("h_n", "c_n")], ids="+".join)
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_partial_loss(backend, bidirectional, proj_size, loss_on, gen):
    """Backward when only some outputs get a gradient (the others' grads are None)."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, B, I), **state_leaves(gen, 2, bidirectional, proj_size, B)}
    check_lstm(backend, kwargs, leaves, dense_build(True), gen=gen, loss_on=loss_on)


# ---------------------------------------------------------------------------------------------
# LSTM: packed sequences
# ---------------------------------------------------------------------------------------------


def packed_build(lengths, batch_first, enforce_sorted, with_hx):
    def build(lv):
        packed = pack_padded_sequence(lv["x"], torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
        return packed, ((lv["h0"], lv["c0"]) if with_hx else None)
    return build


MIXED_LENGTHS = [7, 1, 4, 7, 2]  # unsorted, a length-1 sequence, a repeated maximum


@pytest.mark.parametrize("with_hx", [False, True], ids=_bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=_bool_ids("batch_first"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_packed(backend, enforce_sorted, num_layers, bidirectional, proj_size, batch_first, with_hx, gen):
    lengths = sorted(MIXED_LENGTHS, reverse=True) if enforce_sorted else MIXED_LENGTHS
    b, t = len(lengths), max(lengths)
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, *((b, t, I) if batch_first else (t, b, I)))}
    if with_hx:
        leaves.update(state_leaves(gen, num_layers, bidirectional, proj_size, b))
    res = check_lstm(backend, kwargs, leaves, packed_build(lengths, batch_first, enforce_sorted, with_hx), gen=gen)
    assert isinstance(res["out"], PackedSequence)
    # padding positions get no gradient
    grad = res["grad[x]"] if batch_first else res["grad[x]"].transpose(0, 1)
    for row, n in enumerate(lengths):
        assert torch.count_nonzero(grad[row, n:]) == 0


@pytest.mark.parametrize("lengths", [[1, 1, 1], [4], [3, 3, 3], [1], [5, 1], [2, 5, 1, 3]],
                         ids=lambda ls: "len" + "-".join(map(str, ls)))
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_packed_edge_lengths(backend, lengths, enforce_sorted, gen):
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    b, t = len(lengths), max(lengths)
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, proj_size=P)
    leaves = {"x": rnd(gen, t, b, I), **state_leaves(gen, 2, True, P, b)}
    check_lstm(backend, kwargs, leaves, packed_build(lengths, False, enforce_sorted, True), gen=gen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_packed_data_requires_grad(backend, gen):
    """The PackedSequence's .data itself is the leaf (as in PyTorch's module_db samples)."""
    base = torch.randn(5, 4, I, generator=gen, dtype=F64)
    packed = pack_padded_sequence(base, torch.tensor([5, 2, 4, 1]), enforce_sorted=False)
    leaves = {"data": packed.data.clone().requires_grad_()}

    def build(lv):
        return PackedSequence(lv["data"], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), None

    check_lstm(backend, dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True), leaves, build, gen=gen)


# ---------------------------------------------------------------------------------------------
# LSTM: unbatched input, empty batch, non-contiguous input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_hx", [False, True], ids=_bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=_bool_ids("batch_first"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_unbatched(backend, num_layers, bidirectional, proj_size, batch_first, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, I)}
    if with_hx:
        leaves.update(state_leaves(gen, num_layers, bidirectional, proj_size, None))
    res = check_lstm(backend, kwargs, leaves, dense_build(with_hx), gen=gen)
    d = 2 if bidirectional else 1
    assert res["out"].shape == (T, d * (proj_size or H))
    assert res["h_n"].shape == (num_layers * d, proj_size or H)
    assert res["c_n"].shape == (num_layers * d, H)


@pytest.mark.parametrize("with_hx", [False, True], ids=_bool_ids("hx"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_empty_batch(backend, bidirectional, proj_size, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, 0, I)}
    if with_hx:
        leaves.update(state_leaves(gen, 2, bidirectional, proj_size, 0))
    res = check_lstm(backend, kwargs, leaves, dense_build(with_hx), gen=gen)
    assert res["out"].shape == (T, 0, (2 if bidirectional else 1) * (proj_size or H))


def _noncontig(kind, lv, batch_first):
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


def _noncontig_leaf(kind, batch_first, gen):
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


@pytest.mark.parametrize("batch_first", [False, True], ids=_bool_ids("batch_first"))
@pytest.mark.parametrize("kind", ["transposed", "strided_time", "strided_feature", "expanded"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_noncontiguous_input(backend, proj_size, bidirectional, kind, batch_first, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    d = 2 if bidirectional else 1
    # states as transposed views too: [B, L*D, ...] -> [L*D, B, ...]
    leaves = {"x": _noncontig_leaf(kind, batch_first, gen),
              "h0": rnd(gen, B, 2 * d, proj_size or H), "c0": rnd(gen, B, 2 * d, H)}

    def build(lv):
        h0, c0 = lv["h0"].transpose(0, 1), lv["c0"].transpose(0, 1)
        assert not h0.is_contiguous() and not c0.is_contiguous()
        return _noncontig(kind, lv, batch_first), (h0, c0)

    check_lstm(backend, kwargs, leaves, build, gen=gen)


# ---------------------------------------------------------------------------------------------
# LSTM: frozen parameters, inputs that do not require grad
# ---------------------------------------------------------------------------------------------

FROZEN_CASES = {
    # name: (params to freeze (a predicate on the name), x requires grad, states require grad)
    "w_ih_l0+b_hh_l0": (lambda n: n in ("weight_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse"), True, True),
    "layer0": (lambda n: n.endswith("_l0") or n.endswith("_l0_reverse"), True, True),
    "layer1": (lambda n: "_l1" in n, True, True),
    "w_hr": (lambda n: n.startswith("weight_hr"), True, True),
    "biases": (lambda n: n.startswith("bias"), True, True),
    "all_params": (lambda n: True, True, True),
    "all_params_only_h0": (lambda n: True, False, "h0"),
    "input_no_grad": (lambda n: False, False, False),
    "nothing_requires_grad": (lambda n: True, False, False),
}


@pytest.mark.parametrize("case", list(FROZEN_CASES))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_frozen_params(backend, bidirectional, proj_size, case, gen):
    frozen, x_grad, state_grad = FROZEN_CASES[case]
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, B, I, requires_grad=x_grad), **state_leaves(gen, 2, bidirectional, proj_size, B)}
    leaves["h0"].requires_grad_(state_grad in (True, "h0"))
    leaves["c0"].requires_grad_(state_grad is True)

    def prepare(m):
        for name, p in m.named_parameters():
            p.requires_grad_(not frozen(name))

    res = check_lstm(backend, kwargs, leaves, dense_build(True), gen=gen, prepare=prepare)
    names = [n for n, _ in nn.LSTM(**kwargs).named_parameters()]
    for name in names:
        grad = res[f"param_grad[{name}]"]
        assert (grad is None) == frozen(name), f"{name}: frozen={frozen(name)} but grad is {grad}"
    assert (res["grad[x]"] is None) != x_grad
    if case == "nothing_requires_grad":
        assert not res["out"].requires_grad and not res["h_n"].requires_grad and not res["c_n"].requires_grad


# ---------------------------------------------------------------------------------------------
# LSTM: dtypes other than float64
# ---------------------------------------------------------------------------------------------

F32_SHAPES = {
    "L1-uni": dict(input_size=8, hidden_size=8, num_layers=1),
    "L2-bi-proj": dict(input_size=6, hidden_size=8, num_layers=2, bidirectional=True, proj_size=4),
    "L3-batch_first-nobias": dict(input_size=3, hidden_size=7, num_layers=3, batch_first=True, bias=False),
}


@pytest.mark.parametrize("shape", list(F32_SHAPES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_float32(backend, shape, gen):
    kwargs = F32_SHAPES[shape]
    bf = kwargs.get("batch_first", False)
    d = 2 if kwargs.get("bidirectional") else 1
    hs, ps, nl = kwargs["hidden_size"], kwargs.get("proj_size", 0), kwargs["num_layers"]
    leaves = {"x": rnd(gen, *((5, 7) if bf else (7, 5)), kwargs["input_size"], dtype=torch.float32),
              "h0": rnd(gen, nl * d, 5, ps or hs, dtype=torch.float32),
              "c0": rnd(gen, nl * d, 5, hs, dtype=torch.float32)}
    check_lstm(backend, kwargs, leaves, dense_build(True), gen=gen, dtype=torch.float32)


def _round_to(module, dtype):
    """Round module's parameters to `dtype` and back, in place (so float64 sees the same values)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).to(p.dtype))
    return module


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_bfloat16_vs_float64(backend, gen):
    """bfloat16 forward/backward vs float64 on the same (bf16-representable) weights and inputs."""
    kwargs = dict(input_size=8, hidden_size=8, num_layers=2, bidirectional=True, proj_size=4)
    ref = _round_to(nn.LSTM(**kwargs, dtype=F64), torch.bfloat16)
    ours = copy_weights(ref, lstm_ext.LSTM(**kwargs, backend=backend)).to(torch.bfloat16)
    leaves64 = {"x": rnd(gen, 5, 3, 8), "h0": rnd(gen, 4, 3, 4), "c0": rnd(gen, 4, 3, 8)}
    leaves64 = {k: v.detach().to(torch.bfloat16).to(F64).requires_grad_() for k, v in leaves64.items()}
    leaves16 = {k: v.detach().to(torch.bfloat16).requires_grad_() for k, v in leaves64.items()}
    expected = run_lstm(ref, leaves64, dense_build(True))
    actual = run_lstm(ours, leaves16, dense_build(True))
    for key in expected:
        assert actual[key].dtype == torch.bfloat16, f"{key}: {actual[key].dtype}"
        assert_close(actual[key].to(F64), expected[key], msg=lambda m, key=key: f"{key}: {m}", **tol(torch.bfloat16))


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_lstm_float16_cpu_falls_back(backend, gen):
    """float16 on CPU has no fused kernel: "auto" must still run (reference) and match float64."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2)
    ref = _round_to(nn.LSTM(**kwargs, dtype=F64), torch.float16)
    ours = copy_weights(ref, lstm_ext.LSTM(**kwargs, backend=backend)).to(torch.float16)
    leaves64 = {"x": rnd(gen, T, B, I).detach().to(torch.float16).to(F64).requires_grad_()}
    leaves16 = {"x": leaves64["x"].detach().to(torch.float16).requires_grad_()}
    expected = run_lstm(ref, leaves64, dense_build(False))
    actual = run_lstm(ours, leaves16, dense_build(False))
    for key in expected:
        assert_close(actual[key].to(F64), expected[key], msg=lambda m, key=key: f"{key}: {m}", **tol(torch.float16))


def test_lstm_fused_without_kernel_raises():
    """backend="fused" where no kernel exists (float16 on CPU): a RuntimeError, not a silent fallback."""
    with pytest.raises(RuntimeError, match=NO_KERNEL_MESSAGE):
        m = lstm_ext.LSTM(I, H, dtype=torch.float16, backend="fused")
        m(torch.randn(T, B, I, dtype=torch.float16))


@pytest.mark.skipif(FUSED_AVAILABLE, reason="only meaningful while the compiled kernels are missing")
def test_lstm_fused_unbuilt_raises():
    with pytest.raises(RuntimeError, match=NO_KERNEL_MESSAGE):
        m = lstm_ext.LSTM(I, H, dtype=F64, backend="fused")
        m(torch.randn(T, B, I, dtype=F64))


@pytest.mark.parametrize("cls", ["LSTM", "LSTMCell"])
def test_invalid_backend_raises(cls):
    with pytest.raises((ValueError, RuntimeError, TypeError)):
        getattr(lstm_ext, cls)(I, H, backend="cudnn")


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_lstm_auto_backend_matches_nn(dtype, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, proj_size=P)
    leaves = {"x": rnd(gen, T, B, I, dtype=dtype)}
    ref, ours = make_lstm_pair("auto", dtype=dtype, gen=gen, **kwargs)
    assert_same(run_lstm(ours, leaves, dense_build(False)), run_lstm(ref, leaves, dense_build(False)))


# ---------------------------------------------------------------------------------------------
# LSTM: dropout between layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dropout_eval_is_identity(backend, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=3, dropout=0.5, bidirectional=True)
    leaves = {"x": rnd(gen, T, B, I)}
    check_lstm(backend, kwargs, leaves, dense_build(False), gen=gen, prepare=lambda m: m.eval())
    # ...and equals a dropout-free model in training mode
    no_drop = dict(kwargs, dropout=0.0)
    ref, ours = make_lstm_pair(backend, gen=gen, **no_drop)
    dropped = copy_weights(ref, lstm_ext.LSTM(**kwargs, dtype=F64, backend=backend)).eval()
    assert_same(run_lstm(dropped, leaves, dense_build(False)), run_lstm(ours.train(), leaves, dense_build(False)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dropout_training(backend, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=3, dropout=0.5, bidirectional=True)
    _, ours = make_lstm_pair(backend, gen=gen, **kwargs)
    leaves = {"x": rnd(gen, T, B, I)}
    eval_res = run_lstm(ours.eval(), leaves, dense_build(False))
    ours.train()

    def seeded(seed):
        for p in ours.parameters():
            p.grad = None
        torch.manual_seed(seed)
        return run_lstm(ours, leaves, dense_build(False))

    a, a2, b = seeded(0), seeded(0), seeded(1)
    # training-mode dropout changes the output (of layers after the first)...
    assert not torch.allclose(a["out"], eval_res["out"]), "dropout=0.5 in training mode left the output unchanged"
    assert not torch.allclose(a["out"], b["out"]), "different seeds gave the same dropout masks"
    # ...is reproducible under torch.manual_seed, forward and backward, bitwise
    for key in a:
        assert (a[key] is None) == (a2[key] is None)
        if a[key] is not None:
            assert torch.equal(a[key], a2[key]), f"{key} differs between two runs with the same seed"
    # layer 0 sees no dropout: its final state matches eval mode
    torch.testing.assert_close(a["h_n"][:2], eval_res["h_n"][:2], **tol(F64))
    torch.testing.assert_close(a["c_n"][:2], eval_res["c_n"][:2], **tol(F64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dropout_single_layer_is_noop(backend, gen):
    """nn.LSTM applies dropout only between layers: with one layer training == eval."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=1, dropout=0.5)
    with pytest.warns(UserWarning):
        ref, ours = make_lstm_pair(backend, gen=gen, **kwargs)
    leaves = {"x": rnd(gen, T, B, I)}
    assert_same(run_lstm(ours.train(), leaves, dense_build(False)), run_lstm(ref.eval(), leaves, dense_build(False)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dropout_gradcheck(backend, gen):
    """Training-mode dropout: the backward uses the forward's masks (gradcheck with a fixed seed)."""
    kwargs = dict(input_size=3, hidden_size=3, num_layers=2, dropout=0.4, bidirectional=True)
    _, ours = make_lstm_pair(backend, gen=gen, **kwargs)
    ours.train()
    x = rnd(gen, 3, 2, 3)

    def f(x):
        torch.manual_seed(0)
        out, (h, c) = ours(x)
        return out, h, c

    assert torch.autograd.gradcheck(f, (x,), fast_mode=False)


# ---------------------------------------------------------------------------------------------
# LSTM: gradcheck (independent of nn.LSTM)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_gradcheck(backend, packed, gen):
    kwargs = dict(input_size=3, hidden_size=3, num_layers=2, bidirectional=True, proj_size=2)
    _, ours = make_lstm_pair(backend, gen=gen, **kwargs)
    names = [n for n, _ in ours.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in ours.parameters())
    x, h0, c0 = rnd(gen, 4, 3, 3), rnd(gen, 4, 3, 2), rnd(gen, 4, 3, 3)

    def f(x, h0, c0, *ps):
        inp = pack_padded_sequence(x, torch.tensor([2, 4, 1]), enforce_sorted=False) if packed else x
        out, (h, c) = torch.func.functional_call(ours, dict(zip(names, ps)), (inp, (h0, c0)))
        return (out.data if packed else out), h, c

    assert torch.autograd.gradcheck(f, (x, h0, c0, *params), fast_mode=True)


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
    kwargs = dict(input_size=I, hidden_size=H, **CONFIGS[config])
    torch.manual_seed(123)
    ref = nn.LSTM(**kwargs)
    torch.manual_seed(123)
    ours = lstm_ext.LSTM(**kwargs, backend=backend)
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    ref_params = list(ref.named_parameters())
    our_params = list(ours.named_parameters())
    assert [n for n, _ in our_params] == [n for n, _ in ref_params]
    for (name, p), (_, q) in zip(our_params, ref_params):
        assert isinstance(p, nn.Parameter)
        assert p.shape == q.shape and p.dtype == q.dtype, name
        # same init: uniform(-1/sqrt(H), 1/sqrt(H)), drawn in nn's order
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"{name}: init differs from nn.LSTM under the same seed")
    assert list(ours.state_dict()) == list(ref.state_dict())
    # state dicts load both ways
    nn.LSTM(**kwargs).load_state_dict(ours.state_dict())
    lstm_ext.LSTM(**kwargs, backend=backend).load_state_dict(ref.state_dict())
    assert repr(ours).startswith(repr(ref)[:-1]), f"{repr(ours)!r} vs nn's {repr(ref)!r}"


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
    args = _bad_lstm_inputs()[case]
    ref = nn.LSTM(I, H)
    ours = copy_weights(ref, lstm_ext.LSTM(I, H, backend=backend))
    with pytest.raises(Exception) as expected:
        ref(*args)
    with pytest.raises(expected.type):
        ours(*args)


# ---------------------------------------------------------------------------------------------
# LSTMCell
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False], ids=_bool_ids("bias"))
@pytest.mark.parametrize("with_hx", [False, True], ids=_bool_ids("hx"))
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell(backend, batched, with_hx, bias, gen):
    shape = (B,) if batched else ()
    leaves = {"x": rnd(gen, *shape, I)}
    if with_hx:
        leaves.update(h0=rnd(gen, *shape, H), c0=rnd(gen, *shape, H))
    res = check_cell(backend, dict(input_size=I, hidden_size=H, bias=bias), leaves,
                     lambda lv: (lv["x"], (lv["h0"], lv["c0"]) if with_hx else None), gen=gen)
    assert res["h"].shape == (*shape, H) and res["c"].shape == (*shape, H)


@pytest.mark.parametrize("loss_on", [("h",), ("c",)], ids="+".join)
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_partial_loss(backend, loss_on, gen):
    leaves = {"x": rnd(gen, B, I), "h0": rnd(gen, B, H), "c0": rnd(gen, B, H)}
    check_cell(backend, dict(input_size=I, hidden_size=H), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])),
               gen=gen, loss_on=loss_on)


@pytest.mark.parametrize("sizes", [(1, 1), (8, 2), (2, 8)], ids=lambda s: f"I{s[0]}H{s[1]}")
@pytest.mark.parametrize("batch", [0, 1, 5], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_shapes(backend, batch, sizes, gen):
    i, h = sizes
    leaves = {"x": rnd(gen, batch, i), "h0": rnd(gen, batch, h), "c0": rnd(gen, batch, h)}
    check_cell(backend, dict(input_size=i, hidden_size=h), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])), gen=gen)


@pytest.mark.parametrize("kind", ["transposed", "strided_feature", "expanded"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_noncontiguous(backend, kind, gen):
    if kind == "transposed":
        leaves = {"x": rnd(gen, I, B), "h0": rnd(gen, H, B), "c0": rnd(gen, H, B)}
        view = lambda t: t.t()  # noqa: E731
    elif kind == "strided_feature":
        leaves = {"x": rnd(gen, B, 2 * I), "h0": rnd(gen, B, 2 * H), "c0": rnd(gen, B, 2 * H)}
        view = lambda t: t[:, ::2]  # noqa: E731
    else:
        leaves = {"x": rnd(gen, 1, I), "h0": rnd(gen, 1, H), "c0": rnd(gen, 1, H)}
        view = lambda t: t.expand(B, -1)  # noqa: E731

    def build(lv):
        x, h0, c0 = view(lv["x"]), view(lv["h0"]), view(lv["c0"])
        assert not x.is_contiguous() and not h0.is_contiguous()
        return x, (h0, c0)

    check_cell(backend, dict(input_size=I, hidden_size=H), leaves, build, gen=gen)


@pytest.mark.parametrize("frozen", ["weight_ih", "weight_hh+bias_ih", "all", "input_no_grad"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_frozen_params(backend, frozen, gen):
    names = {"weight_ih": {"weight_ih"}, "weight_hh+bias_ih": {"weight_hh", "bias_ih"},
             "all": {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}, "input_no_grad": set()}[frozen]
    leaves = {"x": rnd(gen, B, I, requires_grad=frozen != "input_no_grad"), "h0": rnd(gen, B, H), "c0": rnd(gen, B, H)}

    def prepare(m):
        for n, p in m.named_parameters():
            p.requires_grad_(n not in names)

    res = check_cell(backend, dict(input_size=I, hidden_size=H), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])),
                     gen=gen, prepare=prepare)
    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert (res[f"param_grad[{n}]"] is None) == (n in names), n


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_float32(backend, gen):
    f32 = torch.float32
    leaves = {"x": rnd(gen, 5, 8, dtype=f32), "h0": rnd(gen, 5, 8, dtype=f32), "c0": rnd(gen, 5, 8, dtype=f32)}
    check_cell(backend, dict(input_size=8, hidden_size=8), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])),
               gen=gen, dtype=f32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_bfloat16_vs_float64(backend, gen):
    ref = _round_to(nn.LSTMCell(8, 8, dtype=F64), torch.bfloat16)
    ours = copy_weights(ref, lstm_ext.LSTMCell(8, 8, backend=backend)).to(torch.bfloat16)
    leaves64 = {k: rnd(gen, 5, 8).detach().to(torch.bfloat16).to(F64).requires_grad_() for k in ("x", "h0", "c0")}
    leaves16 = {k: v.detach().to(torch.bfloat16).requires_grad_() for k, v in leaves64.items()}
    build = lambda lv: (lv["x"], (lv["h0"], lv["c0"]))  # noqa: E731
    expected, actual = run_cell(ref, leaves64, build), run_cell(ours, leaves16, build)
    for key in expected:
        assert actual[key].dtype == torch.bfloat16, f"{key}: {actual[key].dtype}"
        assert_close(actual[key].to(F64), expected[key], msg=lambda m, key=key: f"{key}: {m}", **tol(torch.bfloat16))


def test_cell_fused_without_kernel_raises():
    with pytest.raises(RuntimeError, match=NO_KERNEL_MESSAGE):
        m = lstm_ext.LSTMCell(I, H, dtype=torch.float16, backend="fused")
        m(torch.randn(B, I, dtype=torch.float16))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_gradcheck(backend, gen):
    _, ours = make_cell_pair(backend, gen=gen, input_size=3, hidden_size=4)
    names = [n for n, _ in ours.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in ours.parameters())

    def f(x, h0, c0, *ps):
        return torch.func.functional_call(ours, dict(zip(names, ps)), (x, (h0, c0)))

    assert torch.autograd.gradcheck(f, (rnd(gen, 2, 3), rnd(gen, 2, 4), rnd(gen, 2, 4), *params), fast_mode=True)


@pytest.mark.parametrize("bias", [True, False], ids=_bool_ids("bias"))
@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_cell_module_contract(backend, bias):
    torch.manual_seed(7)
    ref = nn.LSTMCell(I, H, bias=bias)
    torch.manual_seed(7)
    ours = lstm_ext.LSTMCell(I, H, bias=bias, backend=backend)
    for attr in ("input_size", "hidden_size", "bias"):
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=f"{name}: init differs from nn.LSTMCell under the same seed")
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert repr(ours).startswith(repr(ref)[:-1]), f"{repr(ours)!r} vs nn's {repr(ref)!r}"


def _bad_cell_inputs():
    return {
        "wrong_input_size": (torch.randn(B, I + 1),),
        "3d_input": (torch.randn(1, B, I),),
        "hx_wrong_batch": (torch.randn(B, I), (torch.randn(B + 1, H), torch.randn(B + 1, H))),
        "hx_wrong_hidden": (torch.randn(B, I), (torch.randn(B, H + 1), torch.randn(B, H + 1))),
        "unbatched_input_batched_hx": (torch.randn(I), (torch.randn(B, H), torch.randn(B, H))),
    }


@pytest.mark.parametrize("case", list(_bad_cell_inputs()))
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_bad_inputs_raise_like_nn(backend, case):
    args = _bad_cell_inputs()[case]
    ref = nn.LSTMCell(I, H)
    ours = copy_weights(ref, lstm_ext.LSTMCell(I, H, backend=backend))
    with pytest.raises(Exception) as expected:
        ref(*args)
    with pytest.raises(expected.type):
        ours(*args)


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
    leaves = {"x": rnd(gen, T, B, I), **state_leaves(gen, 2, True, P, B)}

    def prepare(m):
        forward = m.forward

        def flat(inp, h0, c0):
            out, (h, c) = forward(inp, (h0, c0))
            return out, h, c

        def checkpointed(inp, hx):
            out, h, c = checkpoint(flat, inp, *hx, use_reentrant=use_reentrant)
            return out, (h, c)

        m.forward = checkpointed

    res = check_lstm(backend, kwargs, leaves, dense_build(True), gen=gen, prepare=prepare)
    assert all(res[k] is not None for k in ("grad[x]", "grad[h0]", "grad[c0]", "param_grad[weight_hh_l1]"))
