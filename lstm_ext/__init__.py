"""lstm_ext: fused LSTM, GRU and LSTM-variant kernels for PyTorch.

- ``LSTM`` / ``LSTMCell``: drop-in replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``, with
  optional variants (recurrent dropout, peephole, zoneout, layer norm, the lesson's use gate).
- ``GRU`` / ``GRUCell``: drop-in replacements for ``torch.nn.GRU`` / ``torch.nn.GRUCell``.
- ``convert(module)``: swaps every ``nn.LSTM`` / ``nn.LSTMCell`` / ``nn.GRU`` / ``nn.GRUCell`` in a
  model for ours, in place.
- ``has_kernel(op, device, dtype)``: whether a fused kernel runs that op for that device and dtype.
- ``register_onnx_translations()``: registers the ops' ONNX forms with both of torch's exporters
  now (importing lstm_ext arranges it for ``torch.onnx.export`` already; this is for tools that
  build their own registry).
- ``reference``: every cell in plain PyTorch, starting with the four gates of the lesson (learn,
  forget, remember, use).

Each cell family is a package (``lstm``, ``gru``, ``lstm_variants``); importing it registers its
ops' fake kernels and autograd formulas, and its kernels with :func:`has_kernel`.
"""

from . import reference
from ._library import has_kernel
from ._onnx import register as register_onnx_translations
from .convert import convert
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell

from ._onnx import install as _install_onnx_translations

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "convert", "has_kernel", "reference", "register_onnx_translations"]
_install_onnx_translations()
__version__ = "0.1.0"
