"""Parity of lstm_ext.GRU / lstm_ext.GRUCell with torch.nn.GRU / torch.nn.GRUCell.

Every case runs once per backend ("fused", "reference"): outputs, final states and the
gradients of the input, h0 and every parameter against nn's module with the same weights; for
"fused" also against backend="reference". Grids are float64; a few float32 / bfloat16 cases use
their own tolerances from tests/tolerances.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstm_ext
from conftest import BACKENDS, copy_weights, make_pair
from module_parity import (cell_grid, MIXED_LENGTHS, assert_same, bool_ids, check_against_nn, check_bfloat16_vs_float64, noncontig,
                           rnd, round_to, run_gru, run_gru_cell)
from tolerances import assert_close

F64 = torch.float64
I, H, T, B = 4, 5, 6, 3


def _init_from(gen, module):
    """nn's initialisation, uniform(-1/sqrt(H), 1/sqrt(H)), drawn from the test's generator (not
    the global RNG, so that a test's values do not depend on the tests that ran before it)."""
    bound = module.hidden_size ** -0.5
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=F64).mul_(2 * bound).sub_(bound))
    return module


def check_gru(backend, kwargs, leaves, build, **kw):
    return check_against_nn(nn.GRU, lstm_ext.GRU, run_gru, backend, kwargs, leaves, build, **kw)


def check_cell(backend, kwargs, leaves, build, **kw):
    return check_against_nn(nn.GRUCell, lstm_ext.GRUCell, run_gru_cell, backend, kwargs, leaves, build, **kw)


def state_leaf(gen, num_layers, bidirectional, batch, dtype=F64):
    d = 2 if bidirectional else 1
    shape = (num_layers * d,) if batch is None else (num_layers * d, batch)
    return {"h0": rnd(gen, *shape, H, dtype=dtype)}


def dense_build(with_hx):
    return lambda lv: (lv["x"], lv["h0"] if with_hx else None)


def packed_build(lengths, batch_first, enforce_sorted, with_hx):
    def build(lv):
        packed = pack_padded_sequence(lv["x"], torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=enforce_sorted)
        return packed, (lv["h0"] if with_hx else None)
    return build


# ---------------------------------------------------------------------------------------------
# GRU: dense, packed, unbatched, empty, non-contiguous
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("bias", [True, False], ids=bool_ids("bias"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_dense(backend, num_layers, bidirectional, bias, batch_first, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                  bidirectional=bidirectional)
    leaves = {"x": rnd(gen, *((B, T, I) if batch_first else (T, B, I)))}
    if with_hx:
        leaves.update(state_leaf(gen, num_layers, bidirectional, B))
    res = check_gru(backend, kwargs, leaves, dense_build(with_hx), gen=gen)
    d = 2 if bidirectional else 1
    assert res["out"].shape == ((B, T, d * H) if batch_first else (T, B, d * H))
    assert res["h_n"].shape == (num_layers * d, B, H)


@pytest.mark.parametrize("seq_len", [1, 7], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("sizes", [(1, 1), (8, 2), (2, 8), (3, 33)], ids=lambda s: f"I{s[0]}H{s[1]}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_shapes(backend, sizes, seq_len, gen):
    """Odd sizes: hidden 1, input 1, input > hidden and the reverse, a partial SIMD vector, T=1."""
    i, h = sizes
    kwargs = dict(input_size=i, hidden_size=h, num_layers=2, bidirectional=True)
    leaves = {"x": rnd(gen, seq_len, 5, i), "h0": rnd(gen, 4, 5, h)}
    check_gru(backend, kwargs, leaves, dense_build(True), gen=gen)


@pytest.mark.parametrize("loss_on", [("output",), ("h_n",)], ids="+".join)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_partial_loss(backend, bidirectional, loss_on, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional)
    leaves = {"x": rnd(gen, T, B, I), **state_leaf(gen, 2, bidirectional, B)}
    check_gru(backend, kwargs, leaves, dense_build(True), gen=gen, loss_on=loss_on)


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_packed(backend, enforce_sorted, num_layers, bidirectional, batch_first, with_hx, gen):
    lengths = sorted(MIXED_LENGTHS, reverse=True) if enforce_sorted else MIXED_LENGTHS
    b, t = len(lengths), max(lengths)
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                  bidirectional=bidirectional)
    leaves = {"x": rnd(gen, *((b, t, I) if batch_first else (t, b, I)))}
    if with_hx:
        leaves.update(state_leaf(gen, num_layers, bidirectional, b))
    res = check_gru(backend, kwargs, leaves, packed_build(lengths, batch_first, enforce_sorted, with_hx), gen=gen)
    assert isinstance(res["out"], PackedSequence)
    grad = res["grad[x]"] if batch_first else res["grad[x]"].transpose(0, 1)
    for row, n in enumerate(lengths):  # padding gets no gradient
        assert torch.count_nonzero(grad[row, n:]) == 0


@pytest.mark.parametrize("lengths", [[1, 1, 1], [4], [3, 3, 3], [5, 1], [2, 5, 1, 3]],
                         ids=lambda ls: "len" + "-".join(map(str, ls)))
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_packed_edge_lengths(backend, lengths, gen):
    b, t = len(lengths), max(lengths)
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    leaves = {"x": rnd(gen, t, b, I), **state_leaf(gen, 2, True, b)}
    check_gru(backend, kwargs, leaves, packed_build(lengths, False, False, True), gen=gen)


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_unbatched(backend, bidirectional, batch_first, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
    leaves = {"x": rnd(gen, T, I)}
    if with_hx:
        leaves.update(state_leaf(gen, 2, bidirectional, None))
    res = check_gru(backend, kwargs, leaves, dense_build(with_hx), gen=gen)
    d = 2 if bidirectional else 1
    assert res["out"].shape == (T, d * H) and res["h_n"].shape == (2 * d, H)


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_empty_batch(backend, bidirectional, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional)
    leaves = {"x": rnd(gen, T, 0, I)}
    if with_hx:
        leaves.update(state_leaf(gen, 2, bidirectional, 0))
    res = check_gru(backend, kwargs, leaves, dense_build(with_hx), gen=gen)
    assert res["out"].shape == (T, 0, (2 if bidirectional else 1) * H)


@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("kind", ["transposed", "strided_time", "strided_feature", "expanded"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_noncontiguous_input(backend, kind, batch_first, gen):
    logical = (B, T, I) if batch_first else (T, B, I)
    if kind == "transposed":
        leaf = rnd(gen, logical[1], logical[0], I)
    elif kind == "strided_time":
        leaf = rnd(gen, *((B, 2 * T, I) if batch_first else (2 * T, B, I)))
    elif kind == "strided_feature":
        leaf = rnd(gen, *logical[:2], 2 * I)
    else:
        leaf = rnd(gen, *((1, T, I) if batch_first else (T, 1, I)))
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, batch_first=batch_first)
    check_gru(backend, kwargs, {"x": leaf}, lambda lv: (noncontig(kind, lv, batch_first), None), gen=gen)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_frozen_parameters(backend, gen):
    """Only some tensors need gradients: the others get None, the rest match nn.GRU."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    ref, ours = make_pair(nn.GRU, lstm_ext.GRU, backend, gen=gen, **kwargs)
    for m in (ref, ours):
        m.weight_ih_l0.requires_grad_(False)
        m.bias_hh_l1_reverse.requires_grad_(False)
    leaves = {"x": rnd(gen, T, B, I, requires_grad=False), **state_leaf(gen, 2, True, B)}
    assert_same(run_gru(ours, leaves, dense_build(True)), run_gru(ref, leaves, dense_build(True)))


# ---------------------------------------------------------------------------------------------
# GRU: other dtypes, backends, dropout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_float32(backend, packed, gen):
    kwargs = dict(input_size=16, hidden_size=37, num_layers=2, bidirectional=True)
    lengths = [9, 3, 6, 9]
    leaves = {"x": rnd(gen, 9, 4, 16, dtype=torch.float32), **state_leaf(gen, 2, True, 4, dtype=torch.float32)}
    leaves["h0"] = rnd(gen, 4, 4, 37, dtype=torch.float32)
    build = packed_build(lengths, False, False, True) if packed else dense_build(True)
    check_gru(backend, kwargs, leaves, build, gen=gen, dtype=torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_bfloat16_vs_float64(backend, gen):
    """bfloat16 forward/backward vs float64 on the same (bf16-representable) weights and inputs,
    as the LSTM's test does."""
    kwargs = dict(input_size=8, hidden_size=8, num_layers=2, bidirectional=True)
    ref = round_to(_init_from(gen, nn.GRU(**kwargs, dtype=F64)), torch.bfloat16)
    ours = copy_weights(ref, lstm_ext.GRU(**kwargs, backend=backend)).to(torch.bfloat16)
    check_bfloat16_vs_float64(run_gru, ref, ours, {"x": rnd(gen, 5, 3, 8), "h0": rnd(gen, 4, 3, 8)}, dense_build(True))


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_gru_float16_cpu_falls_back(backend, gen):
    """No fused float16 CPU kernel: "auto" takes the reference, which matches nn.GRU."""
    ref, ours = make_pair(nn.GRU, lstm_ext.GRU, backend, dtype=torch.float16, gen=gen, input_size=I, hidden_size=H)
    x = torch.randn(T, B, I, generator=gen).half()
    assert_close(ours(x)[0], ref(x)[0])


def test_gru_fused_without_kernel_raises():
    gru = lstm_ext.GRU(I, H, dtype=torch.float16, backend="fused")
    with pytest.raises(RuntimeError, match=r"(?i)lstm_ext.*no fused kernel"):
        gru(torch.randn(T, B, I).half())
    cell = lstm_ext.GRUCell(I, H, dtype=torch.float16, backend="fused")
    with pytest.raises(RuntimeError, match=r"(?i)lstm_ext.*no fused kernel"):
        cell(torch.randn(B, I).half())


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
def test_gru_auto_backend_is_fused_and_matches_nn(dtype, gen):
    ref, ours = make_pair(nn.GRU, lstm_ext.GRU, "auto", dtype=dtype, gen=gen, input_size=I, hidden_size=H)
    x = torch.randn(T, B, I, generator=gen, dtype=dtype)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        actual = ours(x)[0]
    assert_close(actual, ref(x)[0])
    assert "lstm_ext::gru_layer" in {e.name for e in prof.events()}, "backend='auto' did not run the fused kernel"


@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_dropout(backend, gen):
    """Dropout between layers in training (as nn.GRU: same RNG draws), identity in eval."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=3, dropout=0.5)
    ref, ours = make_pair(nn.GRU, lstm_ext.GRU, backend, gen=gen, **kwargs)
    x = torch.randn(T, B, I, generator=gen, dtype=F64)
    ref.eval()
    ours.eval()
    assert_close(ours(x)[0], ref(x)[0])
    ours.train()
    torch.manual_seed(0)
    a = ours(x)[0]
    torch.manual_seed(0)
    b = ours(x)[0]
    torch.manual_seed(1)
    c = ours(x)[0]
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not torch.allclose(a, ref(x)[0])  # dropout did something


@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gru_gradcheck(backend, packed, gen):
    kwargs = dict(input_size=3, hidden_size=3, num_layers=2, bidirectional=True)
    _, ours = make_pair(nn.GRU, lstm_ext.GRU, backend, gen=gen, **kwargs)
    names = [n for n, _ in ours.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in ours.parameters())
    x, h0 = rnd(gen, 4, 3, 3), rnd(gen, 4, 3, 3)

    def f(x, h0, *ps):
        inp = pack_padded_sequence(x, torch.tensor([2, 4, 1]), enforce_sorted=False) if packed else x
        out, h = torch.func.functional_call(ours, dict(zip(names, ps)), (inp, h0))
        return (out.data if packed else out), h

    assert torch.autograd.gradcheck(f, (x, h0, *params), fast_mode=True)


# ---------------------------------------------------------------------------------------------
# GRUCell
# ---------------------------------------------------------------------------------------------


@cell_grid
def test_cell(backend, batched, with_hx, bias, gen):
    shape = (B,) if batched else ()
    leaves = {"x": rnd(gen, *shape, I)}
    if with_hx:
        leaves["h0"] = rnd(gen, *shape, H)
    res = check_cell(backend, dict(input_size=I, hidden_size=H, bias=bias), leaves, dense_build(with_hx), gen=gen)
    assert res["h"].shape == (*shape, H)


@pytest.mark.parametrize("sizes", [(1, 1), (8, 2), (2, 8), (3, 33)], ids=lambda s: f"I{s[0]}H{s[1]}")
@pytest.mark.parametrize("batch", [0, 1, 5], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_shapes(backend, batch, sizes, gen):
    i, h = sizes
    leaves = {"x": rnd(gen, batch, i), "h0": rnd(gen, batch, h)}
    check_cell(backend, dict(input_size=i, hidden_size=h), leaves, dense_build(True), gen=gen)


@pytest.mark.parametrize("kind", ["transposed", "strided_feature", "expanded"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_noncontiguous(backend, kind, gen):
    leaf = {"transposed": (I, B), "strided_feature": (B, 2 * I), "expanded": (1, I)}[kind]
    view = {
        "transposed": lambda x: x.t(),
        "strided_feature": lambda x: x[:, ::2],
        "expanded": lambda x: x.expand(B, -1),
    }[kind]
    leaves = {"x": rnd(gen, *leaf), "h0": rnd(gen, H, B)}
    check_cell(backend, dict(input_size=I, hidden_size=H), leaves, lambda lv: (view(lv["x"]), lv["h0"].t()), gen=gen)


@pytest.mark.parametrize("frozen", ["weight_ih", "weight_hh+bias_ih", "all"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_frozen_params(backend, frozen, gen):
    ref, ours = make_pair(nn.GRUCell, lstm_ext.GRUCell, backend, gen=gen, input_size=I, hidden_size=H)
    names = [n for n, _ in ref.named_parameters()] if frozen == "all" else frozen.split("+")
    for m in (ref, ours):
        for name in names:
            getattr(m, name).requires_grad_(False)
    leaves = {"x": rnd(gen, B, I), "h0": rnd(gen, B, H)}
    assert_same(run_gru_cell(ours, leaves, dense_build(True)), run_gru_cell(ref, leaves, dense_build(True)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_float32(backend, gen):
    leaves = {"x": rnd(gen, 7, 19, dtype=torch.float32), "h0": rnd(gen, 7, 41, dtype=torch.float32)}
    check_cell(backend, dict(input_size=19, hidden_size=41), leaves, dense_build(True), gen=gen, dtype=torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_bfloat16_vs_float64(backend, gen):
    ref = round_to(_init_from(gen, nn.GRUCell(8, 16, dtype=F64)), torch.bfloat16)
    ours = copy_weights(ref, lstm_ext.GRUCell(8, 16, backend=backend)).to(torch.bfloat16)
    check_bfloat16_vs_float64(run_gru_cell, ref, ours, {"x": rnd(gen, 4, 8), "h0": rnd(gen, 4, 16)}, dense_build(True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_mixed_dtypes(backend, gen):
    """A float64 hx with float32 weights: the same outcome as nn.GRUCell (its error, or its result)."""
    ref, ours = make_pair(nn.GRUCell, lstm_ext.GRUCell, backend, dtype=torch.float32, gen=gen,
                          input_size=I, hidden_size=H)
    x, h = torch.randn(B, I), torch.randn(B, H, dtype=F64)
    try:
        expected = ref(x, h)
    except RuntimeError as error:
        with pytest.raises(RuntimeError, match=str(error).split(",")[0]):
            ours(x, h)
        return
    assert_close(ours(x, h), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_gradcheck(backend, gen):
    _, ours = make_pair(nn.GRUCell, lstm_ext.GRUCell, backend, gen=gen, input_size=3, hidden_size=4)
    names = [n for n, _ in ours.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in ours.parameters())

    def f(x, h, *ps):
        return torch.func.functional_call(ours, dict(zip(names, ps)), (x, h))

    assert torch.autograd.gradcheck(f, (rnd(gen, 2, 3), rnd(gen, 2, 4), *params), fast_mode=True)
