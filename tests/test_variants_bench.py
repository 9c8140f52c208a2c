"""The suite's ``variants`` preset at ``--quick`` size: every variant checked against the float64
reference on the same masks, then timed, with its cost against the plain fused LSTM."""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest
import torch

from conftest import FUSED_AVAILABLE, FUSED_SKIP_REASON

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import check, report  # noqa: E402
from benchmarks.configs import VARIANTS, Config, get_preset  # noqa: E402
from benchmarks.impls import IMPLS, Built, Impl  # noqa: E402
from benchmarks.suite import run_suite  # noqa: E402

pytestmark = pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON)
VARIANT_IMPLS = ("fused", "plain_fused", "reference", "torchscript")


@pytest.fixture(scope="module")
def quick_run():
    return run_suite(get_preset("variants", quick=True), device="cpu", threads=1, run_charlm=False)


def _records(results: dict, variant: str) -> dict:
    return {(r["impl"], r["mode"]): r for r in results["records"] if r["variant"] == variant}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_implementation_matches_the_float64_reference_on_the_same_masks(quick_run, variant):
    recs = _records(quick_run, variant)
    assert set(recs) == {(name, mode) for name in VARIANT_IMPLS for mode in ("forward", "train")}
    for (name, mode), rec in recs.items():
        assert rec["status"] == "ok" and rec["correct"], (name, mode, rec["note"])
        assert rec["max_abs_err"] < 1e-5 and rec["median_s"] > 0
        assert rec["cost"] == pytest.approx(rec["median_s"] / recs[("plain_fused", mode)]["median_s"])
    assert recs[("plain_fused", "train")]["cost"] == pytest.approx(1.0)


def test_preset_shapes_and_cost_column(quick_run, tmp_path):
    full = get_preset("variants")
    assert {(c.T, c.B, c.I, c.H) for c in full.configs} == {(100, 64, 256, 256), (100, 4, 64, 64)}
    assert {c.variant for c in full.configs} == set(VARIANTS) and full.cost_baseline == "plain_fused"
    assert full.check == "float64"
    report.write_all(quick_run, str(tmp_path), plots=False)
    md = (tmp_path / "results.md").read_text()
    assert "cost fwd / train |" in md and "| T3 B2 I8 H8 fp32 zoneout | cpu | plain_fused |" in md


def _reseeded(wl):
    """The fused variant drawing its own masks: right arithmetic, wrong dropout and zoneout."""
    built = IMPLS["fused"].build(wl)

    def forward(inp):
        torch.manual_seed(12345)
        return built.forward(inp)

    return Built(forward, built.params, built.module)


def _off_output(wl):
    built = IMPLS["torchscript"].build(wl)
    return Built(lambda inp: built.forward(inp) * 1.01, built.params, built.module)


@pytest.mark.parametrize("build", [_reseeded, _off_output], ids=["other masks", "scaled output"])
def test_a_wrong_variant_implementation_is_caught(monkeypatch, build):
    monkeypatch.setitem(IMPLS, "broken", Impl("broken", "broken", build, hidden=True, kinds=("variant",)))
    preset = get_preset("variants", quick=True)
    preset = dataclasses.replace(preset, configs=(Config(T=6, B=4, I=8, H=8, variant="zoneout"),))
    results = run_suite(preset, device="cpu", threads=1, impl_names=["reference", "broken"], run_charlm=False)
    broken = [r for r in results["records"] if r["impl"] == "broken"]
    assert len(broken) == 2
    for rec in broken:
        assert rec["status"] == "wrong" and rec["median_s"] is None and "float64" in rec["note"]


def test_float64_check_allows_the_oracles_own_error_and_no_more():
    truth = check.Outputs(torch.zeros(4), {"input": torch.zeros(4)})
    oracle = check.Outputs(torch.full((4,), 1e-4), {"input": torch.full((4,), 1e-4)})
    close = check.Outputs(torch.full((4,), 3e-4), {"input": torch.full((4,), -3e-4)})
    assert check.compare_to_truth(close, truth, oracle).correct
    far = check.Outputs(torch.full((4,), 5e-4), {"input": torch.zeros(4)})
    verdict = check.compare_to_truth(far, truth, oracle)
    assert not verdict.correct and "output" in verdict.message
    # the float32 tolerance alone would call the oracle-like error wrong
    assert not check.compare(close, truth).correct
