"""The GRU's ops (``gru_layer``, ``gru_cell`` and their backward ops in ``csrc/ops.cpp``): the
family's kernels, their fake kernels and autograd formulas, and the Python entry points the
layers call.

The saved ``gates`` tensor is ``[rows, 4H]`` in the op-math dtype (float32 for bfloat16): the
reset gate r, the update gate z, the candidate n and ``hn = h W_hn + b_hn``, the recurrent part
of the candidate before the reset gate scales it.
"""

from __future__ import annotations

import torch

from .. import reference
from .._op_plumbing import (
    check_fake_devices, fake_input_grads, fake_layer_output, implements, opmath, register_autograd_through_backward,
    run_op,
)
from .._library import CPU_DTYPES, LOAD_ERROR, ops, register_family

register_family(
    "gru", ops=("gru_layer", "gru_layer_backward", "gru_cell", "gru_cell_backward"), kernel_dtypes={"cpu": CPU_DTYPES}
)

if LOAD_ERROR is None:

    @torch.library.register_fake("lstm_ext::gru_layer")
    def _gru_layer_fake(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
        check_fake_devices("gru_layer", input, batch_sizes, h0=h0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        hidden = w_hh.shape[0] // 3
        output, rows = fake_layer_output(input, batch_sizes, hidden)
        gates = input.new_empty((rows, 4 * hidden), dtype=opmath(input.dtype))
        return output, torch.empty_like(h0), gates

    @torch.library.register_fake("lstm_ext::gru_layer_backward")
    def _gru_layer_backward_fake(
        grad_output, grad_h_n, input, h0, w_ih, w_hh, batch_sizes, reverse, output, gates, output_mask
    ):
        check_fake_devices(
            "gru_layer_backward", input, batch_sizes, grad_output=grad_output, grad_h_n=grad_h_n, h0=h0, w_ih=w_ih,
            w_hh=w_hh, output=output, gates=gates,
        )
        bias = (w_ih.shape[0],)
        return fake_input_grads(output_mask, w_ih, input, (h0,), (w_ih, w_hh, bias, bias))

    @torch.library.register_fake("lstm_ext::gru_cell")
    def _gru_cell_fake(input, hx, w_ih, w_hh, b_ih, b_hh):
        check_fake_devices("gru_cell", input, hx=hx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        gates = input.new_empty((input.shape[0], 4 * (w_hh.shape[0] // 3)), dtype=opmath(input.dtype))
        return torch.empty_like(hx), gates

    @torch.library.register_fake("lstm_ext::gru_cell_backward")
    def _gru_cell_backward_fake(grad_hy, input, hx, w_ih, w_hh, gates, output_mask):
        check_fake_devices("gru_cell_backward", input, grad_hy=grad_hy, hx=hx, w_ih=w_ih, w_hh=w_hh, gates=gates)
        bias = (w_ih.shape[0],)
        return fake_input_grads(output_mask, w_ih, input, (hx,), (w_ih, w_hh, bias, bias))

    register_autograd_through_backward("gru_layer", states={"h0": "h_n"})
    register_autograd_through_backward("gru_cell", states={"hx": "hy"})


@implements(reference.gru_layer)
def gru_layer(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
    return run_op(ops.gru_layer, (input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse), 2)


@implements(reference.gru_cell)
def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    return run_op(ops.gru_cell, (input, hx, w_ih, w_hh, b_ih, b_hh), 1)[0]


__all__ = ["gru_layer", "gru_cell"]
