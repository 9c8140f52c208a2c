"""Parity of lstm_ext.LSTM with torch.nn.LSTM.

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
from conftest import BACKENDS, FUSED_AVAILABLE, copy_weights, make_lstm_pair
from module_parity import (F64, MIXED_LENGTHS, NO_KERNEL_MESSAGE, B, H, I, P, T, assert_same, bool_ids, check_lstm,
                           lstm_dense_build, lstm_packed_build, lstm_state_leaves, noncontig, noncontig_leaf, rnd,
                           round_to, run_lstm, check_bfloat16_vs_float64)
from tolerances import assert_close, tol


# ---------------------------------------------------------------------------------------------
# LSTM: dense 3-D input, the full grid
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("bias", [True, False], ids=bool_ids("bias"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dense(backend, num_layers, bidirectional, proj_size, bias, batch_first, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, bias=bias, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, *((B, T, I) if batch_first else (T, B, I)))}
    if with_hx:
        leaves.update(lstm_state_leaves(gen, num_layers, bidirectional, proj_size, B))
    res = check_lstm(backend, kwargs, leaves, lstm_dense_build(with_hx), gen=gen)
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
    check_lstm(backend, kwargs, leaves, lstm_dense_build(True), gen=gen)


@pytest.mark.parametrize("loss_on", [("output",), ("h_n",), ("c_n",), ("h_n", "c_n")], ids="+".join)
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_partial_loss(backend, bidirectional, proj_size, loss_on, gen):
    """Backward when only some outputs get a gradient (the others' grads are None)."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, B, I), **lstm_state_leaves(gen, 2, bidirectional, proj_size, B)}
    check_lstm(backend, kwargs, leaves, lstm_dense_build(True), gen=gen, loss_on=loss_on)


# ---------------------------------------------------------------------------------------------
# LSTM: packed sequences
# ---------------------------------------------------------------------------------------------



@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
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
        leaves.update(lstm_state_leaves(gen, num_layers, bidirectional, proj_size, b))
    res = check_lstm(backend, kwargs, leaves, lstm_packed_build(lengths, batch_first, enforce_sorted, with_hx), gen=gen)
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
    leaves = {"x": rnd(gen, t, b, I), **lstm_state_leaves(gen, 2, True, P, b)}
    check_lstm(backend, kwargs, leaves, lstm_packed_build(lengths, False, enforce_sorted, True), gen=gen)


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


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_unbatched(backend, num_layers, bidirectional, proj_size, batch_first, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, I)}
    if with_hx:
        leaves.update(lstm_state_leaves(gen, num_layers, bidirectional, proj_size, None))
    res = check_lstm(backend, kwargs, leaves, lstm_dense_build(with_hx), gen=gen)
    d = 2 if bidirectional else 1
    assert res["out"].shape == (T, d * (proj_size or H))
    assert res["h_n"].shape == (num_layers * d, proj_size or H)
    assert res["c_n"].shape == (num_layers * d, H)


@pytest.mark.parametrize("with_hx", [False, True], ids=bool_ids("hx"))
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_empty_batch(backend, bidirectional, proj_size, with_hx, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional, proj_size=proj_size)
    leaves = {"x": rnd(gen, T, 0, I)}
    if with_hx:
        leaves.update(lstm_state_leaves(gen, 2, bidirectional, proj_size, 0))
    res = check_lstm(backend, kwargs, leaves, lstm_dense_build(with_hx), gen=gen)
    assert res["out"].shape == (T, 0, (2 if bidirectional else 1) * (proj_size or H))



@pytest.mark.parametrize("batch_first", [False, True], ids=bool_ids("batch_first"))
@pytest.mark.parametrize("kind", ["transposed", "strided_time", "strided_feature", "expanded"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("proj_size", [0, P], ids=lambda p: f"proj{p}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_noncontiguous_input(backend, proj_size, bidirectional, kind, batch_first, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    d = 2 if bidirectional else 1
    # states as transposed views too: [B, L*D, ...] -> [L*D, B, ...]
    leaves = {"x": noncontig_leaf(kind, batch_first, gen),
              "h0": rnd(gen, B, 2 * d, proj_size or H), "c0": rnd(gen, B, 2 * d, H)}

    def build(lv):
        h0, c0 = lv["h0"].transpose(0, 1), lv["c0"].transpose(0, 1)
        assert not h0.is_contiguous() and not c0.is_contiguous()
        return noncontig(kind, lv, batch_first), (h0, c0)

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
    leaves = {"x": rnd(gen, T, B, I, requires_grad=x_grad), **lstm_state_leaves(gen, 2, bidirectional, proj_size, B)}
    leaves["h0"].requires_grad_(state_grad in (True, "h0"))
    leaves["c0"].requires_grad_(state_grad is True)

    def prepare(m):
        for name, p in m.named_parameters():
            p.requires_grad_(not frozen(name))

    res = check_lstm(backend, kwargs, leaves, lstm_dense_build(True), gen=gen, prepare=prepare)
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
    check_lstm(backend, kwargs, leaves, lstm_dense_build(True), gen=gen, dtype=torch.float32)



@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_bfloat16_vs_float64(backend, gen):
    """bfloat16 forward/backward vs float64 on the same (bf16-representable) weights and inputs."""
    kwargs = dict(input_size=8, hidden_size=8, num_layers=2, bidirectional=True, proj_size=4)
    ref = round_to(nn.LSTM(**kwargs, dtype=F64), torch.bfloat16)
    ours = copy_weights(ref, lstm_ext.LSTM(**kwargs, backend=backend)).to(torch.bfloat16)
    leaves = {"x": rnd(gen, 5, 3, 8), "h0": rnd(gen, 4, 3, 4), "c0": rnd(gen, 4, 3, 8)}
    check_bfloat16_vs_float64(run_lstm, ref, ours, leaves, lstm_dense_build(True))


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_lstm_float16_cpu_falls_back(backend, gen):
    """float16 on CPU has no fused kernel: "auto" must still run (reference) and match float64."""
    kwargs = dict(input_size=I, hidden_size=H, num_layers=2)
    ref = round_to(nn.LSTM(**kwargs, dtype=F64), torch.float16)
    ours = copy_weights(ref, lstm_ext.LSTM(**kwargs, backend=backend)).to(torch.float16)
    leaves64 = {"x": rnd(gen, T, B, I).detach().to(torch.float16).to(F64).requires_grad_()}
    leaves16 = {"x": leaves64["x"].detach().to(torch.float16).requires_grad_()}
    expected = run_lstm(ref, leaves64, lstm_dense_build(False))
    actual = run_lstm(ours, leaves16, lstm_dense_build(False))
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
    assert_same(run_lstm(ours, leaves, lstm_dense_build(False)), run_lstm(ref, leaves, lstm_dense_build(False)))


# ---------------------------------------------------------------------------------------------
# LSTM: dropout between layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dropout_eval_is_identity(backend, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=3, dropout=0.5, bidirectional=True)
    leaves = {"x": rnd(gen, T, B, I)}
    check_lstm(backend, kwargs, leaves, lstm_dense_build(False), gen=gen, prepare=lambda m: m.eval())
    # ...and equals a dropout-free model in training mode
    no_drop = dict(kwargs, dropout=0.0)
    ref, ours = make_lstm_pair(backend, gen=gen, **no_drop)
    dropped = copy_weights(ref, lstm_ext.LSTM(**kwargs, dtype=F64, backend=backend)).eval()
    assert_same(run_lstm(dropped, leaves, lstm_dense_build(False)), run_lstm(ours.train(), leaves, lstm_dense_build(False)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_dropout_training(backend, gen):
    kwargs = dict(input_size=I, hidden_size=H, num_layers=3, dropout=0.5, bidirectional=True)
    _, ours = make_lstm_pair(backend, gen=gen, **kwargs)
    leaves = {"x": rnd(gen, T, B, I)}
    eval_res = run_lstm(ours.eval(), leaves, lstm_dense_build(False))
    ours.train()

    def seeded(seed):
        for p in ours.parameters():
            p.grad = None
        torch.manual_seed(seed)
        return run_lstm(ours, leaves, lstm_dense_build(False))

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
    assert_same(run_lstm(ours.train(), leaves, lstm_dense_build(False)), run_lstm(ref.eval(), leaves, lstm_dense_build(False)))


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
