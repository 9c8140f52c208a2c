"""lstm_ext benchmark: every LSTM implementation side by side, checked, then timed.

    python benchmarks/run.py --preset default --out DIR
    python benchmarks/run.py --preset gru --out DIR        # lstm_ext.GRU against nn.GRU
    python benchmarks/run.py --preset variants --out DIR   # each LSTM variant's cost
    python benchmarks/run.py --preset variants --quick     # any preset at T=3 B=2 I=H=8: a smoke run

writes DIR/results.json, results.csv, results.md and PNG plots (speedup.png, roofline.png,
time_vs_T.png, time_vs_H.png, charlm.png). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

if __package__ in (None, ""):  # run as a script: import the suite (and lstm_ext) from the repository
    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0]) == _here:
        sys.path.pop(0)  # benchmarks/ itself must not shadow modules by file name
    sys.path.insert(0, os.path.dirname(_here))
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def parse_args(argv=None) -> argparse.Namespace:
    from benchmarks.configs import DTYPES, PRESETS
    from benchmarks.impls import IMPLS

    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=list(PRESETS),
                        help="which shapes (default: %(default)s; 'full' takes an hour or more on a small CPU)")
    parser.add_argument("--out", default="bench-out", help="output folder (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, or a comma list like cpu,cuda (default: cuda when present, else cpu)")
    parser.add_argument("--dtype", choices=list(DTYPES), help="run every shape in this dtype instead")
    parser.add_argument("--quick", action="store_true",
                        help="every shape at T=3 B=2 I=H=8 with a very short timing: a smoke run of the preset")
    parser.add_argument("--tf32", choices=("off", "on"), default="off",
                        help="CUDA float32: TF32 for cuBLAS and cuDNN alike, so nn.LSTM (cuDNN) and lstm_ext "
                             "(cuBLAS) compare at one precision (default: %(default)s; torch's own defaults "
                             "differ: cuDNN on, cuBLAS off)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own, printed)")
    parser.add_argument("--impl", action="append", metavar="NAME",
                        help=f"implementation(s) to run, repeatable or comma separated: {', '.join(IMPLS)} "
                             "(default: all; nn, the speedup baseline, is always added)")
    parser.add_argument("--compare", metavar="OLD.json", help="print the change against an earlier results.json")
    parser.add_argument("--min-change", type=float, default=None,
                        help="with --compare: relative slowdown below which nothing is flagged (default 0.03)")
    parser.add_argument("--fail-on-regression", action="store_true", help="with --compare: exit 1 on a regression")
    parser.add_argument("--no-charlm", action="store_true", help="skip the end-to-end char-LM figure")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.impl:
        args.impl = [n.strip() for item in args.impl for n in item.split(",") if n.strip()]
        unknown = [n for n in args.impl if n not in IMPLS]
        if unknown:
            parser.error(f"unknown --impl {', '.join(unknown)}; choose from {', '.join(IMPLS)}")
    if args.compare and not os.path.isfile(args.compare):
        parser.error(f"--compare: no such file {args.compare}")
    return args


def main(argv=None) -> int:
    start = time.perf_counter()
    try:
        sys.stdout.reconfigure(line_buffering=True)  # progress notes reach logs as they happen
    except (AttributeError, ValueError):
        pass
    args = parse_args(argv)
    from rich.console import Console

    from benchmarks import compare as compare_mod
    from benchmarks import report
    from benchmarks.configs import get_preset
    from benchmarks.suite import run_suite

    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the tables
        console = Console(width=max(console.width, 150))
    preset = get_preset(args.preset, dtype=args.dtype, quick=args.quick)
    import torch

    torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
    old = compare_mod.load(args.compare) if args.compare else None  # fail early on a bad path
    command = "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    console.print(f"[bold]lstm_ext benchmark[/bold] · preset [bold]{preset.name}[/bold]: {preset.description}")
    # cuDNN's flag through its context manager: torch.testing's harness freezes plain assignment to
    # the cudnn flags, and the tests call main() in-process after importing it.
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=args.tf32 == "on"):
        results = run_suite(preset, device=args.device, impl_names=args.impl, threads=args.threads, console=console,
                            progress=not args.no_progress, run_charlm=not args.no_charlm, command=command)
    report.print_summary(console, results)
    written = report.write_all(results, args.out, plots=not args.no_plots)
    console.print("wrote " + ", ".join(written), highlight=False)
    status = 0
    if old is not None:
        min_change = compare_mod.DEFAULT_MIN_CHANGE if args.min_change is None else args.min_change
        rows = compare_mod.compare(old, results, min_change)
        console.print(compare_mod.comparison_table(rows, f"change vs {args.compare}"))
        console.print(compare_mod.summary(rows), highlight=False)
        bad = compare_mod.regressions(rows)
        if bad:
            console.print(f"[red]{len(bad)} regression(s) beyond the noise[/red]: "
                          + ", ".join(f"{r['impl']} {r['config']} {r['mode']}" for r in bad), highlight=False)
            status = 1 if args.fail_on_regression else 0
        else:
            console.print("no regression beyond the noise")
    console.print(f"total wall time {time.perf_counter() - start:.1f} s", highlight=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
