"""Every cell family in plain PyTorch, for reading: the slow, obviously-correct twins of the fused
kernels (same arguments, same results, differentiable by autograd), and what
``backend="reference"`` of the layers runs.

- :mod:`~lstm_ext.reference.lstm`: the lesson's four gates (learn, forget, remember, use), the LSTM
  cell and layer, and the variants' layer;
- :mod:`~lstm_ext.reference.lstm_variants`: each variant as a change to one gate (recurrent
  dropout, peephole, zoneout, layer norm, the lesson's use gate);
- :mod:`~lstm_ext.reference.gru`: the GRU cell and layer;
- :mod:`~lstm_ext.reference.walk`: the one time loop every layer walks its cell with.

Each function is here under its own name (``lstm_ext.reference.lstm_cell``, ...).
"""

from .gru import gru_cell, gru_layer
from .lstm import (
    forget_gate, learn_gate, lstm_cell, lstm_layer, remember_gate, use_gate, variant_lstm_cell, variant_lstm_layer,
)
from .lstm_variants import (
    LAYER_NORM_EPS, drop_connect, layer_norm_gates, lesson_use_gate, peephole_gates, zoneout, zoneout_weights,
)

__all__ = [
    "learn_gate", "forget_gate", "remember_gate", "use_gate", "lstm_cell", "lstm_layer",
    # the variants
    "LAYER_NORM_EPS", "drop_connect", "peephole_gates", "zoneout", "zoneout_weights", "layer_norm_gates",
    "lesson_use_gate",
    "variant_lstm_cell", "variant_lstm_layer",
    # the GRU
    "gru_cell", "gru_layer",
]
