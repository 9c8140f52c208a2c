"""Fake kernels, autograd and Python entry points of the LSTM-variant ops (peephole, zoneout,
layer norm).

``lstm_variant_layer`` runs the recurrence only: the input projection ``x @ W_ih^T + b`` (with
layer norm: ``LN(x @ W_ih^T) + b``) is one F.linear (for big products ``lstm_ext::linear``, on the
layer kernels' GEMM) and one ``F.layer_norm`` over every step, done here and differentiated by autograd, and the
op works on those input gates. See ``csrc/ops.cpp`` for the schemas and ``csrc/lstm_variants/variant_gates.h`` for the math.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .._ops import LOAD_ERROR, _check_fake_kernel_devices, _grad_like, _no_zero_grads, _or_zeros, _refuse_double_backward, ops
from ..reference import LAYER_NORM_EPS


if LOAD_ERROR is None:

    # ---- linear: the input projection ------------------------------------------------------

    @torch.library.register_fake("lstm_ext::linear")
    def _linear_fake(input, weight, bias):
        _check_fake_kernel_devices("linear", input, weight=weight, bias=bias)
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
    def _variant_layer_fake(xgates, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight,
                            ln_c_bias, w_u, b_u, batch_sizes, reverse):
        _check_fake_kernel_devices("lstm_variant_layer", xgates, batch_sizes, h0=h0, c0=c0, w_hh=w_hh, peephole=peephole,
                       zoneout_h=zoneout_h, zoneout_c=zoneout_c, ln_hh_weight=ln_hh_weight,
                       ln_c_weight=ln_c_weight, ln_c_bias=ln_c_bias, w_u=w_u, b_u=b_u)
        hidden = w_hh.shape[0] // 4
        rows = xgates.shape[0] * xgates.shape[1] if batch_sizes is None else xgates.shape[0]
        output = xgates.new_empty((*xgates.shape[:-1], hidden))
        gates = xgates.new_empty((rows, 4 * hidden))
        cells = xgates.new_empty((rows, hidden))
        states = xgates.new_empty((rows, hidden) if zoneout_c is not None else (0,))
        rec = xgates.new_empty((rows, 4 * hidden) if ln_hh_weight is not None else (0,))
        layer_norm = ln_hh_weight is not None or ln_c_weight is not None
        stats = xgates.new_empty((rows, 3) if layer_norm else (0,))
        lesson = xgates.new_empty((2, rows, hidden) if w_u is not None else (0,))
        return output, torch.empty_like(h0), torch.empty_like(c0), gates, cells, states, rec, stats, lesson

    @torch.library.register_fake("lstm_ext::lstm_variant_layer_backward")
    def _variant_layer_backward_fake(
        grad_output, grad_h_n, grad_c_n, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight,
        ln_c_bias, w_u, b_u, batch_sizes, reverse, output, gates, cells, states, rec, stats, lesson, output_mask,
    ):
        _check_fake_kernel_devices("lstm_variant_layer_backward", grad_output, batch_sizes, grad_h_n=grad_h_n, grad_c_n=grad_c_n,
                       h0=h0, c0=c0, w_hh=w_hh, peephole=peephole, zoneout_h=zoneout_h, zoneout_c=zoneout_c,
                       ln_hh_weight=ln_hh_weight, ln_c_weight=ln_c_weight, ln_c_bias=ln_c_bias, w_u=w_u, b_u=b_u,
                       output=output, gates=gates, cells=cells, states=states, rec=rec, stats=stats, lesson=lesson)
        need_xgates, need_state, need_weights = output_mask

        def weight_grad(weight):
            return _grad_like(need_weights and weight is not None, weight if weight is not None else w_hh)

        return (
            _grad_like(need_xgates, gates, (*output.shape[:-1], gates.shape[-1])),
            _grad_like(need_state, h0), _grad_like(need_state, c0), _grad_like(need_weights, w_hh),
            weight_grad(peephole), weight_grad(ln_hh_weight), weight_grad(ln_c_weight), weight_grad(ln_c_bias),
            weight_grad(w_u), weight_grad(b_u),
        )

    def _variant_layer_setup_context(ctx, inputs, output):
        _no_zero_grads(ctx)
        (xgates, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u,
         batch_sizes, reverse) = inputs
        out, _, _, gates, cells, states, rec, stats, lesson = output
        ctx.save_for_backward(h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias,
                              w_u, b_u, batch_sizes, out, gates, cells, states, rec, stats, lesson)
        ctx.reverse = reverse

    def _variant_layer_backward(ctx, grad_output, grad_h_n, grad_c_n, *_saved_grads):
        _refuse_double_backward()
        (h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes,
         out, gates, cells, states, rec, stats, lesson) = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1] or need[2], need[3] or need[4] or any(need[7:12])]
        grads = ops.lstm_variant_layer_backward(
            _or_zeros(grad_output, out), _or_zeros(grad_h_n, h0), _or_zeros(grad_c_n, c0), h0, c0, w_hh,
            peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes,
            ctx.reverse, out, gates, cells, states, rec, stats, lesson, mask,
        )
        g_xgates, g_h0, g_c0, g_w_hh, g_peephole, g_ln_hh, g_ln_c_weight, g_ln_c_bias, g_w_u, g_b_u = grads
        inputs = (None, h0, c0, w_hh, peephole, None, None, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u)
        chosen = (g_xgates, g_h0, g_c0, g_w_hh, g_peephole, None, None, g_ln_hh, g_ln_c_weight, g_ln_c_bias, g_w_u,
                  g_b_u)
        result = [
            grad if need[i] and (i == 0 or inputs[i] is not None) else None for i, grad in enumerate(chosen)
        ]
        return (*result, None, None)

    torch.library.register_autograd(
        "lstm_ext::lstm_variant_layer", _variant_layer_backward, setup_context=_variant_layer_setup_context
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
    small = 2 * rows.shape[0] * weight.shape[0] * weight.shape[1] < NATIVE_LINEAR_MAX_FLOPS
    product = F.linear(rows, weight, bias) if small else ops.linear(rows, weight, bias)
    return product.view(*input.shape[:-1], weight.shape[0])


def input_gates(
    input: Tensor, w_ih: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
    layer_norm: Optional[Sequence[Tensor]],
) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """The op's ``xgates`` for every step at once, and its layer-norm arguments
    ``(ln_hh_weight, ln_c_weight, ln_c_bias)`` (None without layer norm)."""
    bias = b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh)
    if layer_norm is None:
        return _projection(input, w_ih, bias), None, None, None
    ih_weight, ih_bias, ln_hh_weight, hh_bias, ln_c_weight, ln_c_bias = layer_norm
    # LN(x W_ih^T) + its bias + b, with the recurrent LN's bias folded in: all of them add to the gates
    ih_bias = ih_bias + hh_bias if bias is None else ih_bias + hh_bias + bias
    xgates = F.layer_norm(_projection(input, w_ih, None), (w_ih.shape[0],), ih_weight, ih_bias, eps=LAYER_NORM_EPS)
    return xgates, ln_hh_weight, ln_c_weight, ln_c_bias


def lstm_variant_layer(
    input: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    batch_sizes: Optional[Tensor],
    reverse: bool,
    *,
    peephole: Optional[Tensor] = None,
    zoneout_h: Optional[Tensor] = None,
    zoneout_c: Optional[Tensor] = None,
    layer_norm: Optional[Sequence[Tensor]] = None,
    lesson_use_gate: Optional[tuple[Tensor, Optional[Tensor]]] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One variant layer-direction through the fused kernel; the contract of
    :func:`lstm_ext.reference.variant_lstm_layer`.

    Shapes: input ``[T, B, I]`` (or packed ``[N, I]`` with ``batch_sizes``), h0 and c0 ``[B, H]``,
    w_ih ``[4H, I]``, w_hh ``[4H, H]``, biases ``[4H]`` or None, peephole ``[3H]`` (p_i, p_f, p_o),
    zoneout_h / zoneout_c shaped like the output (``[T, B, H]`` or ``[N, H]``): the weight of each
    unit's previous value; layer_norm: the gains and biases ``(ih_weight [4H], ih_bias [4H],
    hh_weight [4H], hh_bias [4H], c_weight [H], c_bias [H])``; lesson_use_gate: ``(W_u [H, H], b_u [H]
    or None)``, the lesson's use gate. Returns ``(output, h_n [B, H], c_n [B, H])``.
    """
    xgates, ln_hh_weight, ln_c_weight, ln_c_bias = input_gates(input, w_ih, b_ih, b_hh, layer_norm)
    w_u, b_u = lesson_use_gate if lesson_use_gate is not None else (None, None)
    output, h_n, c_n = ops.lstm_variant_layer(
        xgates, h0, c0, w_hh, peephole, zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u,
        batch_sizes, reverse,
    )[:3]
    return output, h_n, c_n


__all__ = ["input_gates", "lstm_variant_layer"]
