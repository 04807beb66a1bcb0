"""How each eval runs against one loaded model: the evaluators behind `evals.run.evaluate`.

`LoadedModel` loads the weights on first use and shares them across evals (generation, and
teacher-forced scoring for the reference log-likelihoods and `general_loss`); `evaluator_for(name)`
gives the `Evaluator` of GSM8K, HumanEval(+), MT-Bench or general_loss, whose `run` returns the
eval's metrics, counts, records path and per-item outcomes (`items`).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.model import build_model, load_tokenizer
from core.settings import DEFAULT_TEMPLATE
from evals import generation, gsm8k, humaneval, likelihood, lm_eval_task, mtbench
from evals.generation import generate, load
from evals.judge import JudgeConfig
from evals.spec import write_jsonl
from trainers.data.corpora import CORPUS_VERSIONS
from trainers.data.records import Rejects
from trainers.data.vicuna import STOP


@dataclass(frozen=True)
class Evaluator:
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

    `report(phase, done, total)` hears how far the eval at hand is: the load, each generated
    and each scored batch (evaluate() turns it into EvalEvents for the console).
    """

    def __init__(self, model: Any, generate_fn: Callable | None = None,
                 max_new_tokens: int | None = None, template: str = DEFAULT_TEMPLATE,
                 report: Callable[[str, int, int | None], None] | None = None):
        self.source = model
        self.report = report or (lambda phase, done, total: None)
        self.max_new_tokens = max_new_tokens
        self.template = template  # the chat template the model was trained with
        self._generate_fn = generate_fn
        self._handle = None
        self._scorer = None
        self.loads = 0

    def _loaded(self):
        if self._handle is None:
            self.report("loading", 0, None)
            self._handle = _load(self.source)
            self.loads += 1
        return self._handle

    def generate(self, conversations, *, max_new_tokens, stop, temperature=0.0) -> list[str]:
        handle = self._loaded()
        if self.max_new_tokens is not None:
            max_new_tokens = min(max_new_tokens, self.max_new_tokens)
        options = {"max_new_tokens": max_new_tokens, "stop": stop, "temperature": temperature,
                   "template": self.template}
        if self._generate_fn is None:  # ours reports each batch; a replacement, once done
            return generate(handle, conversations, progress=self.progress_of("generate"),
                            **options)
        replies = self._generate_fn(handle, conversations, **options)
        self.report("generate", len(replies), len(replies))
        return replies

    def progress_of(self, phase: str):
        """A `Progress` for one phase of the eval at hand."""
        return lambda done, total: self.report(phase, done, total)

    def scorer(self):
        """The transformers (model, tokenizer) pair that scores likelihoods."""
        if self._scorer is None:
            handle = self._loaded()
            if isinstance(handle, str):
                self._scorer = _scoring_pair(handle)
            else:
                self._scorer = load(handle)  # (model, tokenizer name) -> loaded tokenizer
        return self._scorer

    def score_replies(self, conversations, replies, **kwargs) -> list:
        """evals.likelihood.score_replies with the loaded pair: one TargetScore (None: the reply
        cannot be tokenized exactly) per (conversation, reply)."""
        model, tokenizer = self.scorer()
        return likelihood.score_replies(model, tokenizer, conversations, replies,
                                        template=self.template, progress=self.progress_of("score"),
                                        **kwargs)

    def general_loss(self, chats, **kwargs) -> tuple[dict, list[dict], list[dict]]:
        """evals.likelihood.general_loss with the loaded pair: (metrics, items, records)."""
        model, tokenizer = self.scorer()
        return likelihood.general_loss(model, tokenizer, chats, template=self.template,
                                       progress=self.progress_of("score"), **kwargs)


def _load(model: Any):
    """What generate() takes, loaded once: a name stays a name where vLLM will serve it (the
    engine is built once and kept by evals.generation), else the (model, tokenizer) pair."""
    if not isinstance(model, str):
        return model  # already loaded
    if generation.vllm_usable(model):  # the same test generate() applies
        return model
    started = time.time()
    pair = generation.load(model)
    print(f"loaded {model} in {time.time() - started:.1f}s")
    return pair


def _scoring_pair(name: str):
    """The HF model for scoring beside a vLLM engine (see LoadedModel): loaded on the CPU, then
    moved to the GPU when its weights and 25% more fit in the GPU's free memory."""

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


def _gsm8k_evaluator() -> Evaluator:
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

    return Evaluator(spec.name, spec.version, spec.to_dict(), run)


def _humaneval_evaluator(plus: bool, unsafe_sandbox: bool = False) -> Evaluator:
    """`unsafe_sandbox`: run model code even where the sandbox has no isolation (recorded in
    the result as `isolation` "rlimits (unsafe)"; in the cache key, so safe runs never reuse)."""
    spec = humaneval.HUMANEVAL_PLUS if plus else humaneval.HUMANEVAL

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        problems = humaneval.load_problems(data, plus=plus, limit=limit)
        conversations = [humaneval.conversation(p) for p in problems]
        replies = model.generate(conversations, max_new_tokens=spec.max_new_tokens,
                                 stop=spec.stop)
        completions = {p.task_id: [r] for p, r in zip(problems, replies, strict=True)}
        metrics, records = humaneval.score(problems, completions, plus=plus,
                                           allow_unsafe=unsafe_sandbox,
                                           progress=model.progress_of("sandbox"))
        ref, ref_items, ref_counts = _ref_logprob(
            model, [p.task_id for p in problems], conversations,
            [humaneval.reference_reply(p) for p in problems], records)
        result = _finish(spec, out, {**metrics, "ref_logprob": ref}, records,
                         {"problems": len(problems), **ref_counts},
                         humaneval.items(problems, records) + ref_items)
        return {**result, "isolation": humaneval.isolation_text(metrics, unsafe_sandbox),
                "unsafe_sandbox": unsafe_sandbox}

    decoding = {**spec.to_dict(), **({"unsafe_sandbox": True} if unsafe_sandbox else {})}
    return Evaluator(spec.name, spec.version, decoding, run)


def _mtbench_evaluator(judge: JudgeConfig | None, cache_dir: Path | None) -> Evaluator:
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

    return Evaluator(bench.name, bench.version, decoding, run)


def _general_loss_evaluator() -> Evaluator:
    """Held-out chat NLL: a judge-free PROXY for general ability (not MT-Bench). Data: any file
    trainers.data.sources reads (default: the built-in general_test chats); lower is better."""

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


    # the default data's bytes are fixed by the generator's version: a new one, a new key
    decoding = {**spec.to_dict(), "default_data": f"builtin:general_test:v{CORPUS_VERSIONS['general_test']}"}
    return Evaluator(spec.name, spec.version, decoding, run, generates=False)


def _finish(spec, out: Path, metrics: dict, records: list[dict], counts: dict,
            items: list[dict]) -> dict:
    path = write_jsonl(out / f"{spec.name}_records.jsonl", records)
    return {"eval": spec.name, "version": spec.version, "metrics": metrics,
            "counts": counts, "records": str(path), "items": items}


@dataclass(frozen=True)
class EvalOptions:
    """What an evaluate() call decides for every eval it runs."""
    judge: JudgeConfig | None = None
    cache_dir: Path | None = None
    unsafe_sandbox: bool = False  # run HumanEval's model code without isolation
    lm_eval_include: str | None = None  # a folder of lm-eval task YAMLs
    lm_eval_raw: bool = False  # lm-eval prompts without the run's chat template


def _lm_eval_evaluator(task: str, options: EvalOptions) -> Evaluator:
    """An lm-evaluation-harness task (evals/lm_eval_task.py); its identity (task version,
    few-shot count, config hash, lm-eval's version) is its cache key's decoding."""
    identity = lm_eval_task.resolve_task(task, options.lm_eval_include)

    def run(model: LoadedModel, out: Path, limit, data) -> dict:
        hf_model, tokenizer = model.scorer()
        return lm_eval_task.evaluate_task(
            hf_model, tokenizer, task, out=out, limit=limit, include=options.lm_eval_include,
            template=None if options.lm_eval_raw else model.template, report=model.report)

    decoding = {**identity.to_dict(), **({"raw": True} if options.lm_eval_raw else {})}
    return Evaluator(lm_eval_task.PREFIX + task, identity.version, decoding, run,
                     generates=False)


# Each eval's builder: a new ability written in Python is a function here (docs/EXTENDING.md);
# any lm-eval task needs none (`lm-eval:TASK`).
BUILDERS: dict[str, Callable[[EvalOptions], Evaluator]] = {
    "gsm8k": lambda o: _gsm8k_evaluator(),
    "humaneval": lambda o: _humaneval_evaluator(plus=False, unsafe_sandbox=o.unsafe_sandbox),
    "humanevalplus": lambda o: _humaneval_evaluator(plus=True, unsafe_sandbox=o.unsafe_sandbox),
    "mtbench": lambda o: _mtbench_evaluator(o.judge, o.cache_dir),
    "general_loss": lambda o: _general_loss_evaluator(),
}
EVALS = tuple(BUILDERS)


def known(name: str) -> bool:
    return name in BUILDERS or lm_eval_task.task_name(name) is not None


def evaluator_for(name: str, options: EvalOptions = EvalOptions()) -> Evaluator:
    if name in BUILDERS:
        return BUILDERS[name](options)
    task = lm_eval_task.task_name(name)
    if task:
        return _lm_eval_evaluator(task, options)
    raise ValueError(f"unknown eval {name!r}; known: {', '.join(EVALS)}, or lm-eval:TASK")
