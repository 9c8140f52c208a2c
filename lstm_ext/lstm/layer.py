"""``LSTM``: a drop-in replacement for ``torch.nn.LSTM``.

The contract every lstm_ext layer keeps (torch's constructor, parameters, ``state_dict``, ``repr``,
forward signature, shapes and exceptions; the ``backend`` choice; autocast) is described in
:mod:`lstm_ext._recurrent_base`. Every layer and direction is ONE call of
:func:`lstm_ext.lstm.ops.lstm_layer` (the fused kernel), of
:func:`lstm_ext.lstm_variants.ops.lstm_variant_layer` (with variant options) or of their twins in
:mod:`lstm_ext.reference`.

LSTM specifics: hidden states must share the input's dtype (torch's CPU LSTM sometimes promotes
instead). The variant options (see :mod:`lstm_ext.lstm_variants.options`) run on the variant
kernels. ``isinstance(lstm_ext.LSTM(...), nn.LSTM)`` is False (see the base module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union, overload

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from .. import reference
from .._library import ops
from .._recurrent_base import (
    _autocast_dtype, _cast, _check_dtypes, _current_weights, _RecurrentLayer, _run_layer_stack, _two_states, _use_fused,
)
from ..lstm_variants.ops import lstm_variant_layer as fused_variant_layer
from ..lstm_variants.options import VARIANT_NAMES, VariantOptions, _layer_norm, _lesson, _peephole, _VariantChoice
from .cell import _plain_lstm_inference
from .ops import lstm_layer as fused_layer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..lstm_variants.options import VariantKwargs

__all__ = ["LSTM"]

_HiddenState = tuple[Tensor, Tensor]


class LSTM(_VariantChoice, _RecurrentLayer):
    r"""Multi-layer LSTM, a drop-in replacement for :class:`torch.nn.LSTM` on lstm_ext's kernels.

    Arguments are those of :class:`torch.nn.LSTM` plus the keyword-only ``backend``
    (``"auto"``, ``"fused"`` or ``"reference"``, see :mod:`lstm_ext._recurrent_base`) and the variant
    options, all off by default (then the layer, its parameters and its state_dict are exactly
    ``nn.LSTM``'s): ``recurrent_dropout`` (DropConnect on ``W_hh``), ``peephole``, ``zoneout`` (a
    probability or a pair ``(z_h, z_c)``), ``layer_norm`` and ``use_gate="lesson"``; see
    :mod:`lstm_ext.lstm_variants.options` for what each does and the names of its parameters. The
    variants run fused for float32 / float64 on the CPU (the reference elsewhere, with "auto").

    Shapes (``L`` sequence length, ``N`` batch, ``D`` = 2 if bidirectional else 1,
    ``H`` hidden_size, ``P`` = proj_size or ``H``):

    - input: ``[L, N, input_size]`` (``[N, L, input_size]`` with ``batch_first``), unbatched
      ``[L, input_size]``, or a :class:`~torch.nn.utils.rnn.PackedSequence`;
    - hx: optional ``(h_0, c_0)``, ``h_0`` ``[D * num_layers, N, P]`` and ``c_0``
      ``[D * num_layers, N, H]`` (unbatched: without the ``N`` dimension); zeros when omitted.

    Returns ``(output, (h_n, c_n))``: ``output`` ``[L, N, D * P]`` (batch-first / unbatched /
    packed like the input), ``h_n`` ``[D * num_layers, N, P]``, ``c_n`` ``[D * num_layers, N, H]``.

    Example::

        >>> lstm = LSTM(10, 20, num_layers=2)
        >>> output, (h_n, c_n) = lstm(torch.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    _NAME = "LSTM"

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
        proj_size: int = 0,
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        backend: str = "auto",
        **variants: Unpack[VariantKwargs],
    ) -> None: ...

    @overload
    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None: ...

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        # The variant options are ours; the rest goes to RNNBase untouched (_RecurrentLayer).
        variants = {name: kwargs.pop(name) for name in VARIANT_NAMES if name in kwargs}
        options = VariantOptions.parse(variants, "LSTM")
        super().__init__(*args, backend=backend, **kwargs)
        options.check_combinations(self.proj_size)
        num_directions = 2 if self.bidirectional else 1
        suffixes = [
            f"_l{layer}{'_reverse' if direction else ''}"
            for layer in range(self.num_layers) for direction in range(num_directions)
        ]
        self._add_variants(options, suffixes)

    # ---- the checks nn.LSTM makes, with nn.LSTM's wording --------------------------------

    def get_expected_cell_size(self, input: Tensor, batch_sizes: Optional[Tensor]) -> tuple[int, int, int]:
        if batch_sizes is not None:
            mini_batch = int(batch_sizes[0])
        else:
            mini_batch = input.size(0) if self.batch_first else input.size(1)
        num_directions = 2 if self.bidirectional else 1
        return (self.num_layers * num_directions, mini_batch, self.hidden_size)

    def check_forward_args(  # type: ignore[override]
        self, input: Tensor, hidden: _HiddenState, batch_sizes: Optional[Tensor]
    ) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(
            hidden[0], self.get_expected_hidden_size(input, batch_sizes), "Expected hidden[0] size {}, got {}"
        )
        self.check_hidden_size(
            hidden[1], self.get_expected_cell_size(input, batch_sizes), "Expected hidden[1] size {}, got {}"
        )

    def permute_hidden(  # type: ignore[override]
        self, hx: _HiddenState, permutation: Optional[Tensor]
    ) -> _HiddenState:
        if permutation is None:
            return hx
        return hx[0].index_select(1, permutation), hx[1].index_select(1, permutation)

    def _check_packed_args(self, input: Tensor, hx: _HiddenState, batch_sizes: Tensor) -> None:
        # nn.LSTM checks nothing in Python for packed input: bad data or states fail inside ATen's
        # kernels. The same conditions fail here, with the same exception types and clearer words.
        for state in hx:
            state.size(2)  # ATen reads hx[i].size(2) first: an IndexError for a state below 3-D
        if input.dim() != 2:
            raise RuntimeError(f"input must have 2 dimensions, got {input.dim()}")
        if input.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.size(-1)}"
            )
        weight_dtype = self.weight_ih_l0.dtype
        if input.dtype != weight_dtype and _autocast_dtype(input.device) is None:
            raise RuntimeError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight_dtype}). "
                f"Convert input: input.to({weight_dtype}), or convert model: model.to({input.dtype})"
            )
        self.check_hidden_size(
            hx[0], self.get_expected_hidden_size(input, batch_sizes), "Expected hidden[0] size {}, got {}"
        )
        self.check_hidden_size(
            hx[1], self.get_expected_cell_size(input, batch_sizes), "Expected hidden[1] size {}, got {}"
        )

    # ---- forward ------------------------------------------------------------------------

    def _zero_state(self, input: Tensor, batch: int) -> _HiddenState:
        """``(h_0, c_0)`` of zeros: ``[D*num_layers, batch, P]`` and ``[D*num_layers, batch, H]``."""
        layers = self.num_layers * (2 if self.bidirectional else 1)
        real_hidden_size = self.proj_size if self.proj_size > 0 else self.hidden_size
        h_zeros = torch.zeros(layers, batch, real_hidden_size, dtype=input.dtype, device=input.device)
        c_zeros = torch.zeros(layers, batch, self.hidden_size, dtype=input.dtype, device=input.device)
        return h_zeros, c_zeros

    def _batch_hidden(self, hx: _HiddenState, is_batched: bool) -> _HiddenState:
        if is_batched:
            if hx[0].dim() != 3 or hx[1].dim() != 3:
                raise RuntimeError(
                    "For batched 3-D input, hx and cx should "
                    f"also be 3-D but got ({hx[0].dim()}-D, {hx[1].dim()}-D) tensors"
                )
            return hx
        if hx[0].dim() != 2 or hx[1].dim() != 2:
            raise RuntimeError(
                "For unbatched 2-D input, hx and cx should "
                f"also be 2-D but got ({hx[0].dim()}-D, {hx[1].dim()}-D) tensors"
            )
        return hx[0].unsqueeze(1), hx[1].unsqueeze(1)

    def _unbatch_hidden(self, hidden: _HiddenState) -> _HiddenState:
        return hidden[0].squeeze(1), hidden[1].squeeze(1)

    @overload
    def forward(self, input: Tensor, hx: Optional[_HiddenState] = None) -> tuple[Tensor, _HiddenState]: ...

    @overload
    def forward(
        self, input: PackedSequence, hx: Optional[_HiddenState] = None
    ) -> tuple[PackedSequence, _HiddenState]: ...

    def forward(self, input, hx=None):
        """Run the LSTM over ``input``; see the class docstring for shapes.

        Args:
            input: ``[L, N, I]`` (``[N, L, I]`` if batch_first), unbatched ``[L, I]``, or a PackedSequence.
            hx: optional ``(h_0 [D*num_layers, N, P], c_0 [D*num_layers, N, H])``.

        Returns:
            ``(output, (h_n, c_n))`` exactly as :meth:`torch.nn.LSTM.forward` returns them.
        """
        if not torch.is_grad_enabled() and self._inference_op_applies(input, hx):
            try:
                output, h_n, c_n = ops.lstm_inference.default(
                    input, () if hx is None else hx, _current_weights(self), self.bias, self.num_layers,
                    self.bidirectional, self.batch_first,
                )
                return output, (h_n, c_n)
            except RuntimeError:
                pass  # bad arguments: the full path below raises nn.LSTM's own error for them
        # The weights are read by name (_layer_weights), so RNNBase's _flat_weights list needs
        # no refresh on this hot path.
        unpacked = self._unpack_input(input, hx)
        input, hx, batch_sizes = unpacked.input, unpacked.hx, unpacked.batch_sizes
        if unpacked.packed:
            self._check_hidden_count(hx)
            self._check_packed_args(input, hx, batch_sizes)
        else:
            self.check_forward_args(input, hx, batch_sizes)
            self._check_hidden_count(hx)

        h_0, c_0 = hx[0], hx[1]
        weights = self._weights()
        peepholes = [_peephole(self, names) for names in self._variant_names]
        layer_norms = [_layer_norm(self, names) for names in self._variant_names]
        lessons = [_lesson(self, names) for names in self._variant_names]
        variant_params = peepholes + sum(layer_norms, []) + sum(lessons, [])
        self._check_before_compute(input, batch_sizes, weights + variant_params, [h_0, c_0])
        autocast_dtype = _autocast_dtype(input.device)
        if autocast_dtype is not None:  # nn.LSTM runs in autocast's dtype, so do we
            input, h_0, c_0 = _cast(input, autocast_dtype), _cast(h_0, autocast_dtype), _cast(c_0, autocast_dtype)
            weights = [_cast(w, autocast_dtype) for w in weights]
            peepholes = [_cast(p, autocast_dtype) for p in peepholes]
            layer_norms = [[_cast(p, autocast_dtype) for p in group] for group in layer_norms]
            lessons = [[_cast(p, autocast_dtype) for p in group] for group in lessons]
            variant_params = peepholes + sum(layer_norms, []) + sum(lessons, [])
        _check_dtypes(input, weights + variant_params, [h_0, c_0])

        output, h_n, c_n = self._run_layers(
            self._time_major(input, unpacked), h_0, c_0, weights, batch_sizes, peepholes, layer_norms, lessons
        )
        return self._pack_output(output, (h_n, c_n), unpacked)

    def _inference_op_applies(self, input: object, hx: object) -> bool:
        """Whether one ``lstm_inference`` call can run this forward (grad mode being off): the
        plain LSTM on the CPU's fused kernels, batched dense input. See ``_plain_lstm_inference``."""
        return (
            _plain_lstm_inference(self, input, 3)
            and (hx is None or _two_states(hx, 3))
            and not (self.dropout and self.training)
        )

    @staticmethod
    def _check_hidden_count(hx: _HiddenState) -> None:
        if len(hx) != 2:
            raise RuntimeError("lstm expects two hidden states")

    def _run_layers(
        self,
        input: Tensor,
        h_0: Tensor,
        c_0: Tensor,
        weights: list[Optional[Tensor]],
        batch_sizes: Optional[Tensor],
        peepholes: list[Optional[Tensor]],
        layer_norms: list[list[Tensor]],
        lessons: list[list[Optional[Tensor]]],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """All layers and directions, one layer function call each (``_run_layer_stack``).

        ``input`` is time-major ``[T, B, I]`` or packed data ``[N, I]``; ``weights`` holds
        ``[w_ih, w_hh, b_ih, b_hh, w_hr]`` per layer-direction (None where absent), ``peepholes``
        the ``[3H]`` peephole weights per layer-direction (None without peepholes), ``layer_norms``
        the six layer-norm gains and biases per layer-direction (empty without layer norm), ``lessons``
        ``[W_u, b_u]`` of the lesson's use gate per layer-direction (empty for the standard one).
        Returns ``(output, h_n [D*num_layers, B, P], c_n [D*num_layers, B, H])``.
        """
        options = self.variant_options
        op = "lstm_variant_layer" if options.needs_variant_kernel else "lstm_layer"
        fused = _use_fused(self.backend, op, input.device, input.dtype)
        # zoneout weights are shaped like one direction's output: [T, B, H] dense, [N, H] packed
        state_shape = (*input.shape[:-1], self.hidden_size)

        def run_layer(layer_input: Tensor, index: int, reverse: bool) -> tuple[Tensor, ...]:
            w_ih, w_hh, b_ih, b_hh, w_hr = weights[5 * index : 5 * index + 5]
            w_hh = reference.drop_connect(w_hh, options.recurrent_dropout, self.training)
            if options.needs_variant_kernel:
                variant = dict(
                    peephole=peepholes[index],
                    zoneout_h=reference.zoneout_weights(options.zoneout_h, state_shape, self.training, input),
                    zoneout_c=reference.zoneout_weights(options.zoneout_c, state_shape, self.training, input),
                    layer_norm=tuple(layer_norms[index]) or None,
                    lesson_use_gate=tuple(lessons[index]) or None,
                )
                variant_layer = fused_variant_layer if fused else reference.variant_lstm_layer
                return variant_layer(
                    layer_input, h_0[index], c_0[index], w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, **variant
                )
            if fused:
                return fused_layer(
                    layer_input.contiguous(), h_0[index].contiguous(), c_0[index].contiguous(),
                    w_ih.contiguous(), w_hh.contiguous(),
                    None if b_ih is None else b_ih.contiguous(),
                    None if b_hh is None else b_hh.contiguous(),
                    None if w_hr is None else w_hr.contiguous(),
                    batch_sizes, reverse,
                )
            return reference.lstm_layer(
                layer_input, h_0[index], c_0[index], w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse
            )

        output, (h_n, c_n) = _run_layer_stack(self, input, run_layer)
        return output, h_n, c_n
