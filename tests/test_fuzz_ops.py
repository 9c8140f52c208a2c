"""Raw-op fuzzing: every torch.ops.lstm_ext op, called directly with malformed arguments.

A user can call the ops without the modules' checks in front of them, so each op must check
its own arguments. Starting from a well-formed call of each op (dense and packed, with and
without a projection, forward and backward), every tensor argument in turn gets:

- a wrong rank (one dim more, one dim fewer), a wrong size (each dim one longer, one shorter,
  zero), another dtype (float32/float64 swapped, int64) and another device (meta);
  each such call raises RuntimeError/ValueError naming the op, except the one change that is
  legal (a dense input with more or fewer steps), which must equal the reference;
- a legal but unusual layout: non-contiguous (transposed, strided), overlapping (expanded,
  stride 0), or a negative view: the result equals the call on a contiguous copy.

batch_sizes gets its own list (unsorted, zero, negative, longer than the input, wrong dtype,
wrong device, wrong sum...). Backward ops also get saved tensors from another call. Last, a
hypothesis fuzz draws every argument's shape independently: a call either raises a clear error
or gives what the reference gives for the same tensors. Run under the sanitizer build
(.ci/sanitize.sh), these calls also prove nothing reads or writes out of bounds.
"""

from __future__ import annotations

from typing import Iterator, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_ext import _ops, reference
from test_gru_ops import cell_args as gru_cell_args
from test_gru_ops import gru_args
from test_ops import cell_args, layer_args
from test_variants_ops import _op_args as variant_op_args
from test_variants_ops import layer_case as variant_layer_case
from tolerances import assert_close

pytestmark = pytest.mark.skipif(_ops.LOAD_ERROR is not None, reason=f"extension not built: {_ops.LOAD_ERROR}")

ops = torch.ops.lstm_ext
OK_ERRORS = (RuntimeError, ValueError)  # NotImplementedError is a RuntimeError too


def _names(op) -> list[str]:
    return [a.name for a in op.default._schema.arguments]


def _detach(args):
    return [a.detach() if isinstance(a, torch.Tensor) else a for a in args]


def _good_calls() -> dict[str, tuple[object, list]]:
    """A well-formed call of every op: name -> (op, args)."""
    dense = _detach(layer_args(T=4, B=3, I=5, H=6, requires_grad=False, seed=1))
    packed = _detach(layer_args(T=5, B=4, I=3, H=5, proj=2, packed=True, reverse=True, requires_grad=False, seed=2))
    calls = {"lstm_layer-dense": (ops.lstm_layer, dense), "lstm_layer-packed-proj": (ops.lstm_layer, packed)}
    g = torch.Generator().manual_seed(3)
    for name, args in (("dense", dense), ("packed-proj", packed)):
        input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse = args
        out, h_n, c_n, gates, cells = ops.lstm_layer(*args)
        grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (out, h_n, c_n)]
        calls[f"lstm_layer_backward-{name}"] = (
            ops.lstm_layer_backward,
            [*grads, input, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, out, gates, cells, [True, True, True]],
        )
    cell = _detach(cell_args(B=3, I=4, H=5, seed=4))
    calls["lstm_cell"] = (ops.lstm_cell, cell)
    input, hx, cx, w_ih, w_hh, _, _ = cell
    hy, cy, gates = ops.lstm_cell(*cell)
    grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (hy, cy)]
    calls["lstm_cell_backward"] = (
        ops.lstm_cell_backward, [*grads, input, hx, cx, w_ih, w_hh, gates, cy, [True, True, True]]
    )
    calls.update(_variant_calls(g))
    calls.update(_gru_calls(g))
    linear = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in ((7, 5), (6, 5), (6,))]
    calls["linear"] = (ops.linear, linear)
    calls["bernoulli_mask"] = (ops.bernoulli_mask, [torch.tensor(4, dtype=torch.int64), 0.5, [3, 2], torch.float32])
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, _, _, _ = dense  # one layer, one direction, hx given
    calls["lstm_inference-dense"] = (
        ops.lstm_inference, [input, [h0[None], c0[None]], [w_ih, w_hh, b_ih, b_hh], True, 1, False, False]
    )
    return calls


def _gru_calls(g: torch.Generator) -> dict[str, tuple[object, list]]:
    """The GRU ops: a dense and a packed reverse layer, and a cell, forward and backward."""
    calls = {}
    for name, case in (("dense", dict(T=4, B=3, I=5, H=6)), ("packed", dict(T=5, B=4, I=3, H=5, packed=True, reverse=True))):
        args = _detach(gru_args(**case, requires_grad=False, seed=6))
        calls[f"gru_layer-{name}"] = (ops.gru_layer, args)
        input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = args
        output, h_n, gates = ops.gru_layer(*args)
        grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (output, h_n)]
        calls[f"gru_layer_backward-{name}"] = (
            ops.gru_layer_backward,
            [*grads, input, h0, w_ih, w_hh, batch_sizes, reverse, output, gates, [True, True, True]],
        )
    cell = _detach(gru_cell_args(B=3, I=4, H=5, seed=7))
    calls["gru_cell"] = (ops.gru_cell, cell)
    input, hx, w_ih, w_hh, _, _ = cell
    hy, gates = ops.gru_cell(*cell)
    calls["gru_cell_backward"] = (
        ops.gru_cell_backward,
        [torch.randn(hy.shape, generator=g, dtype=hy.dtype), input, hx, w_ih, w_hh, gates, [True, True, True]],
    )
    return calls


def _variant_calls(g: torch.Generator) -> dict[str, tuple[object, list]]:
    """The variant op with every optional feature on (peephole, zoneout, layer norm, lesson) and
    a packed call with only a peephole, forward and backward."""
    cases = {
        "dense-all": dict(peephole=True, zoneout_h=0.3, zoneout_c=0.2, layer_norm=True),
        "dense-lesson": dict(peephole=True, zoneout_h=0.3, lesson=True),
        "packed-peephole": dict(packed=True, reverse=True, peephole=True),
    }
    calls = {}
    for name, variant in cases.items():
        args = list(variant_op_args(*variant_layer_case(T=4, B=3, I=5, H=6, **variant, seed=5)))
        calls[f"lstm_variant_layer-{name}"] = (ops.lstm_variant_layer, args)
        output, h_n, c_n, *saved = ops.lstm_variant_layer(*args)
        grads = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (output, h_n, c_n)]
        calls[f"lstm_variant_layer_backward-{name}"] = (
            ops.lstm_variant_layer_backward, [*grads, *args[1:], output, *saved, [True, True, True]]
        )
    return calls


GOOD = _good_calls()


def _all_lstm_ext_ops() -> set[str]:
    return {s.name.split("::")[1] for s in torch._C._jit_get_all_schemas() if s.name.startswith("lstm_ext::")}


def test_every_op_is_fuzzed():
    """A new op in the lstm_ext namespace needs a well-formed call here, or it goes unfuzzed."""
    covered = {op.default._schema.name.split("::")[1] for op, _ in GOOD.values()}
    missing = _all_lstm_ext_ops() - covered
    assert not missing, f"add a well-formed call of {sorted(missing)} to _good_calls() in tests/test_fuzz_ops.py"


@pytest.mark.parametrize("call", list(GOOD))
def test_good_calls_run(call):
    """The starting points are well formed: otherwise every 'raises' below proves nothing."""
    op, args = GOOD[call]
    op(*args)


# ---- malformed: each must raise a clear error --------------------------------------------------


def _grow(t: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.cat([t, t.narrow(dim, 0, 1)], dim) if t.size(dim) else t.new_zeros(t.shape[:dim] + (1,) + t.shape[dim + 1:])


def _mutations(t: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
    yield "rank+1", t.unsqueeze(0)
    if t.dim() > 0:
        yield "rank-1", t.select(0, 0) if t.size(0) else t.sum(0)
    for d in range(t.dim()):
        yield f"dim{d}+1", _grow(t, d)
        if t.size(d) > 1:
            yield f"dim{d}-1", t.narrow(d, 0, t.size(d) - 1)
        if t.size(d) > 0:
            yield f"dim{d}=0", t.narrow(d, 0, 0)
    if t.is_floating_point():
        yield "dtype", t.float() if t.dtype == torch.float64 else t.double()
        yield "int64", t.long()
    else:
        yield "dtype", t.int()
        yield "float", t.double()
    yield "meta", t.to("meta")


# The one single-argument change that stays a valid call: a dense input with another number of
# steps (zero included, but not for lstm_inference). It must give the reference's answer.
LEGAL = {(call, "input", kind) for call in ("lstm_layer-dense", "gru_layer-dense")
         for kind in ("dim0+1", "dim0-1", "dim0=0")}
LEGAL |= {("lstm_inference-dense", "input", kind) for kind in ("dim0+1", "dim0-1")}  # no steps: nn.LSTM's error
LEGAL |= {("linear", "input", kind) for kind in ("dim0+1", "dim0-1", "dim0=0")}  # rows: any number
LEGAL |= {("bernoulli_mask", "seed", "meta")}  # the seed's device decides: a meta mask


def _malformed_cases():
    for call, (op, args) in GOOD.items():
        names = _names(op)
        for i, (name, arg) in enumerate(zip(names, args)):
            if not isinstance(arg, torch.Tensor):
                continue
            for kind, bad in _mutations(arg):
                yield pytest.param(call, i, bad, (call, name, kind) in LEGAL, id=f"{call}-{name}-{kind}")


def _assert_clear_error(error: BaseException, op) -> None:
    assert isinstance(error, OK_ERRORS), f"{type(error).__name__}: {error}"
    message = str(error)
    op_name = op.default._schema.name  # e.g. "lstm_ext::lstm_layer"
    # Our own checks name the op; ATen's dispatch errors name the op and the dtype or backend.
    assert op_name in message or op_name.replace("lstm_ext::", "lstm_ext_") in message, message


def _inference_reference(input, hx, weights, has_biases, num_layers, bidirectional, batch_first):
    """lstm_inference's one-layer, one-direction call of _good_calls, in the reference."""
    assert (num_layers, bidirectional, batch_first, has_biases) == (1, False, False, True)
    output, h, c = reference.lstm_layer(input, hx[0][0], hx[1][0], *weights, None, None, False)
    return output, h[None], c[None]


# call -> (the reference of its op, how many leading outputs it returns)
_REFERENCES = {
    "lstm_layer-dense": (reference.lstm_layer, 3),
    "gru_layer-dense": (reference.gru_layer, 2),
    "lstm_inference-dense": (_inference_reference, 3),
    "linear": (lambda input, weight, bias: (torch.nn.functional.linear(input, weight, bias),), 1),
    "bernoulli_mask": (lambda seed, p, size, dtype: (torch.empty(size, dtype=dtype, device=seed.device),), 1),
}


@pytest.mark.parametrize("call, index, bad, legal", list(_malformed_cases()))
def test_malformed_argument_raises(call, index, bad, legal):
    op, args = GOOD[call]
    args = list(args)
    args[index] = bad
    if legal:
        ref, outputs = _REFERENCES[call]
        got = op(*args)
        got = (got,) if isinstance(got, torch.Tensor) else got[:outputs]
        want = ref(*args)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
        return
    with pytest.raises(Exception) as info:
        op(*args)
    _assert_clear_error(info.value, op)


def test_half_input_raises_on_cpu():
    """float16 passes the shared checks (CUDA has kernels for it) and stops at the CPU dispatch."""
    op, args = GOOD["lstm_layer-dense"]
    half = [a.half() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    with pytest.raises(RuntimeError, match="not implemented for 'Half'"):
        op(*half)


# ---- batch_sizes --------------------------------------------------------------------------------


def _packed_call():
    op, args = GOOD["lstm_layer-packed-proj"]
    return op, list(args)


def _bad_batch_sizes() -> Iterator:
    _, args = _packed_call()
    bs = args[8]  # e.g. [4, 4, 3, 2, 1] for N = 14 rows, B = 4
    N, B = args[0].size(0), args[1].size(0)
    assert int(bs.sum()) == N and int(bs[0]) == B
    cases = {
        "unsorted": (bs.flip(0), "non-increasing|must equal the batch"),
        "unsorted-same-first": (torch.cat([bs[:1], bs[1:].flip(0)]), "non-increasing"),
        "zero": (torch.cat([bs[:-1], bs.new_zeros(1)]), "at least one sequence"),
        "zero-keeps-sum": (torch.cat([bs[:-2], bs[-2:-1] + bs[-1:], bs.new_zeros(1)]), "at least one sequence"),
        "negative": (torch.cat([bs[:-1], -bs[-1:]]), "at least one sequence"),
        "longer-than-input": (torch.cat([bs, bs[-1:]]), "sum to"),
        "shorter-than-input": (bs[:-1], "sum to"),
        "sum-too-small": (torch.cat([bs[:-1], bs[-1:] - 1]) if int(bs[-1]) > 1 else bs[:-1], "sum to|at least one"),
        "first-below-batch": (torch.cat([bs[:1] - 1, bs[1:]]), "non-increasing|sum to|must equal the batch"),
        "exceeds-batch": (bs + 1, "exceeds the batch"),
        "huge": (torch.cat([bs[:1], bs.new_full((1,), 2**62), bs[2:]]), "exceeds the batch"),
        "int32": (bs.int(), "int64"),
        "float": (bs.double(), "int64"),
        "bool": (bs.bool(), "int64"),
        "2-d": (bs[None], "1-D"),
        "0-d": (bs[0], "1-D"),
        "empty": (bs[:0], "sum to"),
        "meta": (bs.to("meta"), "on the CPU"),
    }
    for name, (value, message) in cases.items():
        yield pytest.param(value, message, id=name)


@pytest.mark.parametrize("batch_sizes, message", list(_bad_batch_sizes()))
@pytest.mark.parametrize("op_name", ["lstm_layer", "lstm_layer_backward"])
def test_bad_batch_sizes_raise(op_name, batch_sizes, message):
    op, args = GOOD[f"{op_name}-packed-proj"]
    args = list(args)
    args[_names(op).index("batch_sizes")] = batch_sizes
    with pytest.raises(RuntimeError, match=message) as info:
        op(*args)
    _assert_clear_error(info.value, op)


def test_packed_input_without_batch_sizes_and_dense_with_them_raise():
    op, args = _packed_call()
    with pytest.raises(RuntimeError, match="expected a 3-D input"):
        op(*args[:8], None, args[9])
    _, dense = GOOD["lstm_layer-dense"]
    T, B = dense[0].shape[:2]
    with pytest.raises(RuntimeError, match="expected packed input"):
        op(*dense[:8], torch.full((T,), B), dense[9])


def test_empty_packed_sequence_and_empty_batch():
    """T = 0 (packed and dense) and B = 0 are valid and give empty outputs and the initial state."""
    op, args = _packed_call()
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs, reverse = args
    out, h_n, c_n, gates, cells = op(input[:0], h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, bs[:0], reverse)
    assert out.shape == (0, w_hr.size(0)) and gates.shape == (0, 4 * c0.size(1))
    assert torch.equal(h_n, h0) and torch.equal(c_n, c0)
    _, dense = GOOD["lstm_layer-dense"]
    input, h0, c0, *rest = dense
    out, h_n, c_n, _, _ = op(input[:, :0], h0[:0], c0[:0], *rest)
    assert out.shape == (input.size(0), 0, h0.size(1)) and h_n.shape == (0, h0.size(1))
    cell_op, cell = GOOD["lstm_cell"]
    hy, cy, gates = cell_op(cell[0][:0], cell[1][:0], cell[2][:0], *cell[3:])
    assert hy.shape == (0, cell[1].size(1)) and gates.shape == (0, 4 * cell[1].size(1))


# ---- backward with saved tensors from another call ------------------------------------------------


def _inconsistent_saved() -> Iterator:
    for call in ("lstm_layer_backward-dense", "lstm_layer_backward-packed-proj", "lstm_cell_backward"):
        op, args = GOOD[call]
        names = _names(op)
        saved = [n for n in ("gates", "cells", "cy", "output") if n in names]
        for name in saved:
            t = args[names.index(name)]
            yield pytest.param(call, name, t[:-1], id=f"{call}-{name}-fewer-rows")
            yield pytest.param(call, name, torch.cat([t, t[:1]]), id=f"{call}-{name}-more-rows")
            yield pytest.param(call, name, t[..., :-1], id=f"{call}-{name}-fewer-columns")
            yield pytest.param(call, name, t.float(), id=f"{call}-{name}-float32")
            yield pytest.param(call, name, t.reshape(-1), id=f"{call}-{name}-flattened")


@pytest.mark.parametrize("call, name, value", list(_inconsistent_saved()))
def test_backward_with_inconsistent_saved_tensors_raises(call, name, value):
    op, args = GOOD[call]
    args = list(args)
    args[_names(op).index(name)] = value
    with pytest.raises(RuntimeError) as info:
        op(*args)
    _assert_clear_error(info.value, op)


@pytest.mark.parametrize("call", ["lstm_layer_backward-dense", "lstm_layer_backward-packed-proj", "lstm_cell_backward"])
@pytest.mark.parametrize("mask", [[False, False, False], [True, False, False], [False, True, True]], ids=str)
def test_backward_with_saved_tensors_of_another_call_of_the_same_shape(call, mask):
    """Well-shaped saved tensors from another forward cannot be detected (their values are
    plausible): the op must still run, and stay deterministic, and give outputs of the right shapes."""
    op, args = GOOD[call]
    names = _names(op)
    args = list(args)
    g = torch.Generator().manual_seed(7)
    for name in ("gates", "cells", "cy", "output"):
        if name in names:
            i = names.index(name)
            args[i] = torch.rand(args[i].shape, generator=g, dtype=args[i].dtype)
    args[-1] = mask
    first, second = op(*args), op(*args)
    for a, b, like, need in zip(first, second, _grad_likes(op, args), _need(mask, len(first))):
        assert torch.equal(a, b)
        assert a.shape == (like.shape if need else (0,))


def _grad_likes(op, args):
    names = _names(op)
    get = lambda n: args[names.index(n)]  # noqa: E731
    state = ("h0", "c0") if "h0" in names else ("hx", "cx")
    w_hr = get("w_hr") if "w_hr" in names else None
    likes = [get("input"), get(state[0]), get(state[1]), get("w_ih"), get("w_hh"), get("w_ih")[:, 0]]
    if "w_hr" in names:
        likes.append(w_hr if w_hr is not None else torch.empty(0))
    return likes


def _need(mask, n):
    return [mask[0], mask[1], mask[1], mask[2], mask[2], mask[2], mask[2]][:n]


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
        for i, (name, arg) in enumerate(zip(_names(op), args)):
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
    # MKL rounds differently there (torch.mm itself differs by ~1e-15 on an AMD EPYC): the same
    # math, held to the float64 table. Every other layout is copied first: bitwise equal.
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

