"""DistributedDataParallel (gloo, 2 processes on this machine) over lstm_ext modules.

Each rank trains on half of a batch; DDP averages the gradients. After every step the
gradients (and after the optimizer step, the parameters) must equal a single-process run over
the full batch. Runs by default (marker `distributed`, deselect with -m "not distributed").
"""

from __future__ import annotations

import datetime
import faulthandler
import gc
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import BACKENDS
from tolerances import assert_close

pytestmark = pytest.mark.distributed

F64 = torch.float64
WORLD = 2
BATCH = 6  # full batch; each rank gets BATCH // WORLD rows
STEPS = 3
COLLECTIVE_TIMEOUT_S = 120
TIMEOUT_S = 300  # a watchdog for a hang, generous for a shared, loaded 2-core machine


class Model(nn.Module):
    def __init__(self, backend):
        super().__init__()
        self.lstm = lstm_ext.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3, batch_first=True,
                                  dtype=F64, backend=backend)
        self.cell = lstm_ext.LSTMCell(6, 5, dtype=F64, backend=backend)
        self.head = nn.Linear(5, 2, dtype=F64)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        summary = torch.cat([h_n[-2], h_n[-1]], dim=1)  # last layer, both directions
        h, c = self.cell(summary)
        return self.head(h + c)


def data(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(BATCH, 7, 4, generator=g, dtype=F64)
    lengths = torch.randint(1, 8, (BATCH,), generator=g)
    y = torch.randn(BATCH, 2, generator=g, dtype=F64)
    return x, lengths, y


def train(model, rows=slice(None)):
    """STEPS of SGD; per step the parameter grads, and the parameters at the end."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    grads = []
    for step in range(STEPS):
        x, lengths, y = data(step)
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x[rows], lengths[rows]), y[rows])
        loss.backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
        optimizer.step()
    return grads, [p.detach().clone() for p in model.parameters()]


def _worker(rank, store, backend, out_dir):
    # If a worker ever hangs, its stacks land in a file the test prints.
    stacks = open(os.path.join(out_dir, f"stacks{rank}.txt"), "w")
    faulthandler.dump_traceback_later(TIMEOUT_S - 10, file=stacks)
    torch.set_num_threads(1)
    # Loopback only, and collectives that fail with an error instead of waiting forever.
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    try:
        torch.manual_seed(1 + rank)  # different init per rank: DDP must broadcast rank 0's
        model = Model(backend)
        if rank == 0:
            torch.manual_seed(0)
            model = Model(backend)
        ddp = nn.parallel.DistributedDataParallel(model)
        per_rank = BATCH // WORLD
        grads, params = train(ddp, slice(rank * per_rank, (rank + 1) * per_rank))
        torch.save({"grads": grads, "params": params}, os.path.join(out_dir, f"rank{rank}.pt"))
        # Tear DDP down while both ranks are alive. Its reducer holds the last reference to the
        # gloo group; left to the end of this function, the group was destroyed after the peer had
        # exited, and that once hung a worker in the teardown after _worker returned (the stacks
        # showed spawn's _wrap with no frame below it).
        del ddp, model
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ddp_matches_single_process(backend, tmp_path):
    ctx = mp.start_processes(_worker, args=(str(tmp_path / "store"), backend, str(tmp_path)), nprocs=WORLD,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            stacks = "\n".join((tmp_path / f"stacks{r}.txt").read_text() for r in range(WORLD))
            pytest.fail(f"DDP workers did not finish within {TIMEOUT_S} s; their stacks:\n{stacks}")

    torch.manual_seed(0)
    expected_grads, expected_params = train(Model(backend))
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for step in range(STEPS):
            for i, (a, e) in enumerate(zip(result["grads"][step], expected_grads[step])):
                assert_close(a, e, msg=lambda m, r=rank, s=step, i=i: f"rank {r}, step {s}, grad of param {i}: {m}")
        for i, (a, e) in enumerate(zip(result["params"], expected_params)):
            assert_close(a, e, msg=lambda m, r=rank, i=i: f"rank {r}, param {i} after {STEPS} steps: {m}")
