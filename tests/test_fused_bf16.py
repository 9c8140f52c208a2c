"""The LSTM's bfloat16 forward on the fused step (csrc/lstm/cpu/fused_layer*,
csrc/runtime/cpu/capability_avx512_bf16.h): on AVX-512 CPUs with the BF16 extension the register
tile multiplies bfloat16 pairs of [x_t | h_{t-1}] and [W_ih ; W_hh] into float, and the gates, c
and the saved tensors stay in float. LSTM_EXT_FUSED_STEP=0 keeps the plain loop, whose GEMMs
round each step's pre-activations to bfloat16.

Both are held to the float64 truth on the same bfloat16 inputs (tolerances.assert_close_to_truth).
The shapes hit the pair tails: an odd input size (11) and odd hidden sizes leave a last k without a
partner; hidden sizes 5, 17, 37 and 100 leave partial 16-lane vectors; batches 1, 5, 13 and 30 leave
short row tiles, and with 2 threads B=30 splits rows while B=13 at H=100 splits unit blocks.
"""

from __future__ import annotations

import pytest
import torch

import lstm_ext
from lstm_ext._switches import fused_step
from conftest import requires_fused_bf16
from op_args import lstm_layer_args
from op_calls import aten_products, run_under_capability
from tolerances import assert_close, assert_close_to_truth

pytestmark = [requires_fused_bf16(), pytest.mark.usefixtures("two_threads")]

ops = torch.ops.lstm_ext
SAVED = ("output", "h_n", "c_n", "gates", "cells")


def _layer_args(H, B, packed, reverse, seed):
    # weights of nn.LSTM's initial spread (about 1 / sqrt(H)); input 11, odd
    return lstm_layer_args(T=7, B=B, I=11, H=H, packed=packed, reverse=reverse, dtype=torch.bfloat16,
                           requires_grad=False, seed=seed, scale=H ** -0.5)


def _as_float64(args):
    return tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _forward(args, fused):
    with fused_step(fused):
        return ops.lstm_layer(*args)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("B", [1, 5, 13, 30])
@pytest.mark.parametrize("H", [5, 17, 37, 100])
def test_forward_is_as_close_to_truth_as_plain_loop(H, B, packed, reverse):
    """Every result of one lstm_layer call, the saved gates and cells included, against the
    float64 truth on the same bfloat16 inputs, beside the plain loop."""
    args = _layer_args(H, B, packed, reverse, seed=H * 100 + B)
    truth = ops.lstm_layer(*_as_float64(args))
    fused, plain = _forward(args, True), _forward(args, False)
    for name, a, p, t in zip(SAVED, fused, plain, truth):
        assert a.dtype == p.dtype and a.shape == p.shape, name
        assert_close_to_truth(a, t, p, name)


def test_switch_takes_the_other_path():
    """The paths are told apart by what they dispatch: the plain loop runs an ATen product per
    step, the fused step none."""
    args = _layer_args(100, 13, False, False, seed=1)
    assert not aten_products(lambda: _forward(args, True))
    assert aten_products(lambda: _forward(args, False))


@pytest.mark.parametrize("H,B", [(37, 30), (100, 13)], ids=["rows", "units"])
def test_backward_reads_the_fused_forward(H, B, gen):
    """The bfloat16 backward (the plain loop) on the fused forward's saved gates and cells gives
    what it gives on the plain loop's, to bfloat16's tolerance."""
    args = _layer_args(H, B, True, True, seed=2)
    x, h0, c0, w_ih, w_hh, _, _, w_hr, batch_sizes, reverse = args
    grads = [torch.randn(s, generator=gen).bfloat16() for s in ((x.shape[0], H), h0.shape, c0.shape)]

    def backward(saved):
        output, _, _, gates, cells = saved
        return ops.lstm_layer_backward(*grads, x, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, output, gates,
                                       cells, [True, True, True])

    for name, a, b in zip(("input", "h0", "c0", "w_ih", "w_hh", "bias"), backward(_forward(args, True)),
                          backward(_forward(args, False))):
        assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")


def test_module_inference_matches_nn(gen):
    """A 2-layer bidirectional lstm_ext.LSTM in bfloat16 under no_grad (lstm_inference, each
    layer on the fused step) against nn.LSTM in bfloat16, both held to the float64 truth."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    nn_lstm = torch.nn.LSTM(11, 37, num_layers=2, bidirectional=True, batch_first=True)
    ours = lstm_ext.LSTM(11, 37, num_layers=2, bidirectional=True, batch_first=True)
    ours.load_state_dict(nn_lstm.state_dict())
    x = torch.randn(13, 9, 11, generator=gen).bfloat16()
    with torch.no_grad():
        truth = nn_lstm.double()(x.double())
        expected = nn_lstm.bfloat16()(x)
        with fused_step(True):
            actual = ours.bfloat16()(x)
    for name, a, e, t in zip(("output", "h_n", "c_n"), (actual[0], *actual[1]), (expected[0], *expected[1]),
                             (truth[0], *truth[1])):
        assert_close_to_truth(a, t, e, name)


def test_avx2_keeps_the_plain_loop():
    """Under ATEN_CPU_CAPABILITY=avx2 (no bfloat16 pairs) the knob changes nothing: both settings
    run the plain loop, bitwise alike."""
    script = (
        "import os, torch, lstm_ext\n"
        "x = torch.randn(7, 13, 11).bfloat16()\n"
        "args = (x, torch.randn(13, 37).bfloat16(), torch.randn(13, 37).bfloat16(), torch.randn(148, 11).bfloat16(),\n"
        "        torch.randn(148, 37).bfloat16(), None, None, None, None, False)\n"
        "out = {}\n"
        "for knob in ('1', '0'):\n"
        "    os.environ['LSTM_EXT_FUSED_STEP'] = knob\n"
        "    out[knob] = torch.ops.lstm_ext.lstm_layer(*args)\n"
        "assert all(torch.equal(a, b) for a, b in zip(out['1'], out['0']))\n"
        "print('ok')\n"
    )
    assert run_under_capability(script, "avx2").strip().endswith("ok")
