"""The LSTM variants' ops (``lstm_variant_layer``, its backward op and ``linear`` in
``csrc/ops.cpp``): the family's kernels, their fake kernels and autograd formulas, and the Python
entry point the LSTM layers call for peephole, zoneout, layer norm and the lesson's use gate.

``lstm_variant_layer`` takes the layer's input and ``W_ih`` like ``lstm_layer``, so its fused step
multiplies ``x_t`` in the same register tile as ``h_{t-1}``. With layer norm on the input
projection it takes the input gates ``LN(x @ W_ih^T) + b`` instead: one F.linear (for big products
``lstm_ext::linear``, on the layer kernels' GEMM) and one ``F.layer_norm`` over every step, done
here and differentiated by autograd. See ``csrc/ops.cpp`` for the schemas and
``csrc/lstm_variants/variant_gates.h`` for the math.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import reference
from .._op_plumbing import (
    check_fake_devices, fake_input_grads, fake_layer_output, implements, register_autograd_through_backward, run_op,
)
from .._library import LOAD_ERROR, ops, register_family
from ..reference.lstm_variants import LAYER_NORM_EPS

register_family(
    "lstm_variants",
    ops=("lstm_variant_layer", "lstm_variant_layer_backward", "linear"),
    kernel_dtypes={"cpu": (torch.float32, torch.float64)},
    kernel="variant kernel (peephole, zoneout, layer_norm, use_gate='lesson')",
    supported="the variant kernels run float32 and float64 on the CPU",
)

if LOAD_ERROR is None:

    # ---- linear: the input projection ------------------------------------------------------

    @torch.library.register_fake("lstm_ext::linear")
    def _linear_fake(input, weight, bias):
        check_fake_devices("linear", input, weight=weight, bias=bias)
        return input.new_empty((input.shape[0], weight.shape[0]))

    def _linear_setup_context(ctx, inputs, output):
        input, weight, bias = inputs
        ctx.save_for_backward(input, weight)
        ctx.has_bias = bias is not None

    def _linear_backward(ctx, grad):
        # Differentiable as written (the input gradient is lstm_ext::linear again), so higher
        # orders work; dx = grad @ weight runs on the same GEMM as the forward.
        input, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_input = ops.linear(grad, weight.t(), None) if need[0] else None
        grad_weight = grad.t().mm(input) if need[1] else None
        grad_bias = grad.sum(0) if need[2] and ctx.has_bias else None
        return grad_input, grad_weight, grad_bias

    torch.library.register_autograd("lstm_ext::linear", _linear_backward, setup_context=_linear_setup_context)

    # ---- lstm_variant_layer ------------------------------------------------------------------

    @torch.library.register_fake("lstm_ext::lstm_variant_layer")
    def _variant_layer_fake(input, w_ih, b_ih, b_hh, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight,
                            ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes, reverse):
        check_fake_devices("lstm_variant_layer", input, batch_sizes, w_ih=w_ih, b_ih=b_ih, b_hh=b_hh, h0=h0, c0=c0,
                           w_hh=w_hh, peephole=peephole, zoneout_h=zoneout_h, zoneout_c=zoneout_c,
                           ln_hh_weight=ln_hh_weight, ln_c_weight=ln_c_weight, ln_c_bias=ln_c_bias, w_u=w_u, b_u=b_u)
        hidden = w_hh.shape[0] // 4
        output, rows = fake_layer_output(input, batch_sizes, hidden)
        gates = input.new_empty((rows, 4 * hidden))
        cells = input.new_empty((rows, hidden))
        states = input.new_empty((rows, hidden) if zoneout_c is not None else (0,))
        rec = input.new_empty((rows, 4 * hidden) if ln_hh_weight is not None else (0,))
        layer_norm = ln_hh_weight is not None or ln_c_weight is not None
        stats = input.new_empty((rows, 3) if layer_norm else (0,))
        lesson = input.new_empty((2, rows, hidden) if w_u is not None else (0,))
        return output, torch.empty_like(h0), torch.empty_like(c0), gates, cells, states, rec, stats, lesson

    @torch.library.register_fake("lstm_ext::lstm_variant_layer_backward")
    def _variant_layer_backward_fake(
        grad_output, grad_h_n, grad_c_n, input, w_ih, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight,
        ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes, reverse, output, gates, cells, states, rec, stats, lesson,
        output_mask,
    ):
        check_fake_devices(
            "lstm_variant_layer_backward", grad_output, batch_sizes, grad_h_n=grad_h_n, grad_c_n=grad_c_n, input=input,
            w_ih=w_ih, h0=h0, c0=c0, w_hh=w_hh, peephole=peephole, zoneout_h=zoneout_h, zoneout_c=zoneout_c,
            ln_hh_weight=ln_hh_weight, ln_c_weight=ln_c_weight, ln_c_bias=ln_c_bias, w_u=w_u, b_u=b_u, output=output,
            gates=gates, cells=cells, states=states, rec=rec, stats=stats, lesson=lesson,
        )
        # the input's gradient: x's with w_ih, else the input gates'
        features = gates.shape[-1] if w_ih is None else w_ih.shape[1]
        grad_input = (*output.shape[:-1], features)
        bias = None if w_ih is None else (w_ih.shape[0],)
        weights = (w_ih, w_hh, bias, peephole, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u)
        return fake_input_grads(output_mask, gates, grad_input, (h0, c0), weights)

    register_autograd_through_backward(
        "lstm_variant_layer", states={"h0": "h_n", "c0": "c_n"}, saved_only_with={"input": "w_ih"}
    )


# Below this many flops lstm_ext::linear runs at::addmm itself (kPackedOnceMinFlops in
# csrc/runtime/cpu/recurrent_gemm.cpp: oneDNN's weight reorder does not pay off), so F.linear gives the
# same product without the custom op's autograd wrapper, which runs in Python.
NATIVE_LINEAR_MAX_FLOPS = 256 << 20


def _projection(input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``input [..., in] @ weight^T + bias``: F.linear's result, for big products on
    ``lstm_ext::linear``, the layer kernels' projection GEMM (oneDNN's, on a packed weight)
    instead of MKL's sgemm."""
    rows = input.reshape(-1, input.shape[-1])
    # A symbolic row count (torch.export, dynamic shapes) takes the custom op: comparing it with the
    # threshold would make the exported program guard on the batch and sequence length.
    count = rows.shape[0]
    small = isinstance(count, int) and 2 * count * weight.shape[0] * weight.shape[1] < NATIVE_LINEAR_MAX_FLOPS
    product = F.linear(rows, weight, bias) if small else ops.linear(rows, weight, bias)
    return product.view(*input.shape[:-1], weight.shape[0])


def normalized_input_gates(
    input: Tensor, w_ih: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], layer_norm: Sequence[Tensor],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """With layer norm on the input projection: the op's input gates for every step at once,
    ``LN(x @ W_ih^T)`` plus every bias that adds to the gates, ``[*input.shape[:-1], 4H]``, and its
    layer-norm arguments ``(ln_hh_weight, ln_c_weight, ln_c_bias)``."""
    bias = b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh)
    ih_weight, ih_bias, ln_hh_weight, hh_bias, ln_c_weight, ln_c_bias = layer_norm
    # LN(x W_ih^T) + its bias + b, with the recurrent LN's bias folded in: all of them add to the gates
    ih_bias = ih_bias + hh_bias if bias is None else ih_bias + hh_bias + bias
    xgates = F.layer_norm(_projection(input, w_ih, None), (w_ih.shape[0],), ih_weight, ih_bias, eps=LAYER_NORM_EPS)
    return xgates, ln_hh_weight, ln_c_weight, ln_c_bias


@implements(reference.variant_lstm_layer)
def lstm_variant_layer(
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, *, peephole=None, zoneout_h=None, zoneout_c=None,
    layer_norm=None, lesson_use_gate=None,
):
    if layer_norm is None:
        projection, ln_hh_weight, ln_c_weight, ln_c_bias = (input, w_ih, b_ih, b_hh), None, None, None
    else:
        # the normalised input projection for every step at once (differentiated by autograd)
        xgates, ln_hh_weight, ln_c_weight, ln_c_bias = normalized_input_gates(input, w_ih, b_ih, b_hh, layer_norm)
        projection = (xgates, None, None, None)
    w_u, b_u = lesson_use_gate if lesson_use_gate is not None else (None, None)
    args = (
        *projection, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u,
        batch_sizes, reverse,
    )
    return run_op(ops.lstm_variant_layer, args, 3)


__all__ = ["lstm_variant_layer", "normalized_input_gates"]
