"""Batches of 1 to 4 rows over several steps: the recurrent GEMM runs small_gemm_kmajor on the
weight transposed once per call (csrc/cpu/recurrent_gemm.cpp). Hidden sizes leave partial
vectors (4H and H not multiples of 16 or 64), every row count has its own register tile, and
the reverse direction and packed input shrink the rows from step to step. float64 against the
reference at the table's tolerance; float32 against nn.LSTM / nn.GRU."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import make_lstm_pair, requires_fused
from tolerances import assert_close

pytestmark = requires_fused()

F64 = torch.float64


def _grads(module, x, hx, dtype):
    x = x.to(dtype).requires_grad_()
    hx = tuple(h.to(dtype).requires_grad_() for h in hx)
    out, state = module(x, hx if len(hx) > 1 else hx[0])
    data = out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out
    states = state if isinstance(state, tuple) else (state,)
    g = torch.Generator().manual_seed(3)
    results = [data, *states]
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=F64).to(dtype)).sum() for t in results)
    leaves = [*hx, *module.parameters()]
    if x.requires_grad:
        leaves.insert(0, x)
    return [*results, *torch.autograd.grad(loss, leaves)]


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("B", [1, 2, 3, 4])
@pytest.mark.parametrize("H", [5, 17, 70])
def test_lstm_small_batch_matches_nn(B, H, dtype, gen):
    ref, ours = make_lstm_pair("fused", dtype=dtype, gen=gen, input_size=6, hidden_size=H, bidirectional=True)
    x = torch.randn(7, B, 6, generator=gen, dtype=F64)
    hx = (torch.randn(2, B, H, generator=gen, dtype=F64), torch.randn(2, B, H, generator=gen, dtype=F64))
    for got, want in zip(_grads(ours, x, hx, dtype), _grads(ref, x, hx, dtype)):
        assert_close(got, want)


@pytest.mark.parametrize("H", [5, 33])
def test_lstm_small_batch_packed(H, gen):
    """Packed: 4 rows, then fewer as sequences end (each step its own tile)."""
    ref, ours = make_lstm_pair("fused", gen=gen, input_size=3, hidden_size=H, bidirectional=True)
    x = torch.randn(6, 4, 3, generator=gen, dtype=F64)
    packed = pack_padded_sequence(x, torch.tensor([6, 5, 3, 1]), enforce_sorted=False)
    out_ref, (h_ref, c_ref) = ref(packed)
    out, (h, c) = ours(packed)
    for got, want in ((out.data, out_ref.data), (h, h_ref), (c, c_ref)):
        assert_close(got, want)
    g = torch.randn(out.data.shape, generator=gen, dtype=F64)
    for got, want in zip(torch.autograd.grad((out.data * g).sum(), list(ours.parameters())),
                         torch.autograd.grad((out_ref.data * g).sum(), list(ref.parameters()))):
        assert_close(got, want)


@pytest.mark.parametrize("B", [1, 3, 4])
@pytest.mark.parametrize("H", [7, 40])
def test_gru_small_batch_matches_nn(B, H, gen):
    ref = torch.nn.GRU(5, H, dtype=F64)
    ours = lstm_ext.GRU(5, H, dtype=F64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, B, 5, generator=gen, dtype=F64)
    h0 = (torch.randn(1, B, H, generator=gen, dtype=F64),)
    for got, want in zip(_grads(ours, x, h0, F64), _grads(ref, x, h0, F64)):
        assert_close(got, want)


@pytest.mark.parametrize("options", [dict(zoneout=(0.3, 0.2), peephole=True), dict(use_gate="lesson"),
                                     dict(layer_norm=True)], ids=["zoneout-peephole", "lesson", "layer-norm"])
@pytest.mark.parametrize("B", [1, 4])
def test_variant_small_batch_matches_reference(options, B, gen):
    """The variant kernel's GEMMs (the lesson's W_u too) take the same small-rows path."""
    torch.manual_seed(0)
    fused = lstm_ext.LSTM(6, 21, dtype=F64, backend="fused", **options)
    reference = lstm_ext.LSTM(6, 21, dtype=F64, backend="reference", **options)
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(5, B, 6, generator=gen, dtype=F64)
    hx = (torch.randn(1, B, 21, generator=gen, dtype=F64), torch.randn(1, B, 21, generator=gen, dtype=F64))
    torch.manual_seed(1)
    got = _grads(fused, x, hx, F64)
    torch.manual_seed(1)
    want = _grads(reference, x, hx, F64)
    for g, w in zip(got, want):
        assert_close(g, w)
