"""lstm_ext.GRU (fused) against torch.nn.GRU on the CPU: forward + backward, and inference.

    python benchmarks/gru.py --threads 2 --out bench-gru.json

``nn.GRU`` on the CPU runs ATen's composite GRU (torch has no oneDNN GRU; the profiler check
below records which ops ran). For each shape, in one process and one run, round-robin (every
implementation timed once per round, the median over rounds kept, so a load spike on a shared
machine hits all of them alike):

- ``fused``: ``lstm_ext.GRU(backend="fused")``;
- ``nn``: ``torch.nn.GRU``, the baseline of the ratios;
- ``reference``: ``lstm_ext.GRU(backend="reference")``: plain PyTorch, and the oracle.

Modes: ``train`` (forward, then backward of a fixed random ``grad_output``, input requiring grad)
and ``inference`` (forward under ``torch.no_grad``). Ratios: ``speedup = time(nn) / time(impl)``.
Before anything is timed, every implementation's output (and in train mode the gradients of the
input and of every parameter) is checked against the reference with the project's tolerances
(``tests/tolerances.py``, the gradients' absolute tolerance scaled by their largest magnitude,
as ``benchmarks/check.py`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a script: import lstm_ext and the suite from the repository
    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0]) == _here:
        sys.path.pop(0)
    sys.path.insert(0, os.path.dirname(_here))

import torch
from torch.utils.benchmark import Timer

SHAPES = {  # (T, B, I, H)
    "big": (100, 64, 256, 256),
    "small": (100, 4, 64, 64),
    "tiny": (3, 2, 8, 8),  # for the tests
}
IMPLS = ("fused", "nn", "reference")
MODES = ("train", "inference")
BASELINE = "nn"
TARGETS = {"train": 2.0, "inference": 1.5}  # issue 7: fused against nn.GRU


def build(shape: tuple, seed: int = 0) -> dict:
    """name -> module, all with nn.GRU's seeded weights."""
    import lstm_ext

    _, _, I, H = shape  # noqa: E741
    torch.manual_seed(seed)
    base = torch.nn.GRU(I, H)
    modules = {"nn": base}
    for backend in ("fused", "reference"):
        module = lstm_ext.GRU(I, H, backend=backend)
        module.load_state_dict(base.state_dict())
        modules[backend] = module
    return modules


def inputs(shape: tuple, seed: int = 0) -> tuple:
    T, B, I, H = shape  # noqa: E741
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, I, generator=gen), torch.randn(T, B, H, generator=gen)


def step(module, x, grad_output, mode: str):
    """One timed call: inference, or forward + backward."""
    if mode == "inference":
        with torch.no_grad():
            return module(x)[0]
    module.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    out = module(x)[0]
    out.backward(grad_output)
    return out, x.grad, {n: p.grad for n, p in module.named_parameters()}


def check(modules: dict, x, grad_output) -> dict:
    """Each implementation against the reference, both modes: name -> (ok, worst relative error)."""
    from benchmarks.check import TOLERANCES

    tol = TOLERANCES[x.dtype]
    expected = step(modules["reference"], x, grad_output, "train")
    verdicts = {}
    for name, module in modules.items():
        got = step(module, x, grad_output, "train")
        inference = step(module, x, grad_output, "inference")
        pairs = [("output", got[0], expected[0], 1.0), ("inference output", inference, expected[0], 1.0),
                 ("grad input", got[1], expected[1], float(expected[1].abs().max()))]
        pairs += [(f"grad {n}", got[2][n], g, float(g.abs().max())) for n, g in expected[2].items()]
        worst, ok = 0.0, True
        for label, a, e, scale in pairs:
            err = float((a.detach() - e.detach()).abs().max())
            allowed = tol["atol"] * max(scale, 1.0) + tol["rtol"] * float(e.detach().abs().max())
            worst = max(worst, err / allowed)
            ok = ok and torch.allclose(a.detach(), e.detach(), rtol=tol["rtol"], atol=tol["atol"] * max(scale, 1.0))
        verdicts[name] = (ok, worst)
    return verdicts


def gemm_step(shape, mode: str):
    """The GRU's GEMMs alone on torch.mm (the input projection, T recurrent steps; in training also
    dx, dW_ih, dW_hh and T steps of dh): the time of a kernel that cost nothing but its GEMMs."""
    T, B, I, H = shape
    g = torch.Generator().manual_seed(0)
    x, h_prev = torch.randn(T * B, I, generator=g), torch.randn(T * B, H, generator=g)
    w_ih, w_hh = torch.randn(3 * H, I, generator=g), torch.randn(3 * H, H, generator=g)
    d = torch.randn(T * B, 3 * H, generator=g)

    def run():
        torch.mm(x, w_ih.t())
        for t in range(T):
            torch.mm(h_prev[t * B:(t + 1) * B], w_hh.t())
        if mode == "train":
            torch.mm(d, w_ih), torch.mm(d.t(), x), torch.mm(d.t(), h_prev)
            for t in range(T):
                torch.mm(d[t * B:(t + 1) * B], w_hh)
    return run


def nn_path(module, x) -> str:
    """Which kernel nn.GRU ran, from the profiler's op names."""
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        module(x)
    names = {e.name for e in prof.events()}
    if any("mkldnn" in n for n in names):
        return "oneDNN (" + ", ".join(sorted(n for n in names if "mkldnn" in n)) + ")"
    return "ATen's composite GRU (no oneDNN op in the profile)"


def measure(shape_name: str, threads: int, rounds: int, min_block_s: float) -> dict:
    shape = SHAPES[shape_name]
    modules = build(shape)
    x, grad_output = inputs(shape)
    verdicts = check(modules, x, grad_output)
    record = dict(shape=shape_name, T=shape[0], B=shape[1], I=shape[2], H=shape[3], dtype="float32",
                  correct={n: v[0] for n, v in verdicts.items()},
                  worst_error_over_tolerance={n: round(v[1], 4) for n, v in verdicts.items()},
                  nn_path=nn_path(modules["nn"], x), median_ms={}, iqr_ms={}, speedup_vs_nn={})
    for mode in MODES:
        timers, number = {}, {}
        for name in IMPLS:
            if not verdicts[name][0]:
                continue  # a wrong implementation gets no time
            timers[name] = Timer("step(m, x, g, mode)", num_threads=threads,
                                 globals=dict(step=step, m=modules[name], x=x, g=grad_output, mode=mode))
            # calls per sample: enough for min_block_s (also the warm-up)
            number[name] = max(1, int(min_block_s / max(timers[name].timeit(1).median, 1e-6)))
        # The GEMM limit, timed in the same rounds.
        timers["gemm"] = Timer("run()", num_threads=threads, globals=dict(run=gemm_step(shape, mode)))
        number["gemm"] = max(1, int(min_block_s / max(timers["gemm"].timeit(1).median, 1e-6)))
        samples = {name: [] for name in timers}
        for _ in range(rounds):
            for name, timer in timers.items():
                samples[name].append(timer.timeit(number[name]).median)
        record.setdefault("gemm_ms", {})[mode] = round(statistics.median(samples.pop("gemm")) * 1e3, 4)
        for name, times in samples.items():
            q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
            record["median_ms"][f"{name}/{mode}"] = round(statistics.median(times) * 1e3, 4)
            record["iqr_ms"][f"{name}/{mode}"] = round((q[2] - q[0]) * 1e3, 4)
        base = record["median_ms"].get(f"{BASELINE}/{mode}")
        for name in samples:
            if base is not None:
                record["speedup_vs_nn"][f"{name}/{mode}"] = round(base / record["median_ms"][f"{name}/{mode}"], 3)
    return record


def markdown(records: list) -> str:
    lines = ["| shape | implementation | train ms | ×nn.GRU | inference ms | ×nn.GRU |", "|---|---|--:|--:|--:|--:|"]
    for rec in records:
        label = f"T{rec['T']} B{rec['B']} I{rec['I']} H{rec['H']} fp32"
        for name in IMPLS:
            cells = []
            for mode in MODES:
                key = f"{name}/{mode}"
                if key in rec["median_ms"]:
                    cells += [f"{rec['median_ms'][key]:.3g}", f"{rec['speedup_vs_nn'].get(key, float('nan')):.2f}×"]
                else:
                    cells += ["wrong" if not rec["correct"][name] else "-", ""]
            impl = {"fused": "**lstm_ext.GRU fused**", "nn": "nn.GRU", "reference": "lstm_ext.GRU reference"}[name]
            lines.append(f"| {label} | {impl} | " + " | ".join(cells) + " |")
            label = ""
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", default="big,small", help=f"comma-separated, from {', '.join(SHAPES)}")
    parser.add_argument("--rounds", type=int, default=7, help="samples per implementation and mode")
    parser.add_argument("--min-block-s", type=float, default=0.2, help="at least this long per sample")
    parser.add_argument("--out", default=None, help="write the records as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    records = [measure(name, args.threads, args.rounds, args.min_block_s) for name in args.shapes.split(",")]
    results = dict(command="python benchmarks/gru.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   torch=torch.__version__, threads=args.threads, seconds=round(time.perf_counter() - start, 1),
                   loadavg_start=round(load_start, 2), loadavg_end=round(os.getloadavg()[0], 2),
                   targets=TARGETS, records=records)
    print(markdown(records))
    print(f"\n{args.threads} threads, torch {torch.__version__}, load average {results['loadavg_start']} -> "
          f"{results['loadavg_end']}, {results['seconds']} s; nn.GRU ran: {records[0]['nn_path']}")
    for rec in records:
        for mode, target in TARGETS.items():
            got = rec["speedup_vs_nn"].get(f"fused/{mode}")
            print(f"{rec['shape']} {mode}: fused {got}× nn.GRU (target ≥ {target}×)")
        for mode, gemm in rec["gemm_ms"].items():  # the roofline: GEMM time / implementation time
            fractions = {n: gemm / rec["median_ms"][f"{n}/{mode}"] for n in IMPLS if f"{n}/{mode}" in rec["median_ms"]}
            print(f"{rec['shape']} {mode}: its GEMMs on torch.mm {gemm:.3g} ms; roofline "
                  + ", ".join(f"{n} {f:.2f}" for n, f in fractions.items())
                  + (f"; at the GEMM limit a kernel would be {1 / fractions['nn']:.2f}× nn.GRU" if "nn" in fractions else ""))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(all(rec["correct"].values()) for rec in records) else 1


if __name__ == "__main__":
    sys.exit(main())
