"""The GRU on the fused step (csrc/gru/cpu/fused_gru_layer*): float32 layers run the register tile
over h_{t-1} @ W_hh (its r, z and n blocks side by side) with gru_gates.h as its epilogue, forward
and backward. LSTM_EXT_FUSED_STEP=0 keeps the plain loop. Both must agree, the saved gates
included, and either backward must serve either forward.

The shapes hit every tail and partition as tests/test_fused_step.py's do: hidden sizes that leave a
partial vector, batches that leave a short row tile, and with 2 threads B=30 at H >= 37 splits rows
while B=13 at H=100 splits unit blocks. The update gate passes a part of h's gradient straight to
the previous step, which a reverse packed walk hands to h0's gradient for the rows that start late.
"""

from __future__ import annotations

import pytest
import torch

import lstm_ext
from lstm_ext._switches import fused_step
from conftest import requires_fused
from op_args import gru_layer_args
from fused_paths import assert_all_close, assert_masked_grads, assert_paths_agree
from op_calls import aten_products, run_under_capability

pytestmark = [requires_fused(), pytest.mark.usefixtures("two_threads")]

ops = torch.ops.lstm_ext

HIDDEN = (5, 17, 37, 100)
BATCH = (1, 5, 13, 30)
SAVED = ("output", "h_n", "gates")
GRADS = ("input", "h0", "w_ih", "w_hh", "b_ih", "b_hh")


def _args(H, B, packed, reverse, seed, bias=True, T=7):
    # Weights of nn.GRU's initial spread (about 1 / sqrt(H)), as tests/test_fused_variants.py says why.
    return gru_layer_args(T=T, B=B, I=11, H=H, bias=bias, packed=packed, reverse=reverse, dtype=torch.float32,
                          requires_grad=False, seed=seed, scale=H ** -0.5)


def _forward(args, fused):
    with fused_step(fused):
        return ops.gru_layer(*args)


def _backward(args, saved, fused, mask=(True, True, True)):
    input, h0, w_ih, w_hh, _, _, batch_sizes, reverse = args
    output, h_n, gates = saved
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(t.shape, generator=g) for t in (output, h_n)]
    with fused_step(fused):
        return ops.gru_layer_backward(*grads, input, h0, w_ih, w_hh, batch_sizes, reverse, output, gates, list(mask))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("B", BATCH)
@pytest.mark.parametrize("H", HIDDEN)
def test_matches_plain_loop(H, B, packed, reverse):
    """Every result of the forward, then every gradient of the backward from both saved forwards,
    both paths."""
    args = _args(H, B, packed, reverse, seed=H * 100 + B)
    assert_paths_agree(_forward, _backward, args, SAVED, GRADS)


def test_without_bias():
    """No biases: the tile's packed b_hn is zeros."""
    args = _args(37, 30, True, True, seed=2, bias=False)
    assert_paths_agree(_forward, _backward, args, SAVED, GRADS)


@pytest.mark.parametrize("B", [1, 5, 30])
def test_one_step(B):
    """T=1: a dense step of at most 4 rows keeps the plain forward (the streaming step's rule)
    while its backward runs fused, so the fused backward reads the plain loop's saved gates."""
    args = _args(37, B, False, False, seed=B, T=1)
    assert_paths_agree(_forward, _backward, args, SAVED, GRADS)


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False), (False, False, True)],
                         ids=["input", "state", "weights"])
@pytest.mark.parametrize("H,B", [(37, 30), (100, 13)], ids=["rows", "units"])
def test_backward_masks(H, B, mask):
    """One gradient asked for at a time, in each partition: without the state's gradient the walk
    skips h0's product and its direct part."""
    args = _args(H, B, True, True, seed=3)
    saved = _forward(args, True)
    assert_masked_grads(_backward(args, saved, True, mask), _backward(args, saved, False, mask), mask, GRADS)


@pytest.mark.parametrize("H,B", [(37, 30), (100, 13)], ids=["rows", "units"])
def test_knob_switches_path(H, B):
    """LSTM_EXT_FUSED_STEP=0 really takes the other path, forward and backward: the plain loop runs
    an ATen product per step, the fused step none (the forward's input projection before the loop
    may be one on both paths; only the state's gradient is asked of the backward)."""
    args = _args(H, B, False, False, seed=4)
    saved = _forward(args, True)
    state_only = (False, True, False)
    assert len(aten_products(lambda: _forward(args, True))) <= 1
    assert len(aten_products(lambda: _forward(args, False))) >= 7
    assert not aten_products(lambda: _backward(args, saved, True, state_only))
    assert len(aten_products(lambda: _backward(args, saved, False, state_only))) >= 6


def test_module_trains_like_plain_loop(gen):
    """Through lstm_ext.GRU, bidirectional and two layers, one training step's outputs and every
    parameter's gradient, both paths."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = lstm_ext.GRU(11, 37, num_layers=2, bidirectional=True)
    x = torch.randn(9, 13, 11, generator=gen)

    def run(fused):
        model.zero_grad()
        with fused_step(fused):
            out, h_n = model(x)
            (out.square().sum() + h_n.sum()).backward()
        return [out, h_n] + [p.grad.clone() for p in model.parameters()]

    assert_all_close(run(True), run(False), ["output", "h_n"] + [n for n, _ in model.named_parameters()])


def test_avx2_build():
    """The AVX2 copy of the kernels (8-lane vectors, 2-row tiles) against the plain loop, forward
    and backward."""
    script = (
        "import os, torch, lstm_ext\n"
        "from op_args import gru_layer_args\n"
        "assert torch.backends.cpu.get_cpu_capability() == 'AVX2', torch.backends.cpu.get_cpu_capability()\n"
        "torch.set_num_threads(2)\n"
        "g = torch.Generator().manual_seed(0)\n"
        "for H, B, packed, reverse in [(5, 1, False, False), (9, 5, True, True), (37, 30, True, False),\n"
        "                              (100, 13, False, True)]:\n"
        "    args = gru_layer_args(T=7, B=B, I=11, H=H, packed=packed, reverse=reverse, dtype=torch.float32,\n"
        "                          requires_grad=False, seed=H * B, scale=H ** -0.5)\n"
        "    out = {}\n"
        "    for knob in ('1', '0'):\n"
        "        os.environ['LSTM_EXT_FUSED_STEP'] = knob\n"
        "        out[knob] = torch.ops.lstm_ext.gru_layer(*args)\n"
        "    for a, b in zip(out['1'], out['0']):\n"
        "        torch.testing.assert_close(a, b)\n"
        "    x, h0, w_ih, w_hh, _, _, bs, rev = args\n"
        "    output, h_n, gates = out['1']\n"
        "    grads = [torch.randn(t.shape, generator=g) for t in (output, h_n)]\n"
        "    back = []\n"
        "    for knob in ('1', '0'):\n"
        "        os.environ['LSTM_EXT_FUSED_STEP'] = knob\n"
        "        back.append(torch.ops.lstm_ext.gru_layer_backward(*grads, x, h0, w_ih, w_hh, bs, rev, output,\n"
        "                                                          gates, [True] * 3))\n"
        "    for a, b in zip(*back):\n"
        "        torch.testing.assert_close(a, b)\n"
        "print('ok')\n"
    )
    assert run_under_capability(script, "avx2").strip().endswith("ok")
