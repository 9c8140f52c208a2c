"""``GRU`` and ``GRUCell``: drop-in replacements for ``torch.nn.GRU`` / ``torch.nn.GRUCell``.

The contract of every lstm_ext layer (:mod:`lstm_ext._recurrent_base`): torch's constructor,
parameters (names, order, shapes, initialisation), ``state_dict``, ``repr``, forward signature,
output shapes and exceptions, and the keyword-only ``backend`` (``"auto"``, ``"fused"``,
``"reference"``). Every layer and direction is ONE call of :func:`lstm_ext.gru.ops.gru_layer` (the
fused kernel) or of :func:`lstm_ext.reference.gru_layer`; packed input goes to it as the
PackedSequence's data and batch_sizes.

These derive from ``nn.RNNBase`` / ``RNNCellBase``, not from ``nn.GRU``:
``torch._dynamo`` graph-breaks on every instance of ``nn.GRU``. So
``isinstance(lstm_ext.GRU(...), nn.GRU)`` is False.
"""

from __future__ import annotations

from typing import Any, Optional, Union, overload

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from .. import reference
from .._recurrent_base import (
    _autocast_casts_op, _autocast_dtype, _cast, _cell_fused, _check_backend, _check_dtypes, _check_matmul_dtypes,
    _check_on_input_device, _RecurrentCell, _RecurrentLayer, _run_layer_stack, _use_fused,
)
from .ops import gru_cell as fused_cell
from .ops import gru_layer as fused_layer

__all__ = ["GRU", "GRUCell"]


class GRU(_RecurrentLayer):
    r"""Multi-layer GRU, a drop-in replacement for :class:`torch.nn.GRU` on lstm_ext's kernels.

    Arguments are those of :class:`torch.nn.GRU` plus the keyword-only ``backend``.

    Shapes (``L`` sequence length, ``N`` batch, ``D`` = 2 if bidirectional else 1, ``H`` hidden_size):

    - input: ``[L, N, input_size]`` (``[N, L, input_size]`` with ``batch_first``), unbatched
      ``[L, input_size]``, or a :class:`~torch.nn.utils.rnn.PackedSequence`;
    - hx: optional ``h_0`` ``[D * num_layers, N, H]`` (unbatched ``[D * num_layers, H]``); zeros when omitted.

    Returns ``(output, h_n)``: ``output`` ``[L, N, D * H]`` (batch-first / unbatched / packed like
    the input), ``h_n`` ``[D * num_layers, N, H]``.

    Example::

        >>> gru = GRU(10, 20, num_layers=2)
        >>> output, h_n = gru(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    _NAME = "GRU"

    @overload
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        backend: str = "auto",
    ) -> None: ...

    @overload
    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None: ...

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        # nn.GRU's own check, then RNNBase with the arguments untouched (_RecurrentLayer).
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__(*args, backend=backend, **kwargs)

    # ---- input layouts (_Layouts) --------------------------------------------------------

    def _zero_state(self, input: Tensor, batch: int) -> Tensor:
        layers = self.num_layers * (2 if self.bidirectional else 1)
        return torch.zeros(layers, batch, self.hidden_size, dtype=input.dtype, device=input.device)

    def _batch_hidden(self, hx: Tensor, is_batched: bool) -> Tensor:
        if not is_batched:
            if hx.dim() != 2:
                raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
            return hx.unsqueeze(1)
        if hx.dim() != 3:
            raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
        return hx

    def _unbatch_hidden(self, hidden: Tensor) -> Tensor:
        return hidden.squeeze(1)

    @overload
    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]: ...

    @overload
    def forward(self, input: PackedSequence, hx: Optional[Tensor] = None) -> tuple[PackedSequence, Tensor]: ...

    def forward(self, input, hx=None):
        """Run the GRU over ``input``; see the class docstring for shapes.

        Args:
            input: ``[L, N, I]`` (``[N, L, I]`` if batch_first), unbatched ``[L, I]``, or a PackedSequence.
            hx: optional ``h_0`` ``[D*num_layers, N, H]``.

        Returns:
            ``(output, h_n)`` exactly as :meth:`torch.nn.GRU.forward` returns them.
        """
        unpacked = self._unpack_input(input, hx)
        input, hx, batch_sizes = unpacked.input, unpacked.hx, unpacked.batch_sizes
        self.check_forward_args(input, hx, batch_sizes)
        weights = self._weights()
        self._check_before_compute(input, batch_sizes, weights, [hx])
        h_0 = hx
        autocast_dtype = _autocast_dtype(input.device)
        if autocast_dtype is not None and _autocast_casts_op(input.device.type, "aten::_cudnn_rnn"):
            # nn.GRU runs wholly in autocast's dtype where its kernel is cuDNN's (CUDA). On the CPU
            # its composite path casts only the matrix products and returns float32: the fused
            # kernel then runs in float32, which gives nn.GRU's dtypes.
            input, h_0 = _cast(input, autocast_dtype), _cast(h_0, autocast_dtype)
            weights = [_cast(w, autocast_dtype) for w in weights]
        _check_dtypes(input, weights, [h_0])

        output, h_n = self._run_layers(self._time_major(input, unpacked), h_0, weights, batch_sizes)
        return self._pack_output(output, h_n, unpacked)

    def _run_layers(
        self, input: Tensor, h_0: Tensor, weights: list[Optional[Tensor]], batch_sizes: Optional[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """All layers and directions, one layer function call each (``_run_layer_stack``). ``input``
        is time-major ``[T, B, I]`` or packed data ``[N, I]``; ``weights`` holds ``[w_ih, w_hh, b_ih,
        b_hh, None]`` per layer-direction (:meth:`_layer_weights`). Returns ``(output, h_n [D*num_layers, B, H])``."""
        fused = _use_fused(self.backend, "gru_layer", input.device, input.dtype)

        def run_layer(layer_input: Tensor, index: int, reverse: bool) -> tuple[Tensor, ...]:
            layer_weights = weights[5 * index : 5 * index + 4]
            if fused:
                return fused_layer(
                    layer_input.contiguous(), h_0[index].contiguous(),
                    *(None if w is None else w.contiguous() for w in layer_weights),
                    batch_sizes, reverse,
                )
            return reference.gru_layer(layer_input, h_0[index], *layer_weights, batch_sizes, reverse)

        output, (h_n,) = _run_layer_stack(self, input, run_layer)
        return output, h_n


class GRUCell(_RecurrentCell):
    r"""One GRU step, a drop-in replacement for :class:`torch.nn.GRUCell` on lstm_ext's kernels.

    Arguments are those of :class:`torch.nn.GRUCell` plus the keyword-only ``backend``.

    Shapes: input ``[N, input_size]`` or unbatched ``[input_size]``; hx optional ``[N, hidden_size]``
    (unbatched ``[hidden_size]``), zeros when omitted. Returns ``h_1``, shaped like ``h_0``.

    Example::

        >>> cell = GRUCell(10, 20)
        >>> cell(torch.randn(3, 10)).shape
        torch.Size([3, 20])
    """

    _NAME = "GRUCell"
    _STATE_NAMES = ("hidden",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        backend: str = "auto",
    ) -> None:
        _check_backend(backend)
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)
        self.backend = backend

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        """One step.

        Args:
            input: ``[N, input_size]`` or unbatched ``[input_size]``.
            hx: optional ``h_0`` ``[N, hidden_size]`` (unbatched ``[hidden_size]``).

        Returns:
            ``h_1``, shaped like ``h_0``.
        """
        input, (hx,), is_batched = self._batched_step_args(input, None if hx is None else (hx,))
        self._check_step_args(input, hx)
        weights = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        autocast_dtype = _autocast_dtype(input.device)
        if autocast_dtype is not None and _autocast_casts_op(input.device.type, "aten::gru_cell"):
            input, hx = _cast(input, autocast_dtype), _cast(hx, autocast_dtype)
            weights = [_cast(w, autocast_dtype) for w in weights]
        h = self._step(input, hx, *weights)
        return h if is_batched else h.squeeze(0)

    def _check_step_args(self, input: Tensor, hx: Tensor) -> None:
        """What ATen's ``gru_cell`` checks, in its order and words."""
        self._check_input_size(input)
        self._check_states(input, (hx,))
        # ATen then computes input @ w_ih.T, then hx @ w_hh.T.
        _check_matmul_dtypes(input, ((input, self.weight_ih), (hx, self.weight_hh)))
        _check_on_input_device(input, [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh], [hx])

    def _step(
        self, input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor]
    ) -> Tensor:
        if _cell_fused(self.backend, "gru_cell", "GRUCell", "hx", (input, hx, w_ih, w_hh, b_ih, b_hh)):
            return fused_cell(
                input.contiguous(), hx.contiguous(), w_ih.contiguous(), w_hh.contiguous(),
                None if b_ih is None else b_ih.contiguous(), None if b_hh is None else b_hh.contiguous(),
            )
        return reference.gru_cell(input, hx, w_ih, w_hh, b_ih, b_hh)

