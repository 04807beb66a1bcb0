"""From grid to decision: fit each ability over the runs' compositions, judge the fits out of
fold, and propose the predicted best composition per ability and the Pareto set across them,
or say "no signal" where the fits explain nothing (docs/DECISIONS.md).
    python -m sweep.recommend [--storage ./runs/local | --results DIR] [--json]
    python -m sweep.recommend --storage S --metrics gsm8k/flexible,general/loss
    python -m sweep.recommend --storage LORA_RUNS --min-agreement 0.7 --full ./runs/local
    python -m sweep.recommend --storage S --export-olmix DIR     # ratios.csv, metrics.csv
The recommendation is also written beside the report (recommendation.json, its figure), and
the report shows it as a section.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sweep.decision.agreement import agreement, format_agreement, proxy_of
from sweep.decision.olmix import export_olmix
from sweep.decision.recommend import NO_SIGNAL, markdown, recommend
from sweep.planning.source_sizes import source_tokens_of_preset
from sweep.report import add_source_flags, load_either
from sweep.reporting.document import RECOMMENDATION, report_folder, write_report
from sweep.reporting.figures import recommendation_figure
from sweep.reporting.result_set import ResultSet
from sweep.reporting.tables import abilities_of, title_of
from sweep.study.presets import PRESETS, get_preset


def source_tokens(rows: Sequence[dict]) -> dict[str, float] | None:
    """Tokens in all of each source (samples x mean tokens, as the plan knows them) for the
    preset the runs name; None when it is not a known preset."""
    names = {r.get("preset") for r in rows}
    if len(names) != 1 or next(iter(names)) not in PRESETS:
        return None
    return source_tokens_of_preset(get_preset(next(iter(names))))


def check_agreement(results: ResultSet, full: str, minimum: float, metrics) -> None:
    """--min-agreement: a proxy's decision accuracy against full runs, per metric, must reach
    `minimum` (its point estimate); otherwise the command refuses, naming the metric."""
    measured = agreement(results.rows, load_either(full).rows, metrics)
    print("\n".join(format_agreement(measured)))
    low = {m: e.get("decision_accuracy", {}).get("value") for m, e in measured.items()}
    bad = {m: v for m, v in low.items() if v is None or not v >= minimum}
    if bad:
        raise SystemExit(f"--min-agreement {minimum}: the proxy's decision accuracy against "
                         f"{full} is below it (or unmeasured) for {bad}; not recommending "
                         "from it")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sweep.recommend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_flags(p)
    p.add_argument("--metrics", help="comma-separated metrics (default: each ability's "
                                     "headline metric)")
    p.add_argument("--model", help="the base model whose runs to fit (default: the first)")
    p.add_argument("--min-agreement", type=float, metavar="X",
                   help="proxy runs only: refuse unless their decision accuracy against "
                        "--full reaches X")
    p.add_argument("--full", metavar="STORAGE_OR_DIR", help="full fine-tuning runs to check "
                                                           "a proxy against")
    p.add_argument("--export-olmix", metavar="DIR", help="write ratios.csv and metrics.csv "
                                                        "(one-stage runs) for Olmix")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        results = ResultSet.load(args.storage, args.results)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    rows = results.rows
    if args.export_olmix:
        summary = export_olmix(rows, args.export_olmix, results.storage, source_tokens(rows))
        print(f"wrote {args.export_olmix}: {summary['runs']} runs, left out {summary['left_out']}")
        return 0
    abilities = abilities_of(rows)
    metrics = args.metrics.split(",") if args.metrics else [a.metric for a in abilities]
    proxy = proxy_of(rows)
    if proxy != "full":
        if args.min_agreement is None or not args.full:
            raise SystemExit(f"these runs are a proxy ({proxy}): give --full (full runs of the "
                             "same compositions) and --min-agreement X")
        check_agreement(results, args.full, args.min_agreement, metrics)
    rec = recommend(rows, metrics, proxy=proxy, model=args.model,
                    source_tokens=source_tokens(rows), seed=args.seed)
    titles = {m: title_of(m, abilities) for m in metrics}
    out = report_folder(results)
    runs = len({r["run_id"] for r in rows})
    (out / RECOMMENDATION).write_text(json.dumps({**rec, "titles": titles, "runs": runs},
                                                 indent=1) + "\n")
    recommendation_figure(rec, titles, out)
    write_report(results, out)  # the report's Recommendation section (uploaded if remote)
    if args.json:
        json.dump(rec, sys.stdout, indent=1)
        print()
    else:
        print("\n".join(markdown(rec, titles)))
        if rec["no_signal"] and not rec["proposals"]:
            print(f"{NO_SIGNAL}: nothing to propose from these runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
