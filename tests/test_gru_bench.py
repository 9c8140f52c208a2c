"""benchmarks/gru.py on the tiny shape: it checks before it times, writes its JSON, and catches a
wrong implementation."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import gru as gru_bench  # noqa: E402
from conftest import requires_fused  # noqa: E402


@requires_fused()
def test_tiny_run_writes_every_ratio(tmp_path, capsys):
    out = tmp_path / "gru.json"
    assert gru_bench.main(["--shapes", "tiny", "--rounds", "2", "--min-block-s", "0.001", "--threads", "1",
                           "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    (rec,) = results["records"]
    assert rec["correct"] == {"fused": True, "nn": True, "reference": True}
    for name in gru_bench.IMPLS:
        for mode in gru_bench.MODES:
            assert rec["median_ms"][f"{name}/{mode}"] > 0
            assert rec["speedup_vs_nn"][f"{name}/{mode}"] > 0
    assert rec["speedup_vs_nn"]["nn/train"] == 1.0
    assert "composite" in rec["nn_path"] or "oneDNN" in rec["nn_path"]
    assert results["threads"] == 1 and results["command"].startswith("python benchmarks/gru.py")
    assert "lstm_ext.GRU fused" in capsys.readouterr().out


@requires_fused()
def test_a_wrong_implementation_is_not_timed(monkeypatch):
    real_build = gru_bench.build

    def broken_build(shape, seed=0):
        modules = real_build(shape, seed)
        with torch.no_grad():
            modules["fused"].weight_hh_l0.mul_(1.5)  # no longer the reference's weights
        return modules

    monkeypatch.setattr(gru_bench, "build", broken_build)
    rec = gru_bench.measure("tiny", threads=1, rounds=2, min_block_s=0.001)
    assert rec["correct"]["fused"] is False and rec["correct"]["nn"] is True
    assert not any(key.startswith("fused/") for key in rec["median_ms"])
    assert "wrong" in gru_bench.markdown([rec])


def test_shapes_are_the_issues():
    assert gru_bench.SHAPES["big"] == (100, 64, 256, 256) and gru_bench.SHAPES["small"] == (100, 4, 64, 64)
    with pytest.raises(SystemExit):
        gru_bench.main(["--help"])
