"""The report of a sweep's storage (or of exported results): report.md, report.json and figures.
    python -m sweep.report [--storage ./runs/local] [--out DIR]
    python -m sweep.report --storage S --json            # rows, base rows, comparisons as JSON
    python -m sweep.report --storage S --compare RUN_A RUN_B   # one paired comparison
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from core.storage import Storage
from sweep.reporting import compare
from sweep.reporting.budget import stored_budget
from sweep.reporting.document import build_report, report_json, write_report


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sweep.report", description=__doc__)
    p.add_argument("--storage", default="./runs/local", help="the sweep's storage (path or URI)")
    p.add_argument("--out", help="where to write report.md, report.json and the PNGs")
    p.add_argument("--json", action="store_true", help="print rows, base and comparisons as JSON")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="paired comparison of two runs (run ids), B minus A, every metric")
    args = p.parse_args(argv)
    storage = Storage(args.storage)
    if args.compare:
        a, b = args.compare
        for c in compare.compare_runs(storage, [a], [b]):
            print(compare.format_comparison(c, a, b))
        return
    if args.json:
        _, tested, cells = build_report(storage)
        print(json.dumps(report_json(cells, tested, stored_budget(storage)), indent=1))
        return
    print(f"report: {write_report(storage, args.out)}")


if __name__ == "__main__":
    main()
