"""The LSTM as an ONNX ``Loop`` of standard operators, one step per iteration: the ONNX form of
what ONNX's own ``LSTM`` operator cannot hold, a projection (``proj_size``) and the variants'
zoneout, layer norm and the lesson's use gate (``lstm_variants/onnx_export.py``). The step is
:func:`lstm_ext.reference.lstm_cell`'s arithmetic, in torch's gate order i, f, g, o; the input's
projection for every step is one ``MatMul`` before the loop, as in the fused kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .._onnx import Builder
from ..reference.lstm_variants import LAYER_NORM_EPS

# Slice's end for a walk backwards through axis 0 that includes index 0
_BEFORE_FIRST = -(1 << 63)


@dataclass
class StepOptions:
    """What a layer-direction's step holds beyond the plain LSTM (None: not there).

    - ``peephole``: ``[3H]`` = ``(p_i, p_f, p_o)``;
    - ``zoneout_h``, ``zoneout_c``: the keep weights of every step, ``[T, B, H]``;
    - ``recurrent_norm``: the gain ``[4H]`` of the layer norm of ``h @ W_hh^T`` (its bias is in
      the input gates);
    - ``cell_norm``: ``(gain [H], bias [H])`` of the layer norm the use gate squashes;
    - ``lesson``: ``(W_u [H, H], b_u [H] or None)``, the lesson's use gate;
    - ``projection``: ``W_hr [P, H]``.
    """

    peephole: Optional[Any] = None
    zoneout_h: Optional[Any] = None
    zoneout_c: Optional[Any] = None
    recurrent_norm: Optional[Any] = None
    cell_norm: Optional[tuple[Any, Any]] = None
    lesson: Optional[tuple[Any, Optional[Any]]] = None
    projection: Optional[Any] = None


def input_gates(b: Builder, input: Any, w_ih: Any, b_ih: Optional[Any], b_hh: Optional[Any]) -> Any:
    """``input [T, B, I] @ W_ih^T + b_ih + b_hh``: every step's input part of the gates, ``[T, B, 4H]``."""
    gates = b.op("MatMul", input, b.op("Transpose", w_ih, perm=[1, 0]))
    for bias in (b_ih, b_hh):
        if bias is not None:
            gates = b.op("Add", gates, bias)
    return gates


class _Norm:
    """Layer norm over the last axis of ``[B, N]``, then ``* gain (+ bias)``: ONNX's
    ``LayerNormalization`` from opset 17; before it, the mean is a ``MatMul`` with ``1/N``
    (ReduceMean's axes moved from attribute to input across those opsets)."""

    # LayerNormalization's first opset
    NATIVE_OPSET = 17

    def __init__(self, b: Builder, features: int, like: Any) -> None:
        self.native = b.opset >= self.NATIVE_OPSET
        if not self.native:
            self.average = b.full((features, 1), 1.0 / features, like)
            self.eps = b.full((), LAYER_NORM_EPS, like)

    def __call__(self, b: Builder, x: Any, gain: Any, bias: Optional[Any] = None) -> Any:
        if self.native:
            return b.op("LayerNormalization", x, gain, bias, axis=-1, epsilon=LAYER_NORM_EPS)
        centered = b.op("Sub", x, b.op("MatMul", x, self.average))
        variance = b.op("MatMul", b.op("Mul", centered, centered), self.average)
        scaled = b.op("Mul", b.op("Div", centered, b.op("Sqrt", b.op("Add", variance, self.eps))), gain)
        return scaled if bias is None else b.op("Add", scaled, bias)


def _gate(b: Builder, gates: Any, k: int, hidden: int) -> Any:
    """Gate block ``k`` of ``[B, 4H]``."""
    return b.op("Slice", gates, b.ints([k * hidden]), b.ints([(k + 1) * hidden]), b.ints([1]))


def _zoneout(b: Builder, previous: Any, new: Any, keep: Optional[Any]) -> Any:
    """``keep * previous + (1 - keep) * new``, written ``new + keep * (previous - new)``."""
    if keep is None:
        return new
    return b.op("Add", new, b.op("Mul", keep, b.op("Sub", previous, new)))


def lstm_loop(b: Builder, gates_in: Any, h0: Any, c0: Any, w_hh: Any, options: StepOptions,
              reverse: bool) -> tuple[Any, Any, Any]:
    """One layer-direction over ``gates_in [T, B, 4H]`` (the input part of every step's gates)
    from ``h0 [B, P]``, ``c0 [B, H]``: ``(output [T, B, P], h_n [B, P], c_n [B, H])``."""
    hidden = b.shape(w_hh)[0] // 4
    w_hh_t = b.op("Transpose", w_hh, perm=[1, 0])
    recurrent_norm = _Norm(b, 4 * hidden, w_hh) if options.recurrent_norm is not None else None
    cell_norm = _Norm(b, hidden, w_hh) if options.cell_norm is not None else None
    peephole = None
    if options.peephole is not None:
        peephole = [_gate(b, b.op("Unsqueeze", options.peephole, b.ints([0])), k, hidden) for k in range(3)]
    w_u_t = b.op("Transpose", options.lesson[0], perm=[1, 0]) if options.lesson is not None else None
    w_hr_t = b.op("Transpose", options.projection, perm=[1, 0]) if options.projection is not None else None
    steps = b.op("Gather", b.op("Shape", gates_in), b.ints([0]), axis=0)  # [1]
    count = b.op("Squeeze", steps, b.ints([0]))
    last = b.op("Sub", count, b.op("Squeeze", b.ints([1]), b.ints([0])))

    def step(s: Builder, t: Any, h: Any, c: Any) -> tuple[tuple[Any, Any], tuple[Any]]:
        index = s.op("Sub", last, t) if reverse else t
        gates = s.op("MatMul", h, w_hh_t)
        if recurrent_norm is not None:
            gates = recurrent_norm(s, gates, options.recurrent_norm)
        gates = s.op("Add", s.op("Gather", gates_in, index, axis=0), gates)
        i, f, g, o = (_gate(s, gates, k, hidden) for k in range(4))
        if peephole is not None:
            i, f = s.op("Add", i, s.op("Mul", peephole[0], c)), s.op("Add", f, s.op("Mul", peephole[1], c))
        kept = s.op("Mul", c, s.op("Sigmoid", f))  # the forget gate's output
        c_new = s.op("Add", s.op("Mul", s.op("Tanh", g), s.op("Sigmoid", i)), kept)
        if peephole is not None:
            o = s.op("Add", o, s.op("Mul", peephole[2], c_new))
        if options.lesson is not None:
            w_u, b_u = options.lesson
            used = s.op("MatMul", kept, w_u_t)
            squashed = s.op("Tanh", used if b_u is None else s.op("Add", used, b_u))
        elif cell_norm is not None:
            squashed = s.op("Tanh", cell_norm(s, c_new, *options.cell_norm))
        else:
            squashed = s.op("Tanh", c_new)
        h_new = s.op("Mul", squashed, s.op("Sigmoid", o))
        if w_hr_t is not None:
            h_new = s.op("MatMul", h_new, w_hr_t)
        keep_h, keep_c = (None if keep is None else s.op("Gather", keep, index, axis=0)
                          for keep in (options.zoneout_h, options.zoneout_c))
        h_out = _zoneout(s, h, h_new, keep_h)
        c_out = _zoneout(s, c, c_new, keep_c)
        return (h_out, c_out), (s.op("Identity", h_out),)

    h_n, c_n, output = b.loop(count, (h0, c0), 1, step)
    if reverse:  # the loop stacks in iteration order: last step first
        output = b.op("Slice", output, b.ints([-1]), b.ints([_BEFORE_FIRST]), b.ints([0]), b.ints([-1]))
    return output, h_n, c_n
