"""The fused recurrent step (csrc/runtime/cpu/fused_step*, fused_backward_impl.h,
csrc/lstm/cpu/fused_layer*): float32 LSTM layers without a projection run one register tile per
(rows x unit block). Forward, it multiplies [x_t | h_{t-1}] by the packed [W_ih ; W_hh] and applies
gates.h on the tile; backward, it multiplies the next step's gate gradients by W_hh and finishes
this step's gate gradients on the tile. LSTM_EXT_FUSED_STEP=0 keeps the plain loop. Both must
agree, saved gates and cells included, and either backward must serve either forward.

The shapes hit every tail: hidden sizes that leave a partial vector (5, 9, 17, 37, 100 against 8-
and 16-lane vectors), batches that leave a short row tile (1, 5, 13, 30 against 2- and 6-row
tiles), and with 2 threads each partition: B=30 with H >= 37 splits rows, B=13 with H=100 splits
unit blocks (one meeting per step), and the small ones walk on one thread. The backward's tile
covers groups of 1 to 4 unit blocks: H = 5 (one), 17 (two), 37 (three), 100 (4 + 3). One dense step of at
most 4 rows keeps the plain loop (what lstm_inference's streaming step runs), so T=1 B=1 dense
compares the plain loop with itself.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from lstm_ext._switches import fused_step
from conftest import requires_fused
from op_args import lstm_layer_args
from op_calls import aten_products, run_under_capability

pytestmark = [requires_fused(), pytest.mark.usefixtures("two_threads")]

HIDDEN = (5, 9, 17, 37, 100)
BATCH = (1, 5, 13, 30)
INPUT = 11


def _layer_args(H, B, T, packed, reverse, gen):
    lengths = torch.randint(1, T + 1, (B,), generator=gen).sort(descending=True).values
    lengths[0] = T
    x = torch.randn(T, B, INPUT, generator=gen)
    batch_sizes = None
    if packed:
        seq = pack_padded_sequence(x, lengths, enforce_sorted=True)
        x, batch_sizes = seq.data, seq.batch_sizes
    weights = [torch.randn(4 * H, INPUT, generator=gen) * 0.3, torch.randn(4 * H, H, generator=gen) * 0.3,
               torch.randn(4 * H, generator=gen), torch.randn(4 * H, generator=gen)]
    h0, c0 = torch.randn(B, H, generator=gen), torch.randn(B, H, generator=gen)
    return (x, h0, c0, *weights, None, batch_sizes, reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("T", [1, 7])
@pytest.mark.parametrize("B", BATCH)
@pytest.mark.parametrize("H", HIDDEN)
def test_layer_op_matches_plain_loop(H, B, T, packed, reverse, gen):
    """Output, h_n, c_n and the saved gates and cells of one lstm_layer call, both paths."""
    args = _layer_args(H, B, T, packed, reverse, gen)
    with fused_step(True):
        fused = torch.ops.lstm_ext.lstm_layer(*args)
    with fused_step(False):
        plain = torch.ops.lstm_ext.lstm_layer(*args)
    for name, a, b in zip(("output", "h_n", "c_n", "gates", "cells"), fused, plain):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")


def _backward(args, saved, fused, mask):
    x, h0, c0, w_ih, w_hh, _, _, w_hr, batch_sizes, reverse = args
    output, _, _, gates, cells = saved
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(output.shape, generator=g), torch.randn(h0.shape, generator=g),
             torch.randn(c0.shape, generator=g)]
    with fused_step(fused):
        return torch.ops.lstm_ext.lstm_layer_backward(*grads, x, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse,
                                                      output, gates, cells, list(mask))


GRAD_NAMES = ("input", "h0", "c0", "w_ih", "w_hh", "bias", "w_hr")


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("B", BATCH)
@pytest.mark.parametrize("H", HIDDEN)
def test_layer_backward_matches_plain_loop(H, B, packed, reverse, gen):
    """Every gradient of one lstm_layer_backward call, both paths, on the same saved forward; the
    forward saved by the fused step and by the plain loop, so either backward reads either."""
    args = _layer_args(H, B, 7, packed, reverse, gen)
    for forward_fused in (True, False):
        with fused_step(forward_fused):
            saved = torch.ops.lstm_ext.lstm_layer(*args)
        fused = _backward(args, saved, True, (True, True, True))
        plain = _backward(args, saved, False, (True, True, True))
        for name, a, b in zip(GRAD_NAMES, fused, plain):
            torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False), (False, False, True)],
                         ids=["input", "state", "weights"])
@pytest.mark.parametrize("H,B", [(37, 30), (100, 13)], ids=["rows", "units"])
def test_layer_backward_masks(H, B, mask, gen):
    """One gradient asked for at a time, in each partition: without the state's gradient the walk
    skips the product after its last step, and the others still match."""
    args = _layer_args(H, B, 7, True, False, gen)
    saved = torch.ops.lstm_ext.lstm_layer(*args)
    fused = _backward(args, saved, True, mask)
    plain = _backward(args, saved, False, mask)
    for name, a, b in zip(GRAD_NAMES, fused, plain):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")
    assert fused[0].numel() > 0 if mask[0] else fused[0].numel() == 0


@pytest.mark.parametrize("I", [1, 17, 37, 100])
def test_input_gradient_every_width(I):
    """The input's gradient, dgates @ W_ih on the fused tile after the walk: input widths of one
    partial vector up to 4 + 3 blocks, rows split across threads (B = 30)."""
    args = lstm_layer_args(T=7, B=30, I=I, H=17, packed=True, dtype=torch.float32, requires_grad=False, seed=I,
                           scale=0.3)
    saved = torch.ops.lstm_ext.lstm_layer(*args)
    fused = _backward(args, saved, True, (True, False, False))
    plain = _backward(args, saved, False, (True, False, False))
    torch.testing.assert_close(fused[0], plain[0])


def test_backward_knob_switches_path(gen):
    """The backward's LSTM_EXT_FUSED_STEP=0 really takes the other path: the recurrent product
    sums in another order, so some bits of the input gradient differ."""
    args = _layer_args(100, 13, 7, False, False, gen)
    saved = torch.ops.lstm_ext.lstm_layer(*args)
    fused = _backward(args, saved, True, (True, True, True))
    plain = _backward(args, saved, False, (True, True, True))
    assert not torch.equal(fused[0], plain[0])


def test_without_bias_and_one_thread(gen):
    """No biases (the packed bias is zeros), and a call on one thread that would split rows on two."""
    args = list(_layer_args(37, 30, 7, False, False, gen))
    args[5] = args[6] = None
    torch.set_num_threads(1)
    with fused_step(True):
        fused = torch.ops.lstm_ext.lstm_layer(*args)
    with fused_step(False):
        plain = torch.ops.lstm_ext.lstm_layer(*args)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b)


def test_knob_switches_path(gen):
    """LSTM_EXT_FUSED_STEP=0 really takes the other path: the sums run in another order, so some
    bits differ."""
    args = _layer_args(100, 13, 7, False, False, gen)
    with fused_step(True):
        fused = torch.ops.lstm_ext.lstm_layer(*args)[0]
    with fused_step(False):
        plain = torch.ops.lstm_ext.lstm_layer(*args)[0]
    assert not torch.equal(fused, plain)


@pytest.mark.parametrize("B", [1, 2, 5])
def test_input_first_with_one_or_two_rows(B, gen):
    """With one or two rows the fused forward multiplies the input once, before the loop
    (fused_input_first), and the tile h_{t-1} alone; with more, the input runs inside the tile
    and nothing is multiplied outside it. (Its results are held to the plain loop's with the
    other batches, in test_layer_op_matches_plain_loop.)"""
    args = _layer_args(37, B, 7, False, False, gen)
    with fused_step(True):
        products = aten_products(lambda: torch.ops.lstm_ext.lstm_layer(*args))
    assert len(products) == (1 if B <= 2 else 0), products


def _module_pair(H, bidirectional, gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    ours = lstm_ext.LSTM(INPUT, H, bidirectional=bidirectional)
    ref = torch.nn.LSTM(INPUT, H, bidirectional=bidirectional)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("B", BATCH)
@pytest.mark.parametrize("H", HIDDEN)
def test_module_matches_nn(H, B, packed, grad, gen):
    """Bidirectional (so both walk directions), through the module: without grad the whole-module
    inference op, which saves nothing; with grad the autograd path, whose backward reads the saved
    gates and cells."""
    ours, ref = _module_pair(H, True, gen)
    T = 7
    x = torch.randn(T, B, INPUT, generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen).sort(descending=True).values
    lengths[0] = T

    def run(module):
        inp = x.clone().requires_grad_(grad)
        feed = pack_padded_sequence(inp, lengths) if packed else inp
        with torch.set_grad_enabled(grad):
            out, (h_n, c_n) = module(feed)
            out = out.data if packed else out
            results = [out, h_n, c_n]
            if grad:
                (out.square().sum() + h_n.sum() + c_n.sum()).backward()
                results += [inp.grad] + [p.grad for p in module.parameters()]
        return results

    with fused_step(True):
        got = run(ours)
    for a, b in zip(got, run(ref)):
        torch.testing.assert_close(a, b)


def test_avx2_build():
    """The AVX2 copy of the kernels (8-lane vectors, 2-row tiles) against the plain loop, forward
    and backward."""
    script = (
        "import os, torch, lstm_ext\n"
        "from op_args import lstm_layer_args\n"
        "assert torch.backends.cpu.get_cpu_capability() == 'AVX2', torch.backends.cpu.get_cpu_capability()\n"
        "torch.set_num_threads(2)\n"
        "g = torch.Generator().manual_seed(0)\n"
        "for H, B, packed, reverse in [(5, 1, False, False), (9, 5, True, True), (17, 13, False, True),\n"
        "                              (37, 30, True, False), (100, 13, False, False), (100, 30, False, True)]:\n"
        "    args = lstm_layer_args(T=7, B=B, I=11, H=H, packed=packed, reverse=reverse, dtype=torch.float32,\n"
        "                           requires_grad=False, seed=H * B, scale=0.3)\n"
        "    os.environ['LSTM_EXT_FUSED_STEP'] = '1'\n"
        "    fused = torch.ops.lstm_ext.lstm_layer(*args)\n"
        "    os.environ['LSTM_EXT_FUSED_STEP'] = '0'\n"
        "    plain = torch.ops.lstm_ext.lstm_layer(*args)\n"
        "    for a, b in zip(fused, plain):\n"
        "        torch.testing.assert_close(a, b)\n"
        "    grads = [torch.randn(t.shape, generator=g) for t in fused[:3]]\n"
        "    x, h0, c0, w_ih, w_hh, _, _, w_hr, bs, rev = args\n"
        "    back = []\n"
        "    for knob in ('1', '0'):\n"
        "        os.environ['LSTM_EXT_FUSED_STEP'] = knob\n"
        "        back.append(torch.ops.lstm_ext.lstm_layer_backward(*grads, x, h0, c0, w_ih, w_hh, w_hr, bs, rev,\n"
        "                                                           fused[0], fused[3], fused[4], [True] * 3))\n"
        "    for a, b in zip(*back):\n"
        "        torch.testing.assert_close(a, b)\n"
        "print('ok')\n"
    )
    assert run_under_capability(script, "avx2").strip().endswith("ok")
