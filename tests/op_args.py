"""Well-formed arguments of the raw ops, shared by the op, fuzz and CUDA tests.

Each builder returns the positional arguments of one op (the LSTM layer and cell, the GRU layer
and cell, the variant layer), drawn from a seeded generator so a case is the same on every run.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from lstm_ext.lstm_variants import ops as fused_variants


def _sequence_input(g, rand, T, B, I, dtype, packed, requires_grad):
    """(input, batch_sizes): rand(T, B, I) and None, or, when packed, the data of B sequences of
    random lengths (the longest T) drawn from g, and their batch_sizes."""
    if not packed:
        return rand(T, B, I), None
    lengths = torch.randint(1, T + 1, (B,), generator=g).sort(descending=True).values
    lengths[0] = T
    x = pack_padded_sequence(torch.randn(T, B, I, generator=g, dtype=dtype), lengths)
    return x.data.detach().requires_grad_(requires_grad), x.batch_sizes


# ---- LSTM ---------------------------------------------------------------------------------------


def lstm_layer_args(T=5, B=3, I=4, H=6, proj=0, bias=True, packed=False, reverse=False, dtype=torch.float64,
                    requires_grad=True, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    P = proj or H
    rand = lambda *shape: (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_(requires_grad)  # noqa: E731
    input, batch_sizes = _sequence_input(g, rand, T, B, I, dtype, packed, requires_grad)
    return (
        input, rand(B, P), rand(B, H), rand(4 * H, I), rand(4 * H, P),
        rand(4 * H) if bias else None, rand(4 * H) if bias else None, rand(P, H) if proj else None,
        batch_sizes, reverse,
    )


# The layer shapes every family's op tests run: directions, bias, packed input, one step, sizes
# with no common factor. The LSTM adds its projection cases.
LAYER_CASES = {
    "dense": dict(),
    "dense-reverse": dict(reverse=True),
    "no-bias": dict(bias=False),
    "packed": dict(packed=True, T=6, B=4),
    "packed-reverse": dict(packed=True, reverse=True, T=6, B=4),
    "one-step": dict(T=1, B=1),
    "odd-sizes": dict(T=3, B=5, I=7, H=9),
}

LSTM_LAYER_CASES = {
    "dense": dict(),
    "dense-reverse": dict(reverse=True),
    "no-bias": dict(bias=False),
    "proj": dict(proj=3),
    "packed": dict(packed=True, T=6, B=4),
    "packed-reverse-proj": dict(packed=True, reverse=True, proj=2, T=6, B=4),
    "one-step": dict(T=1, B=1),
    "odd-sizes": dict(T=3, B=5, I=7, H=9),
}


def lstm_cell_args(B=3, I=4, H=5, bias=True, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: (torch.randn(*shape, generator=g, dtype=dtype) * 0.5).requires_grad_()  # noqa: E731
    return (rand(B, I), rand(B, H), rand(B, H), rand(4 * H, I), rand(4 * H, H),
            rand(4 * H) if bias else None, rand(4 * H) if bias else None)


def replace_arg(args, index, value):
    """A copy of args as a list, with args[index] replaced by value."""
    args = list(args)
    args[index] = value
    return args


# ---- GRU ----------------------------------------------------------------------------------------


def gru_layer_args(T=5, B=3, I=4, H=6, bias=True, packed=False, reverse=False, dtype=torch.float64,
                   requires_grad=True, seed=0, scale=0.5):
    """(input, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse) for gru_layer."""
    g = torch.Generator().manual_seed(seed)
    def rand(*shape):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_(requires_grad)

    input, batch_sizes = _sequence_input(g, rand, T, B, I, dtype, packed, requires_grad)
    return (input, rand(B, H), rand(3 * H, I), rand(3 * H, H), rand(3 * H) if bias else None,
            rand(3 * H) if bias else None, batch_sizes, reverse)


def gru_cell_args(B=3, I=4, H=5, bias=True, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: (torch.randn(*shape, generator=g, dtype=dtype) * 0.5).requires_grad_()  # noqa: E731
    return (rand(B, I), rand(B, H), rand(3 * H, I), rand(3 * H, H), rand(3 * H) if bias else None,
            rand(3 * H) if bias else None)


# ---- LSTM variants (peephole, zoneout, layer norm, the lesson's use gate) ---------------------


def variant_layer_case(T=5, B=3, I=4, H=6, bias=True, packed=False, reverse=False, peephole=False,
                       zoneout_h=0.0, zoneout_c=0.0, training=True, layer_norm=False, lesson=False,
                       dtype=torch.float64, seed=0, scale=0.5):
    """(args, kwargs) of lstm_variant_layer; differentiable leaves require grad. Every tensor but
    the zoneout weights and the layer-norm gains is normal with standard deviation ``scale``."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()  # noqa: E731
    input, batch_sizes = _sequence_input(g, rand, T, B, I, dtype, packed, requires_grad=True)
    state_shape = (*input.shape[:-1], H)

    def keep(z):
        if z == 0:
            return None
        if not training:
            return torch.full(state_shape, z, dtype=dtype)
        return torch.bernoulli(torch.full(state_shape, z, dtype=dtype), generator=g)

    args = (input, rand(B, H), rand(B, H), rand(4 * H, I), rand(4 * H, H),
            rand(4 * H) if bias else None, rand(4 * H) if bias else None, batch_sizes, reverse)
    kwargs = dict(peephole=rand(3 * H) if peephole else None, zoneout_h=keep(zoneout_h), zoneout_c=keep(zoneout_c))
    if layer_norm:  # gains near 1, biases near 0: (ih_weight, ih_bias, hh_weight, hh_bias, c_weight, c_bias)
        gain = lambda n: (1 + torch.randn(n, generator=g, dtype=dtype) * 0.3).requires_grad_()  # noqa: E731
        kwargs["layer_norm"] = (gain(4 * H), rand(4 * H), gain(4 * H), rand(4 * H), gain(H), rand(H))
    if lesson:  # (W_u, b_u)
        kwargs["lesson_use_gate"] = (rand(H, H), rand(H) if bias else None)
    return args, kwargs


def variant_op_args(args, kwargs):
    """variant_layer_case's (args, kwargs) as the positional arguments of ops.lstm_variant_layer
    (detached; with layer norm, the normalised input projection made the way the module makes it)."""
    detach = lambda t: t.detach() if isinstance(t, torch.Tensor) else t  # noqa: E731
    input, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse = (detach(t) for t in args)
    layer_norm = kwargs.get("layer_norm")
    if layer_norm is None:
        projection, ln_hh, ln_c_weight, ln_c_bias = (input, w_ih, b_ih, b_hh), None, None, None
    else:
        gates_and_norms = fused_variants.normalized_input_gates(input, w_ih, b_ih, b_hh, tuple(map(detach, layer_norm)))
        xgates, ln_hh, ln_c_weight, ln_c_bias = (detach(t) for t in gates_and_norms)
        projection = (xgates, None, None, None)
    w_u, b_u = (detach(t) for t in kwargs.get("lesson_use_gate", (None, None)))
    return (*projection, h0, c0, w_hh, detach(kwargs["peephole"]), detach(kwargs["zoneout_h"]),
            detach(kwargs["zoneout_c"]), ln_hh, ln_c_weight, ln_c_bias, w_u, b_u, batch_sizes, reverse)


def variant_backward_args(op_args, grads, output, saved, mask):
    """The positional arguments of ops.lstm_variant_layer_backward for a forward call on op_args
    (variant_op_args) that returned output and saved: grads = (grad_output, grad_h_n, grad_c_n)."""
    input, w_ih, _b_ih, _b_hh, *rest = op_args
    return (*grads, input, w_ih, *rest, output, *saved, list(mask))


def with_args(op, args, **changes):
    """op's positional args with the arguments named in changes (by op's schema) replaced."""
    names = [a.name for a in op.default._schema.arguments]
    assert set(changes) <= set(names), set(changes) - set(names)
    return tuple(changes.get(name, arg) for name, arg in zip(names, args))
