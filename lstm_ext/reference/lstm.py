r"""The LSTM of the lesson, in plain PyTorch: four gates, one step, one layer.

This module is for reading. It is the slow, obviously-correct twin of the fused kernels of
:mod:`lstm_ext.lstm.ops` and :mod:`lstm_ext.lstm_variants.ops` (same arguments, same results,
differentiable by autograd), and ``backend="reference"`` of :class:`lstm_ext.LSTM` /
:class:`lstm_ext.LSTMCell` runs it. The variants' changes to the gates are in
:mod:`lstm_ext.reference.lstm_variants`; :func:`lstm_cell` takes them as options.

The lesson's vocabulary against torch's
---------------------------------------
The lesson keeps two memories: the long-term memory ``LTM`` (torch's *cell state* ``c``) and the
short-term memory ``STM`` (torch's *hidden state* ``h``); ``E_t`` is the event (the input ``x_t``).
Every gate looks at ``[STM_{t-1}, E_t]`` through one linear map. torch computes all four
pre-activations at once and splits them in the order **i, f, g, o**::

    gates = x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh     # [B, 4H]
    i, f, g, o = gates.chunk(4, dim=1)                        # each [B, H]

=============  ==================================  =======================================
lesson gate    lesson equation                     torch / lstm_ext equation
=============  ==================================  =======================================
learn          ``N_t * i_t``                       ``tanh(g) * sigmoid(i)``
               (combine ``N_t``, ignore ``i_t``)   (candidate ``g``, input gate ``i``)
forget         ``LTM_{t-1} * f_t``                 ``c_{t-1} * sigmoid(f)``
remember       learn + forget = ``LTM_t``          ``c_t = learned + kept``
use            ``U_t * V_t``                       ``h_t = sigmoid(o) * tanh(c_t)``
=============  ==================================  =======================================

Where the lesson differs
~~~~~~~~~~~~~~~~~~~~~~~~
The lesson's use gate builds ``U_t = tanh(LTM_{t-1} * f_t)``: the tanh of the *forgotten old*
long-term memory, before the learned part is added. torch, cuDNN and lstm_ext take the tanh of
the *new* cell state, ``tanh(c_t) = tanh(learned + kept)``, the one the remember gate just made.
Here :func:`use_gate` is ``tanh(long_term) * sigmoid(use)`` and :func:`lstm_cell` always calls it
with ``c_t``, so the results match ``torch.nn.LSTM`` (to rounding). The lesson's own use gate,
``U_t = tanh(W_u (LTM_{t-1} * f_t) + b_u)`` with new weights ``W_u``, ``b_u``, is
:func:`lesson_use_gate` (``use_gate="lesson"`` of :class:`lstm_ext.LSTM`).

Projections (``proj_size > 0``, LSTMP): the short-term memory is projected after the use gate,
``h_t = (sigmoid(o) * tanh(c_t)) @ W_hr.T`` with ``W_hr`` ``[P, H]``, so ``h`` has ``P`` columns and
``c`` keeps ``H``. The lesson has no projection.

Shapes used below: ``B`` batch, ``I`` input size, ``H`` hidden size, ``P`` = proj_size or ``H``,
``T`` steps, ``N`` rows of packed data (``N = sum(batch_sizes)``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .lstm_variants import LAYER_NORM_EPS, layer_norm_gates, lesson_use_gate, peephole_gates, zoneout
from .walk import walk

__all__ = [
    "learn_gate", "forget_gate", "remember_gate", "use_gate", "lstm_cell", "lstm_layer", "variant_lstm_cell",
    "variant_lstm_layer",
]


def learn_gate(combine: Tensor, ignore: Tensor) -> Tensor:
    """What to learn from this step: ``tanh(combine) * sigmoid(ignore)``.

    Lesson: ``N_t * i_t`` (the combined short-term memory and event, times the ignore factor).
    torch: ``tanh(g) * sigmoid(i)``: ``combine`` is the candidate pre-activation ``g``, ``ignore``
    the input-gate pre-activation ``i``. Both ``[B, H]``; returns ``[B, H]``.
    """
    return torch.tanh(combine) * torch.sigmoid(ignore)


def forget_gate(long_term: Tensor, forget: Tensor) -> Tensor:
    """What to keep of the long-term memory: ``long_term * sigmoid(forget)``.

    Lesson: ``LTM_{t-1} * f_t``. torch: ``c_{t-1} * sigmoid(f)``: ``long_term`` is the previous cell
    state ``c_{t-1}``, ``forget`` the forget-gate pre-activation ``f``. Both ``[B, H]``; returns ``[B, H]``.
    """
    return long_term * torch.sigmoid(forget)


def remember_gate(learned: Tensor, kept: Tensor) -> Tensor:
    """The new long-term memory: ``learned + kept``.

    Lesson: ``LTM_t = N_t * i_t + LTM_{t-1} * f_t``. torch: the new cell state
    ``c_t = sigmoid(i) * tanh(g) + sigmoid(f) * c_{t-1}``. Both ``[B, H]``; returns ``c_t`` ``[B, H]``.
    """
    return learned + kept


def use_gate(long_term: Tensor, use: Tensor) -> Tensor:
    """The new short-term memory: ``tanh(long_term) * sigmoid(use)``.

    torch: ``h_t = sigmoid(o) * tanh(c_t)``: ``long_term`` is the *new* cell state ``c_t`` and
    ``use`` the output-gate pre-activation ``o``. The lesson applies the tanh to the forgotten
    memory ``LTM_{t-1} * f_t`` instead (see the module docstring); lstm_ext follows torch.
    Both ``[B, H]``; returns ``[B, H]`` (before any projection).
    """
    return torch.tanh(long_term) * torch.sigmoid(use)


def lstm_cell(
    input: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor] = None,
    b_hh: Optional[Tensor] = None,
    *,
    peephole: Optional[Tensor] = None,
    zoneout_h: Optional[Tensor] = None,
    zoneout_c: Optional[Tensor] = None,
    layer_norm: Optional[tuple[Tensor, ...]] = None,
    lesson: Optional[tuple[Tensor, Optional[Tensor]]] = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step, gate by gate; with the variants of :mod:`lstm_ext.reference.lstm_variants`
    (peepholes, zoneout, layer norm, the lesson's use gate) when their arguments are given.

    Args:
        input: the event ``x_t``, ``[B, I]``.
        hx: ``(h, c)``: short-term memory ``[B, K]`` and long-term memory ``[B, H]``
            (``K`` is ``H``, or ``P`` inside a projected layer).
        w_ih: ``[4H, I]``; w_hh: ``[4H, K]``; b_ih, b_hh: ``[4H]`` or None. Rows in torch's gate
            order i, f, g, o.
        peephole: ``[3H]`` = ``(p_i, p_f, p_o)``: :func:`~lstm_ext.reference.lstm_variants.peephole_gates`,
            and ``p_o`` looks at the new long-term memory in the use gate.
        zoneout_h, zoneout_c: ``[B, H]`` keep weights (see :func:`~lstm_ext.reference.lstm_variants.zoneout`).
        layer_norm: ``(ih_weight [4H], ih_bias [4H], hh_weight [4H], hh_bias [4H], c_weight [H],
            c_bias [H])``: see :func:`~lstm_ext.reference.lstm_variants.layer_norm_gates`; the use
            gate then squashes ``LN(LTM_t)`` while the un-normalized ``LTM_t`` is carried to the next step.
        lesson: ``(W_u [H, H], b_u [H] or None)``: the use gate is
            :func:`~lstm_ext.reference.lstm_variants.lesson_use_gate`.

    Returns:
        ``(h_t, c_t)``, both ``[B, H]``, after zoneout: the state the next step starts from.
        ``h_t`` is the use gate's output, not projected.
    """
    h, c = hx
    if layer_norm is None:
        # input @ w_ih.T + b_ih + h @ w_hh.T + b_hh, as two F.linear calls like ATen's cell (so that
        # autocast casts the biases together with the products, as it does for nn.LSTMCell)
        gates = F.linear(input, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    else:
        gates = layer_norm_gates(input, h, w_ih, w_hh, b_ih, b_hh, layer_norm)
    i, f, g, o = gates.chunk(4, dim=1)  # torch's gate order
    if peephole is not None:
        i, f = peephole_gates(i, f, c, peephole)

    learned = learn_gate(g, i)  # N_t * i_t
    kept = forget_gate(c, f)  # LTM_{t-1} * f_t
    c_new = remember_gate(learned, kept)  # LTM_t
    if peephole is not None:
        o = o + peephole.chunk(3)[2] * c_new  # the use gate looks at the new long-term memory
    long_term = c_new
    if layer_norm is not None:
        long_term = F.layer_norm(c_new, (c_new.shape[-1],), layer_norm[4], layer_norm[5], eps=LAYER_NORM_EPS)
    if lesson is not None:
        h_new = lesson_use_gate(kept, o, *lesson)  # STM_t = U_t * V_t
    else:
        h_new = use_gate(long_term, o)  # STM_t
    return zoneout(h, h_new, zoneout_h), zoneout(c, c_new, zoneout_c)


# The cell with variants has no other name: it is lstm_cell with their arguments.
variant_lstm_cell = lstm_cell


def lstm_layer(
    input: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    w_hr: Optional[Tensor],
    batch_sizes: Optional[Tensor],
    reverse: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """One layer, one direction, a whole sequence (its fused twin: ``lstm_ext.lstm.ops.lstm_layer``).

    Shapes (``H`` hidden size, ``P`` = proj_size or ``H``):

    - dense: ``input`` ``[T, B, I]`` and ``batch_sizes`` None -> ``output`` ``[T, B, P]``;
    - packed: ``input`` ``[N, I]`` (a ``PackedSequence``'s data) and ``batch_sizes`` ``[T]``
      (int64, CPU, non-increasing, summing to ``N``) -> ``output`` ``[N, P]``. Step ``t`` works
      on the first ``batch_sizes[t]`` rows of the state; the other rows are left untouched;
    - ``h0`` ``[B, P]``, ``c0`` ``[B, H]``, ``w_ih`` ``[4H, I]``, ``w_hh`` ``[4H, P]``,
      ``b_ih``/``b_hh`` ``[4H]`` or None, ``w_hr`` ``[P, H]`` or None.

    ``reverse=True`` walks the steps from the last to the first. With packed input a shorter
    sequence then starts later: its row keeps ``h0``/``c0`` until its last step comes up. In the
    forward direction a row that has finished keeps its final state. Either way ``h_n``/``c_n``
    hold each sequence's state after its own last processed step.

    Returns:
        ``(output, h_n [B, P], c_n [B, H])``.
    """
    def step(t: int, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h_t, c_t = lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)
        if w_hr is not None:
            h_t = h_t @ w_hr.T
        return h_t, h_t, c_t

    return walk(input, (h0, c0), batch_sizes, reverse, step)


def variant_lstm_layer(
    input: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    batch_sizes: Optional[Tensor],
    reverse: bool,
    *,
    peephole: Optional[Tensor] = None,
    zoneout_h: Optional[Tensor] = None,
    zoneout_c: Optional[Tensor] = None,
    layer_norm: Optional[tuple[Tensor, ...]] = None,
    lesson_use_gate: Optional[tuple[Tensor, Optional[Tensor]]] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One variant layer-direction: :func:`lstm_layer`'s contract without a projection, plus
    ``peephole`` ``[3H]``, the zoneout keep weights ``zoneout_h`` / ``zoneout_c``, shaped like the
    output (``[T, B, H]`` dense, ``[N, H]`` packed), ``layer_norm``'s six gains and biases and the
    lesson's ``(W_u, b_u)`` (see :func:`lstm_cell`). The output is the zoned-out ``h`` of every step.
    """
    def rows_of(weights: Optional[Tensor]) -> list[Optional[Tensor]]:
        if weights is None:
            return [None] * (input.shape[0] if batch_sizes is None else len(batch_sizes))
        return list(weights) if batch_sizes is None else list(torch.split(weights, batch_sizes.tolist()))

    keep_h, keep_c = rows_of(zoneout_h), rows_of(zoneout_c)

    def step(t: int, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h_t, c_t = lstm_cell(
            x, (h, c), w_ih, w_hh, b_ih, b_hh, peephole=peephole, zoneout_h=keep_h[t], zoneout_c=keep_c[t],
            layer_norm=layer_norm, lesson=lesson_use_gate,
        )
        return h_t, h_t, c_t

    return walk(input, (h0, c0), batch_sizes, reverse, step)
