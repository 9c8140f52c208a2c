"""lstm_ext: fused LSTM kernels for PyTorch.

- ``LSTM`` / ``LSTMCell``: drop-in replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``.
- ``convert(module)``: swaps every ``nn.LSTM`` / ``nn.LSTMCell`` in a model for ours, in place.
- ``reference``: the four gates of the lesson (learn, forget, remember, use) in plain PyTorch.
- ``GRU`` / ``GRUCell``: drop-in replacements for ``torch.nn.GRU`` / ``torch.nn.GRUCell``.
"""

from . import _ops, reference
from .convert import convert
from .modules import LSTM, LSTMCell

from . import _gru_ops  # noqa: E402,F401  (registers the GRU ops' fake kernels and autograd)
from .gru import GRU, GRUCell  # noqa: E402

__all__ = ["LSTM", "LSTMCell", "convert", "reference"]
__all__ += ["GRU", "GRUCell"]
__version__ = "0.1.0"
