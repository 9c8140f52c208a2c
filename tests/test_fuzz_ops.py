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

The well-formed calls live in op_calls.py; the layouts and the hypothesis fuzz in
test_fuzz_ops_layouts.py.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from lstm_ext import _library, reference
from op_args import gru_layer_args, lstm_layer_args
from op_calls import arg_names, assert_clear_error, good_calls

pytestmark = pytest.mark.skipif(_library.LOAD_ERROR is not None, reason=f"extension not built: {_library.LOAD_ERROR}")

GOOD = good_calls()


def _all_lstm_ext_ops() -> set[str]:
    return {s.name.split("::")[1] for s in torch._C._jit_get_all_schemas() if s.name.startswith("lstm_ext::")}


def test_every_op_is_fuzzed():
    """A new op in the lstm_ext namespace needs a well-formed call here, or it goes unfuzzed."""
    covered = {op.default._schema.name.split("::")[1] for op, _ in GOOD.values()}
    missing = _all_lstm_ext_ops() - covered
    assert not missing, f"add a well-formed call of {sorted(missing)} to good_calls() in tests/op_calls.py"


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
        names = arg_names(op)
        for i, (name, arg) in enumerate(zip(names, args)):
            if not isinstance(arg, torch.Tensor):
                continue
            for kind, bad in _mutations(arg):
                yield pytest.param(call, i, bad, (call, name, kind) in LEGAL, id=f"{call}-{name}-{kind}")




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
    assert_clear_error(info.value, op)


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
    args[arg_names(op).index("batch_sizes")] = batch_sizes
    with pytest.raises(RuntimeError, match=message) as info:
        op(*args)
    assert_clear_error(info.value, op)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("T, B", [(5, 3), (0, 0), (5, 0), (0, 3)])
@pytest.mark.parametrize("family", ["lstm", "gru"])
def test_zero_input_features(family, T, B, dtype):
    """input_size 0 at the op (nn's modules refuse it; the ops take it): the same results as one
    input feature that is all zeros, with empty rows included (T * B * 0 elements, whose rows were
    once inferred by reshape(-1, 0), which is ambiguous)."""
    make, op = (lstm_layer_args, torch.ops.lstm_ext.lstm_layer) if family == "lstm" else (
        gru_layer_args, torch.ops.lstm_ext.gru_layer)
    one = list(make(T=T, B=B, I=1, H=6, dtype=dtype, requires_grad=False))
    one[0] = torch.zeros_like(one[0])
    none = list(one)
    none[0] = one[0][..., :0]
    w_ih = 3 if family == "lstm" else 2
    none[w_ih] = one[w_ih][:, :0]
    for got, want in zip(op(*none), op(*one)):
        torch.testing.assert_close(got, want)


# ---- backward with saved tensors from another call ------------------------------------------------


def _inconsistent_saved() -> Iterator:
    for call in ("lstm_layer_backward-dense", "lstm_layer_backward-packed-proj", "lstm_cell_backward"):
        op, args = GOOD[call]
        names = arg_names(op)
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
    args[arg_names(op).index(name)] = value
    with pytest.raises(RuntimeError) as info:
        op(*args)
    assert_clear_error(info.value, op)


@pytest.mark.parametrize("call", ["lstm_layer_backward-dense", "lstm_layer_backward-packed-proj", "lstm_cell_backward"])
@pytest.mark.parametrize("mask", [[False, False, False], [True, False, False], [False, True, True]], ids=str)
def test_backward_with_saved_tensors_of_another_call_of_the_same_shape(call, mask):
    """Well-shaped saved tensors from another forward cannot be detected (their values are
    plausible): the op must still run, and stay deterministic, and give outputs of the right shapes."""
    op, args = GOOD[call]
    names = arg_names(op)
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
    names = arg_names(op)
    get = lambda n: args[names.index(n)]  # noqa: E731
    state = ("h0", "c0") if "h0" in names else ("hx", "cx")
    w_hr = get("w_hr") if "w_hr" in names else None
    likes = [get("input"), get(state[0]), get(state[1]), get("w_ih"), get("w_hh"), get("w_ih")[:, 0]]
    if "w_hr" in names:
        likes.append(w_hr if w_hr is not None else torch.empty(0))
    return likes


def _need(mask, n):
    return [mask[0], mask[1], mask[1], mask[2], mask[2], mask[2], mask[2]][:n]
