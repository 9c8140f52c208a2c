"""Thread safety and determinism on CPU.

- Several Python threads run forward + backward of different inputs through the SAME module at
  once; each thread's outputs and gradients equal a sequential run of the same inputs.
- The same input twice gives bitwise-equal outputs and gradients (torch.equal).
"""

from __future__ import annotations

import threading

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import BACKENDS
from tolerances import assert_close

F64 = torch.float64
N_THREADS = 6
ROUNDS = 4


def _lstm(backend, dtype):
    torch.manual_seed(0)
    return lstm_ext.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, dtype=dtype, backend=backend)


def _job_inputs(job, dtype):
    """Different shapes per job (batch, length, packed or not), so buffers sized by one call can't fit all."""
    g = torch.Generator().manual_seed(100 + job)
    T, B = 3 + job % 5, 1 + (job * 3) % 5
    x = torch.randn(T, B, 5, generator=g, dtype=F64).to(dtype)
    h0 = torch.randn(4, B, 3, generator=g, dtype=F64).to(dtype)
    c0 = torch.randn(4, B, 6, generator=g, dtype=F64).to(dtype)
    lengths = torch.randint(1, T + 1, (B,), generator=g) if job % 2 else None
    return x, h0, c0, lengths


def _lstm_job(module, job, dtype):
    x, h0, c0, lengths = (t.clone() if t is not None else None for t in _job_inputs(job, dtype))
    for t in (x, h0, c0):
        t.requires_grad_()
    inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, (h, c) = module(inp, (h0, c0))
    out = out if lengths is None else out.data
    g = torch.Generator().manual_seed(job)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=F64).to(dtype)).sum() for o in (out, h, c))
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, [x, h0, c0, *params])  # no shared .grad accumulation
    return [out.detach(), h.detach(), c.detach(), *grads]


def _cell(backend, dtype):
    torch.manual_seed(0)
    return lstm_ext.LSTMCell(5, 6, dtype=dtype, backend=backend)


def _cell_job(module, job, dtype):
    g = torch.Generator().manual_seed(200 + job)
    B = 1 + (job * 3) % 7
    x, h0, c0 = (torch.randn(B, n, generator=g, dtype=F64).to(dtype).requires_grad_() for n in (5, 6, 6))
    hx = (h0, c0)
    for _ in range(3):  # a few steps, so the graph is deeper than one op
        hx = module(x, hx)
    h, c = hx
    loss = (h * torch.randn(h.shape, generator=g, dtype=F64).to(dtype)).sum() + c.sum()
    grads = torch.autograd.grad(loss, [x, h0, c0, *module.parameters()])
    return [h.detach(), c.detach(), *grads]


def _run_threads(fn, module, dtype, jobs):
    results, errors = {}, []
    barrier = threading.Barrier(N_THREADS)

    def worker(tid):
        try:
            barrier.wait()
            for job in jobs[tid::N_THREADS]:
                results[job] = fn(module, job, dtype)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(tid,)) for tid in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("kind", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_match_sequential(backend, dtype, kind):
    make, fn = (_lstm, _lstm_job) if kind == "LSTM" else (_cell, _cell_job)
    module = make(backend, dtype)
    jobs = list(range(N_THREADS * ROUNDS))
    sequential = {job: fn(module, job, dtype) for job in jobs}
    threaded = _run_threads(fn, module, dtype, jobs)
    assert sorted(threaded) == jobs
    for job in jobs:
        for i, (a, e) in enumerate(zip(threaded[job], sequential[job])):
            assert_close(a, e, msg=lambda m, job=job, i=i: f"job {job}, tensor {i}: {m}")


@pytest.mark.parametrize("kind", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("dtype", [torch.float32, F64, torch.bfloat16], ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic(backend, dtype, kind):
    make, fn = (_lstm, _lstm_job) if kind == "LSTM" else (_cell, _cell_job)
    module = make(backend, dtype)
    for job in (0, 1, 7):
        first, second = fn(module, job, dtype), fn(module, job, dtype)
        for i, (a, b) in enumerate(zip(first, second)):
            assert torch.equal(a, b), f"job {job}, tensor {i}: two runs differ, max |diff| {(a - b).abs().max()}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_param_grad_accumulation(backend):
    """.backward() into the module's .grad: the same twice gives bitwise-equal grads."""
    module = _lstm(backend, torch.float32)
    x = torch.randn(7, 4, 5, generator=torch.Generator().manual_seed(3))
    runs = []
    for _ in range(2):
        module.zero_grad(set_to_none=True)
        out, (h, c) = module(x)
        (out.square().sum() + h.sum() + c.sum()).backward()
        runs.append([p.grad.clone() for p in module.parameters()])
    for i, (a, b) in enumerate(zip(*runs)):
        assert torch.equal(a, b), f"parameter {i}: grads differ between identical runs"
