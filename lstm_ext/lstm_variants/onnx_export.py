"""The ONNX forms of the variants' ops (``lstm_variant_layer``, ``linear``). With peephole
connections alone the layer is ONNX's own ``LSTM`` operator with its ``P`` input (ONNX's LSTM has
the same peephole formula), so ONNX Runtime runs its LSTM kernel. Zoneout, layer norm and the
lesson's use gate change the recurrence itself, which no ONNX operator holds: the layer-direction
is then a ``Loop`` of standard operators (``lstm/onnx_loop.py``). Zoneout's keep weights are the
op's input: in eval mode the constant zoneout probability (training mode's random masks are
refused before this, in ``_masks.py``). Registered with both exporters by ``lstm_ext._onnx``."""

from __future__ import annotations

from .. import _onnx_rnn as rnn
from .._onnx import Builder, translation
from ..lstm.onnx_export import lstm_node
from ..lstm.onnx_loop import StepOptions, input_gates, lstm_loop


@translation("linear")
def linear(b: Builder, input, weight, bias):
    """The input projection of a layer-normalized LSTM, ``input [N, K] @ weight^T + bias``."""
    product = b.op("MatMul", input, b.op("Transpose", weight, perm=[1, 0]))
    return product if bias is None else b.op("Add", product, bias)


@translation("lstm_variant_layer")
def lstm_variant_layer(b: Builder, input, w_ih, b_ih, b_hh, h0, c0, w_hh, peephole, zoneout_h, zoneout_c,
                       ln_hh_weight, ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes, reverse):
    rnn.check_dense(batch_sizes)
    options = StepOptions(
        peephole=peephole, zoneout_h=zoneout_h, zoneout_c=zoneout_c, recurrent_norm=ln_hh_weight,
        cell_norm=None if ln_c_weight is None else (ln_c_weight, ln_c_bias),
        lesson=None if w_u is None else (w_u, b_u),
    )
    changed = (zoneout_h, zoneout_c, ln_hh_weight, ln_c_weight, w_u)  # the recurrence, beyond a peephole
    if w_ih is not None and all(value is None for value in changed):
        y, y_h, y_c = lstm_node(b, input, h0, c0, w_ih, w_hh, b_ih, b_hh, bool(reverse), peephole=peephole)
        output, h_n, c_n = rnn.layer_output(b, y), rnn.final_state(b, y_h), rnn.final_state(b, y_c)
    else:
        # with layer norm on the input projection, the op's input is already the input gates
        gates_in = input if w_ih is None else input_gates(b, input, w_ih, b_ih, b_hh)
        output, h_n, c_n = lstm_loop(b, gates_in, h0, c0, w_hh, options, bool(reverse))
    # the saved tensors (gates, cells, states, rec, stats, lesson) serve the backward alone
    return (output, h_n, c_n, *rnn.for_backward_only(b, output, c_n, c_n, output, c_n, c_n))
