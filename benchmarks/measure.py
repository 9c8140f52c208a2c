"""Timing, peak memory, the LSTM's GEMM flop count, the torch.mm roofline and the machine's peak.

Timing
    The implementations of one shape and mode are timed round-robin (``time_round_robin``): one
    block of calls of each per round, so that a slow spell of a shared machine falls on all of
    them alike and the ratios of one run stay comparable. A sample is a block's time per call
    (a synchronisation closes each block on CUDA). Median and IQR (p75 - p25) are computed over
    the samples. ``time_fn`` times a single function (the GEMM roofline) with
    ``torch.utils.benchmark.Timer.blocked_autorange`` on the CPU and CUDA events on CUDA.

Peak training memory
    CUDA: ``torch.cuda.max_memory_allocated`` over one step, minus what was allocated before it.
    CPU: ``torch.profiler.profile(profile_memory=True)`` over one step: every allocation and free
    of c10's CPU allocator (all ATen tensors, the fused kernel's own buffers and oneDNN's
    workspace tensors included) is an event; the peak is the maximum of their running sum,
    counted from the step's start. The weights and the input exist before the step and are not
    counted; what the step keeps (the gradients) is. Memory a library mallocs itself, outside
    c10's allocator, is not seen. (CPU allocator statistics like CUDA's do not exist in torch.)

Flops and roofline
    Only the LSTM's GEMMs are counted, per layer and direction with ``N`` rows (``T*B``, or the
    packed total), input width ``I_l``, ``P = proj_size or H``::

        forward = 2*N*4H*(I_l + P)  [+ 2*N*P*H with a projection]      train = 3 * forward

    (each GEMM has two of the same size in backward: input and weight gradients); a GRU has 3H
    gate rows where an LSTM has 4H. ``gemm_s`` is
    the time ``torch.mm`` takes for exactly those GEMMs (same shapes, same dtype and device, the
    recurrent ones as T separate small GEMMs since they depend on each other), timed in the same
    run; ``roofline_fraction = gemm_s / median_s``: 1.0 means the implementation costs no more
    than its GEMMs alone.

Peak
    ``peak_gflops``: the machine's float32 multiply-add rate, as the best rate of one large square
    GEMM (n = 2048 on the CPU, 8192 on CUDA with TF32 off), its fastest sample, through every
    library torch offers for it: MKL (``torch.mm``) and oneDNN (``mkldnn::_linear_pointwise``) on
    the CPU, cuBLAS on CUDA.
    Measured once per run and device; ``peak_fraction = gflops / peak``. The torch.mm roofline
    above is not a peak: on AMD CPUs MKL's sgemm takes its AVX2 path and reaches about half of
    what oneDNN's AVX-512 kernels do (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections import Counter
from typing import Callable, Optional

import torch
import torch.utils.benchmark as tbench

from .configs import Config, Timing


CUDA_MIN_WARMUP = 3  # lazy init, cuBLAS handles, allocator growth: never time the first CUDA calls

# ---- timing ---------------------------------------------------------------------------------


def _quantile(sorted_values: list, q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(times: list) -> dict:
    """median, IQR, best and sample count of per-call times (seconds)."""
    values = sorted(times)
    return dict(
        median_s=statistics.median(values),
        min_s=values[0],
        iqr_s=_quantile(values, 0.75) - _quantile(values, 0.25),
        n_samples=len(values),
    )


def time_cpu(fn: Callable[[], object], threads: int, timing: Timing) -> dict:
    start = time.perf_counter()
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    measurement = timer.blocked_autorange(min_run_time=timing.min_run_time)
    times = list(measurement.times)
    number = measurement.number_per_run
    while len(times) < timing.min_samples:
        if len(times) >= 3 and time.perf_counter() - start > timing.max_run_time:
            break  # a very slow step (or a machine shared with other work): 3 samples must do
        times.extend(timer.timeit(number).times)
    return summarize(times)


def time_cuda(fn: Callable[[], object], timing: Timing) -> dict:
    torch.cuda.synchronize()
    times: list = []
    spent = 0.0
    while spent < timing.min_run_time or len(times) < timing.min_samples:
        if len(times) >= 3 and spent > timing.max_run_time:
            break
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end) / 1e3
        times.append(elapsed)
        spent += elapsed
    return summarize(times)


def time_round_robin(fns: dict, device: torch.device, threads: int, timing: Timing) -> dict:
    """{name: median, IQR, samples} of each step in ``fns``, timed in turns.

    One block of calls of each implementation per round (the first in the round rotates), so a
    slow spell of a shared machine falls on every implementation alike instead of on whichever
    happened to run then. Blocks last about ``min_run_time / min_samples``; rounds go on until
    every implementation has ``min_samples`` blocks and ``min_run_time`` each, or, past
    ``max_run_time`` each, at least 3. Each sample is a block's time per call."""
    names = list(fns)
    cuda = device.type == "cuda"

    def block(fn, number: int) -> float:
        if cuda:
            torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(number):
            fn()
        if cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - began) / number

    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for fn in fns.values():
            for _ in range(max(timing.warmup, CUDA_MIN_WARMUP) if cuda else timing.warmup):
                fn()
        block_s = timing.min_run_time / timing.min_samples
        number = {name: max(1, round(block_s / max(block(fns[name], 1), 1e-9))) for name in names}
        times: dict = {name: [] for name in names}
        spent = 0.0
        rounds = 0
        while True:
            enough = min(len(t) for t in times.values()) >= timing.min_samples and spent >= timing.min_run_time * len(names)
            over = min(len(t) for t in times.values()) >= 3 and spent > timing.max_run_time * len(names)
            if enough or over:
                break
            began = time.perf_counter()
            for k in range(len(names)):
                name = names[(rounds + k) % len(names)]
                times[name].append(block(fns[name], number[name]))
            spent += time.perf_counter() - began
            rounds += 1
    finally:
        torch.set_num_threads(threads_before)
    return {name: summarize(t) for name, t in times.items()}


def time_fn(fn: Callable[[], object], device: torch.device, threads: int, timing: Timing) -> dict:
    if device.type == "cuda":
        for _ in range(max(timing.warmup, CUDA_MIN_WARMUP)):
            fn()
        return time_cuda(fn, timing)
    for _ in range(timing.warmup):
        fn()
    return time_cpu(fn, threads, timing)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- memory ---------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ writes to stderr (kineto's start/stop lines, allocator warnings) for a moment."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_memory_events(prof) -> Optional[list]:
    """(start_ns, bytes) of the CPU allocator events a profiler recorded, or None if unreadable."""
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:
        return None
    out = []
    for event in events:
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU:
            out.append((event.start_ns(), event.nbytes()))
    return sorted(out)


def peak_from_events(events: list) -> int:
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


def peak_memory(step: Callable[[], object], device: torch.device, reset: Callable[[], None]) -> Optional[int]:
    """Peak bytes one call of ``step`` allocates above what existed before it (see module doc)."""
    reset()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    events = cpu_memory_events(prof)
    return None if events is None else int(peak_from_events(events))


def profiled_op_names(fn: Callable[[], object]) -> set:
    """Names of the ops one call of ``fn`` runs (CPU profiler), to verify which path ran."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
    return {event.name for event in prof.events()}


# ---- flops and GEMMs ------------------------------------------------------------------------


def layer_inputs(cfg: Config) -> list:
    """Input width of each layer (the same for both directions)."""
    dirs = 2 if cfg.bidirectional else 1
    return [cfg.I] + [dirs * cfg.P] * (cfg.layers - 1)


def gates(cfg: Config) -> int:
    """Gate blocks per cell: 3 for a GRU, 4 for an LSTM (a variant's extra work is not counted)."""
    return 3 if cfg.cell == "gru" else 4


def forward_flops(cfg: Config, batch_sizes: list) -> int:
    n = sum(batch_sizes)
    dirs = 2 if cfg.bidirectional else 1
    total = 0
    for in_size in layer_inputs(cfg):
        per_dir = 2 * n * gates(cfg) * cfg.H * (in_size + cfg.P)
        if cfg.proj_size:
            per_dir += 2 * n * cfg.P * cfg.H
        total += dirs * per_dir
    return total


def flops(cfg: Config, batch_sizes: list, mode: str) -> int:
    return forward_flops(cfg, batch_sizes) * (3 if mode == "train" else 1)


def gemm_plan(cfg: Config, batch_sizes: list, mode: str) -> Counter:
    """{(m, k, n): count} of the GEMMs (``[m, k] @ [k, n]``) an LSTM (GRU) of this shape needs."""
    plan: Counter = Counter()
    n_rows = sum(batch_sizes)
    g, h, p = gates(cfg) * cfg.H, cfg.H, cfg.P
    dirs = 2 if cfg.bidirectional else 1
    for in_size in layer_inputs(cfg):
        for _ in range(dirs):
            plan[(n_rows, in_size, g)] += 1  # input projection of all steps at once
            for bs in batch_sizes:
                plan[(bs, p, g)] += 1  # recurrent: h_{t-1} @ W_hh^T, one step at a time
                if cfg.proj_size:
                    plan[(bs, h, p)] += 1  # projection of h_t
            if mode == "train":
                plan[(n_rows, g, in_size)] += 1  # grad input
                plan[(g, n_rows, in_size)] += 1  # grad W_ih
                plan[(g, n_rows, p)] += 1  # grad W_hh (all steps at once)
                for bs in batch_sizes:
                    plan[(bs, g, p)] += 1  # grad h_{t-1}, step by step
                    if cfg.proj_size:
                        plan[(bs, p, h)] += 1  # grad through the projection
                if cfg.proj_size:
                    plan[(p, n_rows, h)] += 1  # grad W_hr
    return plan


def plan_flops(plan: Counter) -> int:
    return sum(2 * m * k * n * count for (m, k, n), count in plan.items())


def peak_gflops(device: torch.device, threads: int, timing: Timing) -> dict:
    """The best float32 GEMM rate here (see the module docstring): {"gflops", "source", "n"}."""
    n = 8192 if device.type == "cuda" else 2048
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)
    candidates = {"torch.mm": lambda: torch.mm(a, b, out=out)}
    linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if device.type == "cpu" else None
    if linear is not None and torch.backends.mkldnn.is_available():
        candidates["oneDNN"] = lambda: linear(a, b, None, "none", [], "")
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        # a peak is the best the machine did: the fastest sample, not the median
        rates = {name: 2 * n**3 / time_fn(fn, device, threads, timing)["min_s"] / 1e9
                 for name, fn in candidates.items()}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    best = max(rates, key=rates.get)
    return dict(gflops=rates[best], source=best, n=n, rates=rates)


def gemm_time(plan: Counter, device: torch.device, dtype: torch.dtype, threads: int, timing: Timing) -> dict:
    """Time ``torch.mm`` on every GEMM of ``plan`` (preallocated operands and outputs)."""
    gen = torch.Generator().manual_seed(1)
    operands = []
    for (m, k, n), count in plan.items():
        a = torch.randn(m, k, generator=gen).to(device=device, dtype=dtype)
        b = torch.randn(k, n, generator=gen).to(device=device, dtype=dtype)
        out = torch.empty(m, n, device=device, dtype=dtype)
        operands.append((a, b, out, count))

    def run() -> None:
        for a, b, out, count in operands:
            for _ in range(count):
                torch.mm(a, b, out=out)

    return time_fn(run, device, threads, timing)
