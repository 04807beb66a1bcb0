"""The paper's findings as tested claims (sweep/reporting/claims.py), on a sweep's storage or
exported results: each with the paper's words, its test, the effect with a 95% interval, and a
verdict (holds, contradicted, not shown with the detectable effect, or missing runs with the
command that runs them).
    python -m sweep.claims --storage ./runs/local [--json]
    python -m sweep.claims --results DIR
    python -m sweep.claims --storage ./runs/local --plan     # the commands the claims still need
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sweep.report import add_source_flags
from sweep.reporting.claims import evaluate_claims, metric_label, plan
from sweep.reporting.result_set import ResultSet


def format_claims(found) -> str:
    lines = []
    for f in found:
        head = f"({f.id}) {f.question}: {f.verdict}"
        if f.effect is not None:
            unit = f" {f.unit}" if f.unit else ""
            head += (f"; effect {f.effect:+.3g}{unit} [95% CI {f.ci_low:+.3g}, {f.ci_high:+.3g}]"
                     f" on {metric_label(f.metric)}, p = {f.p:.2g}, p (Holm) = {f.p_holm:.2g}")
            if f.verdict == "not shown":
                head += f"; the smallest effect these runs could detect: {f.mde:.3g}{unit}"
        lines += [head, f"    \"{f.text}\" ({f.section})", f"    {f.detail}"]
        lines += [f"    run: {cmd}" for cmd in f.missing]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sweep.claims", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(p)
    p.add_argument("--json", action="store_true", help="{\"claims\": [...]} as JSON")
    p.add_argument("--plan", action="store_true",
                   help="list the commands that would run what the claims still need")
    p.add_argument("--model", help="the model the claims read (default: the first)")
    args = p.parse_args(argv)
    try:
        results = ResultSet.load(args.storage, args.results)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.plan:
        todo = plan(results)
        print("\n".join(f"claim {cid}: {cmd}" for cid, cmd in todo) or "every claim has its runs")
        return 0
    found = evaluate_claims(results, args.model)
    print(json.dumps({"claims": [f.to_dict() for f in found]}, indent=1) if args.json
          else format_claims(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
