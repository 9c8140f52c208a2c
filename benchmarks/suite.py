"""Runs a preset: checks, then times, every implementation on every shape; returns the results.

:func:`run_suite` is the programmatic API (``run.py`` is its command line; the tests call it).
For each device and shape: one workload (weights, input, grad_output); the reference's outputs
and gradients; the torch.mm time of the shape's GEMMs; then, per implementation and mode,
a checked first call, and only if it is correct: warm-up, timing and (train) peak memory.
Speedups are against ``nn.LSTM`` (``nn.GRU``) from the same run; with a preset's
``cost_baseline``, ``cost`` is time over that implementation's time. Results are a JSON-ready dict.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from typing import Iterable, Optional

import torch

from . import charlm as charlm_mod
from . import check, impls, measure
from .configs import Config, Preset
from .impls import IMPLS
from .workload import Workload, in_dtype, input_data, make_workload, output_data

SCHEMA_VERSION = 1
MODES = ("forward", "train")
BUSY_LOAD = 1.0  # 1-minute load average before the run above which it warns that other processes compete

# Field -> type(s) of every record: the stable schema (tests hold the suite to it).
RECORD_FIELDS = {
    "impl": str, "label": str, "device": str, "dtype": str, "mode": str, "config": str,
    "T": int, "B": int, "I": int, "H": int, "layers": int, "bidirectional": bool, "proj_size": int,
    "packed": bool, "tokens": int, "status": str, "correct": bool, "max_abs_err": (float, type(None)),
    "median_s": (float, type(None)), "iqr_s": (float, type(None)), "min_s": (float, type(None)), "n_samples": int,
    "speedup_vs_nn": (float, type(None)), "flops": int, "gflops": (float, type(None)),
    "gemm_s": (float, type(None)), "roofline_fraction": (float, type(None)),
    "peak_fraction": (float, type(None)),
    "peak_mem_bytes": (int, type(None)), "first_call_s": (float, type(None)), "bench_s": (float, type(None)),
    "load1": (float, type(None)), "threads": int, "note": str,
    "cell": str, "variant": str, "cost": (float, type(None)),
}


def machine_info(threads: int, devices: Iterable[torch.device]) -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(
        hostname=platform.node(), platform=platform.platform(), python=sys.version.split()[0], cpu=cpu,
        cpu_count=os.cpu_count(), threads=threads, interop_threads=torch.get_num_interop_threads(),
        torch=torch.__version__, torch_git=getattr(torch.version, "git_version", None),
        mkldnn=torch.backends.mkldnn.is_available(), cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available(), devices=[str(d) for d in devices],
    )
    try:
        info["loadavg_start"] = list(os.getloadavg())
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["tf32"] = dict(cublas=torch.backends.cuda.matmul.allow_tf32, cudnn=torch.backends.cudnn.allow_tf32)
    try:
        import lstm_ext

        info["lstm_ext"] = getattr(lstm_ext, "__version__", None)
    except Exception as error:  # noqa: BLE001
        info["lstm_ext"] = f"not importable: {type(error).__name__}"
    return info


class Reporter:
    """Where progress and notes go: rich console + progress bar, or nothing (tests)."""

    def __init__(self, console=None, progress: bool = True):
        self.console = console
        self.progress = None
        self.task = None
        self.show_progress = progress and console is not None

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"[dim]note:[/dim] {text}", highlight=False)

    def print(self, renderable) -> None:
        if self.console is not None:
            self.console.print(renderable)

    def start(self, total: int) -> None:
        if not self.show_progress:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task("benchmarking", total=total)

    def advance(self, description: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=description)

    def describe(self, description: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=description)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _record(impl_name: str, cfg: Config, wl: Workload, mode: str, threads: int, flops: int) -> dict:
    impl = IMPLS[impl_name]
    return dict(
        impl=impl_name, label=impl.label, device=wl.device.type, **cfg.shape_fields(), mode=mode,
        config=cfg.label(), tokens=wl.tokens, status="ok", correct=False, max_abs_err=None,
        median_s=None, iqr_s=None, min_s=None, n_samples=0, speedup_vs_nn=None, flops=flops, gflops=None,
        gemm_s=None, roofline_fraction=None, peak_fraction=None, peak_mem_bytes=None, first_call_s=None, bench_s=None, load1=None,
        threads=threads, note="", cost=None,
    )


def _step_fn(built, wl: Workload, mode: str):
    """(step, reset): one timed call in ``mode`` and what clears its gradients."""
    train = mode == "train"
    inp = wl.make_input(requires_grad=train)
    data = input_data(inp)

    def reset() -> None:
        data.grad = None
        check.zero_grads(built)

    if not train:
        def step() -> None:
            with built.scope(), torch.no_grad():
                built.forward(inp)
    else:
        def step() -> None:
            reset()
            with built.scope():
                output_data(built.forward(inp)).backward(wl.grad_output)
    return step, reset


def _load1() -> Optional[float]:
    """The 1-minute load average: how much else ran while this record was measured."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _dynamo_graphs() -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001
        return -1


class _Expected:
    """The oracles' outputs on one workload, computed once per oracle, mode and dtype, and the
    verdict on an implementation's outputs (``Preset.check_for``: see ``check.py``)."""

    def __init__(self, wl: Workload, check_mode: str):
        self.wl = wl
        self.check_mode = check_mode
        self.cache: dict = {}

    def get(self, name: str, mode: str, dtype: Optional[str] = None) -> check.Outputs:
        key = (name, mode, dtype)
        if key not in self.cache:
            wl = self.wl if dtype is None else in_dtype(self.wl, dtype)
            self.cache[key] = check.run_once(IMPLS[name].build(wl), wl, mode)
        return self.cache[key]

    def verdict(self, got: check.Outputs, oracle: str, mode: str) -> check.Verdict:
        if self.check_mode == "float64":
            return check.compare_to_truth(got, self.get(oracle, mode, "float64"), self.get(oracle, mode))
        return check.compare(got, self.get(oracle, mode))


def _oracle_for(name: str, oracle: str, check_mode: str) -> str:
    """Which implementation ``name`` is checked against."""
    if IMPLS[name].oracle:
        return IMPLS[name].oracle
    if name == oracle and check_mode != "float64":  # the oracle itself: against the fallback
        return impls.FALLBACK_ORACLE
    return oracle


def _check(rec: dict, notes: list, impl, built, wl: Workload, mode: str, expected: _Expected,
           oracle: str) -> bool:
    """The check of one record: whether the implementation is correct and on its claimed path."""
    device = wl.device
    graphs_before = _dynamo_graphs()
    got = check.run_once(built, wl, mode)
    rec["first_call_s"] = got.first_call_s
    if impl.compiles and _dynamo_graphs() == graphs_before:
        notes.append("torch.compile made no new graph (ran eagerly?)")
    verdict = expected.verdict(got, oracle, mode)
    rec["correct"] = verdict.correct
    rec["max_abs_err"] = verdict.max_abs_err
    if not verdict.correct:
        rec["status"] = "wrong"
        notes.append(f"differs from {oracle}{' (float64)' if expected.check_mode == 'float64' else ''}: "
                     f"{verdict.message}")
        return False
    forbidden = impl.forbidden_ops(device)
    if (forbidden or impl.path_note) and mode == "forward":
        ran = measure.profiled_op_names(_step_fn(built, wl, "forward")[0])
        hit = sorted(ran & set(forbidden))
        if hit:
            rec["status"] = "error"
            notes.append(f"path not as claimed: profiler shows {', '.join(hit)}")
            return False
        notes.append(impl.path_note(ran) if impl.path_note else "profiler: no oneDNN/cuDNN RNN op")
    return True


def _time_mode(pending: dict, wl: Workload, mode: str, gemm: dict, preset: Preset, threads: int,
               peak: dict) -> None:
    """Time every checked implementation of one shape and mode together (round-robin), then fill
    their records; peak memory is measured after, one implementation at a time."""
    steps = {name: _step_fn(built, wl, mode) for name, (rec, built, notes) in pending.items()}
    began = time.perf_counter()
    try:
        timed = measure.time_round_robin({name: step for name, (step, _) in steps.items()}, wl.device, threads,
                                         preset.timing)
    except Exception as error:  # noqa: BLE001 - an implementation that raises is a result
        for rec, _, notes in pending.values():
            rec["status"] = "error"
            notes.append(f"while timing: {type(error).__name__}: {error}".splitlines()[0][:300])
        return
    share = (time.perf_counter() - began) / len(pending)
    for name, (rec, built, notes) in pending.items():
        rec.update(timed[name])
        rec["gflops"] = rec["flops"] / rec["median_s"] / 1e9
        rec["gemm_s"] = gemm["median_s"]
        rec["roofline_fraction"] = gemm["median_s"] / rec["median_s"]
        rec["peak_fraction"] = rec["gflops"] / peak["gflops"]
        rec["bench_s"] += share
        if mode == "train" and preset.measure_memory:
            step, reset = steps[name]
            rec["peak_mem_bytes"] = measure.peak_memory(step, wl.device, reset)


def run_config(cfg: Config, device: torch.device, names: list, preset: Preset, threads: int,
               oracle: str, reporter: Reporter, skipped: list, peak: dict) -> list:
    """Every record of one shape on one device (both modes)."""
    wl = make_workload(cfg, device)
    check_mode = preset.check_for(cfg)
    expected = _Expected(wl, check_mode)
    gemm = {mode: measure.gemm_time(measure.gemm_plan(cfg, wl.batch_sizes, mode), device, cfg.torch_dtype,
                                    threads, preset.timing) for mode in MODES}
    records = []
    pending: dict = {mode: {} for mode in MODES}  # checked, to be timed: name -> (record, built, notes)
    all_notes: list = []
    compiled_any = False
    for name in names:
        impl = IMPLS[name]
        reporter.describe(f"{cfg.label()} · {name}")
        reason = impl.why_not(cfg, device)
        if reason:
            skipped.append(dict(impl=name, device=device.type, config=cfg.label(), reason=reason))
            reporter.advance(f"{cfg.label()} · {name}")
            continue
        compiled_any |= impl.compiles
        try:
            built = impl.build(wl)
        except Exception as error:  # noqa: BLE001 - a failing build is a result, not a crash
            for mode in impl.modes:
                rec = _record(name, cfg, wl, mode, threads, measure.flops(cfg, wl.batch_sizes, mode))
                rec.update(status="error", note=f"build failed: {type(error).__name__}: {error}".splitlines()[0][:300])
                records.append(rec)
            reporter.advance(f"{cfg.label()} · {name}")
            continue
        for mode in MODES:
            if mode not in impl.modes:
                skipped.append(dict(impl=name, device=device.type, config=cfg.label(), reason=f"runs no {mode}"))
                continue
            rec = _record(name, cfg, wl, mode, threads, measure.flops(cfg, wl.batch_sizes, mode))
            records.append(rec)
            began = time.perf_counter()
            notes = [built.note] if built.note else []
            all_notes.append((rec, notes))
            try:
                if _check(rec, notes, impl, built, wl, mode, expected, _oracle_for(name, oracle, check_mode)):
                    pending[mode][name] = (rec, built, notes)
            except Exception as error:  # noqa: BLE001 - an implementation that raises is a result
                rec["status"] = "error"
                notes.append(f"{type(error).__name__}: {error}".splitlines()[0][:300])
            rec["bench_s"] = time.perf_counter() - began
        reporter.advance(f"{cfg.label()} · {name}")
    for mode in MODES:
        if pending[mode]:
            reporter.describe(f"{cfg.label()} · timing {mode}, round-robin")
            _time_mode(pending[mode], wl, mode, gemm[mode], preset, threads, peak)
    for rec, notes in all_notes:
        rec["note"] = "; ".join(n for n in notes if n)
        rec["load1"] = _load1()
    baseline = {r["mode"]: r for r in records if r["impl"] == impls.BASELINE and r["median_s"]}
    for rec in records:
        base = baseline.get(rec["mode"])
        if base is not None and rec["median_s"]:
            rec["speedup_vs_nn"] = base["median_s"] / rec["median_s"]
    cost_base = {r["mode"]: r for r in records if r["impl"] == preset.cost_baseline and r["median_s"]}
    for rec in records:
        base = cost_base.get(rec["mode"])
        if base is not None and rec["median_s"]:
            rec["cost"] = rec["median_s"] / base["median_s"]
    if compiled_any:
        torch._dynamo.reset()  # a fresh cache per shape: no recompile limits across a sweep
    return records


def _devices(spec: str) -> list:
    if spec == "auto":
        return [torch.device("cuda" if torch.cuda.is_available() else "cpu")]
    return [torch.device(d.strip()) for d in spec.split(",") if d.strip()]


def run_suite(preset: Preset, *, device: str = "auto", impl_names: Optional[list] = None,
              threads: Optional[int] = None, console=None, progress: bool = True,
              run_charlm: bool = True, command: str = "") -> dict:
    """Run ``preset`` and return the results dict (see ``RECORD_FIELDS`` for a record's fields).

    ``threads`` fixes ``torch.set_num_threads`` for the run (restored afterwards); ``console`` is a
    rich Console for notes, tables and the progress bar, or None for a silent run.
    """
    threads_before = torch.get_num_threads()
    try:
        return _run_suite(preset, device, impl_names, threads, console, progress, run_charlm, command)
    finally:
        torch.set_num_threads(threads_before)


def _run_suite(preset: Preset, device: str, impl_names: Optional[list], threads: Optional[int], console,
               progress: bool, run_charlm: bool, command: str) -> dict:
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    devices = _devices(device)
    reporter = Reporter(console, progress)
    notes: list = []
    skipped: list = []

    names = impls.resolve(impl_names)
    if not impl_names:  # and the runtimes outside the default selection that the preset's shapes name
        names = list(dict.fromkeys(names + [n for cfg in preset.configs for n in cfg.impls or () if n in IMPLS]))
    if impls.BASELINE not in names:
        names.insert(0, impls.BASELINE)
        notes.append(f"added {impls.BASELINE} (the speedup baseline) to the implementations")
    if preset.cost_baseline and preset.cost_baseline not in names:
        names.append(preset.cost_baseline)
        notes.append(f"added {preset.cost_baseline} (the cost baseline) to the implementations")

    results = dict(schema_version=SCHEMA_VERSION, preset=preset.name, description=preset.description,
                   command=command, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   machine=machine_info(threads, devices), threads=threads, baseline=impls.BASELINE,
                   cost_baseline=preset.cost_baseline, check=preset.check,
                   timing=dict(min_run_time=preset.timing.min_run_time, min_samples=preset.timing.min_samples,
                               warmup=preset.timing.warmup),
                   records=[], skipped=skipped, notes=notes, charlm=[])
    reporter.note(f"torch {torch.__version__}, {threads} threads (torch.set_num_threads), "
                  f"devices: {', '.join(map(str, devices))}")
    load = results["machine"].get("loadavg_start")
    if load and load[0] > BUSY_LOAD:
        busy = (f"machine busy before the run (load average {load[0]:.2f} over the last minute on "
                f"{os.cpu_count()} CPUs): timings, multi-threaded ones above all, are unreliable")
        notes.append(busy)
        reporter.note(f"[yellow]{busy}[/yellow]")

    plan = []
    for dev in list(devices):
        if dev.type == "cuda" and not torch.cuda.is_available():
            reason = "CUDA is not available here"
            skipped.append(dict(impl=None, device="cuda", config=None, reason=reason))
            reporter.note(f"skipping device cuda: {reason}")
            devices.remove(dev)
            continue
        available = []
        oracle = impls.ORACLE
        if IMPLS[oracle].unavailable(dev):
            oracle = impls.FALLBACK_ORACLE
            notes.append(f"{impls.ORACLE} unavailable on {dev.type}: checking against {oracle} instead")
        for name in names:
            reason = IMPLS[name].unavailable(dev)
            if reason:
                skipped.append(dict(impl=name, device=dev.type, config=None, reason=reason))
                reporter.note(f"skipping {name} on {dev.type}: {reason}")
            else:
                available.append(name)
        for cfg in preset.configs:
            if cfg.device is not None and cfg.device != dev.type:
                reason = f"needs {cfg.device}"
                skipped.append(dict(impl=None, device=dev.type, config=cfg.label(), reason=reason))
                reporter.note(f"skipping {cfg.label()} on {dev.type}: {reason}")
                continue
            chosen = [n for n in available if cfg.impls is None or n in cfg.impls or n == impls.BASELINE]
            left_out = [n for n in available if n not in chosen]
            for n in left_out:
                skipped.append(dict(impl=n, device=dev.type, config=cfg.label(), reason="not in this preset's shape"))
            plan.append((dev, cfg, chosen, oracle))
        results.setdefault("oracle", {})[dev.type] = oracle

    # The float32 peak each record's peak_fraction is measured against, once per device.
    peaks = results["peak"] = {}
    for dev in devices:
        reporter.describe(f"{dev.type} · float32 peak (large square GEMM)")
        peaks[dev.type] = measure.peak_gflops(dev, threads, preset.timing)
        reporter.note(f"{dev.type} float32 peak: {peaks[dev.type]['gflops']:.0f} GFLOP/s "
                      f"({peaks[dev.type]['source']}, n={peaks[dev.type]['n']})")

    reporter.start(sum(len(chosen) for _, _, chosen, _ in plan))
    try:
        for dev, cfg, chosen, oracle in plan:
            records = run_config(cfg, dev, chosen, preset, threads, oracle, reporter, skipped, peaks[dev.type])
            results["records"].extend(records)
            if console is not None:
                from .report import config_table

                reporter.print(config_table(records, f"{cfg.label()} on {dev.type}"))
    finally:
        reporter.stop()

    if run_charlm and preset.charlm is not None:
        results["charlm"] = run_charlm_all(preset, devices, names, reporter, skipped)
    results["wall_s"] = time.perf_counter() - started
    try:
        results["machine"]["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    return results


def run_charlm_all(preset: Preset, devices: list, names: list, reporter: Reporter, skipped: list) -> list:
    spec = preset.charlm
    text = charlm_mod.generate_text(200_000)
    rows = []
    for dev in devices:
        chosen = [n for n in names if (spec.impls is None or n in spec.impls or n == impls.BASELINE)
                  and not IMPLS[n].unavailable(dev)]
        cfg = Config(T=spec.T, B=spec.B, I=spec.embed, H=spec.H, layers=spec.layers)
        chosen = [n for n in chosen if not IMPLS[n].why_not(cfg, dev)]
        oracle = impls.ORACLE if not IMPLS[impls.ORACLE].unavailable(dev) else impls.FALLBACK_ORACLE
        if oracle not in chosen:
            chosen.append(oracle)
        reporter.start(len(chosen))
        try:
            for name in chosen:
                reporter.describe(f"char-LM · {name}")
                try:
                    row = charlm_mod.run_one(name, spec, dev, torch.float32, text)
                    row.update(status="ok", note="")
                except Exception as error:  # noqa: BLE001
                    row = dict(impl=name, label=IMPLS[name].label, device=dev.type, status="error",
                               tokens_per_s=None, note=f"{type(error).__name__}: {error}".splitlines()[0][:300])
                rows.append(row)
                reporter.advance(f"char-LM · {name}")
        finally:
            reporter.stop()
        ref = next((r for r in rows if r["impl"] == oracle and r["device"] == dev.type and r["status"] == "ok"), None)
        rtol = charlm_mod.LOSS_RTOL[torch.float32]
        for row in rows:
            if row["device"] != dev.type or row["status"] != "ok":
                row.setdefault("correct", False)
                continue
            if ref is None:
                row["correct"] = False
                row["note"] = "no reference run to check against"
                continue
            row["correct"] = all(abs(row[k] - ref[k]) <= rtol * abs(ref[k]) for k in ("loss_first", "loss_last"))
            if not row["correct"]:
                row["status"] = "wrong"
                row["tokens_per_s"] = None  # a wrong implementation is reported as wrong, not as fast
                row["note"] = (f"losses {row['loss_first']:.5f}->{row['loss_last']:.5f} vs {oracle}'s "
                               f"{ref['loss_first']:.5f}->{ref['loss_last']:.5f}")
        base = next((r for r in rows if r["impl"] == impls.BASELINE and r["device"] == dev.type
                     and r.get("tokens_per_s")), None)
        for row in rows:
            if row["device"] == dev.type:
                row["speedup_vs_nn"] = (row["tokens_per_s"] / base["tokens_per_s"]
                                        if base is not None and row.get("tokens_per_s") else None)
    return rows
