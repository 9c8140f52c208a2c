"""lstm_ext::bernoulli_mask, the zoneout masks: distribution, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.library import opcheck

import lstm_ext
from lstm_ext._masks import bernoulli_mask

pytestmark = pytest.mark.skipif(lstm_ext._library.LOAD_ERROR is not None, reason="compiled kernels not loaded")

ops = torch.ops.lstm_ext
CPU = torch.empty(0)


def _seed(value: int) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_mean_is_p(p, dtype):
    """Entries are 0 or 1 and the share of ones is p, within 6 standard deviations."""
    n = 1 << 20
    mask = ops.bernoulli_mask(_seed(12345), p, [n], dtype)
    assert mask.dtype == dtype and mask.shape == (n,)
    assert torch.all((mask == 0) | (mask == 1))
    share = mask.double().mean().item()
    assert abs(share - p) <= 6 * math.sqrt(p * (1 - p) / n), share


@pytest.mark.parametrize("p, value", [(0.0, 0.0), (1.0, 1.0)])
def test_certain_probabilities(p, value):
    mask = ops.bernoulli_mask(_seed(-7), p, [3, 1000], torch.float32)
    torch.testing.assert_close(mask, torch.full((3, 1000), value))


def test_entries_are_uncorrelated():
    """Neighbouring entries (next unit, next row) and two seeds' masks show no correlation."""
    n = 1 << 20
    a = ops.bernoulli_mask(_seed(1), 0.5, [n], torch.float64) - 0.5
    b = ops.bernoulli_mask(_seed(2), 0.5, [n], torch.float64) - 0.5
    bound = 6 / math.sqrt(n)
    for lag in (1, 2, 64, 256):
        corr = (a[:-lag] * a[lag:]).mean().item() / 0.25
        assert abs(corr) <= bound, (lag, corr)
    assert abs((a * b).mean().item() / 0.25) <= bound


def test_seed_alone_decides():
    """The same seed gives the same mask whatever the thread count (entries hash their index)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.bernoulli_mask(_seed(99), 0.2, [300, 700], torch.float32)
        torch.set_num_threads(max(2, threads))
        many = ops.bernoulli_mask(_seed(99), 0.2, [300, 700], torch.float32)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)
    assert not torch.equal(one, ops.bernoulli_mask(_seed(100), 0.2, [300, 700], torch.float32))
    # the shape only arranges the entries
    assert torch.equal(one.flatten(), ops.bernoulli_mask(_seed(99), 0.2, [700 * 300], torch.float32))


def test_drawn_from_torch_generator():
    """manual_seed reproduces the masks; consecutive draws differ."""
    torch.manual_seed(5)
    a, b = bernoulli_mask(0.3, (50, 40), CPU), bernoulli_mask(0.3, (50, 40), CPU)
    torch.manual_seed(5)
    assert torch.equal(a, bernoulli_mask(0.3, (50, 40), CPU))
    assert torch.equal(b, bernoulli_mask(0.3, (50, 40), CPU))
    assert not torch.equal(a, b)


def test_empty_and_zero_dim_shapes():
    assert ops.bernoulli_mask(_seed(3), 0.5, [0, 4], torch.float32).shape == (0, 4)
    assert ops.bernoulli_mask(_seed(3), 1.0, [], torch.float64).item() == 1.0


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_probability_outside_unit_interval_raises(p):
    with pytest.raises(RuntimeError, match=r"lstm_ext::bernoulli_mask: expected 0 <= p <= 1"):
        ops.bernoulli_mask(_seed(0), p, [4], torch.float32)


def test_bad_seed_and_dtype_raise():
    with pytest.raises(RuntimeError, match="expected a 0-dim int64 seed"):
        ops.bernoulli_mask(torch.tensor([1]), 0.5, [4], torch.float32)
    with pytest.raises(RuntimeError, match="expected a 0-dim int64 seed"):
        ops.bernoulli_mask(torch.tensor(1, dtype=torch.int32), 0.5, [4], torch.float32)
    with pytest.raises(RuntimeError, match="expected a floating-point dtype"):
        ops.bernoulli_mask(_seed(0), 0.5, [4], torch.int64)


def test_opcheck():
    opcheck(ops.bernoulli_mask, (_seed(11), 0.25, [3, 5], torch.float32))


def test_compiles_without_graph_break():
    def draw(x):
        return x * bernoulli_mask(0.5, tuple(x.shape), x)

    compiled = torch.compile(draw, fullgraph=True, backend="eager")
    x = torch.ones(6, 7)
    torch.manual_seed(8)
    got = compiled(x)
    torch.manual_seed(8)
    torch.testing.assert_close(got, draw(x))


@pytest.mark.parametrize("p", [0.25, 1.0])
def test_drop_connect_keeps_and_scales(p):
    """Recurrent dropout draws through the same mask: kept weights scaled by 1 / (1 - p), p = 1 drops all."""
    weight = torch.rand(256, 64, dtype=torch.float64) + 0.5
    torch.manual_seed(3)
    dropped = lstm_ext.reference.drop_connect(weight, p)
    torch.manual_seed(3)
    assert torch.equal(dropped, lstm_ext.reference.drop_connect(weight, p))
    kept = dropped != 0
    if p == 1.0:
        assert not kept.any()
        return
    torch.testing.assert_close(dropped[kept], weight[kept] / (1 - p))
    n = weight.numel()
    assert abs(kept.double().mean().item() - (1 - p)) <= 6 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(lstm_ext.reference.drop_connect(weight, p, training=False), weight)
