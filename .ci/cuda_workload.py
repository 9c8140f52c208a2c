"""Every CUDA op of lstm_ext, forward and backward, once per dtype and layout: for compute-sanitizer.

    compute-sanitizer --tool memcheck --error-exitcode 86 python .ci/cuda_workload.py
    python .ci/cuda_workload.py cpu      # the same workload on the CPU kernels (dtypes they have)

Small shapes on purpose (the sanitizer slows kernels by orders of magnitude), but odd ones: H not
a multiple of a warp, more units than one block, packed batches whose active rows shrink, the
reverse direction, proj_size, a one-step cell. Each result is compared with float64 on the CPU,
so a kernel that reads out of bounds without faulting still fails here. Exits 1 on a mismatch.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn

import lstm_ext

CASES = {
    # name -> (module kwargs, packed lengths or None)
    "dense": (dict(input_size=5, hidden_size=7), None),
    "wide-2layer": (dict(input_size=33, hidden_size=300, num_layers=2), None),
    "bi-proj": (dict(input_size=6, hidden_size=9, num_layers=2, bidirectional=True, proj_size=4), None),
    "packed-bi-proj": (dict(input_size=6, hidden_size=9, num_layers=2, bidirectional=True, proj_size=3),
                       [7, 5, 5, 2, 1]),
    "packed-bi": (dict(input_size=4, hidden_size=11, bidirectional=True), [6, 6, 3]),
}
TOL = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 3e-2, torch.bfloat16: 8e-2}


def run(module: nn.Module, x, hx, lengths, device, dtype):
    module = module.to(device=device, dtype=dtype)
    x = x.detach().to(device=device, dtype=dtype).requires_grad_()
    hx = tuple(h.detach().to(device=device, dtype=dtype).requires_grad_() for h in hx)
    inp = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False) if lengths else x
    out, (h, c) = module(inp, hx)
    out = out.data if lengths else out
    wide = torch.promote_types(dtype, torch.float32)  # the loss in float32 at least, float64 stays float64
    weights = torch.linspace(-1, 1, out.numel(), device=device, dtype=wide).view_as(out)
    loss = (out.to(wide) * weights).sum() + h.to(wide).sum() + c.to(wide).sum()
    grads = torch.autograd.grad(loss, [x, *hx, *module.parameters()])
    return [t.detach().double().cpu() for t in (out, h, c, *grads)]


def main(device: str = "cuda") -> int:
    assert device != "cuda" or torch.cuda.is_available(), "needs a GPU"
    gen = torch.Generator().manual_seed(0)
    failures = 0
    for name, (kwargs, lengths) in CASES.items():
        ref = nn.LSTM(**kwargs, dtype=torch.float64)
        d = 2 if kwargs.get("bidirectional") else 1
        B = len(lengths) if lengths else 3
        T = max(lengths) if lengths else 6
        x = torch.randn(T, B, kwargs["input_size"], generator=gen, dtype=torch.float64)
        P = kwargs.get("proj_size") or kwargs["hidden_size"]
        L = kwargs.get("num_layers", 1) * d
        hx = (torch.randn(L, B, P, generator=gen, dtype=torch.float64),
              torch.randn(L, B, kwargs["hidden_size"], generator=gen, dtype=torch.float64))
        expected = run(ref, x, hx, lengths, "cpu", torch.float64)
        for dtype in (d for d in TOL if lstm_ext.has_kernel("lstm_layer", device, d)):
            ours = lstm_ext.LSTM(**kwargs, backend="fused", dtype=torch.float64)  # float64 weights, then to dtype
            ours.load_state_dict(ref.state_dict())
            actual = run(ours, x, hx, lengths, device, dtype)
            worst = max(((a - e).abs().max() / (1 + e.abs().max())).item() for a, e in zip(actual, expected))
            ok = worst <= TOL[dtype]
            failures += not ok
            print(f"{name:16s} {str(dtype):15s} worst scaled error {worst:.2e} {'ok' if ok else 'FAIL'}")
    cell = lstm_ext.LSTMCell(5, 13, backend="fused").to(device)
    xc = torch.randn(4, 5, device=device, requires_grad=True)
    h, c = cell(xc)
    torch.autograd.grad(h.sum() + c.sum(), [xc, *cell.parameters()])
    if device == "cuda":
        torch.cuda.synchronize()
    print(f"cell ok; {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
