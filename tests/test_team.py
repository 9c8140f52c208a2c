"""The CPU time loops run as a team of threads (csrc/cpu/step_team.h): the LSTM's forward and
backward, the GRU's backward (its forward keeps the plain loop, which measured faster).

With more than one thread, no projection, more than 4 rows and at least 2 Mflop per step, each
thread owns a slice of the hidden units for the whole loop and does that slice's recurrent GEMM
and gate math; the threads meet once per step. The other tests use small shapes, which keep
the plain loop, so these shapes are chosen to take the team: B >= 16 and 2*B*gates*H*H >= 2**21
(4 gate blocks for the LSTM, 3 for the GRU).
Hidden sizes that are not a multiple of the 16-unit slice alignment leave a short last slice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstm_ext
from conftest import copy_weights, make_lstm_pair, requires_fused
from tolerances import assert_close, assert_close_to_truth

pytestmark = requires_fused()

F64 = torch.float64

# name -> (LSTM kwargs, T, B, packed, with hx)
CASES = {
    "dense": (dict(input_size=40, hidden_size=136), 5, 16, False, False),
    "bi-2-layers-hx": (dict(input_size=24, hidden_size=128, num_layers=2, bidirectional=True), 4, 17, False, True),
    "packed-bi-hx": (dict(input_size=24, hidden_size=144, bidirectional=True), 6, 16, True, True),
    "batch-first-no-bias": (dict(input_size=32, hidden_size=128, batch_first=True, bias=False), 4, 20, False, False),
}


@pytest.fixture(params=[2, 3], ids=lambda n: f"threads{n}")
def threads(request):
    """2 threads (this machine's cores) and 3 (a team bigger than the machine: slices of 48 units)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _inputs(kwargs, T, B, packed, with_hx, gen, states=("h0", "c0")):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    H = kwargs["hidden_size"]
    shape = (B, T, kwargs["input_size"]) if kwargs.get("batch_first") else (T, B, kwargs["input_size"])
    leaves = {"x": torch.randn(*shape, generator=gen, dtype=F64)}
    if with_hx:
        for name in states:
            leaves[name] = torch.randn(layers, B, H, generator=gen, dtype=F64)
    lengths = torch.randint(1, T + 1, (B,), generator=gen) if packed else None
    if packed:
        lengths[0] = T  # the longest sequence sets the padded length
    return leaves, lengths


def _run(module, leaves, lengths, dtype, batch_first):
    """Output, h_n, c_n and every gradient of a weighted loss, as float64 tensors."""
    leaves = {k: v.detach().to(dtype).requires_grad_() for k, v in leaves.items()}
    x = leaves["x"]
    inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False) if lengths is not None else x
    if isinstance(module, (torch.nn.GRU, lstm_ext.GRU)):
        out, h_n = module(inp, leaves.get("h0"))
        states = {"h_n": h_n}
    else:
        out, (h_n, c_n) = module(inp, (leaves["h0"], leaves["c0"]) if "h0" in leaves else None)
        states = {"h_n": h_n, "c_n": c_n}
    out = out.data if lengths is not None else out
    results = {"output": out, **states}
    g = torch.Generator().manual_seed(7)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=F64).to(dtype)).sum() for t in results.values())
    grads = torch.autograd.grad(loss, [*leaves.values(), *module.parameters()])
    names = [*(f"grad_{k}" for k in leaves), *(f"grad_{n}" for n, _ in module.named_parameters())]
    results.update(zip(names, grads))
    return {k: v.detach() for k, v in results.items()}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
def test_team_matches_nn(case, dtype, threads, gen):
    kwargs, T, B, packed, with_hx = CASES[case]
    ref, ours = make_lstm_pair("fused", dtype=dtype, gen=gen, **kwargs)
    leaves, lengths = _inputs(kwargs, T, B, packed, with_hx, gen)
    batch_first = kwargs.get("batch_first", False)
    expected = _run(ref, leaves, lengths, dtype, batch_first)
    actual = _run(ours, leaves, lengths, dtype, batch_first)
    if dtype == F64:
        for key in expected:
            assert_close(actual[key], expected[key], msg=lambda m, key=key: f"{key}: {m}")
        return
    # float32: the float64 run above holds the team's logic to nn.LSTM; here it must be as
    # accurate as nn.LSTM in float32. Over 2 bidirectional layers the weight gradients of both
    # are ~4e-5 from the float64 truth, past the table's 1e-5, so neither bounds the other.
    truth = _run(ref.double(), leaves, lengths, F64, batch_first)
    for key in expected:
        assert_close_to_truth(actual[key], truth[key], expected[key], name=key)


def _check_bfloat16(nn_cls, ours_cls, case, gen, states=("h0", "c0")):
    """bfloat16 through the team: as close to the float64 truth as torch's own bfloat16 run."""
    kwargs, T, B, packed, with_hx = case
    ref64 = nn_cls(**kwargs, dtype=F64)
    with torch.no_grad():  # bfloat16-representable weights, so all three runs see the same model
        for p in ref64.parameters():
            p.copy_(p.to(torch.bfloat16).to(F64))
    ref16 = copy_weights(ref64, nn_cls(**kwargs, dtype=torch.bfloat16))
    ours16 = copy_weights(ref64, ours_cls(**kwargs, dtype=torch.bfloat16, backend="fused"))
    leaves, lengths = _inputs(kwargs, T, B, packed, with_hx, gen, states=states)
    leaves = {k: v.to(torch.bfloat16).to(F64) for k, v in leaves.items()}
    truth = _run(ref64, leaves, lengths, F64, False)
    plain = _run(ref16, leaves, lengths, torch.bfloat16, False)
    actual = _run(ours16, leaves, lengths, torch.bfloat16, False)
    for key in truth:
        assert_close_to_truth(actual[key], truth[key], plain[key], name=key)


@pytest.mark.parametrize("case", ["dense", "packed-bi-hx"])
def test_team_bfloat16_close_to_truth(case, threads, gen):
    _check_bfloat16(torch.nn.LSTM, lstm_ext.LSTM, CASES[case], gen)


def test_team_concurrent_calls_match_sequential(gen):
    """Python threads calling the same module at once: each runs its own team; results bitwise equal."""
    kwargs, T, B, packed, with_hx = CASES["packed-bi-hx"]
    _, ours = make_lstm_pair("fused", dtype=torch.float32, gen=gen, **kwargs)
    jobs = [_inputs(kwargs, T, B + j, packed, with_hx, gen) for j in range(4)]
    sequential = [_run(ours, leaves, lengths, torch.float32, False) for leaves, lengths in jobs]
    concurrent, errors = [None] * len(jobs), []
    start = threading.Barrier(len(jobs))

    def worker(j):
        try:
            start.wait()
            concurrent[j] = _run(ours, *jobs[j], torch.float32, False)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=worker, args=(j,)) for j in range(len(jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not errors, errors
    for seq, conc in zip(sequential, concurrent):
        for key in seq:
            assert torch.equal(conc[key], seq[key]), key


_PLAIN_LOOP = """
import sys, torch, lstm_ext
torch.set_num_threads(2)
state, leaves = torch.load(sys.argv[1])
m = lstm_ext.LSTM(24, 144, bidirectional=True, dtype=torch.float64)
m.load_state_dict(state)
x = leaves["x"].requires_grad_()
out, (h, c) = m(x)
loss = out.sum() + h.sum() + c.sum()
grads = torch.autograd.grad(loss, [x, *m.parameters()])
torch.save([out.detach(), h.detach(), c.detach(), *grads], sys.argv[2])
"""


def test_team_matches_plain_loop(tmp_path, gen):
    """LSTM_EXT_TEAM=0 keeps the plain loop (for comparing the two): both agree in float64."""
    torch.set_num_threads(2)
    kwargs = dict(input_size=24, hidden_size=144, bidirectional=True)
    _, ours = make_lstm_pair("fused", dtype=F64, gen=gen, **kwargs)
    leaves = {"x": torch.randn(6, 16, 24, generator=gen, dtype=F64)}
    torch.save([ours.state_dict(), leaves], tmp_path / "in.pt")
    env = {**os.environ, "LSTM_EXT_TEAM": "0"}
    subprocess.run([sys.executable, "-c", _PLAIN_LOOP, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
                   check=True, env=env, timeout=300)
    plain = torch.load(tmp_path / "out.pt")
    x = leaves["x"].clone().requires_grad_()
    out, (h, c) = ours(x)
    team = [out, h, c, *torch.autograd.grad(out.sum() + h.sum() + c.sum(), [x, *ours.parameters()])]
    assert len(team) == len(plain)
    for a, b in zip(team, plain):
        assert_close(a.detach(), b)


# name -> (GRU kwargs, T, B, packed, with hx): 2*B*3H*H >= 2**21 with B >= 16 needs H >= 148.
GRU_CASES = {
    "dense": (dict(input_size=40, hidden_size=168), 5, 16, False, False),
    "packed-bi-2-layers-hx": (dict(input_size=24, hidden_size=160, num_layers=2, bidirectional=True), 6, 17, True, True),
    "batch-first-no-bias": (dict(input_size=32, hidden_size=160, batch_first=True, bias=False), 4, 20, False, True),
}


@pytest.mark.parametrize("case", list(GRU_CASES))
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
def test_gru_team_matches_nn(case, dtype, threads, gen):
    kwargs, T, B, packed, with_hx = GRU_CASES[case]
    ref = torch.nn.GRU(**kwargs, dtype=dtype)
    ours = copy_weights(ref, lstm_ext.GRU(**kwargs, dtype=dtype, backend="fused"))
    leaves, lengths = _inputs(kwargs, T, B, packed, with_hx, gen, states=("h0",))
    batch_first = kwargs.get("batch_first", False)
    expected = _run(ref, leaves, lengths, dtype, batch_first)
    actual = _run(ours, leaves, lengths, dtype, batch_first)
    for key in expected:
        assert_close(actual[key], expected[key], msg=lambda m, key=key: f"{key}: {m}")


def test_gru_team_bfloat16_close_to_truth(threads, gen):
    _check_bfloat16(torch.nn.GRU, lstm_ext.GRU, GRU_CASES["packed-bi-2-layers-hx"], gen, states=("h0",))
