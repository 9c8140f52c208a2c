"""Outputs: terminal tables (rich), results.json, results.csv, results.md and PNG plots.

Plots (matplotlib, Agg):

- ``speedup.png``: speedup vs ``nn.LSTM`` per shape, forward and train, one bar per implementation;
- ``time_vs_T.png`` / ``time_vs_H.png``: median time against the sequence length / hidden size,
  from the preset's largest sweep over that variable (all other shape fields fixed);
- ``roofline.png``: the fraction of the torch.mm time of the shape's own GEMMs;
- ``charlm.png``: tokens/s of the end-to-end char-LM training.

Wrong implementations (``correct=false``) carry no time and appear in no plot.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from typing import Optional

from .impls import IMPLS
from .suite import RECORD_FIELDS

SHAPE_KEYS = ("device", "dtype", "T", "B", "I", "H", "layers", "bidirectional", "proj_size", "packed")


# ---- formatting -----------------------------------------------------------------------------


def fmt_ms(rec: dict) -> str:
    if rec.get("median_s") is None:
        return "-"
    return f"{rec['median_s'] * 1e3:.3g} ± {rec['iqr_s'] * 1e3:.2g}"


def fmt_x(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}×"


def fmt_num(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def fmt_rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fmt_mb(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 2**20:.3g}"


def fmt_ms_short(rec: dict) -> str:
    """``median ±IQR%``: compact, for the terminal."""
    if rec.get("median_s") is None:
        return "-"
    rel = rec["iqr_s"] / rec["median_s"] * 100 if rec["median_s"] else 0.0
    return f"{rec['median_s'] * 1e3:.3g} ±{rel:.0f}%"


def status_text(rec: dict) -> str:
    if rec["status"] == "ok":
        return "ok"
    return rec["status"].upper()


def _by_impl(records: list) -> dict:
    rows: dict = defaultdict(dict)
    for rec in records:
        rows[rec["impl"]][rec["mode"]] = rec
    return rows


def has_cost(records: list) -> bool:
    """Whether the records carry a cost (a preset's ``cost_baseline``): then a cost column shows."""
    return any(r.get("cost") is not None for r in records)


def fmt_cost(modes: dict) -> str:
    """``forward / train`` cost: time over the cost baseline's time (1.00 = as fast)."""
    return " / ".join(fmt_num(modes[m].get("cost"), 2) if m in modes else "-" for m in ("forward", "train"))


def config_table(records: list, title: str):
    """A rich Table: one row per implementation, forward and train side by side."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for col, justify in (("impl", "left"), ("fwd ms ±IQR", "right"), ("fwd ×nn", "right"),
                         ("fwd GFLOP/s", "right"), ("fwd roofline", "right"), ("train ms ±IQR", "right"),
                         ("train ×nn", "right"), ("train GFLOP/s", "right"), ("train roofline", "right"),
                         ("train of peak", "right"), ("peak MB", "right"), ("check", "left")):
        table.add_column(col, justify=justify)
    cost = has_cost(records)
    if cost:
        table.add_column("cost fwd / train", justify="right")
    for impl, modes in _by_impl(records).items():
        fwd, train = modes.get("forward", {}), modes.get("train", {})
        statuses = {m.get("status") for m in (fwd, train) if m}
        check = "ok" if statuses == {"ok"} else "[red]" + "/".join(sorted(s.upper() for s in statuses if s != "ok")) + "[/red]"
        cells = [impl]
        for rec in (fwd, train):
            if not rec or rec.get("median_s") is None:
                cells += ["[red]wrong[/red]" if rec and rec["status"] == "wrong" else "-", "-", "-", "-"]
            else:
                cells += [fmt_ms_short(rec), fmt_x(rec["speedup_vs_nn"]), fmt_num(rec["gflops"]),
                          fmt_num(rec["roofline_fraction"], 2)]
        cells += [fmt_num(train.get("peak_fraction"), 2) if train else "-"]
        cells += [fmt_mb(train.get("peak_mem_bytes")) if train else "-", check]
        table.add_row(*cells, *([fmt_cost(modes)] if cost else []))
    return table


def charlm_table(rows: list):
    from rich.table import Table

    table = Table(title="char-LM training (end to end)", title_justify="left", header_style="bold")
    for col in ("impl", "device", "tokens/s", "×nn", "loss first→last", "check"):
        table.add_column(col, justify="left" if col in ("impl", "device", "check") else "right")
    for row in rows:
        loss = f"{row['loss_first']:.4f}→{row['loss_last']:.4f}" if row.get("loss_first") is not None else "-"
        check = "ok" if row.get("status") == "ok" else f"[red]{row.get('status', '?').upper()}[/red] {row.get('note', '')}"
        table.add_row(row["impl"], row["device"], fmt_rate(row.get("tokens_per_s")),
                      fmt_x(row.get("speedup_vs_nn")), loss, check)
    return table


def print_summary(console, results: dict) -> None:
    if results.get("charlm"):
        console.print(charlm_table(results["charlm"]))
    problems = [r for r in results["records"] if r["status"] != "ok"]
    for rec in problems:
        console.print(f"[red]{rec['status'].upper()}[/red] {rec['impl']} {rec['config']} {rec['mode']}: {rec['note']}",
                      highlight=False)
    for note in results.get("notes", []):
        console.print(f"[dim]note:[/dim] {note}", highlight=False)
    busy = busy_records(results)
    if busy:
        console.print(f"[yellow]{len(busy)} of {len(results['records'])} records were measured while the 1-minute "
                      f"load average exceeded {busy_threshold(results):g}: other processes competed for the CPUs; "
                      "distrust those timings[/yellow]", highlight=False)


def busy_threshold(results: dict) -> float:
    """Load above which another process must have competed: the threads we use, plus a margin."""
    cpus = results.get("machine", {}).get("cpu_count") or 1
    return min(float(cpus), results.get("threads", 1) + 0.75)


def busy_records(results: dict) -> list:
    limit = busy_threshold(results)
    return [r for r in results["records"] if r.get("load1") is not None and r["load1"] > limit]


# ---- files ----------------------------------------------------------------------------------


def write_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


def write_csv(results: dict, path: str) -> None:
    fields = list(RECORD_FIELDS)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for rec in results["records"]:
            writer.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in fields})


def markdown(results: dict) -> str:
    m = results["machine"]
    cost = has_cost(results["records"])
    lines = [
        f"Preset `{results['preset']}` on {m.get('cpu') or m.get('platform')} "
        f"({results['threads']} threads), torch {m['torch']}"
        + (f", GPU {m['gpu']}" if m.get("gpu") else "") + ".",
        "Times are median ± IQR in ms; ×nn is the speedup against `nn.LSTM` in the same run; roofline is "
        "the time `torch.mm` takes for the same GEMMs divided by the implementation's time; of peak is the "
        "GEMM rate (GFLOP/s) over this machine's float32 peak, the best large square GEMM of the run "
        + ", ".join(f"({dev}: {p['gflops']:.0f} GFLOP/s, {p['source']})" for dev, p in results.get("peak", {}).items())
        + "; peak MB is the memory one training step allocates."
        + (f" Cost is the time over `{results.get('cost_baseline')}`'s in the same rounds." if cost else ""),
        "",
        "| shape | device | implementation | forward ms | ×nn | train ms | ×nn | train GFLOP/s | roofline (train) "
        "| of peak (train) | peak MB (train) | correct |" + (" cost fwd / train |" if cost else ""),
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|" + ("--:|" if cost else ""),
    ]
    groups: dict = defaultdict(list)
    for rec in results["records"]:
        groups[(rec["config"], rec["device"])].append(rec)
    for (config, device), records in groups.items():
        for impl, modes in _by_impl(records).items():
            fwd, train = modes.get("forward"), modes.get("train")

            def cell(rec, fn):
                if rec is None:
                    return "-"
                if rec["status"] == "wrong":
                    return "**wrong**"
                if rec["status"] == "error":
                    return "error"
                return fn(rec)

            ok = all(r["correct"] for r in (fwd, train) if r is not None)
            lines.append(
                f"| {config} | {device} | {impl} | {cell(fwd, fmt_ms)} | {cell(fwd, lambda r: fmt_x(r['speedup_vs_nn']))} "
                f"| {cell(train, fmt_ms)} | {cell(train, lambda r: fmt_x(r['speedup_vs_nn']))} "
                f"| {cell(train, lambda r: fmt_num(r['gflops']))} | {cell(train, lambda r: fmt_num(r['roofline_fraction'], 2))} "
                f"| {cell(train, lambda r: fmt_num(r.get('peak_fraction'), 2))} "
                f"| {cell(train, lambda r: fmt_mb(r['peak_mem_bytes']))} | {'yes' if ok else '**no**'} |"
                + (f" {fmt_cost(modes)} |" if cost else "")
            )
    if results.get("charlm"):
        lines += ["", "End to end: char-level LM training, tokens/s (higher is better).", "",
                  "| implementation | device | tokens/s | ×nn | loss first → last | correct |", "|---|---|--:|--:|--:|:-:|"]
        for row in results["charlm"]:
            loss = f"{row['loss_first']:.4f} → {row['loss_last']:.4f}" if row.get("loss_first") is not None else "-"
            speed = "**wrong**" if row.get("status") == "wrong" else fmt_rate(row.get("tokens_per_s"))
            lines.append(f"| {row['impl']} | {row['device']} | {speed} | {fmt_x(row.get('speedup_vs_nn'))} | {loss} "
                         f"| {'yes' if row.get('correct') else '**no**'} |")
    skipped = [s for s in results.get("skipped", []) if s.get("config") is None]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{s['impl'] or 'all'} ({s['device']}): {s['reason']}" for s in skipped) + "."]
    notes = list(results.get("notes", []))
    compiled = [r for r in results["records"] if r["impl"] == "reference_compiled" and r.get("first_call_s")]
    if compiled:
        notes.append("reference_compiled: the first call (mostly compiling) took "
                     + ", ".join(f"{r['first_call_s']:.1f} s ({r['config']}, {r['mode']})" for r in compiled)
                     + "; not part of the timings")
    busy = busy_records(results)
    if busy:
        notes.append(f"{len(busy)} of {len(results['records'])} records were measured while the load average exceeded "
                     f"{busy_threshold(results):g} (other processes running): " + ", ".join(
                         sorted({f'{r["impl"]} {r["config"]}' for r in busy})))
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    if results.get("command"):
        lines += ["", f"Command: `{results['command']}`"]
    return "\n".join(lines) + "\n"


def write_markdown(results: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(markdown(results))


# ---- plots ----------------------------------------------------------------------------------


def _colors() -> dict:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(IMPLS)}


def _plain_log_axis(axis, suffix: str = "") -> None:
    """Log axis labelled 0.5, 1, 2 (not 5x10^-1): majors always, minors at 2, 3 and 5."""
    from matplotlib.ticker import FuncFormatter

    def label(value, _pos, minor=False):
        if value <= 0:
            return ""
        mantissa = round(value / 10 ** int(f"{value:e}".split("e")[1]), 3)
        if minor and mantissa not in (2.0, 3.0, 5.0):
            return ""
        return f"{value:g}{suffix}"

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(lambda v, p: label(v, p, minor=True)))


def _machine_line(results: dict) -> str:
    m = results.get("machine", {})
    return f"{m.get('cpu') or m.get('platform', '')}, {results.get('threads')} threads, torch {m.get('torch', '')}"


def _timed(records: list) -> list:
    return [r for r in records if r["status"] == "ok" and r.get("median_s") is not None]


def _config_key(rec: dict, several_devices: bool) -> str:
    return f"{rec['config']}\n{rec['device']}" if several_devices else rec["config"]


def _grouped_bars(ax, records: list, value_key: str, impls: list, colors: dict) -> None:
    several = len({r["device"] for r in records}) > 1
    configs = list(dict.fromkeys(_config_key(r, several) for r in records))
    width = 0.8 / max(1, len(impls))
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for i, cfg in enumerate(configs):
            for r in records:
                if r["impl"] == impl and _config_key(r, several) == cfg and r.get(value_key) is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(r[value_key])
        if xs:
            bars = ax.bar(xs, ys, width=width, label=impl, color=colors.get(impl))
            if len(configs) * len(impls) <= 60:
                ax.bar_label(bars, labels=[f"{y:.2g}" for y in ys], fontsize=6, padding=1)
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, fontsize=7, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)


def _impls_in(records: list) -> list:
    present = {r["impl"] for r in records}
    return [name for name in IMPLS if name in present] + sorted(present - set(IMPLS))


def _bars_figure(records: list, value_key: str, ylabel: str, title: str, path: str, log: bool, line: Optional[float],
                 machine: str = ""):
    import matplotlib.pyplot as plt

    colors = _colors()
    impls = _impls_in(records)
    n_configs = len({(r["config"], r["device"]) for r in records})
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.2 * n_configs * max(1, len(impls)) / 3), 8.5), squeeze=False)
    for ax, mode in zip(axes[:, 0], ("forward", "train")):
        sub = [r for r in records if r["mode"] == mode]
        _grouped_bars(ax, sub, value_key, impls, colors)
        if log:
            ax.set_yscale("log")
            _plain_log_axis(ax.yaxis, "×")
            ax.margins(y=0.12)
        if line is not None:
            ax.axhline(line, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {mode}", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(5, max(1, len(labels))), fontsize=8, frameon=False)
    _save_figure(fig, path, machine, rect=(0, 0.02, 1, 0.94))


def _save_figure(fig, path: str, machine: str, rect: tuple) -> None:
    """Stamp the machine line in the corner (when known), lay out within ``rect``, save, close."""
    import matplotlib.pyplot as plt

    if machine:
        fig.text(0.99, 0.005, machine, ha="right", va="bottom", fontsize=7, color="gray")
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep_group(records: list, var: str) -> tuple:
    """(fixed fields, records) of the largest group of shapes that differ only in ``var``.

    For ``H`` the input size may follow the hidden size (``I == H``) and still count as one group.
    """
    groups: dict = defaultdict(list)
    for rec in records:
        key = []
        for k in SHAPE_KEYS:
            if k == var:
                continue
            if var == "H" and k == "I":
                key.append(("I", "H" if rec["I"] == rec["H"] else rec["I"]))
            else:
                key.append((k, rec[k]))
        groups[tuple(key)].append(rec)
    if not groups:
        return (), []
    best = max(groups.items(), key=lambda kv: (len({r[var] for r in kv[1]}), len(kv[1])))
    return best


def _sweep_figure(records: list, var: str, xlabel: str, path: str, machine: str = "") -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    colors = _colors()
    fixed, group = sweep_group(records, var)
    values = sorted({r[var] for r in group})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), squeeze=False)
    for ax, mode in zip(axes[0], ("forward", "train")):
        for impl in _impls_in(group):
            pts = sorted((r[var], r["median_s"] * 1e3) for r in group if r["impl"] == impl and r["mode"] == mode)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=impl, color=colors.get(impl))
        ax.set_xscale("log")
        ax.set_yscale("log")
        if values:
            ax.set_xticks(values)
        _plain_log_axis(ax.xaxis)
        ax.xaxis.set_minor_formatter(NullFormatter())  # the swept values are the labels
        _plain_log_axis(ax.yaxis)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("median time (ms)")
        ax.set_title(mode, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    fixed_txt = ", ".join(f"{k}={v}" for k, v in fixed if k not in ("packed", "bidirectional", "proj_size") or v)
    sweep_note = "" if len(values) > 1 else " (this preset has a single value here)"
    fig.suptitle(f"time vs {var}: {fixed_txt}{sweep_note}" + (f"\n{machine}" if machine else ""), fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        axes[0, 1].legend(handles, labels, fontsize=8, loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _charlm_figure(rows: list, path: str, machine: str = "") -> None:
    import matplotlib.pyplot as plt

    colors = _colors()
    good = [r for r in rows if r.get("status") == "ok" and r.get("tokens_per_s")]
    fig, ax = plt.subplots(figsize=(8, 0.5 * max(3, len(good)) + 1))
    labels = [f"{r['impl']} ({r['device']})" for r in good]
    bars = ax.barh(labels, [r["tokens_per_s"] for r in good], color=[colors.get(r["impl"]) for r in good])
    ax.bar_label(bars, labels=[f"{r['tokens_per_s']:,.0f}" for r in good], fontsize=7, padding=2)
    ax.margins(x=0.12)
    ax.invert_yaxis()
    ax.set_xlabel("tokens / s (higher is better)")
    if good:
        r = good[0]
        ax.set_title(f"char-LM training: T={r['T']} B={r['B']} E={r['embed']} H={r['H']}, {r['steps']} SGD steps",
                     fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    _save_figure(fig, path, machine, rect=(0, 0.03, 1, 1))


def write_plots(results: dict, out_dir: str) -> list:
    import matplotlib

    matplotlib.use("Agg")
    records = _timed(results["records"])
    machine = _machine_line(results)
    paths = []
    path = os.path.join(out_dir, "speedup.png")
    _bars_figure(records, "speedup_vs_nn", "speedup vs nn.LSTM (log)", "speedup vs nn.LSTM (higher is better)",
                 path, True, 1.0, machine)
    paths.append(path)
    path = os.path.join(out_dir, "roofline.png")
    _bars_figure(records, "roofline_fraction", "torch.mm time of its GEMMs / time",
                 "roofline fraction (1 = as fast as torch.mm on its GEMMs alone)", path, False, 1.0, machine)
    paths.append(path)
    for var, label, name in (("T", "sequence length T", "time_vs_T.png"), ("H", "hidden size H", "time_vs_H.png")):
        path = os.path.join(out_dir, name)
        _sweep_figure(records, var, label, path, machine)
        paths.append(path)
    if results.get("charlm"):
        path = os.path.join(out_dir, "charlm.png")
        _charlm_figure(results["charlm"], path, machine)
        paths.append(path)
    return paths


def write_all(results: dict, out_dir: str, plots: bool = True) -> list:
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, writer in (("results.json", write_json), ("results.csv", write_csv), ("results.md", write_markdown)):
        path = os.path.join(out_dir, name)
        writer(results, path)
        written.append(path)
    if plots:
        written += write_plots(results, out_dir)
    return written
