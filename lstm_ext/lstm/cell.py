"""``LSTMCell``: a drop-in replacement for ``torch.nn.LSTMCell`` (one step of :class:`lstm_ext.LSTM`).

The shared contract is in :mod:`lstm_ext._recurrent_base`. ``LSTMCell`` with backend
"auto"/"reference" promotes a ``c_0`` of another dtype exactly as ``nn.LSTMCell`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

import torch
from torch import Tensor

from .. import reference
from .._library import ops
from .._recurrent_base import (
    _autocast_casts_op, _autocast_dtype, _cast, _cell_fused, _check_backend, _check_matmul_dtypes,
    _check_on_input_device, _plain_fused_inference, _RecurrentCell, _two_states,
)
from ..lstm_variants.ops import lstm_variant_layer as fused_variant_layer
from ..lstm_variants.options import VariantOptions, _layer_norm, _lesson, _peephole, _VariantChoice
from .ops import lstm_cell as fused_cell

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..lstm_variants.options import VariantKwargs

__all__ = ["LSTMCell"]

_HiddenState = tuple[Tensor, Tensor]


def _plain_lstm_inference(module: torch.nn.Module, input: object, dim: int) -> bool:
    """``_plain_fused_inference`` and no variant arithmetic (recurrent dropout counts in training)."""
    options = module.variant_options
    return (
        _plain_fused_inference(module, input, dim)
        and not options.needs_variant_kernel
        and not (options.recurrent_dropout and module.training)
    )


class LSTMCell(_VariantChoice, _RecurrentCell):
    r"""One LSTM step, a drop-in replacement for :class:`torch.nn.LSTMCell` on lstm_ext's kernels.

    Arguments are those of :class:`torch.nn.LSTMCell` plus the keyword-only ``backend``
    (``"auto"``, ``"fused"`` or ``"reference"``, see :mod:`lstm_ext._recurrent_base`) and the variant
    options of :class:`LSTM` (parameter names without the ``_l{k}`` suffix).

    Shapes: input ``[N, input_size]`` or unbatched ``[input_size]``; hx optional ``(h_0, c_0)``,
    each ``[N, hidden_size]`` (unbatched ``[hidden_size]``), zeros when omitted. Returns
    ``(h_1, c_1)`` of the same shape as ``h_0``.

    Example::

        >>> cell = LSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
        >>> h.shape
        torch.Size([3, 20])
    """

    _NAME = "LSTMCell"
    _STATE_NAMES = ("hx[{}]", "hx[{}]")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        backend: str = "auto",
        **variants: Unpack[VariantKwargs],
    ) -> None:
        _check_backend(backend)
        options = VariantOptions.parse(variants, "LSTMCell")
        options.check_combinations(0)
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)
        self.backend = backend
        self._add_variants(options, [""])

    def forward(self, input: Tensor, hx: Optional[_HiddenState] = None) -> _HiddenState:
        """One step.

        Args:
            input: ``[N, input_size]`` or unbatched ``[input_size]``.
            hx: optional ``(h_0, c_0)``, each ``[N, hidden_size]`` (unbatched ``[hidden_size]``).

        Returns:
            ``(h_1, c_1)``, shaped like ``h_0``.
        """
        if not torch.is_grad_enabled() and self._inference_op_applies(input, hx):
            if hx is None:
                zeros = torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype)
                hx = (zeros, zeros)
            try:
                with torch._C._AutoDispatchBelowAutograd():  # no autograd kernel to record anything
                    h, c, _ = ops.lstm_cell(
                        input, hx[0], hx[1], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
                    )
                return h, c
            except RuntimeError:
                pass  # bad or mixed-dtype arguments: the full path below handles them as nn.LSTMCell does
        input, states, is_batched = self._batched_step_args(input, hx)
        self._check_step_args(input, states)
        h_0, c_0 = states[0], states[1]
        weights = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        peephole = _peephole(self, self._variant_names[0])
        layer_norm = _layer_norm(self, self._variant_names[0])
        lesson = _lesson(self, self._variant_names[0])
        autocast_dtype = _autocast_dtype(input.device)
        if autocast_dtype is not None and _autocast_casts_op(input.device.type, "aten::lstm_cell"):
            # what torch's autocast kernel for lstm_cell does before it runs
            input, h_0, c_0 = _cast(input, autocast_dtype), _cast(h_0, autocast_dtype), _cast(c_0, autocast_dtype)
            weights = [_cast(w, autocast_dtype) for w in weights]
            peephole = _cast(peephole, autocast_dtype)
            layer_norm = [_cast(p, autocast_dtype) for p in layer_norm]
            lesson = [_cast(p, autocast_dtype) for p in lesson]
        weights[1] = reference.drop_connect(weights[1], self.variant_options.recurrent_dropout, self.training)
        if self.variant_options.needs_variant_kernel:
            h, c = self._variant_step(input, h_0, c_0, *weights, peephole, tuple(layer_norm) or None,
                                      tuple(lesson) or None)
        else:
            h, c = self._step(input, h_0, c_0, *weights)
        if not is_batched:
            h, c = h.squeeze(0), c.squeeze(0)
        return h, c

    def _inference_op_applies(self, input: object, hx: object) -> bool:
        """Whether one ``lstm_cell`` call can run this forward (grad mode being off): the plain
        cell on the CPU's fused kernels, batched input, hx absent or two 2-D tensors."""
        return _plain_lstm_inference(self, input, 2) and (hx is None or _two_states(hx, 2))

    def _check_step_args(self, input: Tensor, hx: list[Tensor]) -> None:
        """What ATen's ``lstm_cell`` checks, in its order and words."""
        if len(hx) != 2:
            raise RuntimeError("lstm_cell expects two hidden states")
        w_ih, w_hh = self.weight_ih, self.weight_hh
        hidden_size = w_hh.size(1)
        self._check_input_size(input)
        for name, weight in (("weight_ih", w_ih), ("weight_hh", w_hh)):
            if weight.size(0) != 4 * hidden_size:
                raise RuntimeError(
                    f"{name} first dim must be 4 * hidden_size = {4 * hidden_size}, but got {weight.size(0)}"
                )
        self._check_states(input, hx)
        # ATen then computes hx @ w_hh.T before input @ w_ih.T; a dtype mismatch fails there, in
        # the matrix product's words. (A cx of another dtype is promoted, not refused.)
        _check_matmul_dtypes(input, ((hx[0], w_hh), (input, w_ih)))
        names = self._variant_names[0]
        variant_params = [_peephole(self, names), *_layer_norm(self, names), *_lesson(self, names)]
        _check_on_input_device(input, [w_ih, w_hh, self.bias_ih, self.bias_hh, *variant_params], [hx[0], hx[1]])

    def _step(
        self, input: Tensor, h_0: Tensor, c_0: Tensor,
        w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
    ) -> _HiddenState:
        if _cell_fused(self.backend, "lstm_cell", "LSTMCell", "hx, cx", (input, h_0, c_0, w_ih, w_hh, b_ih, b_hh)):
            return fused_cell(
                input.contiguous(), h_0.contiguous(), c_0.contiguous(), w_ih.contiguous(), w_hh.contiguous(),
                None if b_ih is None else b_ih.contiguous(), None if b_hh is None else b_hh.contiguous(),
            )
        return reference.lstm_cell(input, (h_0, c_0), w_ih, w_hh, b_ih, b_hh)

    def _variant_step(
        self, input: Tensor, h_0: Tensor, c_0: Tensor,
        w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], peephole: Optional[Tensor],
        layer_norm: Optional[tuple[Tensor, ...]], lesson: Optional[tuple[Tensor, Optional[Tensor]]],
    ) -> _HiddenState:
        """One step with peepholes, zoneout and/or layer norm: the fused variant kernel as a layer of
        one step, or the reference cell (mixed dtypes, dtypes without a variant kernel, backend="reference")."""
        options = self.variant_options
        shape = (input.size(0), self.hidden_size)
        keep_h = reference.zoneout_weights(options.zoneout_h, shape, self.training, input)
        keep_c = reference.zoneout_weights(options.zoneout_c, shape, self.training, input)
        variant_params = (peephole, *(layer_norm or ()), *(lesson or ()))
        tensors = (input, h_0, c_0, w_ih, w_hh, b_ih, b_hh, *variant_params)
        if _cell_fused(self.backend, "lstm_variant_layer", "LSTMCell", "hx, cx", tensors):
            _, h, c = fused_variant_layer(
                input.unsqueeze(0), h_0, c_0, w_ih, w_hh, b_ih, b_hh, None, False, peephole=peephole,
                zoneout_h=None if keep_h is None else keep_h.unsqueeze(0),
                zoneout_c=None if keep_c is None else keep_c.unsqueeze(0), layer_norm=layer_norm,
                lesson_use_gate=lesson,
            )
            return h, c
        return reference.lstm_cell(
            input, (h_0, c_0), w_ih, w_hh, b_ih, b_hh, peephole=peephole, zoneout_h=keep_h, zoneout_c=keep_c,
            layer_norm=layer_norm, lesson=lesson,
        )
