"""Save and load: state_dicts move between lstm_ext.LSTM and nn.LSTM, a whole pickled
lstm_ext.LSTM loads in a fresh process, and a checkpoint is independent of the backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import lstm_ext
from conftest import BACKENDS
from tolerances import assert_close

KWARGS = dict(input_size=5, hidden_size=7, num_layers=2, bidirectional=True, proj_size=3, batch_first=True,
              dtype=torch.float64)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _input(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _outputs(model: torch.nn.Module, x: torch.Tensor):
    out, (h, c) = model(x)
    return out, h, c


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_round_trip_through_nn_lstm(backend, tmp_path):
    torch.manual_seed(0)
    ours = lstm_ext.LSTM(**KWARGS, backend=backend)
    torch.save(ours.state_dict(), tmp_path / "ours.pt")
    theirs = torch.nn.LSTM(**KWARGS)
    theirs.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True), strict=True)
    x = _input()
    with torch.no_grad():
        for got, want in zip(_outputs(ours, x), _outputs(theirs, x)):
            assert_close(got, want)

    # and back: nn.LSTM's own checkpoint into a fresh lstm_ext.LSTM
    torch.manual_seed(1)
    theirs = torch.nn.LSTM(**KWARGS)
    torch.save(theirs.state_dict(), tmp_path / "theirs.pt")
    ours = lstm_ext.LSTM(**KWARGS, backend=backend)
    ours.load_state_dict(torch.load(tmp_path / "theirs.pt", weights_only=True), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, p in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], p), name
    with torch.no_grad():
        for got, want in zip(_outputs(ours, x), _outputs(theirs, x)):
            assert_close(got, want)


@pytest.mark.parametrize("saved_with, loaded_with", [("fused", "reference"), ("reference", "fused")])
def test_checkpoint_moves_between_backends(saved_with, loaded_with, tmp_path):
    """A training state saved from one backend continues on the other with the same results."""
    if "fused" in (saved_with, loaded_with) and lstm_ext._library.LOAD_ERROR is not None:
        pytest.skip("compiled kernels not loaded")
    torch.manual_seed(0)
    first = lstm_ext.LSTM(**KWARGS, backend=saved_with)
    opt = torch.optim.SGD(first.parameters(), lr=0.1, momentum=0.9)
    x = _input()
    for _ in range(2):  # a trained state with momentum buffers
        opt.zero_grad()
        first(x)[0].square().sum().backward()
        opt.step()
    torch.save({"model": first.state_dict(), "opt": opt.state_dict()}, tmp_path / "ckpt.pt")

    second = lstm_ext.LSTM(**KWARGS, backend=loaded_with)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    second.load_state_dict(ckpt["model"])
    opt2 = torch.optim.SGD(second.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt["opt"])

    # one more step on each: same outputs, same gradients, same new weights
    results = []
    for model, o in ((first, opt), (second, opt2)):
        o.zero_grad()
        out, (h, c) = model(x)
        (out.square().sum() + h.sum() + c.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        o.step()
        results.append([out, h, c, *grads, *[p.detach() for p in model.parameters()]])
    for got, want in zip(*results):
        assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickled_module_loads_in_a_fresh_process(backend, tmp_path):
    torch.manual_seed(0)
    model = lstm_ext.LSTM(**KWARGS, backend=backend)
    x = _input(3)
    with torch.no_grad():
        out, (h, c) = model(x)
    torch.save(model, tmp_path / "model.pt")
    torch.save({"x": x, "out": out, "h": h, "c": c}, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from tolerances import assert_close
        model = torch.load({str(tmp_path / "model.pt")!r}, weights_only=False)  # imports lstm_ext itself
        import lstm_ext
        assert type(model) is lstm_ext.LSTM, type(model)
        assert model.backend == {backend!r}, model.backend
        want = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        with torch.no_grad():
            out, (h, c) = model(want["x"])
        for got, exp in ((out, want["out"]), (h, want["h"]), (c, want["c"])):
            assert_close(got, exp, rtol=0, atol=0)  # same weights, same kernels: bitwise
        out.sum()  # and it still trains
        model(want["x"])[0].sum().backward()
        assert all(p.grad is not None for p in model.parameters())
        print("loaded", type(model).__name__, model.backend)
        """
    )
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"loaded LSTM {backend}" in done.stdout
