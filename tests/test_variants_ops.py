"""The fused variant op (peephole, zoneout) against the plain-PyTorch reference.

Outputs, final states and the gradients of every input, in float64 and float32, dense and
packed, both directions; float64 gradcheck; opcheck; the op's own argument checks.
"""

from __future__ import annotations

import pytest
import torch

from lstm_ext import _library, reference
from lstm_ext.lstm_variants import ops as fused_variants
from op_args import LAYER_CASES, with_args, variant_backward_args, variant_layer_case, variant_op_args
from tolerances import assert_close, assert_close_to_truth

pytestmark = pytest.mark.skipif(_library.LOAD_ERROR is not None, reason=f"extension not built: {_library.LOAD_ERROR}")

ops = torch.ops.lstm_ext

SHAPES = {
    **LAYER_CASES,
    "wide": dict(T=3, B=2, I=3, H=37),  # several SIMD vectors and a tail
}
VARIANTS = {
    "peephole": dict(peephole=True),
    "zoneout-h": dict(zoneout_h=0.4),
    "zoneout-c": dict(zoneout_c=0.4),
    "zoneout-both": dict(zoneout_h=0.3, zoneout_c=0.6),
    "zoneout-eval": dict(zoneout_h=0.3, zoneout_c=0.6, training=False),
    "layer-norm": dict(layer_norm=True),
    "all": dict(peephole=True, zoneout_h=0.5, zoneout_c=0.5, layer_norm=True),
    "lesson": dict(lesson=True),
    "lesson-peephole-zoneout": dict(lesson=True, peephole=True, zoneout_h=0.3, zoneout_c=0.6),
}


def _flat(args, kwargs):
    for t in (*args, *kwargs.values()):
        yield from (t if isinstance(t, tuple) else (t,))


def _leaves(args, kwargs):
    return [t for t in _flat(args, kwargs) if isinstance(t, torch.Tensor) and t.requires_grad]


def _run(fn, args, kwargs, seed=1):
    """Outputs, then the gradients of every leaf under a fixed random linear loss."""
    outs = fn(*args, **kwargs)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
    grads = torch.autograd.grad(loss, _leaves(args, kwargs))
    return [o.detach() for o in outs], list(grads)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_fused_matches_reference(shape, variant, dtype):
    args, kwargs = variant_layer_case(**SHAPES[shape], **VARIANTS[variant], dtype=dtype)
    fused_out, fused_grads = _run(fused_variants.lstm_variant_layer, args, kwargs)
    ref_out, ref_grads = _run(reference.variant_lstm_layer, args, kwargs)
    assert len(fused_grads) == len(ref_grads) >= 5
    if dtype == torch.float64:
        for actual, expected in zip(fused_out + fused_grads, ref_out + ref_grads):
            assert_close(actual, expected)
        return
    # float32: both held to the float64 truth of the same values (the same masks included)
    to64 = lambda t: t.detach().double().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) and t.is_floating_point() else t  # noqa: E731
    args64 = tuple(to64(t) for t in args)
    kwargs64 = {k: tuple(to64(t) for t in v) if isinstance(v, tuple) else to64(v) for k, v in kwargs.items()}
    truth_out, truth_grads = _run(reference.variant_lstm_layer, args64, kwargs64)
    for actual, truth, plain in zip(fused_out + fused_grads, truth_out + truth_grads, ref_out + ref_grads):
        assert_close_to_truth(actual, truth, plain)


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
@pytest.mark.parametrize("shape", ["dense", "packed-reverse", "no-bias"])
def test_gradcheck(shape, variant):
    args, kwargs = variant_layer_case(**{**SHAPES[shape], "T": 3}, **VARIANTS[variant])
    leaves = _leaves(args, kwargs)

    def fn(*leaf_values):
        it = iter(leaf_values)
        swap = lambda t: next(it) if isinstance(t, torch.Tensor) and t.requires_grad else t  # noqa: E731
        a = [swap(t) for t in args]
        k = {n: tuple(swap(x) for x in t) if isinstance(t, tuple) else swap(t) for n, t in kwargs.items()}
        return fused_variants.lstm_variant_layer(*a, **k)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("variant", ["peephole", "layer-norm", "all", "lesson-peephole-zoneout"])
@pytest.mark.parametrize("shape", ["dense", "packed-reverse"])
def test_opcheck(shape, variant):
    op_args = variant_op_args(*variant_layer_case(**SHAPES[shape], **VARIANTS[variant]))
    fixed = ("zoneout_h", "zoneout_c", "batch_sizes", "reverse")
    names = [a.name for a in ops.lstm_variant_layer.default._schema.arguments]
    torch.library.opcheck(ops.lstm_variant_layer, tuple(
        t.clone().requires_grad_() if name not in fixed and t is not None else t for name, t in zip(names, op_args)
    ))
    output, h_n, c_n, *saved = ops.lstm_variant_layer(*op_args)
    for mask in ([True, True, True], [False, False, True], [True, False, False]):
        torch.library.opcheck(
            ops.lstm_variant_layer_backward,
            variant_backward_args(op_args, [torch.randn_like(t) for t in (output, h_n, c_n)], output, saved, mask),
        )


def test_keep_one_holds_the_state_and_keep_zero_is_the_plain_lstm():
    args, kwargs = variant_layer_case(zoneout_h=1.0, zoneout_c=1.0, training=False)
    input, h0, c0 = args[:3]
    output, h_n, c_n = fused_variants.lstm_variant_layer(*args, **kwargs)
    assert_close(output, h0.expand_as(output))
    assert_close((h_n, c_n), (h0, c0))
    zero = dict(peephole=torch.zeros_like(kwargs["zoneout_h"][0, 0, :1].expand(18)),
                zoneout_h=torch.zeros_like(kwargs["zoneout_h"]), zoneout_c=torch.zeros_like(kwargs["zoneout_c"]))
    assert_close(fused_variants.lstm_variant_layer(*args, **zero), reference.lstm_layer(*args[:7], None, *args[7:]))


def test_layer_norm_carries_the_unnormalized_cell_state():
    args, kwargs = variant_layer_case(layer_norm=True, T=1)
    input, h0, c0, w_ih, w_hh, b_ih, b_hh = args[:7]
    ln = kwargs["layer_norm"]
    _, h_n, c_n = fused_variants.lstm_variant_layer(*args, **kwargs)
    norm = lambda x, w, b: torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b)  # noqa: E731
    gates = norm(input[0] @ w_ih.T, ln[0], ln[1]) + norm(h0 @ w_hh.T, ln[2], ln[3]) + b_ih + b_hh
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    assert_close(c_n, c)  # carried as is
    assert_close(h_n, torch.sigmoid(o) * torch.tanh(norm(c, ln[4], ln[5])))


def test_errors_name_the_problem():
    op = ops.lstm_variant_layer
    args = variant_op_args(*variant_layer_case(peephole=True, zoneout_h=0.5))
    with pytest.raises(RuntimeError, match="expected peephole of shape"):
        op(*with_args(op, args, peephole=args[7][:-1]))
    with pytest.raises(RuntimeError, match="expected zoneout_h of shape"):
        op(*with_args(op, args, zoneout_h=args[8][:-1]))
    with pytest.raises(RuntimeError, match="w_ih"):
        op(*with_args(op, args, w_ih=args[1][:, :-1]))
    with pytest.raises(RuntimeError, match="b_ih"):
        op(*with_args(op, args, b_ih=args[2][:-1]))
    with pytest.raises(RuntimeError, match="float32 and float64"):
        op(*(t.bfloat16() if isinstance(t, torch.Tensor) else t for t in args))
    with pytest.raises(RuntimeError, match="h0"):
        op(*with_args(op, args, h0=args[4][:, :-1]))
    ln = variant_op_args(*variant_layer_case(layer_norm=True))
    with pytest.raises(RuntimeError, match="4 \\* hidden_size"):
        op(*with_args(op, ln, input=ln[0][..., :-1]))
    with pytest.raises(RuntimeError, match="b_ih and b_hh need w_ih"):
        op(*with_args(op, ln, b_ih=args[2]))
    with pytest.raises(RuntimeError, match="ln_c_weight and ln_c_bias both or neither"):
        op(*with_args(op, ln, ln_c_bias=None))
    with pytest.raises(RuntimeError, match="expected ln_hh_weight of shape"):
        op(*with_args(op, ln, ln_hh_weight=ln[10][:-1]))
    lesson = variant_op_args(*variant_layer_case(lesson=True))
    with pytest.raises(RuntimeError, match="expected w_u of shape"):
        op(*with_args(op, lesson, w_u=lesson[13][:-1]))
    with pytest.raises(RuntimeError, match="b_u needs w_u"):
        op(*with_args(op, lesson, w_u=None))
    with pytest.raises(RuntimeError, match="does not combine with layer norm"):
        op(*with_args(op, ln, w_u=lesson[13], b_u=lesson[14]))


def test_lesson_use_gate_is_the_lessons_equation():
    args, kwargs = variant_layer_case(lesson=True, T=1)
    input, h0, c0, w_ih, w_hh, b_ih, b_hh = args[:7]
    w_u, b_u = kwargs["lesson_use_gate"]
    _, h_n, c_n = fused_variants.lstm_variant_layer(*args, **kwargs)
    i, f, g, o = (input[0] @ w_ih.T + b_ih + h0 @ w_hh.T + b_hh).chunk(4, 1)
    forgotten = c0 * torch.sigmoid(f)  # LTM_{t-1} * f_t
    assert_close(c_n, forgotten + torch.sigmoid(i) * torch.tanh(g))  # the standard remember gate
    assert_close(h_n, torch.tanh(forgotten @ w_u.T + b_u) * torch.sigmoid(o))  # U_t * V_t


@pytest.mark.parametrize("rows", [8, 2048], ids=["F.linear", "lstm_ext.linear"])
def test_projection_is_f_linear_on_either_side_of_the_threshold(rows):
    """Small products take F.linear, big ones lstm_ext::linear (oneDNN); both give F.linear's
    result and gradients. 2048 x 256 x 256 is the threshold's first product on the op."""
    I, G = 256, 256
    assert (2 * rows * I * G >= fused_variants.NATIVE_LINEAR_MAX_FLOPS) == (rows == 2048)
    g = torch.Generator().manual_seed(0)
    leaves = [torch.randn(rows // 2, 2, I, generator=g, dtype=torch.float64),
              torch.randn(G, I, generator=g, dtype=torch.float64), torch.randn(G, generator=g, dtype=torch.float64)]
    weights = torch.randn(rows // 2, 2, G, generator=g, dtype=torch.float64)

    def run(fn):
        inputs = [t.clone().requires_grad_() for t in leaves]
        out = fn(*inputs)
        return [out.detach(), *torch.autograd.grad((out * weights).sum(), inputs)]

    for actual, expected in zip(run(fused_variants._projection), run(torch.nn.functional.linear)):
        assert_close(actual, expected)
