"""The suite's ``gru`` preset (lstm_ext.GRU against nn.GRU) at ``--quick`` size: it checks
before it times, reports every ratio, and catches a wrong implementation."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import measure, report, run  # noqa: E402
from benchmarks.configs import Config, get_preset  # noqa: E402
from benchmarks.impls import IMPLS, Built, Impl  # noqa: E402
from benchmarks.suite import run_suite  # noqa: E402
from conftest import requires_fused  # noqa: E402

GRU_IMPLS = ("fused", "reference", "nn")


def test_gru_preset_shapes_are_the_issues():
    configs = get_preset("gru").configs
    assert {(c.T, c.B, c.I, c.H) for c in configs} == {(100, 64, 256, 256), (100, 4, 64, 64)}
    assert all(c.cell == "gru" and set(c.impls) == set(GRU_IMPLS) for c in configs)
    assert all(c.label().startswith("GRU ") for c in configs)
    quick = get_preset("gru", quick=True)
    assert [(c.T, c.B, c.I, c.H, c.cell) for c in quick.configs] == [(3, 2, 8, 8, "gru")]


def test_gru_gemm_count_has_three_gates():
    lstm, gru = Config(T=5, B=2, I=8, H=8), Config(T=5, B=2, I=8, H=8, cell="gru")
    for mode in ("forward", "train"):
        assert measure.flops(gru, [2] * 5, mode) * 4 == measure.flops(lstm, [2] * 5, mode) * 3
        assert measure.plan_flops(measure.gemm_plan(gru, [2] * 5, mode)) == measure.flops(gru, [2] * 5, mode)


@requires_fused()
def test_quick_gru_preset_writes_every_ratio(tmp_path):
    assert run.main(["--preset", "gru", "--quick", "--threads", "1", "--no-plots", "--no-progress",
                     "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["preset"] == "gru" and results["command"].startswith("python benchmarks/run.py --preset gru")
    recs = {(r["impl"], r["mode"]): r for r in results["records"]}
    assert set(recs) == {(name, mode) for name in GRU_IMPLS for mode in ("forward", "train")}
    for (name, mode), rec in recs.items():
        assert rec["cell"] == "gru" and rec["status"] == "ok" and rec["correct"], (name, mode, rec["note"])
        assert rec["median_s"] > 0 and rec["speedup_vs_nn"] > 0 and rec["roofline_fraction"] > 0
    assert recs[("nn", "train")]["speedup_vs_nn"] == pytest.approx(1.0)
    assert "composite" in recs[("nn", "forward")]["note"] or "oneDNN" in recs[("nn", "forward")]["note"]
    md = (tmp_path / "results.md").read_text()
    assert "| GRU T3 B2 I8 H8 fp32 | cpu | fused |" in md


def _scaled_fused_gru(wl):
    built = IMPLS["fused"].build(wl)
    with torch.no_grad():
        built.module.weight_hh_l0.mul_(1.5)  # no longer the reference's weights
    return Built(built.forward, built.params, built.module)


@requires_fused()
def test_a_wrong_gru_implementation_is_not_timed(monkeypatch, tmp_path):
    monkeypatch.setitem(IMPLS, "broken_gru", Impl("broken_gru", "wrong GRU", _scaled_fused_gru, hidden=True,
                                                  kinds=("gru",)))
    preset = dataclasses.replace(get_preset("gru", quick=True), configs=(Config(T=3, B=2, I=8, H=8, cell="gru"),))
    results = run_suite(preset, device="cpu", threads=1,
                        impl_names=["fused", "reference", "broken_gru"], run_charlm=False)
    recs = {(r["impl"], r["mode"]): r for r in results["records"]}
    for mode in ("forward", "train"):
        bad = recs[("broken_gru", mode)]
        assert bad["status"] == "wrong" and not bad["correct"] and bad["median_s"] is None
        assert recs[("fused", mode)]["correct"]
    report.write_all(results, str(tmp_path), plots=False)
    assert "**wrong**" in next(line for line in (tmp_path / "results.md").read_text().splitlines()
                               if "| broken_gru |" in line)
