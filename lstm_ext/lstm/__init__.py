"""The LSTM family: :class:`LSTM` (``layer.py``) and :class:`LSTMCell` (``cell.py``), drop-in
replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``, and its ops (``ops.py``: the family's
kernels, fake kernels and autograd formulas; ``onnx_export.py``: their ONNX forms). The variant options run on
:mod:`lstm_ext.lstm_variants`."""

from . import onnx_export  # noqa: F401  (the ops' ONNX forms, registered with lstm_ext._onnx)
from .cell import LSTMCell
from .layer import LSTM

__all__ = ["LSTM", "LSTMCell"]
