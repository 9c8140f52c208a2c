"""Parity of lstm_ext.LSTMCell with torch.nn.LSTMCell: outputs and every gradient against nn's
cell with the same weights (and, for backend="fused", against backend="reference"), its
shapes, layouts, frozen parameters, dtypes, gradcheck, module contract and bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import lstm_ext
from conftest import BACKENDS, copy_weights, make_cell_pair
from module_plumbing import assert_same_contract, call_raises_like_nn
from module_parity import (cell_grid, F64, NO_KERNEL_MESSAGE, B, H, I, bool_ids, check_bfloat16_vs_float64, check_lstm_cell, rnd,
                           round_to, run_lstm_cell)


# ---------------------------------------------------------------------------------------------
# LSTMCell
# ---------------------------------------------------------------------------------------------


@cell_grid
def test_cell(backend, batched, with_hx, bias, gen):
    shape = (B,) if batched else ()
    leaves = {"x": rnd(gen, *shape, I)}
    if with_hx:
        leaves.update(h0=rnd(gen, *shape, H), c0=rnd(gen, *shape, H))
    res = check_lstm_cell(backend, dict(input_size=I, hidden_size=H, bias=bias), leaves,
                     lambda lv: (lv["x"], (lv["h0"], lv["c0"]) if with_hx else None), gen=gen)
    assert res["h"].shape == (*shape, H) and res["c"].shape == (*shape, H)


@pytest.mark.parametrize("loss_on", [("h",), ("c",)], ids="+".join)
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_partial_loss(backend, loss_on, gen):
    leaves = {"x": rnd(gen, B, I), "h0": rnd(gen, B, H), "c0": rnd(gen, B, H)}
    check_lstm_cell(backend, dict(input_size=I, hidden_size=H), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])),
               gen=gen, loss_on=loss_on)


@pytest.mark.parametrize("sizes", [(1, 1), (8, 2), (2, 8)], ids=lambda s: f"I{s[0]}H{s[1]}")
@pytest.mark.parametrize("batch", [0, 1, 5], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_shapes(backend, batch, sizes, gen):
    i, h = sizes
    leaves = {"x": rnd(gen, batch, i), "h0": rnd(gen, batch, h), "c0": rnd(gen, batch, h)}
    check_lstm_cell(backend, dict(input_size=i, hidden_size=h), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])), gen=gen)


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

    check_lstm_cell(backend, dict(input_size=I, hidden_size=H), leaves, build, gen=gen)


@pytest.mark.parametrize("frozen", ["weight_ih", "weight_hh+bias_ih", "all", "input_no_grad"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_frozen_params(backend, frozen, gen):
    names = {"weight_ih": {"weight_ih"}, "weight_hh+bias_ih": {"weight_hh", "bias_ih"},
             "all": {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}, "input_no_grad": set()}[frozen]
    leaves = {"x": rnd(gen, B, I, requires_grad=frozen != "input_no_grad"), "h0": rnd(gen, B, H), "c0": rnd(gen, B, H)}

    def prepare(m):
        for n, p in m.named_parameters():
            p.requires_grad_(n not in names)

    res = check_lstm_cell(backend, dict(input_size=I, hidden_size=H), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])),
                     gen=gen, prepare=prepare)
    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert (res[f"param_grad[{n}]"] is None) == (n in names), n


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_float32(backend, gen):
    f32 = torch.float32
    leaves = {"x": rnd(gen, 5, 8, dtype=f32), "h0": rnd(gen, 5, 8, dtype=f32), "c0": rnd(gen, 5, 8, dtype=f32)}
    check_lstm_cell(backend, dict(input_size=8, hidden_size=8), leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])),
               gen=gen, dtype=f32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_bfloat16_vs_float64(backend, gen):
    ref = round_to(nn.LSTMCell(8, 8, dtype=F64), torch.bfloat16)
    ours = copy_weights(ref, lstm_ext.LSTMCell(8, 8, backend=backend)).to(torch.bfloat16)
    leaves = {k: rnd(gen, 5, 8) for k in ("x", "h0", "c0")}
    check_bfloat16_vs_float64(run_lstm_cell, ref, ours, leaves, lambda lv: (lv["x"], (lv["h0"], lv["c0"])))


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


@pytest.mark.parametrize("bias", [True, False], ids=bool_ids("bias"))
@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_cell_module_contract(backend, bias):
    assert_same_contract(nn.LSTMCell, lstm_ext.LSTMCell, backend, ("input_size", "hidden_size", "bias"),
                         input_size=I, hidden_size=H, bias=bias)


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
    call_raises_like_nn(nn.LSTMCell(I, H), lstm_ext.LSTMCell, backend, _bad_cell_inputs()[case])
