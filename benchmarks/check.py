"""Correctness before speed: every implementation against the reference, on the timed inputs.

Forward mode compares the output sequence (under ``torch.no_grad``). Train mode compares the
output and the gradients of one backward pass with the workload's ``grad_output``: the input's
and every parameter's the implementation exposes under ``nn.LSTM``'s names.

Tolerances are the project's table, ``tests/tolerances.py`` (by dtype). Outputs are compared
as they are (``|h| < 1``); for a gradient the absolute tolerance is scaled by the largest
magnitude of the expected gradient, since a weight gradient sums ``T*B`` terms and its small
entries carry the rounding of the large ones. An implementation that fails is reported with
``correct=false`` and is not timed.

A preset with ``check="float64"`` (the LSTM variants) compares instead against the oracle run in
float64 (:func:`compare_to_truth`): a tensor passes when its error is at most ``4x`` the error of
the oracle in the shape's own dtype, plus ``1e-5`` (scaled like the tolerances for gradients):
as accurate as plain PyTorch in that dtype. Over 100 steps a float32 layer-norm LSTM drifts
past the float32 tolerance even in plain PyTorch, so the table alone would call it wrong.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from .impls import Built
from .measure import sync
from .workload import Workload, input_data, output_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tolerances() -> dict:
    path = os.path.join(REPO, "tests", "tolerances.py")
    spec = importlib.util.spec_from_file_location("_lstm_ext_tolerances", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TOLERANCES


TOLERANCES = _load_tolerances()


@dataclass
class Outputs:
    output: torch.Tensor
    grads: dict = field(default_factory=dict)  # "input" and nn.LSTM parameter names
    first_call_s: float = 0.0


@dataclass
class Verdict:
    correct: bool
    max_abs_err: float
    worst: str  # which tensor had the largest error relative to its tolerance
    message: str = ""


def zero_grads(built: Built) -> None:
    for p in built.params.values():
        p.grad = None
    if built.module is not None:
        for p in built.module.parameters():
            p.grad = None


def run_once(built: Built, wl: Workload, mode: str) -> Outputs:
    """One call in ``mode`` on a fresh copy of the workload's input; outputs detached."""
    train = mode == "train"
    inp = wl.make_input(requires_grad=train)
    zero_grads(built)
    # one seed for every implementation: a variant's dropout and zoneout masks are then the same
    with torch.random.fork_rng(devices=[wl.device] if wl.device.type == "cuda" else []):
        torch.manual_seed(wl.seed)
        start = time.perf_counter()
        with built.scope():
            if train:
                out = output_data(built.forward(inp))
                out.backward(wl.grad_output)
            else:
                with torch.no_grad():
                    out = output_data(built.forward(inp))
        sync(wl.device)
        elapsed = time.perf_counter() - start
    grads = {}
    if train:
        grads["input"] = input_data(inp).grad
        grads.update({name: p.grad for name, p in built.params.items()})
    return Outputs(out.detach(), {k: (None if v is None else v.detach()) for k, v in grads.items()}, elapsed)


def _compare(name: str, actual: Optional[torch.Tensor], expected: torch.Tensor, scale_atol: bool):
    """(ok, max abs error, error / allowed, message) for one tensor."""
    if actual is None:
        return False, float("inf"), float("inf"), f"{name}: no gradient"
    if actual.shape != expected.shape:
        return False, float("inf"), float("inf"), f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOLERANCES[expected.dtype]
    a, e = actual.double().cpu(), expected.double().cpu()
    atol = tol["atol"] * (max(1.0, e.abs().max().item()) if scale_atol and e.numel() else 1.0)
    diff = (a - e).abs()
    allowed = atol + tol["rtol"] * e.abs()
    if not torch.isfinite(a).all():
        return False, float("inf"), float("inf"), f"{name}: non-finite values"
    err = diff.max().item() if diff.numel() else 0.0
    ratio = (diff / allowed).max().item() if diff.numel() else 0.0
    ok = bool((diff <= allowed).all())
    return ok, err, ratio, "" if ok else f"{name}: max abs err {err:.3g} (rtol {tol['rtol']:g}, atol {atol:.3g})"


def compare(actual: Outputs, expected: Outputs) -> Verdict:
    checks = [("output", actual.output, expected.output, False)]
    for name, grad in expected.grads.items():
        if grad is None:
            continue
        if name == "input" or name in actual.grads:
            checks.append((f"grad {name}", actual.grads.get(name), grad, True))
    correct, max_err, worst_ratio, worst, messages = True, 0.0, -1.0, "", []
    for name, a, e, scale in checks:
        ok, err, ratio, message = _compare(name, a, e, scale)
        if name == "output":
            max_err = err
        if ratio > worst_ratio:
            worst_ratio, worst = ratio, name
        if not ok:
            correct = False
            messages.append(message)
    return Verdict(correct, max_err, worst, "; ".join(messages[:2]))


TRUTH_FACTOR = 4.0  # an implementation may be this many times less accurate than the oracle ...
TRUTH_SLACK = 1e-5  # ... plus this much (scaled by the largest expected gradient)


def _error(actual: Optional[torch.Tensor], truth: torch.Tensor) -> float:
    if actual is None or actual.shape != truth.shape:
        return float("inf")
    diff = (actual.double().cpu() - truth.double().cpu()).abs()
    if not torch.isfinite(diff).all():
        return float("inf")
    return diff.max().item() if diff.numel() else 0.0


def compare_to_truth(actual: Outputs, truth: Outputs, oracle: Outputs) -> Verdict:
    """``actual`` against the float64 ``truth``, allowing what the oracle in ``actual``'s dtype errs."""
    checks = [("output", actual.output, truth.output, oracle.output, False)]
    checks += [(f"grad {name}", actual.grads.get(name), grad, oracle.grads.get(name), True)
               for name, grad in truth.grads.items()
               if grad is not None and (name == "input" or name in actual.grads)]
    correct, max_err, worst_ratio, worst, messages = True, 0.0, -1.0, "", []
    for name, a, e, o, scale in checks:
        err = _error(a, e)
        slack = TRUTH_SLACK * (max(1.0, e.abs().max().item()) if scale and e.numel() else 1.0)
        allowed = (TRUTH_FACTOR * _error(o, e) if o is not None else 0.0) + slack
        ratio = err / allowed
        if name == "output":
            max_err = err
        if ratio > worst_ratio:
            worst_ratio, worst = ratio, name
        if not err <= allowed:
            correct = False
            messages.append(f"{name}: max abs err {err:.3g} from float64 > {allowed:.3g}")
    return Verdict(correct, max_err, worst, "; ".join(messages[:2]))
