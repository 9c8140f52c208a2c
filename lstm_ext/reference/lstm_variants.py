r"""The LSTM variants in plain PyTorch: each a small change to one gate of the lesson's cell.

Recurrent dropout (:func:`drop_connect`) drops weights of ``W_hh``; peepholes
(:func:`peephole_gates`) let the learn and forget gates look at the long-term memory; zoneout
(:func:`zoneout`, :func:`zoneout_weights`) keeps units of the previous state; layer norm
(:func:`layer_norm_gates`) normalizes each projection; :func:`lesson_use_gate` is the use gate
exactly as the lesson teaches it. :func:`lstm_ext.reference.lstm_cell` takes them as options, as
:class:`lstm_ext.LSTMCell` does, and :func:`lstm_ext.reference.variant_lstm_layer` walks it over a
sequence. Shapes: ``B`` batch, ``H`` hidden size.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .._masks import bernoulli_mask

__all__ = [
    "LAYER_NORM_EPS", "drop_connect", "peephole_gates", "zoneout", "zoneout_weights", "layer_norm_gates",
    "lesson_use_gate",
]


def drop_connect(weight: Tensor, p: float, training: bool = True) -> Tensor:
    """Recurrent dropout as DropConnect on ``W_hh`` (AWD-LSTM's weight drop).

    Each weight is zeroed with probability ``p`` and the others scaled by ``1 / (1 - p)``, like
    ``F.dropout``; the mask is drawn like zoneout's (:func:`zoneout_weights`: from torch's
    generator, so ``torch.manual_seed`` reproduces it). One mask per call: the caller drops
    ``W_hh`` once per forward, and every step of the sequence uses the same dropped weight.
    Identity when ``p == 0`` or outside training.
    """
    if not training or p == 0:
        return weight
    if p == 1:
        return weight * 0  # every weight dropped, as F.dropout(p=1)
    return weight * (bernoulli_mask(1 - p, tuple(weight.shape), weight) / (1 - p))


def peephole_gates(ignore: Tensor, forget: Tensor, long_term: Tensor, peephole: Tensor) -> tuple[Tensor, Tensor]:
    """Peephole connections (Gers & Schmidhuber) into the learn gate's ignore factor and the forget factor.

    The gates also look at the long-term memory through diagonal weights:
    ``i_pre + p_i * LTM_{t-1}`` and ``f_pre + p_f * LTM_{t-1}``. ``peephole`` is ``[3H]`` =
    ``(p_i, p_f, p_o)``; ``p_o`` looks at the *new* long-term memory in the use gate (see
    :func:`lstm_ext.reference.lstm_cell`). Returns the two pre-activations, ``[B, H]`` each.
    """
    p_i, p_f, _ = peephole.chunk(3)
    return ignore + p_i * long_term, forget + p_f * long_term


def zoneout(previous: Tensor, new: Tensor, keep: Optional[Tensor]) -> Tensor:
    """Zoneout (Krueger et al. 2016): each unit keeps its previous value with weight ``keep``.

    ``keep * previous + (1 - keep) * new``; ``keep`` is a 0/1 mask in training and the zoneout
    probability in eval mode (the expectation). None: no zoneout, ``new`` itself.
    """
    if keep is None:
        return new
    return keep * previous + (1 - keep) * new


def zoneout_weights(z: float, shape: tuple[int, ...], training: bool, like: Tensor) -> Optional[Tensor]:
    """The ``keep`` weights of :func:`zoneout` for one layer: Bernoulli(z) masks drawn from torch's
    generator in training (so ``torch.manual_seed`` reproduces them), the constant ``z`` in eval
    mode, None when ``z == 0``.

    The masks are the layer's random input, not its math: on the CPU they come from a seed drawn
    from torch's generator and hashed per entry (:func:`lstm_ext._masks.bernoulli_mask`, parallel
    where ``bernoulli_`` is sequential), so the reference and the fused kernels see the same masks."""
    if z == 0:
        return None
    if training:
        return bernoulli_mask(z, shape, like)
    return torch.full(shape, z, dtype=like.dtype, device=like.device)


LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default; the fused kernels use the same (kLayerNormEps)


def _normalized_projection(x: Tensor, w: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``LN(x @ w^T)`` with gain ``weight`` and bias ``bias``, normalized over its ``w.shape[0]``
    features: one projection of the layer-normalized LSTM. The fused path computes the input's
    the same way, with the GEMM on ``lstm_ext::linear`` (``lstm_ext.lstm_variants.ops.normalized_input_gates``)."""
    return F.layer_norm(F.linear(x, w), (w.shape[0],), weight, bias, eps=LAYER_NORM_EPS)


def layer_norm_gates(
    input: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
    layer_norm: tuple[Tensor, ...],
) -> Tensor:
    """The four pre-activations of the layer-normalized LSTM (Ba, Kiros & Hinton 2016):
    ``LN(E_t @ W_ih^T) + LN(STM_{t-1} @ W_hh^T) + b_ih + b_hh``, each projection normalized on
    its own over its ``4H`` features, before the bias. ``layer_norm`` holds the gains and biases
    ``(ih_weight, ih_bias, hh_weight, hh_bias, c_weight, c_bias)``; the last two are for
    :func:`lstm_ext.reference.lstm_cell`'s use gate. Returns ``[B, 4H]``.
    """
    ih_weight, ih_bias, hh_weight, hh_bias = layer_norm[:4]
    gates = _normalized_projection(input, w_ih, ih_weight, ih_bias)
    gates = gates + _normalized_projection(h, w_hh, hh_weight, hh_bias)
    for bias in (b_ih, b_hh):
        if bias is not None:
            gates = gates + bias
    return gates


def lesson_use_gate(forgotten: Tensor, use: Tensor, w_u: Tensor, b_u: Optional[Tensor]) -> Tensor:
    """The use gate exactly as the lesson teaches it: the new short-term memory ``U_t * V_t`` with

    - ``U_t = tanh(W_u (LTM_{t-1} * f_t) + b_u)``: ``forgotten`` is the forget gate's output
      ``LTM_{t-1} * f_t`` ``[B, H]``, ``w_u`` ``[H, H]`` and ``b_u`` ``[H]`` (or None) are new parameters;
    - ``V_t = sigmoid(W_v [STM_{t-1}, E_t] + b_v)``: the standard output gate, ``use`` its pre-activation.

    How it differs from the standard cell (:func:`lstm_ext.reference.use_gate`): the standard use
    gate squashes the *new* long-term memory, ``tanh(LTM_t)``, with no weights of its own; the lesson's squashes a
    learned linear map of the *forgotten old* memory, before the learn gate's part is added. The
    long-term memory itself (remember gate) is the same in both. Returns ``[B, H]``.
    """
    return torch.tanh(F.linear(forgotten, w_u, b_u)) * torch.sigmoid(use)
