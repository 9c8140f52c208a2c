"""The benchmark suite's own tests, on a tiny grid (T=3, B=2, I=H=8) with very short timing.

One run of the ``tiny`` preset (all implementations, char-LM included) is shared by most tests;
the others build their own small runs. Everything here must finish in well under a minute.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import compare, impls, measure, report  # noqa: E402
from benchmarks.configs import PRESETS, Config, Preset, Timing, get_preset  # noqa: E402
from benchmarks.impls import IMPLS, Built, Impl  # noqa: E402
from benchmarks.suite import run_suite  # noqa: E402
from benchmarks.workload import make_workload  # noqa: E402

# The schema, pinned here on purpose: changing a field name or type must change this test too.
SCHEMA = {
    "impl": (str,), "label": (str,), "device": (str,), "dtype": (str,), "mode": (str,), "config": (str,),
    "T": (int,), "B": (int,), "I": (int,), "H": (int,), "layers": (int,), "bidirectional": (bool,),
    "proj_size": (int,), "packed": (bool,), "tokens": (int,), "status": (str,), "correct": (bool,),
    "max_abs_err": (float, type(None)), "median_s": (float, type(None)), "iqr_s": (float, type(None)),
    "min_s": (float, type(None)),
    "n_samples": (int,), "speedup_vs_nn": (float, type(None)), "flops": (int,), "gflops": (float, type(None)),
    "gemm_s": (float, type(None)), "roofline_fraction": (float, type(None)), "peak_fraction": (float, type(None)),
    "peak_mem_bytes": (int, type(None)),
    "first_call_s": (float, type(None)), "bench_s": (float, type(None)), "load1": (float, type(None)),
    "threads": (int,), "note": (str,), "cell": (str,), "variant": (str,), "cost": (float, type(None)),
}
TOP_LEVEL = {"schema_version", "preset", "command", "created", "machine", "threads", "baseline", "oracle",
             "timing", "records", "skipped", "notes", "charlm", "wall_s", "peak"}
ALWAYS_AVAILABLE = ["reference", "reference_compiled", "torchscript", "nn", "nn_composite", "cell_loop"]
PLOTS = ["speedup.png", "roofline.png", "time_vs_T.png", "time_vs_H.png", "charlm.png"]


def _fused_loaded() -> bool:
    try:
        from lstm_ext import _library
    except Exception:  # noqa: BLE001
        return False
    return _library.LOAD_ERROR is None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(results, output folder) of the tiny preset with every implementation, written to disk."""
    results = run_suite(get_preset("tiny"), device="cpu", threads=1, console=None)
    out = tmp_path_factory.mktemp("bench")
    report.write_all(results, str(out))
    return results, out


def _tiny_preset(*configs, charlm=None) -> Preset:
    return Preset("test", "test", tuple(configs), timing=Timing(min_run_time=0.001, min_samples=3), charlm=charlm)


# ---- the shared tiny run --------------------------------------------------------------------


def test_every_implementation_produces_a_record_or_a_skip_note(tiny):
    results, _ = tiny
    recorded = {(r["impl"], r["mode"]) for r in results["records"]}
    skipped = {s["impl"]: s["reason"] for s in results["skipped"] if s["config"] is None}
    runs_lstm = {name for name in impls.default_selection() if "lstm" in IMPLS[name].kinds}
    for name in set(impls.default_selection()) - runs_lstm:  # e.g. the variants' cost baseline
        assert not any(impl == name for impl, _ in recorded)
        assert any(s["impl"] == name and "not lstm" in s["reason"] for s in results["skipped"]), name
    for name in runs_lstm:
        if name in skipped:
            assert skipped[name] and "\n" not in skipped[name]  # a one-line note
            assert not any(impl == name for impl, _ in recorded)
        else:
            assert {(name, "forward"), (name, "train")} <= recorded, name
    for name in ALWAYS_AVAILABLE + (["fused"] if _fused_loaded() else []):
        for mode in ("forward", "train"):
            rec = next(r for r in results["records"] if r["impl"] == name and r["mode"] == mode)
            assert rec["status"] == "ok" and rec["correct"] is True, (name, mode, rec["note"])
            assert rec["median_s"] > 0 and rec["iqr_s"] >= 0 and rec["n_samples"] >= 3
            assert rec["gflops"] > 0 and rec["roofline_fraction"] > 0 and rec["speedup_vs_nn"] > 0
    if not _fused_loaded():
        assert "fused" in skipped


def test_baseline_speedup_is_one_and_speedups_are_consistent(tiny):
    results, _ = tiny
    for mode in ("forward", "train"):
        base = next(r for r in results["records"] if r["impl"] == "nn" and r["mode"] == mode)
        assert base["speedup_vs_nn"] == pytest.approx(1.0)
        for rec in results["records"]:
            if rec["mode"] == mode and rec["median_s"]:
                assert rec["speedup_vs_nn"] == pytest.approx(base["median_s"] / rec["median_s"])
                assert rec["gflops"] == pytest.approx(rec["flops"] / rec["median_s"] / 1e9)
                assert rec["peak_fraction"] == pytest.approx(rec["gflops"] / results["peak"]["cpu"]["gflops"])


def test_peak_is_the_best_large_gemm_of_the_run(tiny):
    """The float32 peak: the faster of MKL's and oneDNN's square GEMM, both measured."""
    results, _ = tiny
    peak = results["peak"]["cpu"]
    assert peak["n"] == 2048 and peak["gflops"] == max(peak["rates"].values()) > 0
    assert "torch.mm" in peak["rates"]
    if torch.backends.mkldnn.is_available():
        assert "oneDNN" in peak["rates"]


@pytest.mark.skipif(not _fused_loaded(), reason="compiled kernels not loaded")
def test_fused_plain_loop_runs_every_call_without_the_fused_step():
    """The A/B implementation sets LSTM_EXT_FUSED_STEP=0 around whole calls, backward included,
    and puts back what was there."""
    wl = make_workload(Config(T=3, B=2, I=8, H=8), torch.device("cpu"))
    built = IMPLS["fused_plain_loop"].build(wl)
    before = os.environ.get("LSTM_EXT_FUSED_STEP")
    with built.scope():
        assert os.environ["LSTM_EXT_FUSED_STEP"] == "0"
    assert os.environ.get("LSTM_EXT_FUSED_STEP") == before
    assert IMPLS["fused"].build(wl).scope is not built.scope


def test_json_schema_is_stable(tiny):
    _, out = tiny
    data = json.loads((out / "results.json").read_text())
    assert TOP_LEVEL <= set(data)
    assert data["schema_version"] == 1
    assert data["threads"] == 1 and data["machine"]["threads"] == 1
    assert {"torch", "cpu", "cpu_count", "platform"} <= set(data["machine"])
    assert data["records"]
    for rec in data["records"]:
        assert set(SCHEMA) <= set(rec), set(SCHEMA) - set(rec)
        for field, types in SCHEMA.items():
            value = rec[field]
            # JSON has one number type: an integral float may come back as int, never the reverse
            ok = isinstance(value, types) or (float in types and isinstance(value, int) and not isinstance(value, bool))
            assert ok, (field, value)
            if bool not in types and int in types:
                assert not isinstance(value, bool), field
        assert rec["mode"] in ("forward", "train")
    charlm_row = data["charlm"][0]
    assert {"impl", "device", "tokens_per_s", "loss_first", "loss_last", "correct", "status"} <= set(charlm_row)


def test_csv_markdown_and_plots_are_written(tiny):
    results, out = tiny
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert csv_lines[0].split(",")[:3] == ["impl", "label", "device"]
    assert len(csv_lines) == 1 + len(results["records"])
    md = (out / "results.md").read_text()
    assert "| shape | device | implementation | forward ms |" in md
    for rec in results["records"]:
        assert f"| {rec['impl']} |" in md
    assert "char-level LM" in md
    import matplotlib.image

    for name in PLOTS:
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = matplotlib.image.imread(str(path))
        assert image.shape[0] > 200 and image.shape[1] > 300, name
        assert image[..., :3].std() > 0.01, f"{name} is blank"


def test_charlm_reports_tokens_per_second_and_matching_losses(tiny):
    results, _ = tiny
    rows = {r["impl"]: r for r in results["charlm"]}
    assert "nn" in rows and "reference" in rows
    for name, row in rows.items():
        assert row["status"] == "ok" and row["correct"], (name, row.get("note"))
        assert row["tokens_per_s"] > 0
        assert row["loss_first"] == pytest.approx(rows["reference"]["loss_first"], rel=1e-3)


# ---- correctness gate -------------------------------------------------------------------------


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.1


def _broken(kind: str):
    def build(wl):
        built = IMPLS["nn"].build(wl)
        inner = built.forward

        def forward(inp):
            out = inner(inp)
            return out * 1.01 if kind == "output" else _ScaleGrad.apply(out)

        return Built(forward, built.params, built.module)

    return build


@pytest.fixture
def broken_impls(monkeypatch):
    monkeypatch.setitem(IMPLS, "broken_output", Impl("broken_output", "wrong output", _broken("output"), hidden=True))
    monkeypatch.setitem(IMPLS, "broken_grad", Impl("broken_grad", "wrong gradient", _broken("grad"), hidden=True))


def test_a_wrong_implementation_is_reported_wrong_not_fast(broken_impls, tmp_path):
    preset = _tiny_preset(Config(T=3, B=2, I=8, H=8))
    threads_before = torch.get_num_threads()
    results = run_suite(preset, device="cpu", impl_names=["reference", "broken_output", "broken_grad"], threads=1)
    assert torch.get_num_threads() == threads_before  # the run's thread count does not leak out
    recs = {(r["impl"], r["mode"]): r for r in results["records"]}
    assert ("nn", "forward") in recs  # the baseline is added by itself
    for mode in ("forward", "train"):
        bad = recs[("broken_output", mode)]
        assert bad["correct"] is False and bad["status"] == "wrong"
        assert bad["median_s"] is None and bad["speedup_vs_nn"] is None and bad["gflops"] is None
        assert "differs from reference" in bad["note"]
    # right forward, wrong gradient: only the train mode can see it
    assert recs[("broken_grad", "forward")]["correct"] is True
    assert recs[("broken_grad", "train")]["correct"] is False
    assert recs[("reference", "train")]["correct"] is True
    report.write_all(results, str(tmp_path), plots=False)
    md = (tmp_path / "results.md").read_text()
    line = next(line for line in md.splitlines() if "| broken_output |" in line)
    assert "**wrong**" in line and "**no**" in line


def test_deploy_runtimes_run_inference_only_and_are_checked(tmp_path):
    """The deploy preset's runtimes (ONNX Runtime on each export, the AOTInductor package) join the
    run without --impl, are checked against the reference like every implementation, and skip
    training with the reason."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    preset = get_preset("deploy", quick=True)
    results = run_suite(preset, device="cpu", threads=1, console=None, progress=False, run_charlm=False)
    runtimes = {"onnxruntime", "onnxruntime_nn", "aoti"}
    forward = {r["impl"]: r for r in results["records"] if r["mode"] == "forward"}
    assert runtimes <= set(forward)
    for name in runtimes:
        assert forward[name]["status"] == "ok" and forward[name]["correct"], forward[name]
        assert forward[name]["median_s"] > 0
    assert not any(r["impl"] in runtimes for r in results["records"] if r["mode"] == "train")
    assert {s["impl"] for s in results["skipped"] if s["reason"] == "runs no train"} == runtimes


def test_composite_path_really_avoids_onednn():
    wl = make_workload(Config(T=3, B=2, I=8, H=8), "cpu")
    inp = wl.make_input(False)

    def ops_of(name):
        built = IMPLS[name].build(wl)
        return measure.profiled_op_names(lambda: built.forward(inp))

    forbidden = set(IMPLS["nn_composite"].forbidden_ops(torch.device("cpu")))
    assert not ops_of("nn_composite") & forbidden
    if torch.backends.mkldnn.is_available():
        assert ops_of("nn") & forbidden  # the check can fail: the default path does use oneDNN


def test_packed_bidirectional_projected_layers_are_checked():
    cfg = Config(T=4, B=3, I=8, H=8, layers=2, bidirectional=True, proj_size=4, packed=True)
    names = ["reference", "nn", "nn_composite", "cell_loop", "torchscript"] + (["fused"] if _fused_loaded() else [])
    results = run_suite(_tiny_preset(cfg), device="cpu", impl_names=names, threads=1)
    by_impl = {r["impl"] for r in results["records"]}
    assert {"reference", "nn", "nn_composite"} <= by_impl
    for rec in results["records"]:
        assert rec["correct"] and rec["status"] == "ok", (rec["impl"], rec["mode"], rec["note"])
        assert rec["packed"] and rec["tokens"] < cfg.T * cfg.B + 1
    skipped = {s["impl"] for s in results["skipped"] if s["config"] == cfg.label()}
    assert {"cell_loop", "torchscript"} <= skipped


def test_torchscript_lstm_matches_nn_with_projection_and_both_directions():
    cfg = Config(T=5, B=2, I=6, H=8, layers=2, bidirectional=True, proj_size=3, dtype="float64")
    results = run_suite(_tiny_preset(cfg), device="cpu", impl_names=["reference", "torchscript"], threads=1)
    rec = [r for r in results["records"] if r["impl"] == "torchscript"]
    assert len(rec) == 2 and all(r["correct"] for r in rec), [r["note"] for r in rec]


# ---- compare ----------------------------------------------------------------------------------


def test_compare_flags_a_regression_beyond_the_iqr(tiny):
    results, _ = tiny
    old = copy.deepcopy(results)
    new = copy.deepcopy(results)
    slow = next(r for r in new["records"] if r["impl"] == "nn" and r["mode"] == "train")
    noisy = next(r for r in new["records"] if r["impl"] == "nn" and r["mode"] == "forward")
    old_slow = next(r for r in old["records"] if r["impl"] == "nn" and r["mode"] == "train")
    slow["median_s"] = old_slow["median_s"] * 2 + 10 * old_slow["iqr_s"]
    old_noisy = next(r for r in old["records"] if r["impl"] == "nn" and r["mode"] == "forward")
    old_noisy["iqr_s"] = old_noisy["median_s"]  # a 10% slowdown inside a 100% IQR is noise
    noisy["median_s"] = old_noisy["median_s"] * 1.1
    rows = {(r["impl"], r["mode"]): r for r in compare.compare(old, new)}
    assert rows[("nn", "train")]["verdict"] == "regression"
    assert rows[("nn", "forward")]["verdict"] == "within noise"
    assert [r["impl"] for r in compare.regressions(list(rows.values()))] == ["nn"]
    # a correct implementation that turns wrong is a regression too
    wrong = copy.deepcopy(new)
    rec = next(r for r in wrong["records"] if r["impl"] == "reference" and r["mode"] == "forward")
    rec.update(correct=False, status="wrong", median_s=None)
    rows = {(r["impl"], r["mode"]): r for r in compare.compare(old, wrong)}
    assert rows[("reference", "forward")]["verdict"] == "regression (now wrong)"


def test_run_py_compare_flags_regression_end_to_end(tiny, tmp_path):
    results, _ = tiny
    old = copy.deepcopy(results)
    for rec in old["records"]:  # pretend the earlier run was 100x faster with no noise
        if rec["median_s"]:
            rec["median_s"] /= 100
            rec["iqr_s"] = 0.0
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(old))
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "run.py"), "--preset", "tiny", "--impl", "nn",
           "--threads", "1", "--no-charlm", "--no-plots", "--out", str(out), "--compare", str(old_path),
           "--fail-on-regression"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "regression" in proc.stdout
    assert (out / "results.json").exists() and (out / "results.md").exists()


# ---- measurement pieces -----------------------------------------------------------------------


def test_flops_formula_and_gemm_plan_agree():
    cfg = Config(T=100, B=64, I=256, H=256)
    sizes = [64] * 100
    assert measure.flops(cfg, sizes, "forward") == 2 * 100 * 64 * 4 * 256 * (256 + 256)
    assert measure.flops(cfg, sizes, "train") == 3 * measure.flops(cfg, sizes, "forward")
    proj = Config(T=7, B=3, I=5, H=8, proj_size=4)
    assert measure.flops(proj, [3] * 7, "forward") == 2 * 7 * 3 * 32 * (5 + 4) + 2 * 7 * 3 * 4 * 8
    for c in (cfg, proj, Config(T=6, B=4, I=5, H=8, layers=3, bidirectional=True, proj_size=2, packed=True)):
        wl = make_workload(c, "cpu")
        for mode in ("forward", "train"):
            assert measure.plan_flops(measure.gemm_plan(c, wl.batch_sizes, mode)) == measure.flops(c, wl.batch_sizes, mode)


def test_cpu_peak_memory_sees_allocations():
    keep = []

    def step():
        a = torch.empty(4 << 20, dtype=torch.uint8)  # 4 MiB, freed at once
        b = torch.empty(1 << 20, dtype=torch.uint8)  # 1 MiB, kept
        keep.append(b)
        del a

    peak = measure.peak_memory(step, torch.device("cpu"), lambda: None)
    assert peak is not None and 5 << 20 <= peak < 6 << 20
    assert measure.peak_memory(lambda: None, torch.device("cpu"), lambda: None) < 1 << 20


def test_round_robin_takes_turns():
    """Blocks of each implementation alternate (the first in a round rotates), so a slow spell of
    the machine cannot fall on one implementation alone; each gets its samples."""
    calls = []
    fns = {name: (lambda name=name: (calls.append(name), time.sleep(0.002))) for name in ("a", "b", "c")}
    timing = Timing(min_run_time=0.03, min_samples=4)
    timed = measure.time_round_robin(fns, torch.device("cpu"), 1, timing)
    assert set(timed) == {"a", "b", "c"}
    for stats in timed.values():
        assert stats["n_samples"] >= 4 and 0.0015 < stats["median_s"] < 0.05
    runs = [calls[0]]  # the sequence of blocks: consecutive calls of one implementation collapse
    for name in calls[1:]:
        if name != runs[-1]:
            runs.append(name)
    assert runs[:3] == ["a", "b", "c"], runs  # one call each: the block-size estimate
    rounds = [runs[3 + 3 * k:6 + 3 * k] for k in range((len(runs) - 3) // 3)]
    assert len(rounds) >= 4, runs
    for k, visit in enumerate(rounds):  # every round visits all three, starting one further on
        assert visit == ["abc"[(k + i) % 3] for i in range(3)], runs


def test_summary_statistics():
    stats = measure.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert stats == dict(median_s=3.0, iqr_s=2.0, min_s=1.0, n_samples=5)


# ---- presets ----------------------------------------------------------------------------------


def test_presets_cover_what_the_issue_asks_for():
    default = get_preset("default").configs
    shapes = {(c.T, c.B, c.I, c.H, c.dtype) for c in default}
    assert (100, 64, 256, 256, "float32") in shapes and (100, 16, 128, 512, "float32") in shapes
    assert any(c.T == 1 and c.B == 1 and c.H == 64 for c in default)
    assert any(c.dtype == "float64" for c in default)
    full = get_preset("full").configs
    assert {1, 256} <= {c.B for c in full} and {64, 1024} <= {c.H for c in full} and {1, 1000} <= {c.T for c in full}
    assert any(c.layers > 1 for c in full) and any(c.bidirectional for c in full) and any(c.packed for c in full)
    assert any(c.proj_size for c in full) and {"float32", "float64", "bfloat16"} <= {c.dtype for c in full}
    (fr,) = get_preset("fastrnns").configs
    assert (fr.T, fr.B, fr.I, fr.H, fr.layers) == (100, 64, 512, 512, 1)
    (fl,) = get_preset("flashrnn").configs
    assert (fl.T, fl.B, fl.H, fl.dtype, fl.device) == (1024, 16, 768, "bfloat16", "cuda")
    assert {c.dtype for c in get_preset("default", dtype="float64").configs} == {"float64"}
    targets = get_preset("targets").configs  # the CPU speed targets, one shape each
    assert {(c.dtype, c.packed, c.proj_size) for c in targets} >= {
        ("float32", False, 0), ("float64", False, 0), ("float32", True, 0), ("float32", False, 128),
        ("bfloat16", False, 0)}
    assert {c.H for c in targets if c.T == 1 and c.B == 1} == {64, 256}
    dense32 = {(c.T, c.B, c.I, c.H) for c in targets if c.cell == "lstm" and (c.dtype, c.packed, c.proj_size) ==
               ("float32", False, 0)}
    assert dense32 >= {(100, 64, 64, 64), (10, 64, 64, 64), (100, 64, 256, 256), (100, 16, 128, 512), (100, 4, 64, 64)}
    assert {(c.T, c.B, c.H) for c in targets if c.cell == "gru"} == {(100, 64, 256)}
    assert set(PRESETS) == {"tiny", "default", "full", "targets", "fused_step", "fastrnns", "flashrnn", "gru",
                            "variants", "deploy"}
    # the streaming steps at two widths and one B=1 sequence, every runtime; then what exports as a
    # Loop (proj_size, layer norm) through lstm_ext's own export and package
    deploy = get_preset("deploy").configs
    native = [c for c in deploy if not (c.proj_size or c.variant)]
    assert {(c.T, c.B, c.H) for c in native} == {(1, 1, 64), (1, 1, 256), (100, 1, 256)}
    assert all(set(c.impls) == {"fused", "nn", "onnxruntime", "onnxruntime_nn", "aoti"} for c in native)
    looped = [c for c in deploy if c.proj_size or c.variant]
    assert {(c.T, c.proj_size, c.variant) for c in looped} == {(100, 128, ""), (1, 0, "layer_norm"),
                                                                 (100, 0, "layer_norm")}
    assert all({"fused", "onnxruntime", "aoti"} <= set(c.impls) for c in looped)
    fused_step = get_preset("fused_step").configs  # the fused step's A/B on the dense fp32 and bf16 targets
    lstm_ab = [c for c in fused_step if c.kind == "lstm"]
    assert {(c.T, c.B, c.I, c.H) for c in lstm_ab if c.dtype == "float32"} == {s for s in dense32 if s[0] > 1}
    bf16 = {(c.T, c.B, c.I, c.H) for c in targets if c.dtype == "bfloat16"}
    assert {(c.T, c.B, c.I, c.H) for c in lstm_ab if c.dtype == "bfloat16"} == bf16
    assert {c.kind for c in fused_step} == {"lstm", "gru", "variant"}
    assert {c.variant for c in fused_step if c.kind == "variant"} == {"peephole", "zoneout", "layer_norm", "lesson"}
    # a layer-normalized shape is held to the float64 truth in any preset; the others keep the preset's check
    fused_preset = get_preset("fused_step")
    assert {c.variant: fused_preset.check_for(c) for c in fused_step if c.kind == "variant"} == {
        "peephole": "tolerance", "zoneout": "tolerance", "layer_norm": "float64", "lesson": "tolerance"}
    assert all({"fused", "fused_plain_loop"} <= set(c.impls) for c in fused_step)
    assert all(c.dtype == "float32" for c in fused_step if c.kind != "lstm")
    assert {c.dtype for c in lstm_ab} == {"float32", "bfloat16"} and not any(c.packed for c in fused_step)
    assert all(c.cell == "lstm" and not c.variant for c in default)


@pytest.mark.parametrize("name", ["default", "full", "gru", "variants"])
def test_quick_shrinks_every_shape_and_keeps_the_cells(name):
    preset, quick = get_preset(name), get_preset(name, quick=True)
    assert {(c.T, c.B, c.I, c.H) for c in quick.configs} == {(3, 2, 8, 8)}
    assert {(c.cell, c.variant) for c in quick.configs} == {(c.cell, c.variant) for c in preset.configs}
    assert quick.timing.min_run_time < 0.01 and quick.cost_baseline == preset.cost_baseline
    assert len(set(quick.configs)) == len(quick.configs)


def test_config_labels_name_the_cell_and_the_variant():
    assert Config(T=3, B=2, I=8, H=8).label() == "T3 B2 I8 H8 fp32"
    assert Config(T=3, B=2, I=8, H=8, cell="gru").label() == "GRU T3 B2 I8 H8 fp32"
    assert Config(T=3, B=2, I=8, H=8, variant="zoneout").label() == "T3 B2 I8 H8 fp32 zoneout"
    with pytest.raises(ValueError):
        Config(T=3, B=2, I=8, H=8, variant="nope")
    with pytest.raises(ValueError):
        Config(T=3, B=2, I=8, H=8, cell="gru", variant="zoneout")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_flashrnn_preset_skips_cleanly_without_a_gpu():
    results = run_suite(get_preset("flashrnn"), device="cpu", threads=1, run_charlm=False)
    assert results["records"] == []
    assert any(s["config"] and "cuda" in s["reason"] for s in results["skipped"])
    results = run_suite(get_preset("tiny"), device="cuda", threads=1)
    assert results["records"] == [] and results["charlm"] == []
    assert any(s["device"] == "cuda" and "not available" in s["reason"] for s in results["skipped"])


@pytest.mark.skipif(not _fused_loaded(), reason="compiled kernels not loaded")
def test_layer_parts_times_every_part_on_both_paths():
    from benchmarks.layer_parts import PARTS, layer_parts

    parts = layer_parts(3, 2, 8, 8, threads=1, timing=Timing(min_run_time=0.001, min_samples=3))
    assert list(parts) == list(PARTS)
    assert all(set(ms) == {"fused", "plain"} and min(ms.values()) > 0 for ms in parts.values())
    assert os.environ.get("LSTM_EXT_FUSED_STEP") is None  # the switch is put back
