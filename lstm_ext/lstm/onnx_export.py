"""The ONNX forms of the LSTM's ops (``lstm_layer``, ``lstm_cell``): ONNX's own ``LSTM`` operator,
one node per layer-direction, so ONNX Runtime runs its LSTM kernel. torch's gates i, f, g, o
become ONNX's i, o, f, c. ONNX's LSTM has no projection: with ``proj_size`` the layer-direction is
a ``Loop`` of standard operators (``onnx_loop.py``). Registered with both exporters by
``lstm_ext._onnx``."""

from __future__ import annotations

from typing import Any, Optional

from .. import _onnx_rnn as rnn
from .._onnx import Builder, translation
from .onnx_loop import StepOptions, input_gates, lstm_loop

# ONNX's LSTM gate blocks i, o, f, c as torch's block numbers (i 0, f 1, g 2, o 3).
ONNX_GATE_ORDER = (0, 3, 1, 2)


def lstm_node(b: Builder, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Optional[Any], b_hh: Optional[Any],
              reverse: bool, peephole: Optional[Any] = None) -> tuple[Any, Any, Any]:
    """One ONNX ``LSTM`` node over x ``[T, B, I]`` from ``h0``, ``c0`` ``[B, H]``: ``(Y, Y_h, Y_c)``
    in ONNX's shapes. ``peephole``: lstm_ext's ``[3H]`` (p_i, p_f, p_o), ONNX's ``P``."""
    hidden = b.shape(w_hh)[1]
    rows = rnn.gate_rows(hidden, ONNX_GATE_ORDER)
    p = None
    if peephole is not None:  # ONNX's P is p_i, p_o, p_f
        p = b.op("Unsqueeze", b.op("Gather", peephole, b.ints(rnn.gate_rows(hidden, (0, 2, 1))), axis=0),
                 b.ints([0]))
    return b.op("LSTM", x, rnn.onnx_weight(b, w_ih, rows), rnn.onnx_weight(b, w_hh, rows),
                rnn.onnx_bias(b, b_ih, b_hh, rows), None, rnn.state(b, h0), rnn.state(b, c0), p, outputs=3,
                hidden_size=hidden, direction=rnn.direction(reverse))


@translation("lstm_layer")
def lstm_layer(b: Builder, input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse):
    rnn.check_dense(batch_sizes)
    if w_hr is not None:
        output, h_n, c_n = lstm_loop(b, input_gates(b, input, w_ih, b_ih, b_hh), h0, c0, w_hh,
                                     StepOptions(projection=w_hr), bool(reverse))
    else:
        y, y_h, y_c = lstm_node(b, input, h0, c0, w_ih, w_hh, b_ih, b_hh, bool(reverse))
        output, h_n, c_n = rnn.layer_output(b, y), rnn.final_state(b, y_h), rnn.final_state(b, y_c)
    return (output, h_n, c_n, *rnn.for_backward_only(b, output, c_n))


@translation("lstm_cell")
def lstm_cell(b: Builder, input, hx, cx, w_ih, w_hh, b_ih, b_hh):
    _, y_h, y_c = lstm_node(b, rnn.cell_input(b, input), hx, cx, w_ih, w_hh, b_ih, b_hh, False)
    cy = rnn.final_state(b, y_c)
    return (rnn.final_state(b, y_h), cy, *rnn.for_backward_only(b, cy))
