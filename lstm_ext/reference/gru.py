r"""The GRU in plain PyTorch: one step in four lines, one layer as a loop over steps.

The LSTM lesson points to GRUs as the next step
(http://www.cs.toronto.edu/~guerzhoy/321/lec/W09/rnn_gated.pdf). A GRU keeps one memory ``h``
(the lesson's long- and short-term memories in one) and two gates:

- the **reset gate** ``r``: how much of the old memory the candidate gets to see;
- the **update gate** ``z``: how much of the old memory to keep as it is. It does the lesson's
  forget and learn gates' work at once: keep ``z`` of the old memory, learn ``1 - z`` of the
  candidate ``n``.

torch's equations (gate order r, z, n in ``w_ih``, ``w_hh`` and the biases)::

    r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
    z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
    n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))      # b_hn inside the reset product
    h' = (1 - z) * n + z * h

This is the slow, obviously-correct twin of :mod:`lstm_ext.gru.ops` (same arguments, same results,
differentiable by autograd), and ``backend="reference"`` of :class:`lstm_ext.GRU` /
:class:`lstm_ext.GRUCell` runs it. Shapes: ``B`` batch, ``I`` input size, ``H`` hidden size,
``T`` steps, ``N`` rows of packed data.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .walk import walk

__all__ = ["gru_cell", "gru_layer"]


def gru_cell(
    input: Tensor, hx: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor] = None, b_hh: Optional[Tensor] = None
) -> Tensor:
    """One GRU step: input ``[B, I]``, hx ``[B, H]``, w_ih ``[3H, I]``, w_hh ``[3H, H]``, biases
    ``[3H]`` or None. Returns the new memory ``[B, H]``."""
    (x_r, x_z, x_n), (h_r, h_z, h_n) = F.linear(input, w_ih, b_ih).chunk(3, 1), F.linear(hx, w_hh, b_hh).chunk(3, 1)
    reset, update = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    candidate = torch.tanh(x_n + reset * h_n)
    return (1 - update) * candidate + update * hx


def gru_layer(
    input: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    batch_sizes: Optional[Tensor],
    reverse: bool,
) -> tuple[Tensor, Tensor]:
    """One layer, one direction, a whole sequence (its fused twin: ``lstm_ext.gru.ops.gru_layer``).

    Dense: ``input`` ``[T, B, I]``, ``batch_sizes`` None -> ``output`` ``[T, B, H]``. Packed:
    ``input`` ``[N, I]`` and ``batch_sizes`` ``[T]`` -> ``output`` ``[N, H]``; step ``t`` works on the
    first ``batch_sizes[t]`` rows of the memory and the other rows keep theirs (the walk of
    :func:`lstm_ext.reference.walk.walk`, shared with :func:`lstm_ext.reference.lstm_layer`).
    ``h0`` ``[B, H]``. Returns ``(output, h_n [B, H])``.
    """
    def step(t: int, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        h_t = gru_cell(x, h, w_ih, w_hh, b_ih, b_hh)
        return h_t, h_t

    output, h_n = walk(input, (h0,), batch_sizes, reverse, step)
    return output, h_n
