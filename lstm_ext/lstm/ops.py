"""The LSTM's ops (``lstm_layer``, ``lstm_cell``, ``lstm_inference`` and their backward ops in
``csrc/ops.cpp``): the family's kernels, their fake kernels and autograd formulas, and the Python
entry points the layers call.

``lstm_layer`` saves ``gates`` ``[rows, 4H]`` (activated i, f, g, o) and ``cells`` ``[rows, H]``
for backward, in the op-math dtype (float32 for bfloat16 input).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import reference
from .._op_plumbing import (
    check_fake_devices, fake_input_grads, fake_layer_output, implements, opmath, register_autograd_through_backward,
    run_op,
)
from .._library import CPU_DTYPES, CUDA_DTYPES, LOAD_ERROR, ops, register_family

register_family(
    "lstm",
    ops=("lstm_layer", "lstm_layer_backward", "lstm_cell", "lstm_cell_backward", "lstm_inference"),
    kernel_dtypes={"cpu": CPU_DTYPES, "cuda": CUDA_DTYPES},
)

if LOAD_ERROR is None:

    @torch.library.register_fake("lstm_ext::lstm_layer")
    def _lstm_layer_fake(input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse):
        check_fake_devices(
            "lstm_layer", input, batch_sizes, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr
        )
        hidden = w_hh.shape[0] // 4
        output, rows = fake_layer_output(input, batch_sizes, h0.shape[-1])
        gates = input.new_empty((rows, 4 * hidden), dtype=opmath(input.dtype))
        cells = input.new_empty((rows, hidden), dtype=opmath(input.dtype))
        return output, torch.empty_like(h0), torch.empty_like(c0), gates, cells

    @torch.library.register_fake("lstm_ext::lstm_layer_backward")
    def _lstm_layer_backward_fake(
        grad_output, grad_h_n, grad_c_n, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse,
        output, gates, cells, output_mask,
    ):
        check_fake_devices(
            "lstm_layer_backward", input, batch_sizes, grad_output=grad_output, grad_h_n=grad_h_n, grad_c_n=grad_c_n,
            h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, w_hr=w_hr, output=output, gates=gates, cells=cells,
        )
        return fake_input_grads(output_mask, w_ih, input, (h0, c0), (w_ih, w_hh, (w_ih.shape[0],), w_hr))

    @torch.library.register_fake("lstm_ext::lstm_cell")
    def _lstm_cell_fake(input, hx, cx, w_ih, w_hh, b_ih, b_hh):
        check_fake_devices("lstm_cell", input, hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        gates = input.new_empty((input.shape[0], w_ih.shape[0]), dtype=opmath(input.dtype))
        return torch.empty_like(hx), torch.empty_like(cx), gates

    @torch.library.register_fake("lstm_ext::lstm_cell_backward")
    def _lstm_cell_backward_fake(grad_hy, grad_cy, input, hx, cx, w_ih, w_hh, gates, cy, output_mask):
        check_fake_devices(
            "lstm_cell_backward", input, grad_hy=grad_hy, grad_cy=grad_cy, hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh,
            gates=gates, cy=cy,
        )
        return fake_input_grads(output_mask, w_ih, input, (hx, cx), (w_ih, w_hh, (w_ih.shape[0],)))

    register_autograd_through_backward("lstm_layer", states={"h0": "h_n", "c0": "c_n"})
    register_autograd_through_backward("lstm_cell", states={"hx": "hy", "cx": "cy"})


@implements(reference.lstm_layer)
def lstm_layer(input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse):
    return run_op(ops.lstm_layer, (input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse), 3)


def lstm_cell(
    input: Tensor, hx: Tensor, cx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor]
) -> tuple[Tensor, Tensor]:
    """One step on the fused kernel: input [B, I], hx [B, H], cx [B, H] -> (h [B, H], c [B, H]).
    (:func:`lstm_ext.reference.lstm_cell` takes the state as one pair.)"""
    return run_op(ops.lstm_cell, (input, hx, cx, w_ih, w_hh, b_ih, b_hh), 2)


__all__ = ["lstm_layer", "lstm_cell"]
