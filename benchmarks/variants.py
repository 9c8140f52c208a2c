"""The LSTM variants, fused, against what a user has without them: CPU, forward + backward.

    python benchmarks/variants.py --threads 2 --out bench-variants.json

For each variant (recurrent dropout, peephole, zoneout, layer norm, all four, the lesson's use gate) and each shape, in one
process and one run, round-robin (every implementation timed once per round, the median over
rounds kept, so a load spike on a shared machine hits all of them alike):

- ``fused``: ``lstm_ext.LSTM(backend="fused", <variant>)``;
- ``plain_fused``: ``lstm_ext.LSTM(backend="fused")`` without the variant: the cost baseline;
- ``reference``: ``lstm_ext.LSTM(backend="reference", <variant>)``: plain PyTorch;
- ``torchscript``: the variant as a scripted loop (``torchscript_variants.py``).

Ratios: ``cost`` = fused / plain_fused (target <= 1.2), ``vs_reference`` = reference / fused,
``vs_torchscript`` = torchscript / fused. Every implementation's output is first checked
against the float64 reference on the same seed (same zoneout and dropout masks); see check().
"""

from __future__ import annotations

import argparse
import copy
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

VARIANTS = {
    "recurrent_dropout": dict(recurrent_dropout=0.25),
    "peephole": dict(peephole=True),
    "zoneout": dict(zoneout=(0.1, 0.05)),
    "layer_norm": dict(layer_norm=True),
    "all": dict(recurrent_dropout=0.25, peephole=True, zoneout=(0.1, 0.05), layer_norm=True),
    "lesson": dict(use_gate="lesson"),
}
SHAPES = {  # (T, B, I, H)
    "big": (100, 64, 256, 256),
    "small": (100, 4, 64, 64),
    "tiny": (3, 2, 8, 8),  # for the tests
}
IMPLS = ("fused", "plain_fused", "reference", "torchscript")


def build(variant: str, shape: tuple, seed: int = 0) -> dict:
    """name -> (module, forward(x) -> output sequence), all with the same weights."""
    import lstm_ext

    from benchmarks import torchscript_variants

    _, _, I, H = shape  # noqa: E741
    options = VARIANTS[variant]
    torch.manual_seed(seed)
    fused = lstm_ext.LSTM(I, H, backend="fused", **options)
    reference = lstm_ext.LSTM(I, H, backend="reference", **options)
    reference.load_state_dict(fused.state_dict())
    plain = lstm_ext.LSTM(I, H, backend="fused")
    plain.load_state_dict({k: v for k, v in fused.state_dict().items() if k in plain.state_dict()})
    opts = fused.variant_options
    script = torchscript_variants.build(dict(fused.named_parameters()), opts.recurrent_dropout,
                                        opts.zoneout_h, opts.zoneout_c)
    return {
        "fused": (fused, lambda x: fused(x)[0]),
        "plain_fused": (plain, lambda x: plain(x)[0]),
        "reference": (reference, lambda x: reference(x)[0]),
        "torchscript": (script, script),
    }


def check(built: dict, x: torch.Tensor, seed: int = 1) -> dict:
    """max |output - truth| per implementation, on the same masks (plain_fused: n/a).

    The truth is the reference run in float64. A float32 implementation passes when its error
    is at most 4x the float32 reference's own error, plus 1e-5: as accurate as plain PyTorch in
    float32 (over 100 steps of a layer-norm LSTM that error reaches ~1e-4, more than the
    project's float32 tolerance allows even the reference).
    """
    truth_module = copy.deepcopy(built["reference"][0]).double()
    outs = {}
    for name, (_, forward) in [*built.items(), ("truth", (None, lambda inp: truth_module(inp.double())[0]))]:
        torch.manual_seed(seed)
        with torch.no_grad():
            outs[name] = forward(x)
    truth = outs.pop("truth")
    errors = {name: (out.double() - truth).abs().max().item() for name, out in outs.items() if name != "plain_fused"}
    bound = 4 * errors["reference"] + 1e-5
    for name, err in errors.items():
        if not err <= bound:
            raise AssertionError(f"{name} differs from the float64 reference by {err:.3g} > {bound:.3g}")
    return errors


def train_step(module, forward, x, grad):
    for p in module.parameters():
        p.grad = None
    forward(x).backward(grad)


def measure(variant: str, shape_name: str, threads: int, rounds: int, min_run_time: float) -> dict:
    shape = SHAPES[shape_name]
    T, B, I, H = shape  # noqa: E741
    built = build(variant, shape)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, I, generator=g)
    errors = check(built, x)
    grad = torch.randn(T, B, H, generator=g)
    times: dict = {name: [] for name in built}
    for _ in range(rounds):
        for name, (module, forward) in built.items():
            module.train()
            timer = Timer("train_step(module, forward, x, grad)", globals=dict(
                train_step=train_step, module=module, forward=forward, x=x, grad=grad), num_threads=threads)
            times[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    return dict(
        variant=variant, shape=shape_name, T=T, B=B, I=I, H=H, threads=threads, rounds=rounds,
        median_s=median, max_abs_err=errors,
        cost=median["fused"] / median["plain_fused"],
        vs_reference=median["reference"] / median["fused"],
        vs_torchscript=median["torchscript"] / median["fused"],
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/variants.py", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", action="append", choices=list(SHAPES), help="default: big and small")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: all of them")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--out", help="write the records as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    started = time.time()
    print(f"torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<18} {'shape':<6} {'fused ms':>9} {'plain ms':>9} {'cost':>6} {'vs ref':>7} {'vs TS':>7}")
    for shape in args.shape or ["big", "small"]:
        for variant in args.variant or list(VARIANTS):
            r = measure(variant, shape, args.threads, args.rounds, args.min_run_time)
            records.append(r)
            m = r["median_s"]
            print(f"{variant:<18} {shape:<6} {m['fused'] * 1e3:9.2f} {m['plain_fused'] * 1e3:9.2f} "
                  f"{r['cost']:6.2f} {r['vs_reference']:7.1f} {r['vs_torchscript']:7.1f}", flush=True)
    print(f"load {os.getloadavg()[0]:.1f}; {time.time() - started:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(command=" ".join(sys.argv), torch=torch.__version__, records=records), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
