"""What every family's ``ops.py`` uses to teach PyTorch about its ops and to call them.

- fake kernels (``register_fake``: output shapes for ``torch.compile`` and meta tensors):
  :func:`check_fake_devices`, :func:`fake_layer_output`, :func:`fake_input_grads`;
- autograd: :func:`register_autograd_through_backward` makes the formula of a ``<op>`` that
  calls its ``<op>_backward``, from the names in the two schemas of ``csrc/ops.cpp``;
- calls: :func:`run_op` (below the autograd keys when nothing records) and :func:`implements`,
  which gives a fused entry point the signature and docstring of its reference twin.

Saved tensors (``gates``, ``cells``) are in the op-math dtype (:func:`opmath`): float32 for
bfloat16 input, otherwise the input's dtype, so a bfloat16 LSTM carries its cell state in float32.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence, TypeVar, Union

import torch
from torch import Tensor

from ._library import ops

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    P = ParamSpec("P")
R = TypeVar("R")


def opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute and save in: float32 for the half types, else ``dtype``."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


# ---- fake kernels -------------------------------------------------------------------------------


def check_fake_devices(
    op: str, input: Tensor, batch_sizes: Optional[Tensor] = None, /, **tensors: Optional[Tensor]
) -> None:
    """The fake kernels' share of the C++ argument checks: devices.

    A call that mixes a meta tensor with real ones dispatches to the fake (Meta) kernel, not to
    the C++ kernel whose checks would refuse it; without this check it would hand back
    uninitialised real tensors. Same words as ``csrc/runtime/layer_checks.cpp``.
    """
    for name, t in tensors.items():
        if t is not None and t.device != input.device:
            raise RuntimeError(f"lstm_ext::{op}: expected {name} on device {input.device} like input, got {t.device}")
    if batch_sizes is not None and batch_sizes.device.type != "cpu" and batch_sizes.device != input.device:
        raise RuntimeError(
            f"lstm_ext::{op}: expected batch_sizes on the CPU (as PackedSequence keeps it), got {batch_sizes.device}"
        )


def fake_layer_output(input: Tensor, batch_sizes: Optional[Tensor], width: int) -> tuple[Tensor, int]:
    """A layer op's output, ``[T, B, width]`` dense or ``[N, width]`` packed, and its number of
    rows (``T * B`` or ``N``), the first dimension of what the op saves for backward."""
    rows = input.shape[0] * input.shape[1] if batch_sizes is None else input.shape[0]
    return input.new_empty((*input.shape[:-1], width)), rows


GradLike = Union[Tensor, Sequence[int], None]


def fake_input_grads(
    output_mask: Sequence[bool], like: Tensor, input: GradLike, states: Sequence[GradLike], weights: Sequence[GradLike]
) -> tuple[Tensor, ...]:
    """A backward op's fake result: the gradients of ``input``, of the ``states`` and of the
    ``weights``, in that order, each empty (``[0]``) where ``output_mask`` (input, states,
    weights) says it is not needed.

    Each entry gives the gradient's shape: a tensor (its shape and dtype), a shape (with ``like``'s
    dtype), or None for an absent optional weight (always empty).
    """
    need_input, need_state, need_weights = output_mask

    def grad(need: bool, entry: GradLike) -> Tensor:
        if isinstance(entry, Tensor):
            return entry.new_empty(tuple(entry.shape) if need else (0,))
        return like.new_empty(tuple(entry) if need and entry is not None else (0,))

    return (
        grad(need_input, input), *(grad(need_state, s) for s in states), *(grad(need_weights, w) for w in weights)
    )


# ---- autograd -----------------------------------------------------------------------------------

# A backward op's result that serves several inputs: the LSTM's one bias gradient.
_SHARED_GRADS = {"bias": ("b_ih", "b_hh")}


def refuse_double_backward() -> None:
    # Grad mode is on inside backward only under create_graph=True. The backward kernels are
    # not differentiable, so say so rather than return wrong or missing second derivatives.
    if torch.is_grad_enabled():
        raise RuntimeError(
            "lstm_ext: the fused kernels do not support double backward (create_graph=True); "
            "use backend='reference' for higher-order gradients"
        )


def register_autograd_through_backward(
    op: str, *, states: Mapping[str, str], saved_only_with: Optional[Mapping[str, str]] = None
) -> None:
    """Register the autograd formula of ``lstm_ext::<op>``: one call of ``lstm_ext::<op>_backward``.

    ``states`` maps each state input to the output it becomes (``{"h0": "h_n", "c0": "c_n"}``).
    Everything else comes from the names in the two schemas (``csrc/ops.cpp``):

    - the backward op's ``grad_<output>`` arguments are the gradients of those outputs; one that
      does not arrive (the output was not used) is zeros, shaped like the output or, for a final
      state, like its initial state;
    - its arguments named like a forward input or output get that input or output, saved at
      forward; ``output_mask`` says whether (the first input, the states, the weights) need
      gradients;
    - its ``grad_<input>`` results are those inputs' gradients (``grad_bias`` serves ``b_ih`` and
      ``b_hh``, as two tensors); inputs without one (``batch_sizes``, flags, masks) get None.

    ``saved_only_with`` maps an input the backward op takes to the optional input it serves: where
    that one is None, an empty tensor is saved in its place (``{"input": "w_ih"}``: the variants'
    input gates are not kept alive for a weight gradient no one computes).

    Outputs the backward op takes but that get no gradient (``gates``, ``cells``, ...) are saved
    for backward only: autograd hands their gradient slots None instead of zero tensors as large
    as each (``set_materialize_grads(False)``).
    """
    forward = getattr(ops, op).default._schema
    backward_op = getattr(ops, f"{op}_backward")
    backward = backward_op.default._schema
    inputs = [a.name for a in forward.arguments]
    outputs = [r.name for r in forward.returns]
    tensor_inputs = {a.name for a in forward.arguments if str(a.type) in ("Tensor", "Optional[Tensor]")}

    # The backward op's arguments before output_mask, each as (where it comes from, index):
    # a gradient (index of the output), a saved tensor or a saved flag.
    saved_inputs = [n for n in (a.name for a in backward.arguments) if n in inputs and n in tensor_inputs]
    saved_flags = [n for n in (a.name for a in backward.arguments) if n in inputs and n not in tensor_inputs]
    saved_outputs = [n for n in (a.name for a in backward.arguments) if n in outputs and n not in inputs]
    saved = saved_inputs + saved_outputs
    final_to_initial = {final: initial for initial, final in states.items()}
    plan: list[tuple[str, int, int]] = []  # (kind, index, index in saved of the zeros' shape)
    for arg in backward.arguments[:-1]:
        name = arg.name
        if name.startswith("grad_") and name[5:] in outputs:
            output = name[5:]
            like = output if output in saved else final_to_initial[output]
            plan.append(("grad", outputs.index(output), saved.index(like)))
        elif name in saved:
            plan.append(("saved", saved.index(name), -1))
        else:
            plan.append(("flag", saved_flags.index(name), -1))

    # The backward op's results, each as the indices of the forward inputs it is the gradient of.
    targets = [tuple(inputs.index(n) for n in _SHARED_GRADS.get(r.name[5:], (r.name[5:],))) for r in backward.returns]
    state_indices = [inputs.index(name) for name in states]
    weight_indices = [i for group in targets for i in group if i != 0 and i not in state_indices]
    saved_input_indices = [inputs.index(n) for n in saved_inputs]
    saved_flag_indices = [inputs.index(n) for n in saved_flags]
    saved_output_indices = [outputs.index(n) for n in saved_outputs]

    only_with = {inputs.index(n): inputs.index(w) for n, w in (saved_only_with or {}).items()}

    def kept(args, i):
        return args[i] if i not in only_with or args[only_with[i]] is not None else args[i].new_empty(0)

    def setup_context(ctx, inputs, output):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*(kept(inputs, i) for i in saved_input_indices),
                              *(output[i] for i in saved_output_indices))
        ctx.flags = tuple(inputs[i] for i in saved_flag_indices)

    def backward_formula(ctx, *grads):
        refuse_double_backward()
        tensors = ctx.saved_tensors
        args = []
        for kind, index, like in plan:
            if kind == "grad":
                grad = grads[index]
                args.append(torch.zeros_like(tensors[like]) if grad is None else grad)
            else:
                args.append(tensors[index] if kind == "saved" else ctx.flags[index])
        need = ctx.needs_input_grad
        mask = [need[0], any(need[i] for i in state_indices), any(need[i] for i in weight_indices)]
        result: list[Optional[Tensor]] = [None] * len(need)
        for grad, group in zip(backward_op(*args, mask), targets):
            for k, i in enumerate(group):
                if need[i]:
                    # a separate tensor for each further input, so b_ih.grad and b_hh.grad never share storage
                    result[i] = grad if k == 0 else grad.clone()
        return tuple(result)

    torch.library.register_autograd(f"lstm_ext::{op}", backward_formula, setup_context=setup_context)


# ---- calls --------------------------------------------------------------------------------------


def run_op(op: Callable[..., tuple[Tensor, ...]], args: tuple, results: int) -> tuple[Tensor, ...]:
    """The first ``results`` outputs of ``op(*args)`` (the rest are saved for its backward).

    Inference outside torch.compile goes below the autograd keys: register_autograd's kernel is
    Python, and under no_grad it only redispatches, a large share of a small step's time. Python
    modes and tensor subclasses still see the op.
    """
    if not torch.is_grad_enabled() and not torch.compiler.is_compiling():
        with torch._C._AutoDispatchBelowAutograd():
            return op(*args)[:results]
    return op(*args)[:results]


def implements(contract: "Callable[P, R]") -> "Callable[[Callable[..., R]], Callable[P, R]]":
    """Gives a fused entry point the signature, type and docstring of ``contract``, the reference
    function it computes with the compiled kernels (same arguments, same results); the reference
    is where that contract is written down, with its shapes."""

    def adopt(function: Callable[..., R]) -> "Callable[P, R]":
        function.__signature__ = inspect.signature(contract)  # type: ignore[attr-defined]
        function.__doc__ = (
            f"{contract.__name__} (:mod:`{contract.__module__}`) on the fused kernels: the same arguments and "
            f"results.\n\n{inspect.getdoc(contract) or ''}"
        )
        return function  # type: ignore[return-value]

    return adopt


__all__ = [
    "check_fake_devices", "fake_input_grads", "fake_layer_output", "implements", "opmath",
    "refuse_double_backward", "register_autograd_through_backward", "run_op",
]
