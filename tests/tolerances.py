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


def assert_close_to_truth(actual, truth, plain, name: str = "result"):
    """A low-precision result held to the float64 truth: within the table's tolerance, or, where
    that dtype's arithmetic itself cannot reach that (a long layer-normalized recurrence, large
    gradients summed over a wide layer), no more than twice as far from the truth as ``plain``:
    the plain-PyTorch reference, or torch's own kernel (cuDNN), run in the same dtype.

    The second clause is the criterion of causal-conv1d / mamba's tests: a kernel must be as
    accurate as the framework in its own precision; a real bug is orders of magnitude off."""
    table = TOLERANCES[actual.dtype]
    truth = truth.to(actual.dtype if actual.dtype != torch.float32 else torch.float64)
    error = (actual.double() - truth.double()).abs()
    if bool((error <= table["atol"] + table["rtol"] * truth.double().abs()).all()):
        return
    plain_error = (plain.double() - truth.double()).abs().max()
    assert error.max() <= 2 * plain_error + table["atol"], (
        f"{name}: max error {error.max():.3g} from the float64 truth, over the table's tolerance and over "
        f"twice the error of the plain {actual.dtype} reference, {plain_error:.3g}"
    )
