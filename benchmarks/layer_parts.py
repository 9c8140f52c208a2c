"""Where one LSTM layer's time goes: the parts of one ``lstm_layer`` / ``lstm_layer_backward`` call.

The backward op computes only the gradients its ``output_mask`` asks for, so timing it with
(nothing), (input), (weights) and (everything) separates the time loop from the input and weight
gradients' products after it. The forward is timed without grad (nothing saved) and with the
gates and cells saved for backward. Every part is timed with the suite's own timing
(``measure.time_fn``), each in the fused step and in the plain loop (``LSTM_EXT_FUSED_STEP=0``).

usage: python -m benchmarks.layer_parts [--shape T B I H] [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from . import measure
from .configs import Timing

PARTS = ("forward, nothing saved", "forward, saved for backward", "backward: time loop",
         "backward: + input gradient", "backward: + weight gradients", "backward: everything")


def layer_parts(T: int, B: int, I: int, H: int, threads: int, timing: Timing) -> dict:  # noqa: E741
    """{part: {"fused": ms, "plain": ms}} for one float32 layer of T steps, B rows, I -> H."""
    import lstm_ext  # noqa: F401  (registers the ops)
    from lstm_ext._switches import fused_step

    ops = torch.ops.lstm_ext
    g = torch.Generator().manual_seed(0)
    x, h0, c0 = torch.randn(T, B, I, generator=g), torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)
    w_ih, w_hh = torch.randn(4 * H, I, generator=g) * 0.1, torch.randn(4 * H, H, generator=g) * 0.1
    bias = torch.randn(4 * H, generator=g)
    forward_args = (x, h0, c0, w_ih, w_hh, bias, bias, None, None, False)
    out, h_n, c_n, gates, cells = ops.lstm_layer(*forward_args)
    grads = (torch.randn(out.shape, generator=g), torch.randn(h_n.shape, generator=g),
             torch.randn(c_n.shape, generator=g))

    def backward(mask):
        return lambda: ops.lstm_layer_backward(*grads, x, h0, c0, w_ih, w_hh, None, None, False, out, gates, cells,
                                               list(mask))

    def forward_saving():
        with torch.enable_grad():
            return ops.lstm_layer(*forward_args)

    def forward_only():
        with torch.no_grad():
            return ops.lstm_layer(*forward_args)

    calls = dict(zip(PARTS, (forward_only, forward_saving, backward((False, False, False)),
                             backward((True, False, False)), backward((False, False, True)),
                             backward((True, True, True)))))
    result = {part: {} for part in PARTS}
    for path, enabled in (("fused", True), ("plain", False)):
        with fused_step(enabled):
            for part, fn in calls.items():
                result[part][path] = measure.time_fn(fn, torch.device("cpu"), threads, timing)["median_s"] * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(100, 64, 64, 64), metavar=("T", "B", "I", "H"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    T, B, I, H = args.shape  # noqa: E741
    parts = layer_parts(T, B, I, H, args.threads, Timing(min_run_time=0.5, min_samples=7))
    print(f"T{T} B{B} I{I} H{H} float32, {args.threads} threads, torch {torch.__version__}; median ms")
    print(f"| part | fused step | plain loop |\n|---|--:|--:|")
    for part, ms in parts.items():
        print(f"| {part} | {ms['fused']:.2f} | {ms['plain']:.2f} |")


if __name__ == "__main__":
    main()
