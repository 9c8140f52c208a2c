"""The input layouts ``nn.LSTM`` and ``nn.GRU`` accept, taken apart and given back.

``LSTM`` and ``GRU`` take the same three layouts as torch's layers (time-major or batch-first,
unbatched, PackedSequence) and hand their layer loops one: time-major ``[L, N, I]`` or packed
data ``[sum(lengths), I]``. This mixin holds that normalisation once; each layer says only what
differs, its hidden state (a tensor for GRU, ``(h, c)`` for LSTM) and its name in messages.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from . import _onnx, _onnx_rnn


class _Unpacked(NamedTuple):
    """One forward call's input, taken apart: what the layer computes on and what it gives back."""

    input: Tensor  # [L, N, I] ([N, L, I] with batch_first), or packed data [sum(lengths), I]
    hx: Any  # the layer's hidden state, batched and in the input's batch order
    batch_sizes: Optional[Tensor]
    sorted_indices: Optional[Tensor]
    unsorted_indices: Optional[Tensor]
    packed: bool
    is_batched: bool


class _Layouts:
    """What ``nn.RNNBase``'s subclasses do with their input layouts before and after the arithmetic.

    The checks, their order and their words are torch's (``nn.LSTM.forward`` / ``nn.GRU.forward``).
    A layer defines ``_NAME`` and the three hidden-state hooks below.
    """

    _NAME: str  # "LSTM" or "GRU", as torch's messages name the layer
    batch_first: bool
    permute_hidden: Callable[[Any, Optional[Tensor]], Any]  # nn.RNNBase's, or the layer's own

    def _zero_state(self, input: Tensor, batch: int) -> Any:
        """The hidden state of zeros for ``batch`` sequences."""
        raise NotImplementedError

    def _batch_hidden(self, hx: Any, is_batched: bool) -> Any:
        """A user's hidden state for non-packed input: its rank checked against the input's, and
        given the batch dimension when the input is unbatched."""
        raise NotImplementedError

    def _unbatch_hidden(self, hidden: Any) -> Any:
        """The final hidden state without its batch dimension, for unbatched input."""
        raise NotImplementedError

    def _unpack_input(self, input: Union[Tensor, PackedSequence], hx: Any) -> _Unpacked:
        """``input`` and ``hx`` as the layer loop takes them (before the layer's own checks)."""
        if isinstance(input, PackedSequence):
            # Refused before int() makes the capture fail on data, with a message that says why
            # (nn.LSTM's own torch.export of packed input fails there too)
            if torch.onnx.is_in_onnx_export():
                _onnx.refuse("a PackedSequence input", _onnx_rnn.PADDED_INSTEAD)
            if torch.compiler.is_exporting():
                raise RuntimeError(f"{self._NAME}: a PackedSequence input cannot be captured by torch.export: its "
                                   f"batch sizes are data that the layer reads on the host; {_onnx_rnn.PADDED_INSTEAD}")
            data, batch_sizes, sorted_indices, unsorted_indices = input
            max_batch_size = int(batch_sizes[0])
            is_batched = True
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{self._NAME}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            data, batch_sizes, sorted_indices, unsorted_indices = input, None, None, None
            is_batched = input.dim() == 3
            if not is_batched:
                data = data.unsqueeze(self._batch_dim)
            if hx is not None:
                hx = self._batch_hidden(hx, is_batched)
            max_batch_size = data.size(self._batch_dim)
        # Each batch of the hidden state should match the input sequence that the user believes
        # he/she is passing in.
        hx = self._zero_state(data, max_batch_size) if hx is None else self.permute_hidden(hx, sorted_indices)
        return _Unpacked(
            data, hx, batch_sizes, sorted_indices, unsorted_indices, isinstance(input, PackedSequence), is_batched
        )

    def _time_major(self, input: Tensor, unpacked: _Unpacked) -> Tensor:
        """The layer loop's view of ``input``: batch-first input transposed, packed data as it is."""
        return input.transpose(0, 1) if unpacked.batch_sizes is None and self.batch_first else input

    def _pack_output(self, output: Tensor, hidden: Any, unpacked: _Unpacked) -> tuple[Any, Any]:
        """``(output, h_n)`` from the layer loop's time-major output, laid out like the input."""
        if unpacked.batch_sizes is None and self.batch_first:
            output = output.transpose(0, 1)
        if unpacked.packed:
            output = PackedSequence(output, unpacked.batch_sizes, unpacked.sorted_indices, unpacked.unsorted_indices)
            return output, self.permute_hidden(hidden, unpacked.unsorted_indices)
        if not unpacked.is_batched:
            output = output.squeeze(self._batch_dim)
            hidden = self._unbatch_hidden(hidden)
        return output, self.permute_hidden(hidden, unpacked.unsorted_indices)

    @property
    def _batch_dim(self) -> int:
        return 0 if self.batch_first else 1
