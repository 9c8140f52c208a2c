"""The variant benchmark (benchmarks/variants.py) on a tiny shape: it checks, then times."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from conftest import FUSED_AVAILABLE, FUSED_SKIP_REASON

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import variants  # noqa: E402

pytestmark = pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON)


@pytest.mark.parametrize("variant", list(variants.VARIANTS))
def test_every_implementation_matches_the_reference_on_the_same_masks(variant):
    built = variants.build(variant, variants.SHAPES["tiny"])
    x = torch.randn(3, 2, 8)
    errors = variants.check(built, x)
    assert set(errors) == {"fused", "reference", "torchscript"}
    assert all(err < 1e-5 for err in errors.values())


def test_a_wrong_implementation_is_caught():
    built = variants.build("zoneout", variants.SHAPES["tiny"])
    module, forward = built["torchscript"]
    built["torchscript"] = (module, lambda x: forward(x) * 1.01)
    with pytest.raises(AssertionError, match="torchscript differs from the float64 reference"):
        variants.check(built, torch.randn(3, 2, 8))


def test_measure_record():
    r = variants.measure("all", "tiny", threads=1, rounds=1, min_run_time=0.001)
    assert set(r["median_s"]) == set(variants.IMPLS)
    assert all(t > 0 for t in r["median_s"].values())
    assert r["cost"] == pytest.approx(r["median_s"]["fused"] / r["median_s"]["plain_fused"])
