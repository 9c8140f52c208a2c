"""The variants' random masks (zoneout, recurrent dropout): ``lstm_ext::bernoulli_mask`` (its fake
kernel and its refusal by the ONNX exporters here) and the draw.

torch's CPU ``bernoulli_`` runs one mt19937 in sequence, entry after entry, so a training step's
zoneout masks would cost a noticeable share of the step. ``lstm_ext::bernoulli_mask`` hashes each
entry's index with a single seed instead (SplitMix64, see ``csrc/runtime/cpu/bernoulli_mask.h``),
which needs no sequence and runs in parallel (figures: ``docs/performance.md``). The
seed is one draw from torch's generator, so ``torch.manual_seed`` reproduces the masks, as it does
``bernoulli_``'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._library import LOAD_ERROR, has_kernel, ops, register_family
from ._onnx import refuse, translation

# Not a cell family: the random masks every family's variants may draw (CPU only, any dtype).
register_family("masks", ops=("bernoulli_mask",), kernel_dtypes={"cpu": None})
EVAL_INSTEAD = "call model.eval() before exporting: the graph then computes their eval-mode arithmetic"

if LOAD_ERROR is None:

    @torch.library.register_fake("lstm_ext::bernoulli_mask")
    def _bernoulli_mask_fake(seed, p, size, dtype):
        return seed.new_empty(size, dtype=dtype)


@translation("bernoulli_mask")
def _bernoulli_mask_onnx(b, seed, p, size, dtype):
    _refuse_random_masks()


def _refuse_random_masks() -> None:
    """Random masks belong to training (zoneout, recurrent dropout): a graph that draws them has no
    ONNX form that would compute what the model computes."""
    refuse("zoneout or recurrent_dropout in training mode (their masks are random)", EVAL_INSTEAD)


def bernoulli_mask(p: float, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A ``shape`` tensor of ``like``'s dtype and device: 1 with probability ``p``, else 0.

    The entries come from torch's default generator: on the CPU one int64 seed drawn from it and
    hashed per entry (``lstm_ext::bernoulli_mask``), elsewhere ``bernoulli_`` itself.
    """
    if torch.onnx.is_in_onnx_export():  # before the seed's draw, which the TorchScript exporter fails on
        _refuse_random_masks()
    if has_kernel("bernoulli_mask", like.device, like.dtype):
        seed = torch.randint(1 << 62, (), dtype=torch.int64)  # out of place: torch.compile traces it
        return ops.bernoulli_mask(seed, p, list(shape), like.dtype)
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(p)
