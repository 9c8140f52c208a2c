"""Shared checks of the fused-step tests (test_fused_gru.py, test_fused_variants.py): one call's
results on the fused step against the plain loop's (LSTM_EXT_FUSED_STEP=0)."""

from __future__ import annotations

from typing import Sequence

import torch


def assert_all_close(got: Sequence[torch.Tensor], expected: Sequence[torch.Tensor], names: Sequence[str]) -> None:
    """Each named result of one path close to the other's, at torch's default tolerances."""
    assert len(got) == len(expected) == len(names)
    for name, a, b in zip(names, got, expected):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")


def assert_paths_agree(forward, backward, args, saved_names: Sequence[str], grad_names: Sequence[str]) -> None:
    """``forward(args, fused)`` on both paths, every saved result; then ``backward(args, saved,
    fused)`` on both paths from either path's saved forward, every gradient: either backward must
    read either forward."""
    fused, plain = forward(args, True), forward(args, False)
    assert_all_close(fused, plain, saved_names)
    for saved in (fused, plain):
        assert_all_close(backward(args, saved, True), backward(args, saved, False), grad_names)


def assert_masked_grads(fused: Sequence[torch.Tensor], plain: Sequence[torch.Tensor], mask: Sequence[bool],
                        names: Sequence[str]) -> None:
    """A backward asked for the gradients `mask` (input, state, weights) names: both paths agree,
    and the input's and the state's gradients are there exactly when asked for."""
    assert_all_close(fused, plain, names)
    assert (fused[0].numel() > 0) == mask[0] and (fused[1].numel() > 0) == mask[1]
