"""The GRU family: :class:`GRU` and :class:`GRUCell` (``layer.py``), drop-in replacements for
``torch.nn.GRU`` / ``torch.nn.GRUCell``, and its ops (``ops.py``: the family's kernels, fake
kernels and autograd formulas; ``onnx_export.py``: their ONNX forms)."""

from . import onnx_export  # noqa: F401  (the ops' ONNX forms, registered with lstm_ext._onnx)
from .layer import GRU, GRUCell

__all__ = ["GRU", "GRUCell"]
