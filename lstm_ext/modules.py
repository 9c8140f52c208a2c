"""``LSTM`` and ``LSTMCell``: drop-in replacements for ``torch.nn.LSTM`` / ``torch.nn.LSTMCell``.

Same constructor, parameters (names, order, shapes, initialisation), ``state_dict``, ``repr``,
forward signature and output shapes as torch's modules, and the same exceptions for bad
arguments (same type always; same message for every check torch makes itself). Only the
arithmetic is lstm_ext's: every layer and direction is ONE call of ``lstm_ext._ops.lstm_layer``
(the fused kernel) or of ``lstm_ext.reference.lstm_layer`` (plain PyTorch, for reading and
checking); packed input goes to it as the PackedSequence's data and batch_sizes.

Where torch has no check of its own and fails somewhere inside a kernel, with words that depend
on the kernel (hidden states of another dtype, anything wrong with a PackedSequence, LSTMCell
tensors on different devices), these modules raise the same exception type with a message
naming the problem. Hidden states must share the input's dtype (torch's CPU LSTM sometimes
promotes instead); ``LSTMCell`` with backend "auto"/"reference" promotes a ``c_0`` of another
dtype exactly as ``nn.LSTMCell`` does. Under autocast, inputs, states and parameters are cast the
way torch's autocast casts them for ``nn.LSTM`` / ``nn.LSTMCell``.

``backend`` picks the arithmetic:

- ``"auto"`` (default): the fused kernel where one exists for the input's device and dtype
  (``lstm_ext._ops.has_fused_kernel``), the reference otherwise;
- ``"fused"``: the fused kernel, or a ``RuntimeError`` saying why there is none;
- ``"reference"``: always the reference.

The classes derive from ``torch.nn.RNNBase`` / ``torch.nn.modules.rnn.RNNCellBase`` rather than
from ``nn.LSTM`` / ``nn.LSTMCell``: ``torch._dynamo`` graph-breaks on anything that is an instance
of ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM``, and a model holding ``lstm_ext.LSTM`` must compile with
``torch.compile(model, fullgraph=True)``. So ``isinstance(lstm_ext.LSTM(...), nn.LSTM)`` is False.
"""

from __future__ import annotations

from typing import Optional, Union, overload

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.rnn import RNNBase, RNNCellBase
from torch.nn.utils.rnn import PackedSequence

from . import _ops, _variant_ops, reference
from ._layouts import _Layouts
from ._variant_options import VariantOptions, Zoneout, register_parameters

__all__ = ["LSTM", "LSTMCell", "BACKENDS"]

BACKENDS = ("auto", "fused", "reference")

_HiddenState = tuple[Tensor, Tensor]

# torch 2.15's ATen lstm_cell refuses a hidden state that is not 2-D before it compares batch
# sizes; older versions go straight to the batch-size check. Follow the torch we run with.
_ATEN_CHECKS_HIDDEN_RANK = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 15)

# c10's names for dtypes, as torch's own error messages print them ("Float", "Double", ...)
_SCALAR_TYPE_NAMES = {
    torch.float64: "Double",
    torch.float32: "Float",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.complex128: "ComplexDouble",
    torch.complex64: "ComplexFloat",
    torch.int64: "Long",
    torch.int32: "Int",
    torch.int16: "Short",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.bool: "Bool",
}


def _scalar_type_name(dtype: torch.dtype) -> str:
    return _SCALAR_TYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def _check_backend(backend: object) -> None:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"lstm_ext: backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")


@torch.compiler.assume_constant_result
def _fused_kernel_exists(device: torch.device, dtype: torch.dtype, op: str = "lstm_ext::lstm_layer") -> bool:
    # A constant to torch.compile: it asks the dispatcher once while tracing, not in the graph.
    return _ops.has_fused_kernel(device, dtype, op)


def _use_fused(backend: str, device: torch.device, dtype: torch.dtype, op: str = "lstm_ext::lstm_layer") -> bool:
    """Whether this call runs the fused kernel of ``op``; raises for backend="fused" without one."""
    if backend == "reference":
        return False
    if _fused_kernel_exists(device, dtype, op):
        return True
    if backend == "fused":
        raise RuntimeError(_ops.missing_kernel_message(device, dtype))
    return False


def _use_fused_variant(backend: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether a variant (peephole, zoneout) runs the fused variant kernel; raises for
    backend="fused" without one."""
    if backend == "reference":
        return False
    if _variant_ops.has_variant_kernel(device, dtype):
        return True
    if backend == "fused":
        raise RuntimeError(_variant_ops.missing_variant_kernel_message(device, dtype))
    return False


def _init_variant_parameters(module: torch.nn.Module, names: list[list[str]]) -> None:
    """Peephole weights start like every LSTM weight (uniform in +-1/sqrt(hidden_size)); layer-norm
    gains at 1 and biases at 0, as nn.LayerNorm's."""
    bound = 1.0 / module.hidden_size**0.5 if module.hidden_size > 0 else 0.0
    with torch.no_grad():
        for name in (name for group in names for name in group):
            param = getattr(module, name)
            if name.startswith(("peephole_", "use_gate_")):
                param.uniform_(-bound, bound)
            else:
                param.fill_(1.0 if "_weight" in name else 0.0)


def _peephole(module: torch.nn.Module, names: list[str]) -> Optional[Tensor]:
    """``[3H]`` = (p_i, p_f, p_o) of one layer-direction, or None without peepholes."""
    if not module.variant_options.peephole:
        return None
    return torch.cat([getattr(module, name) for name in names if name.startswith("peephole_")])


def _layer_norm(module: torch.nn.Module, names: list[str]) -> list[Tensor]:
    """The six layer-norm gains and biases of one layer-direction (ih, hh, c), or [] without."""
    return [getattr(module, name) for name in names if name.startswith("layer_norm_")]


def _lesson(module: torch.nn.Module, names: list[str]) -> list[Optional[Tensor]]:
    """``[W_u, b_u]`` of the lesson's use gate (b_u None without bias), or [] for the standard one."""
    if not module.variant_options.lesson:
        return []
    w_u, *b_u = [getattr(module, name) for name in names if name.startswith("use_gate_")]  # weight, then bias
    return [w_u, b_u[0] if b_u else None]


def _plain_fused_inference(module: _LSTMChoices, input: object, dim: int) -> bool:
    """Whether a forward without grad can go straight to one C++ op call (the streaming path).

    A streaming step (T=1, B=1) costs next to nothing in arithmetic; its time is the Python
    around the kernels. The layers take one op call instead when the call is plain: a ``dim``-D
    CPU tensor of a dtype the fused kernels have, no variant arithmetic, no autocast, not under
    torch.compile. If the op refuses the arguments, the full path runs and raises nn's error."""
    options = module.variant_options
    return (
        type(input) is Tensor
        and input.is_cpu
        and input.dim() == dim
        and input.dtype in _ops._CPU_DTYPES
        and module.backend != "reference"
        and _ops.LOAD_ERROR is None
        and not options.needs_variant_kernel
        and not (options.recurrent_dropout and module.training)
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )


def _current_weights(module: torch.nn.Module) -> list[Tensor]:
    """The weights in ``_flat_weights_names`` order, read now: not RNNBase's ``_flat_weights``
    list, which holds a stale tensor for a parametrized weight (computed on each read)."""
    # _parameters first: nn.Module.__getattr__ cost 2.7 us for the four weights of a 17 us
    # streaming step. A parametrized (or replaced) weight is not in it; those are read by name.
    params = module._parameters
    try:
        return [params[name] for name in module._flat_weights_names]
    except KeyError:
        return [getattr(module, name) for name in module._flat_weights_names]


def _two_states(hx: object, dim: int) -> bool:
    """hx is ``(h, c)``: a tuple or list of two ``dim``-D tensors."""
    return (
        type(hx) in (tuple, list)
        and len(hx) == 2  # type: ignore[arg-type]
        and type(hx[0]) is Tensor and type(hx[1]) is Tensor  # type: ignore[index]
        and hx[0].dim() == dim and hx[1].dim() == dim  # type: ignore[index]
    )


def _autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The lower-precision dtype autocast asks for on this device, or None when it is off."""
    # CPU and CUDA always have autocast; asking is_autocast_available about them would break
    # torch.compile's graph on torch 2.11, whose dynamo cannot trace that call.
    available = device.type in ("cpu", "cuda") or torch.amp.is_autocast_available(device.type)
    if available and torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


@torch.compiler.assume_constant_result
def _autocast_casts_lstm_cell(device_type: str, op: str = "aten::lstm_cell") -> bool:
    """Whether torch's autocast runs ``op`` (``aten::lstm_cell``, ``aten::gru_cell``) in lower
    precision on this device type (it does on CUDA, XPU and MPS; on CPU only the matrix products
    inside it are cast)."""
    key = {"cuda": "AutocastCUDA", "xpu": "AutocastXPU", "mps": "AutocastMPS", "cpu": "AutocastCPU"}.get(device_type)
    if key is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
    except RuntimeError:
        return False


def _cast(tensor: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    """Autocast's cast: floating-point tensors other than float64 go to ``dtype``."""
    if tensor is None or not tensor.is_floating_point() or tensor.dtype == torch.float64:
        return tensor
    return tensor.to(dtype)


def _check_devices(input: Tensor, params: list[Optional[Tensor]], hiddens: list[Tensor]) -> None:
    """ATen's ``check_attributes``: hidden states and parameters on the input's device.

    A 0-dim CPU tensor is allowed anywhere, as in ATen.
    """

    def check(name: str, tensor: Optional[Tensor]) -> None:
        if tensor is None or (tensor.device.type == "cpu" and tensor.dim() == 0):
            return
        if tensor.device != input.device:
            raise RuntimeError(
                f"Input and {name} tensors are not at the same device, found input tensor at "
                f"{input.device} and {name} tensor at {tensor.device}"
            )

    for hidden in hiddens:
        check("hidden", hidden)
    for param in params:
        check("parameter", param)


def _check_dtypes(input: Tensor, params: list[Optional[Tensor]], hiddens: list[Tensor]) -> None:
    """Hidden states and parameters in the input's dtype.

    The words of ATen's ``check_attributes(..., check_dtype=true)``, which nn.LSTM's cuDNN path
    runs; its CPU paths have no such check and fail later inside a kernel.
    """

    def check(name: str, tensor: Optional[Tensor]) -> None:
        if tensor is not None and tensor.dtype != input.dtype:
            raise RuntimeError(
                f"Input and {name} tensors are not the same dtype, found input tensor with "
                f"{_scalar_type_name(input.dtype)} and {name} tensor with {_scalar_type_name(tensor.dtype)}"
            )

    for hidden in hiddens:
        check("hidden", hidden)
    for param in params:
        check("parameter", param)


def _check_matmul_dtypes(input: Tensor, products: tuple[tuple[Tensor, Tensor], ...]) -> None:
    """A cell's matrix products, in ATen's order: a dtype mismatch fails as ``mm`` words it
    (outside autocast, which casts both sides)."""
    if _autocast_dtype(input.device) is not None:
        return
    for mat1, mat2 in products:
        if mat1.dtype != mat2.dtype:
            raise RuntimeError(
                f"mat1 and mat2 must have the same dtype, but got "
                f"{_scalar_type_name(mat1.dtype)} and {_scalar_type_name(mat2.dtype)}"
            )


class _BackendChoice:
    """The ``backend`` attribute every layer shares: shown in repr when not the default, and
    restored as "auto" for modules pickled before it existed."""

    backend: str

    def extra_repr(self) -> str:
        s = super().extra_repr()  # type: ignore[misc]
        if self.backend != "auto":
            s += f", backend={self.backend!r}"
        return s

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        if "backend" not in self.__dict__:
            self.backend = "auto"


class _LSTMChoices(_BackendChoice):
    """The LSTM layers' ``variant_options`` too: in repr when any is on, and restored as all off
    for modules pickled before they existed."""

    variant_options: VariantOptions

    def extra_repr(self) -> str:
        s = super().extra_repr()
        variants = self.variant_options.extra_repr()
        return f"{s}, {variants}" if variants else s

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "variant_options" not in self.__dict__:
            self.variant_options = VariantOptions()
            # no variant parameters in any layer-direction (LSTMCell: its one)
            self._variant_names = [[] for _ in getattr(self, "_all_weights", [None])]


class LSTM(_LSTMChoices, _Layouts, RNNBase):
    r"""Multi-layer LSTM, a drop-in replacement for :class:`torch.nn.LSTM` on lstm_ext's kernels.

    Arguments are those of :class:`torch.nn.LSTM` plus the keyword-only ``backend``
    (``"auto"``, ``"fused"`` or ``"reference"``, see :mod:`lstm_ext.modules`) and the variant
    options, all off by default (then the layer, its parameters and its state_dict are exactly
    ``nn.LSTM``'s): ``recurrent_dropout`` (DropConnect on ``W_hh``), ``peephole``, ``zoneout`` (a
    probability or a pair ``(z_h, z_c)``), ``layer_norm`` and ``use_gate="lesson"``; see
    :mod:`lstm_ext._variant_options` for what each does and the names of its parameters. The
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

    backend: str
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
        recurrent_dropout: float = 0.0,
        peephole: bool = False,
        zoneout: Zoneout = 0.0,
        layer_norm: bool = False,
        use_gate: str = "standard",
    ) -> None: ...

    @overload
    def __init__(
        self, *args, backend: str = "auto", recurrent_dropout: float = 0.0, peephole: bool = False,
        zoneout: Zoneout = 0.0, layer_norm: bool = False, use_gate: str = "standard", **kwargs,
    ) -> None: ...

    def __init__(
        self, *args, backend: str = "auto", recurrent_dropout: float = 0.0, peephole: bool = False,
        zoneout: Zoneout = 0.0, layer_norm: bool = False, use_gate: str = "standard", **kwargs,
    ) -> None:
        # The arguments go to RNNBase untouched, as nn.LSTM passes them, so that a wrong one
        # fails with nn.LSTM's exact words.
        _check_backend(backend)
        options = VariantOptions.parse(
            recurrent_dropout=recurrent_dropout, peephole=peephole, zoneout=zoneout, layer_norm=layer_norm,
            use_gate=use_gate,
        )
        super().__init__("LSTM", *args, **kwargs)
        options.check_combinations(self.proj_size)
        self.backend = backend
        self.variant_options = options
        num_directions = 2 if self.bidirectional else 1
        suffixes = [
            f"_l{layer}{'_reverse' if direction else ''}"
            for layer in range(self.num_layers) for direction in range(num_directions)
        ]
        factory = {"device": self.weight_ih_l0.device, "dtype": self.weight_ih_l0.dtype}
        self._variant_names = register_parameters(self, options, self.hidden_size, self.bias, suffixes, factory)
        _init_variant_parameters(self, self._variant_names)

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

    def _layer_weights(self, index: int) -> list[Optional[Tensor]]:
        """``[w_ih, w_hh, b_ih, b_hh, w_hr]`` of layer-direction ``index`` (None where absent)."""
        names = self._all_weights[index]
        weights = [getattr(self, name) for name in names]
        w_ih, w_hh = weights[0], weights[1]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (None, None)
        w_hr = weights[-1] if self.proj_size > 0 else None
        return [w_ih, w_hh, b_ih, b_hh, w_hr]

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
                output, h_n, c_n = _ops.ops.lstm_inference.default(
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

        # What ATen's lstm checks before it computes: devices, then a non-empty sequence.
        h_0, c_0 = hx[0], hx[1]
        weights = [w for index in range(len(self._all_weights)) for w in self._layer_weights(index)]
        peepholes = [_peephole(self, names) for names in self._variant_names]
        layer_norms = [_layer_norm(self, names) for names in self._variant_names]
        lessons = [_lesson(self, names) for names in self._variant_names]
        variant_params = peepholes + sum(layer_norms, []) + sum(lessons, [])
        _check_devices(input, weights + variant_params, [h_0, c_0])
        if batch_sizes is None and input.size(1 if self.batch_first else 0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
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
        plain LSTM on the CPU's fused kernels, batched dense input. See ``_plain_fused_inference``."""
        return (
            _plain_fused_inference(self, input, 3)
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
        """All layers and directions, one layer function call each.

        ``input`` is time-major ``[T, B, I]`` or packed data ``[N, I]``; ``weights`` holds
        ``[w_ih, w_hh, b_ih, b_hh, w_hr]`` per layer-direction (None where absent), ``peepholes``
        the ``[3H]`` peephole weights per layer-direction (None without peepholes), ``layer_norms``
        the six layer-norm gains and biases per layer-direction (empty without layer norm), ``lessons``
        ``[W_u, b_u]`` of the lesson's use gate per layer-direction (empty for the standard one).
        """
        options = self.variant_options
        if options.needs_variant_kernel:
            fused = _use_fused_variant(self.backend, input.device, input.dtype)
        else:
            fused = _use_fused(self.backend, input.device, input.dtype)
        num_directions = 2 if self.bidirectional else 1
        # zoneout weights are shaped like one direction's output: [T, B, H] dense, [N, H] packed
        state_shape = (*input.shape[:-1], self.hidden_size)

        layer_input = input
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(num_directions):
                index = layer * num_directions + direction
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
                    run_layer = _variant_ops.lstm_variant_layer if fused else reference.variant_lstm_layer
                    output, h, c = run_layer(
                        layer_input, h_0[index], c_0[index], w_ih, w_hh, b_ih, b_hh, batch_sizes, direction == 1,
                        **variant,
                    )
                elif fused:
                    output, h, c = _ops.lstm_layer(
                        layer_input.contiguous(), h_0[index].contiguous(), c_0[index].contiguous(),
                        w_ih.contiguous(), w_hh.contiguous(),
                        None if b_ih is None else b_ih.contiguous(),
                        None if b_hh is None else b_hh.contiguous(),
                        None if w_hr is None else w_hr.contiguous(),
                        batch_sizes, direction == 1,
                    )
                else:
                    output, h, c = reference.lstm_layer(
                        layer_input, h_0[index], c_0[index], w_ih, w_hh, b_ih, b_hh, w_hr,
                        batch_sizes, direction == 1,
                    )
                outputs.append(output)
                h_n.append(h)
                c_n.append(c)
            layer_output = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=-1)
            if self.dropout != 0 and self.training and layer < self.num_layers - 1:
                layer_output = F.dropout(layer_output, p=self.dropout, training=True)
            layer_input = layer_output
        if len(h_n) == 1:  # a view, not a copy: one step of one layer is streaming's hot path
            return layer_input, h_n[0].unsqueeze(0), c_n[0].unsqueeze(0)
        return layer_input, torch.stack(h_n), torch.stack(c_n)


class LSTMCell(_LSTMChoices, RNNCellBase):
    r"""One LSTM step, a drop-in replacement for :class:`torch.nn.LSTMCell` on lstm_ext's kernels.

    Arguments are those of :class:`torch.nn.LSTMCell` plus the keyword-only ``backend``
    (``"auto"``, ``"fused"`` or ``"reference"``, see :mod:`lstm_ext.modules`) and the variant
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

    backend: str

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Optional[Union[torch.device, str, int]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        backend: str = "auto",
        recurrent_dropout: float = 0.0,
        peephole: bool = False,
        zoneout: Zoneout = 0.0,
        layer_norm: bool = False,
        use_gate: str = "standard",
    ) -> None:
        _check_backend(backend)
        options = VariantOptions.parse(
            recurrent_dropout=recurrent_dropout, peephole=peephole, zoneout=zoneout, layer_norm=layer_norm,
            use_gate=use_gate,
        )
        options.check_combinations(0)
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)
        self.backend = backend
        self.variant_options = options
        factory = {"device": self.weight_ih.device, "dtype": self.weight_ih.dtype}
        self._variant_names = register_parameters(self, options, hidden_size, bias, [""], factory)
        _init_variant_parameters(self, self._variant_names)

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
                    h, c, _ = _ops.ops.lstm_cell(
                        input, hx[0], hx[1], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
                    )
                return h, c
            except RuntimeError:
                pass  # bad or mixed-dtype arguments: the full path below handles them as nn.LSTMCell does
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            for idx, value in enumerate(hx):
                if value.dim() not in (1, 2):
                    raise ValueError(f"LSTMCell: Expected hx[{idx}] to be 1D or 2D, got {value.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)

        if hx is None:
            zeros = torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype, device=input.device)
            hx = (zeros, zeros)
        else:
            hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0)) if not is_batched else hx

        self._check_step_args(input, hx)
        h_0, c_0 = hx[0], hx[1]
        weights = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        peephole = _peephole(self, self._variant_names[0])
        layer_norm = _layer_norm(self, self._variant_names[0])
        lesson = _lesson(self, self._variant_names[0])
        autocast_dtype = _autocast_dtype(input.device)
        if autocast_dtype is not None and _autocast_casts_lstm_cell(input.device.type):
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
        return _plain_fused_inference(self, input, 2) and (hx is None or _two_states(hx, 2))

    def _check_step_args(self, input: Tensor, hx: _HiddenState) -> None:
        """What ATen's ``lstm_cell`` checks, in its order and words."""
        if len(hx) != 2:
            raise RuntimeError("lstm_cell expects two hidden states")
        w_ih, w_hh = self.weight_ih, self.weight_hh
        hidden_size = w_hh.size(1)
        if input.size(1) != w_ih.size(1):
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} expected {w_ih.size(1)}")
        for name, weight in (("weight_ih", w_ih), ("weight_hh", w_hh)):
            if weight.size(0) != 4 * hidden_size:
                raise RuntimeError(
                    f"{name} first dim must be 4 * hidden_size = {4 * hidden_size}, but got {weight.size(0)}"
                )
        for label, state in enumerate(hx):
            if _ATEN_CHECKS_HIDDEN_RANK and state.dim() != 2:
                raise RuntimeError(f"Expected 2D hidden{label} (batch x hidden_size), but got {state.dim()}D tensor")
            if input.size(0) != state.size(0):
                raise RuntimeError(
                    f"Input batch size {input.size(0)} doesn't match hidden{label} batch size {state.size(0)}"
                )
            if state.size(1) != hidden_size:
                raise RuntimeError(
                    f"hidden{label} has inconsistent hidden_size: got {state.size(1)}, expected {hidden_size}"
                )
        # ATen then computes hx @ w_hh.T before input @ w_ih.T; a dtype mismatch fails there, in
        # the matrix product's words. (A cx of another dtype is promoted, not refused.)
        _check_matmul_dtypes(input, ((hx[0], w_hh), (input, w_ih)))
        names = self._variant_names[0]
        variant_params = [_peephole(self, names), *_layer_norm(self, names), *_lesson(self, names)]
        _check_devices(input, [w_ih, w_hh, self.bias_ih, self.bias_hh, *variant_params], [hx[0], hx[1]])

    def _step(
        self, input: Tensor, h_0: Tensor, c_0: Tensor,
        w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
    ) -> _HiddenState:
        dtypes = {t.dtype for t in (input, h_0, c_0, w_ih, w_hh, b_ih, b_hh) if t is not None}
        if len(dtypes) > 1:
            # torch computes mixed dtypes by promotion (a float64 c_0 gives float64 (h_1, c_1));
            # the fused kernel keeps one dtype throughout, so "auto" takes the reference.
            if self.backend == "fused":
                raise RuntimeError(
                    f"lstm_ext: the fused LSTMCell needs input, hx, cx and the parameters in one dtype, "
                    f"got {sorted(str(d) for d in dtypes)}; use backend='auto' or 'reference' for mixed dtypes"
                )
        elif _use_fused(self.backend, input.device, input.dtype):
            return _ops.lstm_cell(
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
        dtypes = {t.dtype for t in (input, h_0, c_0, w_ih, w_hh, b_ih, b_hh, *variant_params) if t is not None}
        if len(dtypes) == 1 and _use_fused_variant(self.backend, input.device, input.dtype):
            _, h, c = _variant_ops.lstm_variant_layer(
                input.unsqueeze(0), h_0, c_0, w_ih, w_hh, b_ih, b_hh, None, False, peephole=peephole,
                zoneout_h=None if keep_h is None else keep_h.unsqueeze(0),
                zoneout_c=None if keep_c is None else keep_c.unsqueeze(0), layer_norm=layer_norm,
                lesson_use_gate=lesson,
            )
            return h, c
        if len(dtypes) > 1 and self.backend == "fused":
            raise RuntimeError(
                f"lstm_ext: the fused LSTMCell needs input, hx, cx and the parameters in one dtype, "
                f"got {sorted(str(d) for d in dtypes)}; use backend='auto' or 'reference' for mixed dtypes"
            )
        return reference.variant_lstm_cell(
            input, (h_0, c_0), w_ih, w_hh, b_ih, b_hh, peephole=peephole, zoneout_h=keep_h, zoneout_c=keep_c,
            layer_norm=layer_norm, lesson=lesson,
        )
