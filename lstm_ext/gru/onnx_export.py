"""The ONNX forms of the GRU's ops (``gru_layer``, ``gru_cell``): ONNX's own ``GRU`` operator with
``linear_before_reset=1``, torch's formula (the reset gate scales ``h W_hn + b_hn``), one node per
layer-direction. torch's gates r, z, n become ONNX's z, r, h. Registered with both exporters by
``lstm_ext._onnx``."""

from __future__ import annotations

from typing import Any, Optional

from .. import _onnx_rnn as rnn
from .._onnx import Builder, translation

# ONNX's GRU gate blocks z, r, h as torch's block numbers (r 0, z 1, n 2).
ONNX_GATE_ORDER = (1, 0, 2)


def gru_node(b: Builder, x: Any, h0: Any, w_ih: Any, w_hh: Any, b_ih: Optional[Any], b_hh: Optional[Any],
             reverse: bool) -> tuple[Any, Any]:
    """One ONNX ``GRU`` node over x ``[T, B, I]`` from h0 ``[B, H]``: ``(Y, Y_h)`` in ONNX's shapes."""
    hidden = b.shape(w_hh)[1]
    rows = rnn.gate_rows(hidden, ONNX_GATE_ORDER)
    return b.op("GRU", x, rnn.onnx_weight(b, w_ih, rows), rnn.onnx_weight(b, w_hh, rows),
                rnn.onnx_bias(b, b_ih, b_hh, rows), None, rnn.state(b, h0), outputs=2, hidden_size=hidden,
                direction=rnn.direction(reverse), linear_before_reset=1)


@translation("gru_layer")
def gru_layer(b: Builder, input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse):
    rnn.check_dense(batch_sizes)
    y, y_h = gru_node(b, input, h0, w_ih, w_hh, b_ih, b_hh, bool(reverse))
    output = rnn.layer_output(b, y)
    return (output, rnn.final_state(b, y_h), *rnn.for_backward_only(b, output))


@translation("gru_cell")
def gru_cell(b: Builder, input, hx, w_ih, w_hh, b_ih, b_hh):
    _, y_h = gru_node(b, rnn.cell_input(b, input), hx, w_ih, w_hh, b_ih, b_hh, False)
    hy = rnn.final_state(b, y_h)
    return (hy, *rnn.for_backward_only(b, hy))
