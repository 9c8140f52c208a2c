"""lstm_ext: fused LSTM kernels for PyTorch.

- ``LSTM`` / ``LSTMCell``: drop-in replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``.
- ``convert(module)``: swaps every ``nn.LSTM`` / ``nn.LSTMCell`` in a model for ours, in place.
- ``reference``: the four gates of the lesson (learn, forget, remember, use) in plain PyTorch.
"""

from . import _ops, reference
from .convert import convert
from .modules import LSTM, LSTMCell

__all__ = ["LSTM", "LSTMCell", "convert", "reference"]
__version__ = "0.1.0"
