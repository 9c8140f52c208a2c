"""Teaches PyTorch about the GRU ops of ``csrc/ops.cpp`` (the library is loaded by ``_ops``).

Each op gets a fake kernel (``register_fake``: shapes for ``torch.compile`` and meta tensors)
and the ``*_layer`` / ``*_cell`` ops an autograd formula (``register_autograd``) that calls the
matching ``*_backward`` op, exactly as ``_ops`` does for the LSTM.

The saved ``gates`` tensor is ``[rows, 4H]`` in the op-math dtype (float32 for bfloat16): the
reset gate r, the update gate z, the candidate n and ``hn = h W_hn + b_hn``, the recurrent part
of the candidate before the reset gate scales it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .._ops import (
    LOAD_ERROR, _check_fake_kernel_devices, _grad_like, _no_zero_grads, _opmath, _or_zeros, _refuse_double_backward, ops,
)

if LOAD_ERROR is None:

    # ---- gru_layer ------------------------------------------------------------------------

    @torch.library.register_fake("lstm_ext::gru_layer")
    def _gru_layer_fake(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
        _check_fake_kernel_devices("gru_layer", input, batch_sizes, h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        hidden = w_hh.shape[0] // 3
        rows = input.shape[0] * input.shape[1] if batch_sizes is None else input.shape[0]
        output = input.new_empty((*input.shape[:-1], hidden))
        gates = input.new_empty((rows, 4 * hidden), dtype=_opmath(input.dtype))
        return output, torch.empty_like(h0), gates

    def _bias_grads(need_weights: bool, w_ih: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _grad_like(need_weights, w_ih, (w_ih.shape[0],)), _grad_like(need_weights, w_ih, (w_ih.shape[0],))

    @torch.library.register_fake("lstm_ext::gru_layer_backward")
    def _gru_layer_backward_fake(
        grad_output, grad_h_n, input, h0, w_ih, w_hh, batch_sizes, reverse, output, gates, output_mask
    ):
        _check_fake_kernel_devices("gru_layer_backward", input, batch_sizes, grad_output=grad_output, grad_h_n=grad_h_n, h0=h0,
                       w_ih=w_ih, w_hh=w_hh, output=output, gates=gates)
        need_input, need_state, need_weights = output_mask
        return (
            _grad_like(need_input, input), _grad_like(need_state, h0),
            _grad_like(need_weights, w_ih), _grad_like(need_weights, w_hh), *_bias_grads(need_weights, w_ih),
        )

    def _gru_layer_setup_context(ctx, inputs, output):
        _no_zero_grads(ctx)
        input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = inputs
        out, _, gates = output
        ctx.save_for_backward(input, h0, w_ih, w_hh, batch_sizes, out, gates)
        ctx.reverse = reverse
        ctx.has_bias = (b_ih is not None, b_hh is not None)

    def _gru_layer_backward(ctx, grad_output, grad_h_n, _grad_gates):
        _refuse_double_backward()
        input, h0, w_ih, w_hh, batch_sizes, out, gates = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1], any(need[2:6])]
        g_input, g_h0, g_w_ih, g_w_hh, g_b_ih, g_b_hh = ops.gru_layer_backward(
            _or_zeros(grad_output, out), _or_zeros(grad_h_n, h0), input, h0, w_ih, w_hh, batch_sizes,
            ctx.reverse, out, gates, mask,
        )
        return (
            g_input if need[0] else None,
            g_h0 if need[1] else None,
            g_w_ih if need[2] else None,
            g_w_hh if need[3] else None,
            g_b_ih if need[4] and ctx.has_bias[0] else None,
            g_b_hh if need[5] and ctx.has_bias[1] else None,
            None,
            None,
        )

    torch.library.register_autograd(
        "lstm_ext::gru_layer", _gru_layer_backward, setup_context=_gru_layer_setup_context
    )

    # ---- gru_cell -------------------------------------------------------------------------

    @torch.library.register_fake("lstm_ext::gru_cell")
    def _gru_cell_fake(input, hx, w_ih, w_hh, b_ih, b_hh):
        _check_fake_kernel_devices("gru_cell", input, hx=hx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        gates = input.new_empty((input.shape[0], 4 * (w_hh.shape[0] // 3)), dtype=_opmath(input.dtype))
        return torch.empty_like(hx), gates

    @torch.library.register_fake("lstm_ext::gru_cell_backward")
    def _gru_cell_backward_fake(grad_hy, input, hx, w_ih, w_hh, gates, output_mask):
        _check_fake_kernel_devices("gru_cell_backward", input, grad_hy=grad_hy, hx=hx, w_ih=w_ih, w_hh=w_hh, gates=gates)
        need_input, need_state, need_weights = output_mask
        return (
            _grad_like(need_input, input), _grad_like(need_state, hx),
            _grad_like(need_weights, w_ih), _grad_like(need_weights, w_hh), *_bias_grads(need_weights, w_ih),
        )

    def _gru_cell_setup_context(ctx, inputs, output):
        _no_zero_grads(ctx)
        input, hx, w_ih, w_hh, b_ih, b_hh = inputs
        _, gates = output
        ctx.save_for_backward(input, hx, w_ih, w_hh, gates)
        ctx.has_bias = (b_ih is not None, b_hh is not None)

    def _gru_cell_backward(ctx, grad_hy, _grad_gates):
        _refuse_double_backward()
        input, hx, w_ih, w_hh, gates = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1], any(need[2:6])]
        g_input, g_hx, g_w_ih, g_w_hh, g_b_ih, g_b_hh = ops.gru_cell_backward(
            _or_zeros(grad_hy, hx), input, hx, w_ih, w_hh, gates, mask
        )
        return (
            g_input if need[0] else None,
            g_hx if need[1] else None,
            g_w_ih if need[2] else None,
            g_w_hh if need[3] else None,
            g_b_ih if need[4] and ctx.has_bias[0] else None,
            g_b_hh if need[5] and ctx.has_bias[1] else None,
        )

    torch.library.register_autograd("lstm_ext::gru_cell", _gru_cell_backward, setup_context=_gru_cell_setup_context)


def gru_layer(
    input: torch.Tensor,
    h0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: Optional[torch.Tensor],
    b_hh: Optional[torch.Tensor],
    batch_sizes: Optional[torch.Tensor],
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU layer, one direction, the whole sequence, through the fused kernel.

    Shapes (H hidden size):
      dense:  input [T, B, I], batch_sizes None        -> output [T, B, H]
      packed: input [N, I],    batch_sizes [T] (int64, CPU, non-increasing, sum N) -> output [N, H]
      h0 [B, H], w_ih [3H, I], w_hh [3H, H], b_ih/b_hh [3H] or None (gate order r, z, n).
    Returns (output, h_n [B, H]).
    """
    output, h_n, _ = ops.gru_layer(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse)
    return output, h_n


def gru_cell(
    input: torch.Tensor,
    hx: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: Optional[torch.Tensor],
    b_hh: Optional[torch.Tensor],
) -> torch.Tensor:
    """One GRU step: input [B, I], hx [B, H] -> h [B, H]."""
    hy, _ = ops.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)
    return hy


__all__: Sequence[str] = ["gru_layer", "gru_cell"]
