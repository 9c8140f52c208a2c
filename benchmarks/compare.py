"""The change against an earlier results.json, with regressions beyond the noise flagged.

Records are matched on (impl, device, dtype, mode, shape). A record is a **regression** when it
got slower by more than the noise, i.e. ``new_median - old_median > max(old_iqr, new_iqr)``, and
by more than ``min_change`` (relative, default 3%: below that, a shared machine's drift); or
when it was correct before and is not now. An **improvement** is the mirror image.

Usable alone: ``python benchmarks/compare.py OLD.json NEW.json`` (exit status 1 on regressions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

KEY_FIELDS = ("impl", "device", "dtype", "mode", "T", "B", "I", "H", "layers", "bidirectional", "proj_size", "packed")
DEFAULT_MIN_CHANGE = 0.03


def _key(rec: dict) -> tuple:
    return tuple(rec.get(k) for k in KEY_FIELDS)


def compare(old: dict, new: dict, min_change: float = DEFAULT_MIN_CHANGE) -> list:
    """One row per record of ``new`` (and per record that disappeared), with a verdict."""
    old_by_key = {_key(r): r for r in old.get("records", [])}
    rows = []
    seen = set()
    for rec in new.get("records", []):
        key = _key(rec)
        seen.add(key)
        before = old_by_key.get(key)
        row = dict(impl=rec["impl"], config=rec.get("config", ""), device=rec["device"], mode=rec["mode"],
                   old_median_s=None, new_median_s=rec.get("median_s"), change=None, noise_s=None, verdict="new")
        if before is not None:
            row["old_median_s"] = before.get("median_s")
            row["verdict"] = _verdict(before, rec, row, min_change)
        rows.append(row)
    for key, rec in old_by_key.items():
        if key not in seen:
            rows.append(dict(impl=rec["impl"], config=rec.get("config", ""), device=rec["device"], mode=rec["mode"],
                             old_median_s=rec.get("median_s"), new_median_s=None, change=None, noise_s=None,
                             verdict="missing"))
    return rows


def _verdict(before: dict, after: dict, row: dict, min_change: float) -> str:
    if before.get("correct") and not after.get("correct"):
        return "regression (now wrong)"
    if not before.get("correct") and after.get("correct"):
        return "fixed"
    old_m, new_m = before.get("median_s"), after.get("median_s")
    if old_m is None or new_m is None:
        return "untimed"
    noise = max(before.get("iqr_s") or 0.0, after.get("iqr_s") or 0.0)
    delta = new_m - old_m
    row["change"] = delta / old_m
    row["noise_s"] = noise
    if delta > noise and row["change"] > min_change:
        return "regression"
    if -delta > noise and -row["change"] > min_change:
        return "improvement"
    return "within noise"


def regressions(rows: list) -> list:
    return [r for r in rows if r["verdict"].startswith("regression")]


def summary(rows: list) -> str:
    counts: dict = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))


def comparison_table(rows: list, title: str = "change vs earlier run", only_changes: bool = True):
    """A rich Table of the rows (by default only those not 'within noise')."""
    from rich.table import Table

    if only_changes:
        rows = [r for r in rows if r["verdict"] != "within noise"]
        title = f"{title} (rows within the noise left out)"
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in ("shape", "device", "impl", "mode", "old ms", "new ms", "change", "noise ms", "verdict"):
        table.add_column(col, justify="right" if col in ("old ms", "new ms", "change", "noise ms") else "left")
    for r in rows:
        ms = lambda v: "-" if v is None else f"{v * 1e3:.3g}"  # noqa: E731
        change = "-" if r["change"] is None else f"{r['change'] * 100:+.1f}%"
        verdict = r["verdict"]
        style = "red" if verdict.startswith("regression") else "green" if verdict in ("improvement", "fixed") else ""
        table.add_row(r["config"], r["device"], r["impl"], r["mode"], ms(r["old_median_s"]), ms(r["new_median_s"]),
                      change, ms(r["noise_s"]), f"[{style}]{verdict}[/{style}]" if style else verdict)
    return table


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="earlier results.json")
    parser.add_argument("new", help="newer results.json")
    parser.add_argument("--min-change", type=float, default=DEFAULT_MIN_CHANGE,
                        help="relative slowdown below which nothing is flagged (default %(default)s)")
    parser.add_argument("--all", action="store_true", help="list the rows within the noise too")
    args = parser.parse_args(argv)
    from rich.console import Console

    rows = compare(load(args.old), load(args.new), args.min_change)
    console = Console()
    console.print(comparison_table(rows, only_changes=not args.all))
    console.print(summary(rows))
    bad = regressions(rows)
    console.print(f"{len(bad)} regression(s) beyond the noise" if bad else "no regression beyond the noise")
    return 1 if bad else 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
