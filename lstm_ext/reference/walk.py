"""The time loop every reference layer shares (LSTM, LSTM variants, GRU): one cell step per time
step, over dense or packed input, forwards or backwards.

A cell family gives :func:`walk` its states (``(h, c)`` for the LSTM, ``(h,)`` for the GRU) and a
``step``; the walk handles the layouts. Shapes: ``B`` batch, ``I`` input size, ``T`` steps, ``N``
rows of packed data.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = ["walk"]

# step(t, x_t [b, I], *states of the b active rows) -> (output_t [b, O], *new states [b, *])
Step = Callable[..., tuple[Tensor, ...]]


def walk(
    input: Tensor, states: tuple[Tensor, ...], batch_sizes: Optional[Tensor], reverse: bool, step: Step
) -> tuple[Tensor, ...]:
    """Run ``step`` over the time steps of ``input``; returns ``(output, *final states)``.

    - dense: ``input`` ``[T, B, I]`` and ``batch_sizes`` None -> ``output`` ``[T, B, O]``;
    - packed: ``input`` ``[N, I]`` (a ``PackedSequence``'s data) and ``batch_sizes`` ``[T]`` (int64,
      CPU, non-increasing, summing to ``N``) -> ``output`` ``[N, O]``. Step ``t`` works on the first
      ``batch_sizes[t]`` rows of every state; the other rows keep theirs: finished (forward) or not
      yet started (reverse).

    Every state is ``[B, *]``; ``O``, the output's width, is that of the first state (``h``).
    ``reverse=True`` walks the steps from the last to the first.
    """
    if batch_sizes is None:
        steps = [input[t] for t in range(input.shape[0])]
    else:
        steps = list(torch.split(input, batch_sizes.tolist()))
    order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))

    outputs: list[Optional[Tensor]] = [None] * len(steps)
    for t in order:
        x = steps[t]
        active = x.shape[0]  # rows taking part in this step (all of them when dense)
        outputs[t], *new_states = step(t, x, *(state[:active] for state in states))
        states = tuple(
            torch.cat([new, state[active:]]) if active < state.shape[0] else new
            for new, state in zip(new_states, states)
        )

    h0 = states[0]
    if batch_sizes is None:
        output = torch.stack(outputs) if outputs else input.new_empty((0, h0.shape[0], h0.shape[1]))
    else:
        output = torch.cat(outputs) if outputs else input.new_empty((0, h0.shape[1]))
    return (output, *states)
