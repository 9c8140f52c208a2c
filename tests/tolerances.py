"""Per-dtype tolerances for comparing lstm_ext with nn.LSTM and with the reference.

One table, used by every test. The values are what the arithmetic allows over a
100-step recurrence, not what makes a test green: never raise one to hide a bug.
"""

import torch
from torch.utils._pytree import tree_flatten

TOLERANCES = {
    torch.float64: dict(rtol=1e-7, atol=1e-9),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.bfloat16: dict(rtol=4e-2, atol=4e-2),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
}


def tol(dtype: torch.dtype) -> dict:
    return TOLERANCES[dtype]


def assert_close(actual, expected, **kwargs):
    """torch.testing.assert_close with the table's tolerance for expected's dtype."""
    if isinstance(expected, torch.Tensor):
        kwargs = {**TOLERANCES[expected.dtype], **kwargs}
    torch.testing.assert_close(actual, expected, **kwargs)


def assert_tree_close(actual, expected):
    """assert_close leaf by leaf, so each tensor gets the table's tolerance for its dtype."""
    actual_leaves, actual_spec = tree_flatten(actual)
    expected_leaves, expected_spec = tree_flatten(expected)
    assert actual_spec == expected_spec
    for a, e in zip(actual_leaves, expected_leaves):
        assert_close(a, e)
