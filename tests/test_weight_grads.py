"""The weight gradients' products over every step at once (csrc/runtime/transposed_product.h):
float32 on AVX2 and AVX-512 CPUs runs the project's own kernel (runtime/cpu/gemm/outer_product*),
which reads the gate gradients and the inputs where they lie; float64 runs at::mm. So float32
weight gradients are checked against the float64 layer on the same weights and inputs: no
further from it than torch.nn's float32 layer is (a sum of 640 rows cancels in places, so a fixed
float32 tolerance would measure the inputs, not the kernel). A wrong row, chunk or tile is off by
the size of the gradient itself.

The shapes hit the kernel's edges: T * B rows well past one 128-row chunk and past the 256 rows
per thread from which two threads split them (with a partial chunk at the end), gate rows
4H = 148 that leave a short row tile, and input widths 21 and 5 that leave a partial vector or
have only one. H = 37 walks in 3-block groups, dense and packed, in both directions.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import requires_fused
from tolerances import assert_close

pytestmark = [requires_fused(), pytest.mark.usefixtures("two_threads")]


def _grads(module, x, lengths):
    x = x.clone().requires_grad_(True)
    feed = pack_padded_sequence(x, lengths) if lengths is not None else x
    out, state = module(feed)
    out = out.data if lengths is not None else out
    h_n = state[0] if isinstance(state, tuple) else state
    (out.square().sum() + h_n.sum()).backward()
    return {name: p.grad for name, p in module.named_parameters()}


@pytest.mark.parametrize("packed", [False, True], ids=["dense", "packed"])
@pytest.mark.parametrize("I", [21, 5])
@pytest.mark.parametrize("cls", [(lstm_ext.LSTM, torch.nn.LSTM), (lstm_ext.GRU, torch.nn.GRU)], ids=["LSTM", "GRU"])
def test_float32_weight_grads_as_close_to_float64_as_nn(cls, I, packed, gen):
    T, B, H = 40, 16, 37
    ours_cls, nn_cls = cls
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    ours = ours_cls(I, H, bidirectional=True)
    theirs = nn_cls(I, H, bidirectional=True)
    truth = ours_cls(I, H, bidirectional=True, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    truth.load_state_dict(ours.state_dict())
    x = torch.randn(T, B, I, generator=gen)
    lengths = None
    if packed:
        lengths = torch.randint(1, T + 1, (B,), generator=gen).sort(descending=True).values
        lengths[0] = T
    got, nn_got, want = _grads(ours, x, lengths), _grads(theirs, x, lengths), _grads(truth, x.double(), lengths)
    for name in want:
        ours_error = (got[name].double() - want[name]).abs().max().item()
        nn_error = (nn_got[name].double() - want[name]).abs().max().item()
        # twice nn's error: another order of the same float32 sums; plus the float32 rounding of
        # the largest entry, for a gradient nn happens to get almost exactly
        bound = 2 * nn_error + 2**-23 * want[name].abs().max().item()
        assert ours_error <= bound, (name, ours_error, nn_error)


def test_float32_weight_grads_one_thread_equal_to_two(gen):
    """The rows are split across threads by a fixed rule and the parts added up: the result is
    the float64 one to float32 rounding on one thread and on two."""
    torch.manual_seed(0)
    ours = lstm_ext.LSTM(21, 37)
    x = torch.randn(40, 16, 21, generator=gen)
    two = _grads(ours, x, None)
    ours.zero_grad()
    torch.set_num_threads(1)
    one = _grads(ours, x, None)
    for name in two:
        assert_close(one[name], two[name], msg=lambda m, name=name: f"{name}: {m}")
