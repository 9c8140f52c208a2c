"""The LSTM variants (peephole, zoneout, layer norm, the lesson's use gate, recurrent dropout):
options of :class:`lstm_ext.LSTM` / :class:`lstm_ext.LSTMCell` rather than layers of their own.
``options.py`` checks and names them and their parameters; ``ops.py`` holds the family's kernels,
fake kernels and autograd formulas, ``onnx_export.py`` its ONNX form; their reference is
:mod:`lstm_ext.reference.lstm_variants`."""

from . import onnx_export  # noqa: F401  (the op's ONNX form, registered with lstm_ext._onnx)
