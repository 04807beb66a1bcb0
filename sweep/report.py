"""The report of a sweep's storage, or of results exported from one (or written elsewhere):
report.md, report.json and figures; `--export` writes the results for anyone to reanalyse.
    python -m sweep.report [--storage ./runs/local] [--out DIR]
    python -m sweep.report --results DIR                 # a runs.csv + items.csv export
    python -m sweep.report --storage S --json            # rows, base, comparisons, claims
    python -m sweep.report --storage S --compare RUN_A RUN_B   # one paired comparison
    python -m sweep.report --storage S --export DIR      # runs.csv, items.csv (docs/RESULTS_FORMAT.md)
    python -m sweep.report --agreement PROXY FULL        # a proxy's runs against full runs
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from sweep.decision.agreement import agreement, format_agreement, proxy_of
from sweep.reporting import compare
from sweep.reporting.document import build_report, report_json, write_report
from sweep.reporting.result_set import ResultSet
from sweep.reporting.tables import abilities_of, title_of


def add_source_flags(p: argparse.ArgumentParser) -> None:
    """--storage or --results: every analysis command reads either."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--storage", default=None,
                       help="the sweep's storage, a path or URI (default ./runs/local)")
    where.add_argument("--results", metavar="DIR",
                       help="a folder with runs.csv and items.csv (an --export, or your own)")


def load_either(where: str) -> ResultSet:
    """A storage, or an export folder (one holding runs.csv)."""
    try:
        if Path(where, "runs.csv").is_file():
            return ResultSet.from_export(where)
        return ResultSet.from_storage(where)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {where}: {err}") from None


def print_agreement(proxy: str, full: str, as_json: bool = False) -> None:
    proxy_set, full_set = load_either(proxy), load_either(full)
    result = agreement(proxy_set.rows, full_set.rows)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    titles = {m: title_of(m, abilities_of(full_set.rows)) for m in result}
    print(f"agreement of {proxy} ({proxy_of(proxy_set.rows)}) with {full} "
          f"({proxy_of(full_set.rows)}), compositions paired:")
    print("\n".join(format_agreement(result, titles)))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sweep.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(p)
    p.add_argument("--out", help="where to write report.md, report.json and the PNGs")
    p.add_argument("--json", action="store_true", help="print rows, base, comparisons, claims")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="paired comparison of two runs (run ids), B minus A, every metric")
    p.add_argument("--export", metavar="DIR", help="write runs.csv and items.csv into DIR")
    p.add_argument("--agreement", nargs=2, metavar=("PROXY", "FULL"),
                   help="how a cheap proxy's runs order compositions against full runs: "
                        "Kendall, Spearman, decision accuracy with intervals (each a storage "
                        "or an export folder)")
    args = p.parse_args(argv)
    if args.agreement:
        print_agreement(*args.agreement, as_json=args.json)
        return
    try:
        results = ResultSet.load(args.storage, args.results)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    if args.export:
        print(f"exported {len({r['run_id'] for r in results.rows})} runs to "
              f"{results.export(args.export)}")
        return
    if args.compare:
        a, b = args.compare
        for c in compare.compare_runs(results, [a], [b]):
            print(compare.format_comparison(c, a, b))
        return
    if args.json:
        _, tested, cells, claims = build_report(results)
        print(json.dumps(report_json(cells, tested, claims), indent=1))
        return
    print(f"report: {write_report(results, args.out)}")


if __name__ == "__main__":
    main()
