"""What the ONNX forms of the LSTM and the GRU share (``lstm/onnx_export.py``,
``gru/onnx_export.py``): torch's weights in the gate order of ONNX's LSTM and GRU operators, one
layer-direction per node, and the node's outputs in the shapes of lstm_ext's ops."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ._onnx import Builder, refuse

PADDED_INSTEAD = "export the model on the padded batch (pad_packed_sequence) instead"


def gate_rows(hidden_size: int, order: Sequence[int]) -> list[int]:
    """The rows of a torch weight ``[G * H, K]`` in the gate order ONNX wants: gate block
    ``order[k]`` of torch's becomes block k."""
    return [block * hidden_size + unit for block in order for unit in range(hidden_size)]


def onnx_weight(b: Builder, weight: Any, rows: list[int]) -> Any:
    """torch's ``[G * H, K]`` as ONNX's ``[num_directions = 1, G * H, K]``, gates reordered."""
    return b.op("Unsqueeze", b.op("Gather", weight, b.ints(rows), axis=0), b.ints([0]))


def onnx_bias(b: Builder, b_ih: Optional[Any], b_hh: Optional[Any], rows: list[int]) -> Optional[Any]:
    """ONNX's ``B [1, 2 * G * H]`` (input biases, then recurrent ones), or None: no bias."""
    if b_ih is None and b_hh is None:
        return None
    if b_ih is None or b_hh is None:
        refuse("a layer with only one of b_ih and b_hh", "give it both biases or neither")
    both = b.op("Concat", b.op("Gather", b_ih, b.ints(rows), axis=0), b.op("Gather", b_hh, b.ints(rows), axis=0),
                axis=0)
    return b.op("Unsqueeze", both, b.ints([0]))


def check_dense(batch_sizes: Optional[Any]) -> None:
    """Packed input has no ONNX form here: its batch sizes are data, which the exporters trace as
    constants (the layers refuse it before this: ``_recurrent_base._prepare_onnx_export``)."""
    if batch_sizes is not None:
        refuse("a PackedSequence input", PADDED_INSTEAD)


def direction(reverse: bool) -> str:
    return "reverse" if reverse else "forward"


def layer_output(b: Builder, y: Any) -> Any:
    """ONNX's ``Y [T, 1, B, H]`` as the op's output ``[T, B, H]``."""
    return b.op("Squeeze", y, b.ints([1]))


def final_state(b: Builder, value: Any) -> Any:
    """ONNX's final state ``[1, B, H]`` as the op's ``[B, H]``."""
    return b.op("Squeeze", value, b.ints([0]))


def cell_input(b: Builder, input: Any) -> Any:
    """A cell's ``[B, I]`` as a one-step sequence ``[1, B, I]``."""
    return b.op("Unsqueeze", input, b.ints([0]))


def state(b: Builder, value: Any) -> Any:
    """A state ``[B, H]`` as ONNX's ``[1, B, H]``."""
    return b.op("Unsqueeze", value, b.ints([0]))


def for_backward_only(b: Builder, *values: Any) -> tuple[Any, ...]:
    """The ops' saved tensors (gates, cells) serve their backward alone, which no exported graph
    runs: placeholders the exporters drop as dead nodes."""
    return tuple(b.op("Identity", value) for value in values)
