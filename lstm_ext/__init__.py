"""lstm_ext: fused LSTM, GRU and LSTM-variant kernels for PyTorch.

- ``LSTM`` / ``LSTMCell``: drop-in replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``, with
  optional variants (recurrent dropout, peephole, zoneout, layer norm, the lesson's use gate).
- ``GRU`` / ``GRUCell``: drop-in replacements for ``torch.nn.GRU`` / ``torch.nn.GRUCell``.
- ``convert(module)``: swaps every ``nn.LSTM`` / ``nn.LSTMCell`` in a model for ours, in place.
- ``has_kernel(op, device, dtype)``: whether a fused kernel runs that op for that device and dtype.
- ``reference``: the four gates of the lesson (learn, forget, remember, use) in plain PyTorch.
"""

# Importing the op modules registers the fake kernels and autograd formulas of every op.
from . import _masks, _ops, reference
from ._ops import has_kernel
from .convert import convert
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell
from .lstm_variants import ops as _variant_ops

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "convert", "has_kernel", "reference"]
__version__ = "0.1.0"
