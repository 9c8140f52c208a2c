"""Raw-op fuzzing, continued (see test_fuzz_ops.py): legal but unusual layouts of every tensor
argument give the result of the contiguous call, and a hypothesis fuzz draws every argument's
shape independently: a call either raises a clear error or gives what the reference gives."""

from __future__ import annotations

from typing import Iterator, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ext import _library, reference
from op_calls import OK_ERRORS, arg_names, good_calls
from op_calls import assert_clear_error as _assert_clear_error  # the name in the hypothesis test's text (below)
from tolerances import assert_close

pytestmark = pytest.mark.skipif(_library.LOAD_ERROR is not None, reason=f"extension not built: {_library.LOAD_ERROR}")

ops = torch.ops.lstm_ext
GOOD = good_calls()


# ---- legal layouts: the result equals the call on contiguous copies ----------------------------------


def _layouts(t: torch.Tensor) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, unusual tensor, a contiguous tensor of the same values)."""
    if t.dim() >= 2:
        yield "transposed", t.transpose(0, -1).contiguous().transpose(0, -1), t
    if t.dim() >= 1 and t.numel() > 0:
        wide = torch.stack([t, torch.full_like(t, 7)], dim=-1)  # interleaved garbage that must not be read
        yield "strided", wide[..., 0], t
        expanded = t.narrow(0, 0, 1).expand_as(t)
        yield "expanded", expanded, expanded.contiguous()
        yield "offset", torch.cat([torch.full_like(t.reshape(-1)[:3], 7), t.reshape(-1)])[3:].view(t.shape), t
    if t.is_floating_point():
        yield "neg-view", torch._neg_view(t.neg()), t


def _layout_cases():
    for call, (op, args) in GOOD.items():
        for i, (name, arg) in enumerate(zip(arg_names(op), args)):
            if not isinstance(arg, torch.Tensor) or name == "batch_sizes":
                continue
            for kind, unusual, plain in _layouts(arg):
                yield pytest.param(call, i, unusual, plain, id=f"{call}-{name}-{kind}")


@pytest.mark.parametrize("call, index, unusual, plain", list(_layout_cases()))
def test_unusual_layouts_give_the_contiguous_result(call, index, unusual, plain):
    op, args = GOOD[call]
    with_unusual, with_plain = list(args), list(args)
    with_unusual[index], with_plain[index] = unusual, plain.contiguous()
    assert not with_unusual[index].is_contiguous() or unusual.is_neg() or unusual.storage_offset() > 0
    got, want = op(*with_unusual), op(*with_plain)
    # A contiguous tensor at a storage offset goes to the GEMM as it is, at another alignment, and
    # the BLAS may round differently there (torch.mm itself does): the same math, held to the
    # float64 table. Every other layout is copied first: bitwise equal.
    same_bits = not (unusual.is_contiguous() and unusual.storage_offset() > 0)
    for g, w in zip(got, want):
        assert g.is_contiguous()
        if same_bits:
            assert torch.equal(g, w)
        else:
            assert_close(g, w)


@pytest.mark.parametrize("kind", ["strided", "expanded"])
def test_unusual_batch_sizes_layouts(kind):
    """batch_sizes as a strided view, and equal lengths as one expanded element."""
    op, args = GOOD["lstm_layer-dense"]
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, _, reverse = args
    T, B, I = input.shape
    if kind == "strided":
        bs = torch.stack([torch.full((T,), B), torch.full((T,), -1)], dim=-1)[:, 0]
    else:
        bs = torch.tensor([B]).expand(T)
    assert not bs.is_contiguous()
    got = op(input.reshape(T * B, I), h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs, reverse)
    want = op(*args)
    torch.testing.assert_close(got[0], want[0].reshape(T * B, -1), rtol=0, atol=0)
    for g, w in zip(got[1:], want[1:]):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


# ---- random shapes for every argument at once ----------------------------------------------------


@st.composite
def _independent_shapes(draw):
    """A layer call whose arguments' sizes are mostly drawn from a small set, independently,
    so that most calls are inconsistent in one or more ways and a few are consistent."""
    size = st.integers(0, 3)
    T, B, I, H, P = (draw(size) for _ in range(5))
    packed = draw(st.booleans())

    def maybe(shape):  # the consistent shape, or a random one of random rank
        if draw(st.integers(0, 3)) == 0:
            return tuple(draw(st.lists(size, min_size=0, max_size=3)))
        return shape

    H4 = 4 * H
    shapes = dict(
        input=maybe((T * B, I) if packed else (T, B, I)), h0=maybe((B, P)), c0=maybe((B, H)),
        w_ih=maybe((H4, I)), w_hh=maybe((H4, P)),
        b_ih=draw(st.sampled_from([None, maybe((H4,))])), b_hh=draw(st.sampled_from([None, maybe((H4,))])),
        w_hr=draw(st.sampled_from([None, maybe((P, H))])),
    )
    batch_sizes = None
    if packed:
        batch_sizes = torch.tensor(draw(st.lists(st.integers(-1, 4), min_size=0, max_size=4)), dtype=torch.long)
    return shapes, batch_sizes, draw(st.booleans())


def _reference_or_error(args) -> Optional[tuple]:
    try:
        return reference.lstm_layer(*args)
    except Exception:
        return None


# derandomize=True seeds hypothesis from this function's source text, so any edit to it changes
# the 300 examples it draws: keep its text as it is unless the draw is meant to change.
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=_independent_shapes())
def test_random_argument_shapes(case):
    shapes, batch_sizes, reverse = case
    g = torch.Generator().manual_seed(0)
    t = {k: (None if s is None else torch.randn(s, generator=g, dtype=torch.float64)) for k, s in shapes.items()}
    args = [t["input"], t["h0"], t["c0"], t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"], t["w_hr"], batch_sizes, reverse]
    try:
        got = ops.lstm_layer(*args)
    except OK_ERRORS as error:
        _assert_clear_error(error, ops.lstm_layer)
        return
    # Accepted: then it was a valid call, and the plain-PyTorch reference agrees.
    want = _reference_or_error(args)
    assert want is not None, f"lstm_layer accepted a call the reference cannot run: {[tuple(s) if s is not None else None for s in shapes.values()]}"
    for a, b in zip(got[:3], want):
        torch.testing.assert_close(a, b)
    # and the backward of the accepted call runs too
    out, h_n, c_n, gates, cells = got
    ops.lstm_layer_backward(torch.ones_like(out), torch.ones_like(h_n), torch.ones_like(c_n), *args[:5], args[7],
                            batch_sizes, reverse, out, gates, cells, [True, True, True])
