"""Property-based tests: the fused kernels equal the four-gate reference, in float64, on shapes
and options that hypothesis draws.

Drawn: T, B, I, H (1 and odd sizes included), num_layers, bidirectional, proj_size, batch_first,
bias, dense or packed input with random lengths (length-1 sequences and all-equal lengths
included, sorted or not), a random initial state or none, and the weights' seed. Checked:
output, h_n, c_n and the gradients of the input, the initial state and every parameter.

derandomize=True makes the examples a fixed function of the test's source, so CI runs the
same examples every time; the @example cases pin the edges hypothesis might not draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstm_ext
from conftest import FUSED_AVAILABLE, FUSED_SKIP_REASON
from tolerances import assert_close

pytestmark = pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON)

DTYPE = torch.float64
SETTINGS = settings(
    max_examples=120, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Case:
    T: int
    B: int
    I: int  # noqa: E741
    H: int
    num_layers: int
    bidirectional: bool
    proj_size: int
    batch_first: bool
    bias: bool
    lengths: Optional[tuple[int, ...]]  # None: dense input
    enforce_sorted: bool
    with_hx: bool
    seed: int


@st.composite
def cases(draw) -> Case:
    T = draw(st.integers(1, 7))
    B = draw(st.integers(1, 5))
    H = draw(st.integers(1, 9))
    lengths = None
    if draw(st.booleans()):  # packed
        kind = draw(st.sampled_from(["random", "all-equal", "ones"]))
        if kind == "all-equal":
            lengths = (T,) * B
        elif kind == "ones":
            lengths = (1,) * B
        else:
            lengths = tuple(draw(st.lists(st.integers(1, T), min_size=B, max_size=B)))
    return Case(
        T=T, B=B, I=draw(st.integers(1, 7)), H=H,
        num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
        proj_size=draw(st.integers(0, H - 1)) if H > 1 and draw(st.booleans()) else 0,
        batch_first=draw(st.booleans()), bias=draw(st.booleans()),
        lengths=lengths, enforce_sorted=draw(st.booleans()),
        with_hx=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
    )


def _run(model: torch.nn.Module, case: Case, x: torch.Tensor, hx):
    """Forward + backward of a fixed random loss; returns outputs and all gradients."""
    x = x.detach().requires_grad_()
    hx = None if hx is None else tuple(h.detach().requires_grad_() for h in hx)
    inp = x
    if case.lengths is not None:
        lengths = torch.tensor(case.lengths)
        if case.enforce_sorted:
            lengths = lengths.sort(descending=True).values
        inp = pack_padded_sequence(x, lengths, batch_first=case.batch_first, enforce_sorted=case.enforce_sorted)
    out, (h_n, c_n) = model(inp, hx)
    out_t = out.data if isinstance(out, PackedSequence) else out
    g = torch.Generator().manual_seed(case.seed + 1)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (out_t, h_n, c_n))
    wrt = [x, *(hx or ()), *model.parameters()]
    grads = torch.autograd.grad(loss, wrt)
    results = [out_t, h_n, c_n, *grads]
    if isinstance(out, PackedSequence):
        results += [out.batch_sizes, out.sorted_indices, out.unsorted_indices]
    return results


def _check(case: Case) -> None:
    torch.manual_seed(case.seed)
    kwargs = dict(input_size=case.I, hidden_size=case.H, num_layers=case.num_layers, bias=case.bias,
                  batch_first=case.batch_first, bidirectional=case.bidirectional, proj_size=case.proj_size,
                  dtype=DTYPE)
    fused = lstm_ext.LSTM(**kwargs, backend="fused")
    ref = lstm_ext.LSTM(**kwargs, backend="reference")
    ref.load_state_dict(fused.state_dict())
    g = torch.Generator().manual_seed(case.seed)
    shape = (case.B, case.T, case.I) if case.batch_first else (case.T, case.B, case.I)
    x = torch.randn(shape, generator=g, dtype=DTYPE)
    hx = None
    if case.with_hx:
        D = case.num_layers * (2 if case.bidirectional else 1)
        P = case.proj_size or case.H
        hx = (torch.randn(D, case.B, P, generator=g, dtype=DTYPE), torch.randn(D, case.B, case.H, generator=g, dtype=DTYPE))
    got, want = _run(fused, case, x, hx), _run(ref, case, x, hx)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if a is None or b is None:  # a sorted PackedSequence has no indices
            assert a is None and b is None
        elif a.is_floating_point():
            assert_close(a, b)
        else:  # a PackedSequence's batch_sizes and indices
            assert torch.equal(a, b)


EXAMPLES_RUN = {"fused-vs-reference": 0}


@SETTINGS
@given(case=cases())
@example(case=Case(1, 1, 1, 1, 1, False, 0, False, True, None, True, False, 0))  # the smallest layer
@example(case=Case(5, 4, 3, 7, 2, True, 3, True, True, (1, 1, 1, 1), True, True, 1))  # every sequence of length 1
@example(case=Case(6, 3, 2, 5, 3, True, 0, False, False, (6, 6, 6), True, True, 2))  # all-equal lengths
@example(case=Case(7, 5, 5, 9, 2, True, 4, True, True, (1, 7, 3, 1, 7), False, True, 3))  # unsorted, ties, ones
def test_fused_equals_reference(case: Case):
    EXAMPLES_RUN["fused-vs-reference"] += 1
    _check(case)


def test_examples_ran():
    """Runs after the property test in file order: says how many examples it ran (pytest -rA or -s)."""
    n = EXAMPLES_RUN["fused-vs-reference"]
    print(f"hypothesis examples run: {n}")
    if n:  # 0 when the property test was deselected
        assert n >= 100
