"""The LSTM family: :class:`LSTM` (``layer.py``) and :class:`LSTMCell` (``cell.py``), drop-in
replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``, and its ops (``ops.py``: the family's
kernels, fake kernels and autograd formulas). The variant options run on
:mod:`lstm_ext.lstm_variants`."""

from .cell import LSTMCell
from .layer import LSTM

__all__ = ["LSTM", "LSTMCell"]
