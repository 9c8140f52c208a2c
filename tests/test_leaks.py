"""Leaks and growth: many calls leave the resident memory flat; a very long sequence trains in
memory linear in T, with no recursion or stack use that grows with T.

RSS is the process's resident set (/proc/self/statm), measured after a warm-up so that the
allocator's pools, torch's lazy initialisation and the kernels' first-call setup are already paid.
The long-sequence runs each get a fresh process, whose peak RSS (VmHWM, reset after the warm-up
through /proc/self/clear_refs) belongs to that T alone.
Both tests are marked slow: the sanitizer job skips them (ASan's quarantine holds freed memory,
so its RSS says nothing about leaks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import lstm_ext
from conftest import FUSED_AVAILABLE, FUSED_SKIP_REASON

pytestmark = [pytest.mark.skipif(not FUSED_AVAILABLE, reason=FUSED_SKIP_REASON), pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1 << 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_ten_thousand_calls_leave_rss_flat():
    """10,000 forward+backward calls (dense LSTM, packed LSTM and LSTMCell in turn).

    Every call allocates about 100 KB of tensors (the saved gates of the dense call alone are
    16 KB): leaking any one per-call buffer would add at least 16 KB x 3,333 = 53 MB. The bound,
    24 MB over the 10,000 calls, is far above allocator noise and far below any such leak.
    """
    torch.manual_seed(0)
    lstm = lstm_ext.LSTM(16, 32, num_layers=2, bidirectional=True, proj_size=8, backend="fused")
    cell = lstm_ext.LSTMCell(16, 32, backend="fused")
    x = torch.randn(8, 4, 16, requires_grad=True)
    lengths = torch.tensor([8, 5, 3, 1])
    hx = (torch.randn(4, 32), torch.randn(4, 32))

    def call(i: int) -> None:
        kind = i % 3
        if kind == 0:
            out, (h, c) = lstm(x)
            loss = out.sum() + h.sum() + c.sum()
        elif kind == 1:
            out, _ = lstm(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False))
            loss = out.data.sum()
        else:
            h, c = cell(x[0], hx)
            loss = h.sum() + c.sum()
        loss.backward()

    for i in range(1000):  # warm-up
        call(i)
    before = _rss()
    samples = []
    for i in range(10_000):
        call(i)
        if i % 2500 == 2499:
            samples.append(_rss())
    growth = samples[-1] - before
    print(f"RSS after warm-up {before / MB:.1f} MB; after 2.5k/5k/7.5k/10k calls: "
          + ", ".join(f"{s / MB:.1f}" for s in samples) + f" MB; growth {growth / MB:+.2f} MB")
    assert growth < 24 * MB, f"RSS grew by {growth / MB:.1f} MB over 10,000 calls"
    # gradients stayed accumulating into the same tensors, not new ones
    assert x.grad is not None and all(p.grad is not None for p in lstm.parameters())


LONG_SCRIPT = r"""
import json, sys, threading
import torch
import lstm_ext

T = int(sys.argv[1])
torch.manual_seed(0)
lstm = lstm_ext.LSTM(16, 64, backend="fused")   # B = 1, H = 64, float32
def train(steps, report):
    x = torch.randn(steps, 1, 16, requires_grad=True)
    out, (h, c) = lstm(x)
    loss = out.square().mean() + h.sum() + c.sum()
    # the autograd graph has a handful of nodes, whatever T is: no per-step nodes to recurse over
    nodes, todo = set(), [loss.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in nodes:
            nodes.add(fn)
            todo.extend(f for f, _ in fn.next_functions)
    loss.backward()
    report.update(nodes=len(nodes), finite=bool(torch.isfinite(out).all() and torch.isfinite(x.grad).all()
                                                 and all(torch.isfinite(p.grad).all() for p in lstm.parameters())))

def status_kb(key):
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(key + ":")))

warm = {}
train(100, warm)
lstm.zero_grad()
# Reset the peak (VmHWM) to the current RSS, so that the peak read afterwards is this run's alone:
# a peak left over from importing torch could otherwise hide the whole run.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status_kb("VmRSS")
report = {}
# A thread with a 1 MB stack: recursion or stack buffers that grow with T would overflow it.
threading.stack_size(1 << 20)
worker = threading.Thread(target=train, args=(T, report))
worker.start(); worker.join()
report.update(T=T, peak_kb=status_kb("VmHWM"), base_kb=base)
print("LONG" + json.dumps(report))
"""


def _long_run(T: int) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", LONG_SCRIPT, str(T)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"T={T}: exit {done.returncode}\n{done.stderr[-3000:]}"
    line = next(line for line in done.stdout.splitlines() if line.startswith("LONG"))
    return json.loads(line[4:])


# What one step of a training call keeps alive at its peak (the backward), B = 1, float32, H = 64,
# I = 16: the input and its gradient (2 I), the saved gates and their gradient dgates (4H + 4H),
# the saved cell states (H), the output, its gradient and the square's temporary (3 H), and the
# gathered h_{t-1} for dW_hh (H): (2*16 + 8*64 + 64 + 3*64 + 64) * 4 B = 3,456 B of tensors.
# Resident memory also holds what malloc keeps of freed forward temporaries, a little above the
# tensors' own bytes (the measured figure is in docs/performance.md). Stated bound:
# 6 KB a step, about what one more per-step copy of the gates (1 KB) kept alive would reach.
BYTES_PER_STEP_BOUND = 6144


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs /proc/self/clear_refs (Linux)")
def test_long_sequence_trains_in_linear_memory():
    runs = {T: _long_run(T) for T in (25_000, 50_000, 100_000)}
    growth = {T: (r["peak_kb"] - r["base_kb"]) * 1024 for T, r in runs.items()}
    print("peak RSS above the warm-up, T=25k/50k/100k: "
          + ", ".join(f"{growth[T] / MB:.1f} MB ({growth[T] / T:.0f} B/step)" for T in sorted(growth)))
    for T, r in runs.items():
        assert r["finite"], f"T={T}: non-finite output or gradient"
    # the autograd graph does not grow with T (one node per layer call, none per step)
    assert len({r["nodes"] for r in runs.values()}) == 1, {T: r["nodes"] for T, r in runs.items()}
    # linear: doubling T doubles the memory (slopes of the two doublings within 25 %)
    slope_low = (growth[50_000] - growth[25_000]) / 25_000
    slope_high = (growth[100_000] - growth[50_000]) / 50_000
    assert 0.75 <= slope_high / slope_low <= 1.25, (slope_low, slope_high)
    assert slope_high <= BYTES_PER_STEP_BOUND, f"{slope_high:.0f} B a step"
    assert growth[100_000] <= 100_000 * BYTES_PER_STEP_BOUND
