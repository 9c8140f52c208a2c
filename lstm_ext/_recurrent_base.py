"""What every recurrent layer of lstm_ext shares: backend choice, argument checks, autocast and
the layer x direction loop.

Every layer (:mod:`lstm_ext.lstm`, :mod:`lstm_ext.gru`; :class:`_RecurrentLayer` and
:class:`_RecurrentCell` below hold what they share) keeps torch's contract: the same constructor,
parameters (names, order, shapes, initialisation), ``state_dict``, ``repr``, forward signature
and output shapes as torch's module, and the same exceptions for bad arguments (same type
always; same message for every check torch makes itself). Only the
arithmetic is lstm_ext's: every layer and direction is ONE call of the family's fused layer op or
of its plain-PyTorch twin in :mod:`lstm_ext.reference`; packed input goes to it as the
PackedSequence's data and batch_sizes.

Where torch has no check of its own and fails somewhere inside a kernel, with words that depend
on the kernel (hidden states of another dtype, anything wrong with a PackedSequence, cell
tensors on different devices), the layers raise the same exception type with a message naming
the problem. Under autocast, inputs, states and parameters are cast the way torch's autocast
casts them for torch's module.

``backend`` picks the arithmetic:

- ``"auto"`` (default): the fused kernel where one exists for the input's device and dtype
  (:func:`lstm_ext.has_kernel`), the reference otherwise;
- ``"fused"``: the fused kernel, or a ``RuntimeError`` saying why there is none;
- ``"reference"``: always the reference.

The classes derive from ``torch.nn.RNNBase`` / ``torch.nn.modules.rnn.RNNCellBase`` rather than
from ``nn.LSTM`` / ``nn.GRU`` / ...: ``torch._dynamo`` graph-breaks on anything that is an instance
of ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM``, and a model holding lstm_ext's layers must compile with
``torch.compile(model, fullgraph=True)``. So ``isinstance(lstm_ext.LSTM(...), nn.LSTM)`` is False.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.rnn import RNNBase, RNNCellBase

from . import _library, _onnx
from ._layouts import _Layouts

BACKENDS = ("auto", "fused", "reference")

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


def _cell_fused(
    backend: str, op: str, cell: str, state_names: str, tensors: tuple[Optional[Tensor], ...]
) -> bool:
    """Whether a cell step runs the fused kernel of ``op``: ``_use_fused`` when ``tensors`` (input,
    states and parameters, None where absent) share one dtype. torch computes mixed dtypes by
    promotion (a float64 ``c_0`` gives a float64 result), while the fused kernels keep one dtype
    throughout: "auto" then takes the reference, and "fused" raises."""
    input = tensors[0]
    assert input is not None
    dtypes = {t.dtype for t in tensors if t is not None}
    if len(dtypes) == 1:
        return _use_fused(backend, op, input.device, input.dtype)
    if backend == "fused":
        raise RuntimeError(
            f"lstm_ext: the fused {cell} needs input, {state_names} and the parameters in one dtype, "
            f"got {sorted(str(d) for d in dtypes)}; use backend='auto' or 'reference' for mixed dtypes"
        )
    return False


@torch.compiler.assume_constant_result
def _fused_kernel_exists(op: str, device: torch.device, dtype: torch.dtype) -> bool:
    # A constant to torch.compile: it asks the dispatcher once while tracing, not in the graph.
    return _library.has_kernel(op, device, dtype)


def _use_fused(backend: str, op: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this call runs the fused kernel of ``op``; raises for backend="fused" without one."""
    if backend == "reference":
        return False
    if _fused_kernel_exists(op, device, dtype):
        return True
    if backend == "fused":
        raise RuntimeError(_library.missing_kernel_message(device, dtype, op))
    return False


def _plain_fused_inference(module: torch.nn.Module, input: object, dim: int) -> bool:
    """Whether a forward without grad can go straight to one C++ op call (the streaming path).

    A streaming step (T=1, B=1) costs next to nothing in arithmetic; its time is the Python
    around the kernels. A layer takes one op call instead when the call is plain: a ``dim``-D
    CPU tensor of a dtype the fused kernels have, no autocast, not under torch.compile (the
    family adds its own conditions). If the op refuses the arguments, the full path runs and
    raises torch's error."""
    return (
        type(input) is Tensor
        and input.is_cpu
        and input.dim() == dim
        and input.dtype in _library.CPU_DTYPES
        and module.backend != "reference"  # type: ignore[operator]
        and _library.LOAD_ERROR is None
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )


def _current_weights(module: torch.nn.Module) -> list[Tensor]:
    """The weights in ``_flat_weights_names`` order, read now: not RNNBase's ``_flat_weights``
    list, which holds a stale tensor for a parametrized weight (computed on each read)."""
    # _parameters first: nn.Module.__getattr__ is a large share of a streaming step's time.
    # A parametrized (or replaced) weight is not in it; those are read by name.
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
def _autocast_casts_op(device_type: str, op: str) -> bool:
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


def _named_attributes(params: list[Optional[Tensor]], hiddens: list[Tensor]) -> list[tuple[str, Tensor]]:
    """``check_attributes``'s order and names: the hidden states, then the parameters (None skipped)."""
    named = [("hidden", hidden) for hidden in hiddens] + [("parameter", param) for param in params]
    return [(name, tensor) for name, tensor in named if tensor is not None]


def _prepare_onnx_export() -> None:
    """While ``torch.onnx.export`` traces a layer: the ONNX forms of lstm_ext's ops (``_onnx.py``)."""
    if torch.onnx.is_in_onnx_export():
        _onnx.prepare_export()


def _check_on_input_device(input: Tensor, params: list[Optional[Tensor]], hiddens: list[Tensor]) -> None:
    """ATen's ``check_attributes``: hidden states and parameters on the input's device.

    A 0-dim CPU tensor is allowed anywhere, as in ATen.
    """
    for name, tensor in _named_attributes(params, hiddens):
        if tensor.device != input.device and not (tensor.device.type == "cpu" and tensor.dim() == 0):
            raise RuntimeError(
                f"Input and {name} tensors are not at the same device, found input tensor at "
                f"{input.device} and {name} tensor at {tensor.device}"
            )


def _check_dtypes(input: Tensor, params: list[Optional[Tensor]], hiddens: list[Tensor]) -> None:
    """Hidden states and parameters in the input's dtype.

    The words of ATen's ``check_attributes(..., check_dtype=true)``, which nn.LSTM's cuDNN path
    runs; its CPU paths have no such check and fail later inside a kernel.
    """
    for name, tensor in _named_attributes(params, hiddens):
        if tensor.dtype != input.dtype:
            raise RuntimeError(
                f"Input and {name} tensors are not the same dtype, found input tensor with "
                f"{_scalar_type_name(input.dtype)} and {name} tensor with {_scalar_type_name(tensor.dtype)}"
            )


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


# One layer-direction: (layer input, index of the layer-direction, reverse) -> (output, *final states).
RunLayer = Callable[[Tensor, int, bool], tuple[Tensor, ...]]


def _run_layer_stack(module: torch.nn.Module, input: Tensor, run_layer: RunLayer) -> tuple[Tensor, tuple[Tensor, ...]]:
    """All layers and directions of ``module``, one ``run_layer`` call each.

    ``input`` is time-major ``[T, B, I]`` or packed data ``[N, I]``. Each layer's directions are
    concatenated on the last dim, and inter-layer dropout (``module.dropout``, training only)
    applies between layers. Returns ``(output, finals)``: the last layer's output ``[T, B, D*H]``
    (``[N, D*H]`` packed) and, per state the layer returns, its final values stacked over
    layer-directions, ``[D*num_layers, B, *]``.
    """
    num_directions = 2 if module.bidirectional else 1
    num_layers: int = module.num_layers  # type: ignore[assignment]
    layer_input = input
    finals: list[list[Tensor]] = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(num_directions):
            output, *states = run_layer(layer_input, layer * num_directions + direction, direction == 1)
            outputs.append(output)
            finals = finals or [[] for _ in states]
            for final, state in zip(finals, states):
                final.append(state)
        layer_input = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=-1)
        if module.dropout != 0 and module.training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, p=module.dropout, training=True)
    if len(finals[0]) == 1:  # a view, not a copy: one step of one layer is streaming's hot path
        return layer_input, tuple(final[0].unsqueeze(0) for final in finals)
    return layer_input, tuple(torch.stack(final) for final in finals)



class _RecurrentLayer(_BackendChoice, _Layouts, RNNBase):
    """What ``LSTM`` and ``GRU`` share beyond ``nn.RNNBase``: the ``backend`` choice, the input
    layouts (:class:`~lstm_ext._layouts._Layouts`), the weights of a layer-direction and ATen's
    checks before it computes. A layer defines ``_NAME`` ("LSTM", "GRU"), RNNBase's mode."""

    backend: str

    def __init__(self, *args: Any, backend: str = "auto", **kwargs: Any) -> None:
        # The arguments go to RNNBase untouched, as nn's layers pass them, so that a wrong one
        # fails with nn's exact words.
        _check_backend(backend)
        super().__init__(self._NAME, *args, **kwargs)
        self.backend = backend

    def _layer_weights(self, index: int) -> list[Optional[Tensor]]:
        """``[w_ih, w_hh, b_ih, b_hh, w_hr]`` of layer-direction ``index`` (None where absent: the
        biases without ``bias``, ``w_hr`` without a projection)."""
        weights = [getattr(self, name) for name in self._all_weights[index]]
        w_ih, w_hh = weights[0], weights[1]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (None, None)
        w_hr = weights[-1] if self.proj_size > 0 else None
        return [w_ih, w_hh, b_ih, b_hh, w_hr]

    def _weights(self) -> list[Optional[Tensor]]:
        """Every layer-direction's :meth:`_layer_weights`, one after the other (5 per layer-direction)."""
        return [w for index in range(len(self._all_weights)) for w in self._layer_weights(index)]

    def _check_before_compute(
        self, input: Tensor, batch_sizes: Optional[Tensor], params: list[Optional[Tensor]], hiddens: list[Tensor]
    ) -> None:
        """What ATen's layers check before they compute: devices, then a non-empty sequence."""
        _prepare_onnx_export()
        _check_on_input_device(input, params, hiddens)
        if batch_sizes is None and input.size(1 if self.batch_first else 0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")


class _RecurrentCell(_BackendChoice, RNNCellBase):
    """What ``LSTMCell`` and ``GRUCell`` share beyond ``nn.RNNCellBase``: the ``backend`` choice,
    nn's handling of unbatched input and omitted states, and ATen's cell checks, in their words.
    A cell defines ``_NAME`` ("LSTMCell", "GRUCell") and ``_STATE_NAMES``, its states as nn's
    messages name them."""

    backend: str
    _NAME: str
    _STATE_NAMES: tuple[str, ...]

    def _batched_step_args(
        self, input: Tensor, states: Optional[Sequence[Tensor]]
    ) -> tuple[Tensor, list[Tensor], bool]:
        """nn's cell forward before the arithmetic: ``input`` and every state 1-D or 2-D, a batch
        dimension added to unbatched ones, zeros for omitted states. Returns ``(input [N, I],
        states [N, H] each, is_batched)``."""
        _prepare_onnx_export()
        if input.dim() not in (1, 2):
            raise ValueError(f"{self._NAME}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if states is not None:
            for index, state in enumerate(states):
                if state.dim() not in (1, 2):
                    name = self._STATE_NAMES[min(index, len(self._STATE_NAMES) - 1)].format(index)
                    raise ValueError(f"{self._NAME}: Expected {name} to be 1D or 2D, got {state.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
        if states is None:
            zeros = torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype, device=input.device)
            return input, [zeros] * len(self._STATE_NAMES), is_batched
        if not is_batched:
            return input, [states[index].unsqueeze(0) for index in range(len(self._STATE_NAMES))], is_batched
        return input, list(states), is_batched

    def _check_input_size(self, input: Tensor) -> None:
        """ATen's ``check_rnn_cell_forward_input``."""
        if input.size(1) != self.weight_ih.size(1):
            raise RuntimeError(
                f"input has inconsistent input_size: got {input.size(1)} expected {self.weight_ih.size(1)}"
            )

    def _check_states(self, input: Tensor, states: Sequence[Tensor]) -> None:
        """ATen's ``check_rnn_cell_forward_hidden`` of each state (``hidden0``, ``hidden1``)."""
        hidden_size = self.weight_hh.size(1)
        for label, state in enumerate(states):
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
