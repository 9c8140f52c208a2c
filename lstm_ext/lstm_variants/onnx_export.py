"""The ONNX form of the variants' op (``lstm_variant_layer``): with peephole connections alone,
ONNX's own ``LSTM`` operator with its ``P`` input (ONNX's LSTM has the same peephole formula), so
ONNX Runtime runs its LSTM kernel. Zoneout, layer norm and the lesson's use gate change the
recurrence itself and have no ONNX operator; they are refused with their names. Registered with
both exporters by ``lstm_ext._onnx``."""

from __future__ import annotations

from .. import _onnx_rnn as rnn
from .._onnx import Builder, refuse, translation
from ..lstm.onnx_export import lstm_node

_ARGUMENTS = ("input", "w_ih", "b_ih", "b_hh", "h0", "c0", "w_hh", "peephole", "zoneout_h", "zoneout_c",
              "ln_hh_weight", "ln_c_weight", "ln_c_bias", "w_u", "b_u", "batch_sizes", "reverse")
_NOT_YET = "only the plain LSTM, GRU and peephole connections export today"


@translation("lstm_variant_layer", _ARGUMENTS, attributes={"reverse": bool})
def lstm_variant_layer(b: Builder, input, w_ih, b_ih, b_hh, h0, c0, w_hh, peephole, zoneout_h, zoneout_c,
                       ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes, reverse):
    if zoneout_h is not None or zoneout_c is not None:
        refuse("zoneout", _NOT_YET)
    if w_ih is None or ln_hh_weight is not None or ln_c_weight is not None:
        refuse("layer_norm", _NOT_YET)
    if w_u is not None:
        refuse("use_gate='lesson'", _NOT_YET)
    rnn.check_dense(batch_sizes)
    y, y_h, y_c = lstm_node(b, input, h0, c0, w_ih, w_hh, b_ih, b_hh, bool(reverse), peephole=peephole)
    output, c_n = rnn.layer_output(b, y), rnn.final_state(b, y_c)
    # the saved tensors (gates, cells, states, rec, stats, lesson) serve the backward alone
    return (output, rnn.final_state(b, y_h), c_n, *rnn.for_backward_only(b, output, c_n, c_n, output, c_n, c_n))
