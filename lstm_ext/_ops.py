"""Loads the compiled kernels and teaches PyTorch about them.

Each op in ``csrc/ops.cpp`` gets here:
- a fake kernel (``register_fake``), so ``torch.compile`` and meta tensors know the
  output shapes without running anything;
- an autograd formula (``register_autograd``) that calls the matching ``*_backward`` op.

Saved tensors (``gates``, ``cells``) are in the op-math dtype: float32 for bfloat16 input,
otherwise the input's dtype, so a bfloat16 LSTM still carries its cell state in float32.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

try:
    from . import _C  # noqa: F401  (importing registers the ops with the dispatcher)

    LOAD_ERROR: Optional[BaseException] = None
except ImportError as error:  # pragma: no cover - only without a build
    LOAD_ERROR = error

ops = torch.ops.lstm_ext

_CPU_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_VARIANT_DTYPES = (torch.float32, torch.float64)

# The single table of what each op family's kernels run: dtypes per device type (None: any
# dtype). A device type absent from a family's entry has no kernel of that family. has_kernel
# reads it, and so does .ci/run (through CPU_ONLY_OPS) for the CUDA registration check.
KERNEL_DTYPES: dict[str, dict[str, Optional[tuple[torch.dtype, ...]]]] = {
    "lstm": {"cpu": _CPU_DTYPES, "cuda": _CUDA_DTYPES},
    "gru": {"cpu": _CPU_DTYPES},
    "variant": {"cpu": _VARIANT_DTYPES},
    "mask": {"cpu": None},
}

# Every op of csrc/ops.cpp and its family.
OP_FAMILIES: dict[str, str] = {
    "lstm_layer": "lstm",
    "lstm_layer_backward": "lstm",
    "lstm_cell": "lstm",
    "lstm_cell_backward": "lstm",
    "lstm_inference": "lstm",
    "gru_layer": "gru",
    "gru_layer_backward": "gru",
    "gru_cell": "gru",
    "gru_cell_backward": "gru",
    "lstm_variant_layer": "variant",
    "lstm_variant_layer_backward": "variant",
    "linear": "variant",
    "bernoulli_mask": "mask",
}

# The ops with no CUDA kernel yet (their family declares none).
CPU_ONLY_OPS: tuple[str, ...] = tuple(op for op, family in OP_FAMILIES.items() if "cuda" not in KERNEL_DTYPES[family])

_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}


def _op_name(op: str) -> tuple[str, str]:
    """``("lstm_layer", "lstm_ext::lstm_layer")`` for either spelling."""
    short = op.split("::", 1)[1] if "::" in op else op
    return short, f"lstm_ext::{short}"


_REGISTERED: dict[tuple[str, str], bool] = {}


@torch.compiler.assume_constant_result
def _registered(qualified_name: str, device_type: str) -> bool:
    """Whether the dispatcher holds a kernel of the op for this device type (or one for every
    device). Registrations happen at import, so the answer is cached; torch.compile takes it as a
    constant rather than tracing the dispatcher query."""
    answer = _REGISTERED.get((qualified_name, device_type))
    if answer is None:
        key = _DISPATCH_KEYS.get(device_type)
        has = torch._C._dispatch_has_kernel_for_dispatch_key
        try:
            answer = key is not None and (has(qualified_name, key) or has(qualified_name, "CompositeExplicitAutograd"))
        except RuntimeError:  # no such op
            answer = False
        _REGISTERED[(qualified_name, device_type)] = answer
    return answer


def has_kernel(op: str, device: Union[torch.device, str], dtype: torch.dtype) -> bool:
    """True when lstm_ext's compiled kernel of ``op`` runs tensors of this device and dtype.

    ``op`` is an op of ``csrc/ops.cpp``, with or without the ``lstm_ext::`` prefix (e.g.
    ``"lstm_layer"``, ``"gru_cell"``, ``"lstm_variant_layer"``). The answer comes from the
    dispatcher (is a kernel registered for the device type?) and from :data:`KERNEL_DTYPES`
    (does that kernel take the dtype?).
    """
    if LOAD_ERROR is not None:
        return False
    short, qualified = _op_name(op)
    device_type = torch.device(device).type
    family = KERNEL_DTYPES.get(OP_FAMILIES.get(short, ""), {})
    if device_type not in family or not _registered(qualified, device_type):
        return False
    dtypes = family[device_type]
    return dtypes is None or dtype in dtypes


def has_fused_kernel(device: torch.device, dtype: torch.dtype, op: str = "lstm_ext::lstm_layer") -> bool:
    """``has_kernel(op, device, dtype)``, kept for callers that name the device first."""
    return has_kernel(op, device, dtype)


def missing_kernel_message(device: torch.device, dtype: torch.dtype, op: str = "lstm_layer") -> str:
    """Why backend="fused" cannot run ``op`` on tensors of this device and dtype."""
    if LOAD_ERROR is not None:
        return f"lstm_ext: the compiled kernels failed to load ({LOAD_ERROR}); reinstall with `pip install --no-build-isolation -e .`"
    if OP_FAMILIES.get(_op_name(op)[0]) == "variant":
        return (
            f"lstm_ext: no fused variant kernel (peephole, zoneout, layer_norm, use_gate='lesson') for {device.type} tensors of dtype {dtype}; "
            f"the variant kernels run float32 and float64 on the CPU; use backend='reference' or backend='auto'"
        )
    return (
        f"lstm_ext: no fused kernel for {device.type} tensors of dtype {dtype}; "
        f"use backend='reference' or backend='auto'"
    )


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _grad_like(need: bool, like: torch.Tensor, shape: Optional[Sequence[int]] = None) -> torch.Tensor:
    """A fake kernel's gradient: contiguous, of like's shape (or shape), empty when masked out."""
    return like.new_empty(tuple(like.shape if shape is None else shape) if need else (0,))


def _check_fake_kernel_devices(op: str, input: torch.Tensor, batch_sizes: Optional[torch.Tensor] = None, **tensors) -> None:
    """The fake kernels' share of the C++ argument checks: devices.

    A call that mixes a meta tensor with real ones dispatches to the fake (Meta) kernel, not to
    the C++ kernel whose checks would refuse it; without this check it would hand back
    uninitialised real tensors. Same words as csrc/lstm/lstm_args.cpp.
    """
    for name, t in tensors.items():
        if t is not None and t.device != input.device:
            raise RuntimeError(f"lstm_ext::{op}: expected {name} on device {input.device} like input, got {t.device}")
    if batch_sizes is not None and batch_sizes.device.type != "cpu" and batch_sizes.device != input.device:
        raise RuntimeError(
            f"lstm_ext::{op}: expected batch_sizes on the CPU (as PackedSequence keeps it), got {batch_sizes.device}"
        )


if LOAD_ERROR is None:

    # ---- lstm_layer -----------------------------------------------------------------

    @torch.library.register_fake("lstm_ext::lstm_layer")
    def _lstm_layer_fake(input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse):
        _check_fake_kernel_devices("lstm_layer", input, batch_sizes, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)
        hidden = w_hh.shape[0] // 4
        proj = h0.shape[-1]
        rows = input.shape[0] * input.shape[1] if batch_sizes is None else input.shape[0]
        output = input.new_empty((*input.shape[:-1], proj))
        opmath = _opmath(input.dtype)
        gates = input.new_empty((rows, 4 * hidden), dtype=opmath)
        cells = input.new_empty((rows, hidden), dtype=opmath)
        return output, torch.empty_like(h0), torch.empty_like(c0), gates, cells

    @torch.library.register_fake("lstm_ext::lstm_layer_backward")
    def _lstm_layer_backward_fake(
        grad_output, grad_h_n, grad_c_n, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse,
        output, gates, cells, output_mask,
    ):
        _check_fake_kernel_devices(
            "lstm_layer_backward", input, batch_sizes, grad_output=grad_output, grad_h_n=grad_h_n, grad_c_n=grad_c_n,
            h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, w_hr=w_hr, output=output, gates=gates, cells=cells,
        )
        need_input, need_state, need_weights = output_mask
        return (
            _grad_like(need_input, input), _grad_like(need_state, h0), _grad_like(need_state, c0),
            _grad_like(need_weights, w_ih), _grad_like(need_weights, w_hh),
            _grad_like(need_weights, w_ih, (w_ih.shape[0],)),
            _grad_like(need_weights and w_hr is not None, w_hr if w_hr is not None else w_ih),
        )

    def _lstm_layer_setup_context(ctx, inputs, output):
        _no_zero_grads(ctx)
        input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse = inputs
        out, _, _, gates, cells = output
        ctx.save_for_backward(input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, out, gates, cells)
        ctx.reverse = reverse
        ctx.has_bias = (b_ih is not None, b_hh is not None)

    def _lstm_layer_backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_gates, _grad_cells):
        _refuse_double_backward()
        input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, out, gates, cells = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1] or need[2], any(need[3:8])]
        grads = ops.lstm_layer_backward(
            _or_zeros(grad_output, out), _or_zeros(grad_h_n, h0), _or_zeros(grad_c_n, c0),
            input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, ctx.reverse, out, gates, cells, mask,
        )
        g_input, g_h0, g_c0, g_w_ih, g_w_hh, g_bias, g_w_hr = grads
        return (
            g_input if need[0] else None,
            g_h0 if need[1] else None,
            g_c0 if need[2] else None,
            g_w_ih if need[3] else None,
            g_w_hh if need[4] else None,
            g_bias if need[5] and ctx.has_bias[0] else None,
            # a separate tensor, so b_ih.grad and b_hh.grad never share storage
            g_bias.clone() if need[6] and ctx.has_bias[1] else None,
            g_w_hr if need[7] and w_hr is not None else None,
            None,
            None,
        )

    torch.library.register_autograd(
        "lstm_ext::lstm_layer", _lstm_layer_backward, setup_context=_lstm_layer_setup_context
    )

    # ---- lstm_cell --------------------------------------------------------------------

    @torch.library.register_fake("lstm_ext::lstm_cell")
    def _lstm_cell_fake(input, hx, cx, w_ih, w_hh, b_ih, b_hh):
        _check_fake_kernel_devices("lstm_cell", input, hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
        opmath = _opmath(input.dtype)
        gates = input.new_empty((input.shape[0], w_ih.shape[0]), dtype=opmath)
        return torch.empty_like(hx), torch.empty_like(cx), gates

    @torch.library.register_fake("lstm_ext::lstm_cell_backward")
    def _lstm_cell_backward_fake(grad_hy, grad_cy, input, hx, cx, w_ih, w_hh, gates, cy, output_mask):
        _check_fake_kernel_devices(
            "lstm_cell_backward", input, grad_hy=grad_hy, grad_cy=grad_cy, hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh,
            gates=gates, cy=cy,
        )
        need_input, need_state, need_weights = output_mask
        return (
            _grad_like(need_input, input), _grad_like(need_state, hx), _grad_like(need_state, cx),
            _grad_like(need_weights, w_ih), _grad_like(need_weights, w_hh),
            _grad_like(need_weights, w_ih, (w_ih.shape[0],)),
        )

    def _lstm_cell_setup_context(ctx, inputs, output):
        _no_zero_grads(ctx)
        input, hx, cx, w_ih, w_hh, b_ih, b_hh = inputs
        _, cy, gates = output
        ctx.save_for_backward(input, hx, cx, w_ih, w_hh, gates, cy)
        ctx.has_bias = (b_ih is not None, b_hh is not None)

    def _lstm_cell_backward(ctx, grad_hy, grad_cy, _grad_gates):
        _refuse_double_backward()
        input, hx, cx, w_ih, w_hh, gates, cy = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1] or need[2], any(need[3:7])]
        g_input, g_hx, g_cx, g_w_ih, g_w_hh, g_bias = ops.lstm_cell_backward(
            _or_zeros(grad_hy, hx), _or_zeros(grad_cy, cx), input, hx, cx, w_ih, w_hh, gates, cy, mask
        )
        return (
            g_input if need[0] else None,
            g_hx if need[1] else None,
            g_cx if need[2] else None,
            g_w_ih if need[3] else None,
            g_w_hh if need[4] else None,
            g_bias if need[5] and ctx.has_bias[0] else None,
            g_bias.clone() if need[6] and ctx.has_bias[1] else None,
        )

    torch.library.register_autograd(
        "lstm_ext::lstm_cell", _lstm_cell_backward, setup_context=_lstm_cell_setup_context
    )


def _refuse_double_backward() -> None:
    # Grad mode is on inside backward only under create_graph=True. The backward kernels are
    # not differentiable, so say so rather than return wrong or missing second derivatives.
    if torch.is_grad_enabled():
        raise RuntimeError(
            "lstm_ext: the fused kernels do not support double backward (create_graph=True); "
            "use backend='reference' for higher-order gradients"
        )


def _no_grad() -> bool:
    """Inference outside torch.compile: nothing for the autograd kernel to record."""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling()


def _call_without_grad(op, args: tuple):
    # register_autograd's kernel is Python: under no_grad it only redispatches, which is a large
    # share of a small step's time. Going below the autograd keys directly skips it; Python modes
    # and subclasses still see the op.
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def _no_zero_grads(ctx) -> None:
    # The saved-only outputs (gates, cells, ...) never get a gradient, and autograd would fill a
    # zero tensor as large as each before every backward, on the memory peak. Unused grads arrive
    # as None instead; _or_zeros makes the small ones.
    ctx.set_materialize_grads(False)


def _or_zeros(grad: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def lstm_layer(
    input: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: Optional[torch.Tensor],
    b_hh: Optional[torch.Tensor],
    w_hr: Optional[torch.Tensor],
    batch_sizes: Optional[torch.Tensor],
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer, one direction, the whole sequence, through the fused kernel.

    Shapes (H hidden size, P = proj_size or H):
      dense:  input [T, B, I], batch_sizes None        -> output [T, B, P]
      packed: input [N, I],    batch_sizes [T] (int64, CPU, non-increasing, sum N) -> output [N, P]
      h0 [B, P], c0 [B, H], w_ih [4H, I], w_hh [4H, P], b_ih/b_hh [4H] or None, w_hr [P, H] or None.
    Returns (output, h_n [B, P], c_n [B, H]).
    """
    args = (input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse)
    output, h_n, c_n, _, _ = _call_without_grad(ops.lstm_layer, args) if _no_grad() else ops.lstm_layer(*args)
    return output, h_n, c_n


def lstm_cell(
    input: torch.Tensor,
    hx: torch.Tensor,
    cx: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: Optional[torch.Tensor],
    b_hh: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: input [B, I], hx [B, H], cx [B, H] -> (h [B, H], c [B, H])."""
    args = (input, hx, cx, w_ih, w_hh, b_ih, b_hh)
    hy, cy, _ = _call_without_grad(ops.lstm_cell, args) if _no_grad() else ops.lstm_cell(*args)
    return hy, cy


__all__: Sequence[str] = [
    "CPU_ONLY_OPS", "KERNEL_DTYPES", "OP_FAMILIES", "has_kernel", "has_fused_kernel", "missing_kernel_message", "lstm_layer", "lstm_cell", "ops",
]
