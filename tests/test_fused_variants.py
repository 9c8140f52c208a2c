"""The LSTM variants on the fused step (csrc/lstm_variants/cpu/fused_variant_layer*): float32
peephole and zoneout layers run the register tile over [x_t | h_{t-1}] @ [W_ih ; W_hh] (over
h_{t-1} @ W_hh alone when the op is handed input gates) with variant_gates.h as its epilogue,
forward and backward. LSTM_EXT_FUSED_STEP=0 keeps the plain loop. Both must agree, every
saved tensor included, and either backward must serve either forward.

The shapes hit every tail and partition as tests/test_fused_step.py's do: hidden sizes that leave a
partial vector, batches that leave a short row tile, and with 2 threads B=30 at H >= 37 splits rows
while B=13 at H=100 splits unit blocks. Zoneout's masks differ per step and row, so a row or step
mixed up shows; zoneout on h also carries a part of h's gradient straight to the previous step,
which a packed walk hands to h0's gradient for the rows that start late (reverse).
"""

from __future__ import annotations

import pytest
import torch

from lstm_ext._switches import fused_step
from conftest import requires_fused
from op_args import variant_backward_args, variant_layer_case, variant_op_args
from fused_paths import assert_all_close, assert_masked_grads, assert_paths_agree
from op_calls import aten_products, run_under_capability

pytestmark = [requires_fused(), pytest.mark.usefixtures("two_threads")]

ops = torch.ops.lstm_ext

HIDDEN = (5, 17, 37, 100)
BATCH = (1, 5, 13, 30)
# Each option alone, every per-unit option together, and zoneout's eval-mode probabilities.
OPTIONS = {
    "peephole": dict(peephole=True),
    "zoneout": dict(zoneout_h=0.3, zoneout_c=0.6),
    "zoneout-h": dict(zoneout_h=0.5),
    "zoneout-eval": dict(zoneout_h=0.3, zoneout_c=0.6, training=False),
    "all": dict(peephole=True, zoneout_h=0.3, zoneout_c=0.6),
}
SAVED = ("output", "h_n", "c_n", "gates", "cells", "states", "rec", "stats", "lesson")
GRADS = tuple(r.name for r in ops.lstm_variant_layer_backward.default._schema.returns)


def _op_args(H, B, packed, reverse, options, seed, T=7, input_gates=False):
    # Weights of nn.LSTM's initial spread (about 1 / sqrt(H)): larger ones saturate the gates and
    # grow the gradients step by step, until the two summation orders differ by more than float32's
    # default tolerance although both are as far from the float64 truth.
    case = variant_layer_case(T=T, B=B, I=11, H=H, packed=packed, reverse=reverse, dtype=torch.float32, seed=seed,
                              scale=H ** -0.5, **options)
    args = variant_op_args(*case)
    if not input_gates:
        return args
    # The op's other form: input gates made beforehand (as with layer norm on the input), no w_ih.
    input, w_ih, b_ih, b_hh, *rest = args
    return (torch.nn.functional.linear(input, w_ih, b_ih + b_hh), None, None, None, *rest)


def _forward(args, fused):
    with fused_step(fused):
        return ops.lstm_variant_layer(*args)


def _backward(args, saved, fused, mask=(True, True, True)):
    output, h_n, c_n, *rest = saved
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype) for t in (output, h_n, c_n)]
    with fused_step(fused):
        return ops.lstm_variant_layer_backward(*variant_backward_args(args, grads, output, rest, mask))


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("B", BATCH)
@pytest.mark.parametrize("H", HIDDEN)
def test_matches_plain_loop(H, B, packed, reverse, option):
    """Every saved tensor of the forward, then every gradient of the backward from both saved
    forwards, both paths."""
    args = _op_args(H, B, packed, reverse, OPTIONS[option], seed=H * 100 + B)
    assert_paths_agree(_forward, _backward, args, SAVED, GRADS)


@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("H,B", [(5, 1), (37, 30), (100, 13)])
def test_input_gates_form(H, B, packed):
    """Handed input gates instead of x and W_ih, the tile multiplies h_{t-1} alone and the
    epilogue adds them: both paths agree, and the results are those of the x form."""
    args = _op_args(H, B, packed, True, OPTIONS["all"], seed=H + B, input_gates=True)
    assert_paths_agree(_forward, _backward, args, SAVED, GRADS)
    x_form = _op_args(H, B, packed, True, OPTIONS["all"], seed=H + B)
    assert_all_close(_forward(args, True), _forward(x_form, True), SAVED)


@pytest.mark.parametrize("B", [1, 5, 30])
def test_one_step(B):
    """T=1: a dense step of at most 4 rows keeps the plain forward (the streaming step's rule)
    while its backward runs fused, so the fused backward reads the plain loop's saved tensors."""
    args = _op_args(37, B, False, False, OPTIONS["all"], seed=B, T=1)
    assert_paths_agree(_forward, _backward, args, SAVED, GRADS)


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False), (False, False, True)],
                         ids=["input", "state", "weights"])
@pytest.mark.parametrize("H,B", [(37, 30), (100, 13)], ids=["rows", "units"])
def test_backward_masks(H, B, mask):
    """One gradient asked for at a time, in each partition, zoneout on h included: without the
    state's gradient the walk skips h0's product and its direct part."""
    args = _op_args(H, B, True, True, OPTIONS["all"], seed=3)
    saved = _forward(args, True)
    assert_masked_grads(_backward(args, saved, True, mask), _backward(args, saved, False, mask), mask, GRADS)


@pytest.mark.parametrize("H,B", [(37, 30), (100, 13)], ids=["rows", "units"])
def test_knob_switches_path(H, B):
    """LSTM_EXT_FUSED_STEP=0 really takes the other path, forward and backward. The forward's
    results can be bitwise equal (the plain loop's GEMM may sum each step in the tile's order), so
    the paths are told apart by what they dispatch: the plain loop runs an ATen product per step,
    the fused step none."""
    args = _op_args(H, B, False, False, OPTIONS["all"], seed=4)
    saved = _forward(args, True)
    state_only = (False, True, False)  # no weight gradients, whose products are the same on both paths
    assert not aten_products(lambda: _forward(args, True))
    assert not aten_products(lambda: _backward(args, saved, True, state_only))
    assert aten_products(lambda: _forward(args, False))
    assert aten_products(lambda: _backward(args, saved, False, state_only))


# The options whose step needs whole rows run the row-split walk (row_split_variant_layer.h) where
# the batch gives every thread rows of its own; these shapes take it (with 2 threads: B=30 splits
# rows; B=1 and B=5 at H <= 37 are too small to share and run on one thread).
WHOLE_ROW_OPTIONS = {
    "layer-norm": dict(layer_norm=True),
    "layer-norm-all": dict(layer_norm=True, peephole=True, zoneout_h=0.3, zoneout_c=0.6),
    "lesson": dict(lesson=True),
    "lesson-all": dict(lesson=True, peephole=True, zoneout_h=0.3, zoneout_c=0.6),
}
WHOLE_ROW_SHAPES = [(5, 1), (17, 5), (37, 5), (37, 30), (100, 30)]


def _to_float64(args):
    return tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def _relative_rms_error(results, truths):
    """One call's error from the float64 truth: the RMS over every element of every result, each
    tensor's errors divided by that tensor's RMS magnitude. Pooled over thousands of elements it
    is a stable measure of a path's accuracy, where the largest single error is not; a wrong
    tensor, however small, still counts about 1 per element, far above any rounding."""
    total, count = 0.0, 0
    for got, truth in zip(results, truths):
        if truth.numel() == 0:
            continue
        scale = truth.double().square().mean().sqrt().clamp_min(1e-30)
        total += float(((got.double() - truth.double()) / scale).square().sum())
        count += truth.numel()
    return (total / count) ** 0.5


def _assert_as_accurate(results, truths, plain, names):
    """Within torch's default float32 tolerance of the truth, or, where layer norm's division by
    each row's spread magnifies rounding past it (for the plain loop too), no more than twice as
    far from the truth as the plain loop's float32 results, in relative RMS error."""
    assert [tuple(r.shape) for r in results] == [tuple(t.shape) for t in truths], names
    try:
        assert_all_close(results, [t.to(r.dtype) for r, t in zip(results, truths)], names)
    except AssertionError:
        error, plain_error = _relative_rms_error(results, truths), _relative_rms_error(plain, truths)
        assert error <= 2 * plain_error, f"relative RMS error {error:.3g}, the plain loop's {plain_error:.3g}"


def _assert_whole_row_paths_agree(args, mask=(True, True, True)):
    """Both paths' forward and, from either forward's saved tensors, both backwards, against the
    float64 truth and the plain loop's float32 results (_assert_as_accurate)."""
    truth_args = _to_float64(args)
    truth = _forward(truth_args, False)
    truth_grads = _backward(truth_args, truth, False, mask)
    plain = _forward(args, False)
    plain_grads = _backward(args, plain, False, mask)
    _assert_as_accurate(_forward(args, True), truth, plain, SAVED)
    for saved in (_forward(args, True), plain):
        for fused in (True, False):
            _assert_as_accurate(_backward(args, saved, fused, mask), truth_grads, plain_grads, GRADS)


@pytest.mark.parametrize("option", WHOLE_ROW_OPTIONS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("H,B", WHOLE_ROW_SHAPES)
def test_whole_row_options_match_plain_loop(H, B, packed, reverse, option):
    """Layer norm and the lesson's use gate, alone and with every per-unit option: every saved
    tensor and every gradient, both paths, either backward from either forward."""
    _assert_whole_row_paths_agree(_op_args(H, B, packed, reverse, WHOLE_ROW_OPTIONS[option], seed=H * 100 + B))


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, False), (False, False, True)],
                         ids=["input", "state", "weights"])
@pytest.mark.parametrize("option", ["layer-norm-all", "lesson-all"])
def test_whole_row_backward_masks(option, mask):
    """One gradient at a time: without the state's gradient the walk skips h0's product."""
    _assert_whole_row_paths_agree(_op_args(37, 30, True, True, WHOLE_ROW_OPTIONS[option], seed=6), mask)


@pytest.mark.parametrize("option", ["layer-norm", "lesson-all"])
def test_whole_row_other_input_form(option):
    """The op's other input form: the lesson handed input gates (the walk copies them in and adds
    its product), layer norm handed x and W_ih (the walk projects them before the loop)."""
    args = _op_args(37, 30, True, False, WHOLE_ROW_OPTIONS[option], seed=7)
    if option == "lesson-all":
        input, w_ih, b_ih, b_hh, *rest = args
        other = (torch.nn.functional.linear(input, w_ih, b_ih + b_hh), None, None, None, *rest)
    else:
        xgates, _, _, _, *rest = args
        w_ih = torch.eye(xgates.shape[-1])  # x @ I^T: the same input gates, through the projection
        other = (xgates, w_ih, None, None, *rest)
    _assert_whole_row_paths_agree(other, mask=(True, True, False))
    assert_all_close(_forward(other, True), _forward(args, True), SAVED)


@pytest.mark.parametrize("option", ["layer-norm-all", "lesson-all"])
def test_whole_row_path_taken(option):
    """Where the batch splits across threads (B=30) the row-split walk runs, forward and backward,
    and dispatches no ATen product per step; with too few rows to share (B=13 at H=100, which
    the per-unit options split by units) the plain loop runs whatever the switch says."""
    args = _op_args(37, 30, False, False, WHOLE_ROW_OPTIONS[option], seed=8)
    saved = _forward(args, True)
    state_only = (False, True, False)
    assert not aten_products(lambda: _forward(args, True))
    assert not aten_products(lambda: _backward(args, saved, True, state_only))
    assert aten_products(lambda: _forward(args, False))
    assert aten_products(lambda: _backward(args, saved, False, state_only))
    few_rows = _op_args(100, 13, False, False, WHOLE_ROW_OPTIONS[option], seed=8)
    assert aten_products(lambda: _forward(few_rows, True))


def test_module_trains_like_plain_loop(gen):
    """Through lstm_ext.LSTM with peephole and zoneout, bidirectional and two layers, one training
    step's outputs and every parameter's gradient, both paths (the same zoneout masks: seeded)."""
    import lstm_ext

    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = lstm_ext.LSTM(11, 37, num_layers=2, bidirectional=True, peephole=True, zoneout=(0.2, 0.4))
    x = torch.randn(9, 13, 11, generator=gen)

    def run(fused):
        model.zero_grad()
        torch.manual_seed(0)
        with fused_step(fused):
            out, (h_n, c_n) = model(x)
            (out.square().sum() + h_n.sum() + c_n.sum()).backward()
        return [out, h_n, c_n] + [p.grad.clone() for p in model.parameters()]

    assert_all_close(run(True), run(False), ["output", "h_n", "c_n"] + [n for n, _ in model.named_parameters()])


def test_avx2_build():
    """The AVX2 copy of the kernels (8-lane vectors, 2-row tiles) against the plain loop, forward
    and backward, the lesson's row-split walk included."""
    script = (
        "import os, torch, lstm_ext\n"
        "from op_args import variant_backward_args, variant_layer_case, variant_op_args\n"
        "assert torch.backends.cpu.get_cpu_capability() == 'AVX2', torch.backends.cpu.get_cpu_capability()\n"
        "torch.set_num_threads(2)\n"
        "g = torch.Generator().manual_seed(0)\n"
        "per_unit = dict(peephole=True, zoneout_h=0.3, zoneout_c=0.6)\n"
        "lesson = dict(lesson=True, peephole=True, zoneout_h=0.3)  # the row-split walk at B=30\n"
        "for H, B, packed, reverse, options in [(5, 1, False, False, per_unit), (9, 5, True, True, per_unit),\n"
        "        (37, 30, True, False, per_unit), (100, 13, False, True, per_unit), (37, 30, True, True, lesson),\n"
        "        (9, 5, False, False, lesson)]:\n"
        "    args = variant_op_args(*variant_layer_case(T=7, B=B, I=11, H=H, packed=packed, reverse=reverse,\n"
        "        dtype=torch.float32, seed=H * B, scale=H ** -0.5, **options))\n"
        "    out = {}\n"
        "    for knob in ('1', '0'):\n"
        "        os.environ['LSTM_EXT_FUSED_STEP'] = knob\n"
        "        out[knob] = torch.ops.lstm_ext.lstm_variant_layer(*args)\n"
        "    for a, b in zip(out['1'], out['0']):\n"
        "        torch.testing.assert_close(a, b)\n"
        "    output, h_n, c_n, *rest = out['1']\n"
        "    grads = [torch.randn(t.shape, generator=g) for t in (output, h_n, c_n)]\n"
        "    back = []\n"
        "    for knob in ('1', '0'):\n"
        "        os.environ['LSTM_EXT_FUSED_STEP'] = knob\n"
        "        back.append(torch.ops.lstm_ext.lstm_variant_layer_backward(\n"
        "            *variant_backward_args(args, grads, output, rest, [True] * 3)))\n"
        "    for a, b in zip(*back):\n"
        "        torch.testing.assert_close(a, b)\n"
        "print('ok')\n"
    )
    assert run_under_capability(script, "avx2").strip().endswith("ok")
