"""Any lm-evaluation-harness task as an ability (evals/lm_eval_task.py).

The peer check: the same saved checkpoint scored by the engine (`lm-eval:TASK` through
evals.run.evaluate) and by plain lm-eval (`simple_evaluate` with its own `hf` model) gives the
same replies and the same per-item outcomes, without a chat template (raw) and with the
tokenizer's own (the engine's `model` template against lm-eval's apply_chat_template). Both a
log-likelihood task (multiple choice) and a generation task are checked, on tiny_llama, whose
random weights make the per-item outcomes vary. Plus: kinds and n per metric, the shipped
dmt_tool_calls task and its scorer, and errors that name the task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

from core.model import build_model, load_tokenizer
from evals import lm_eval_task
from evals.run import evaluate
from trainers.data.tools_corpus import generate_tools, generate_tools_test, score_call

MC = """task: toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder}/mc.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
"""
GEN = """task: toy_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder}/gen.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: answer
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
metadata:
  version: 1.0
"""
WORDS = ["red", "blue", "green", "seven", "apple", "river", "north", "paper"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Two toy tasks (12 questions each) and tiny_llama saved as a checkpoint folder."""
    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    mc = [{"question": f"Which word is number {i}?", "choices": WORDS[i % 5: i % 5 + 3],
           "answer": i % 3} for i in range(12)]
    gen = [{"question": f"Say {WORDS[i % 8]}.", "answer": WORDS[i % 8]} for i in range(12)]
    (folder / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc))
    (folder / "gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gen))
    (folder / "toy_mc.yaml").write_text(MC.format(folder=folder))
    (folder / "toy_gen.yaml").write_text(GEN.format(folder=folder))
    model_dir = tmp_path_factory.mktemp("tiny_checkpoint")
    tokenizer = load_tokenizer("tiny_llama")
    build_model("tiny_llama").save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return folder, model_dir


def _engine(model_dir: Path, folder: Path, out: Path, *, raw: bool) -> dict:
    results = evaluate(str(model_dir), ["lm-eval:toy_mc", "lm-eval:toy_gen"], out_dir=out,
                       lm_eval_include=str(folder), lm_eval_raw=raw, template="model")
    by_task = {}
    for name, result in results.items():
        rows = [json.loads(line) for line in Path(result["records"]).read_text().splitlines()]
        by_task[name.removeprefix("lm-eval:")] = {
            (r["doc_id"], r.get("filter")): (r["filtered_resps"], {m: r[m] for m in r["metrics"]})
            for r in rows}
    return results, by_task


def _peer(model_dir: Path, folder: Path, *, chat: bool) -> dict:
    out = simple_evaluate(model="hf", model_args=f"pretrained={model_dir},dtype=float32",
                          device="cpu",
                          tasks=["toy_mc", "toy_gen"], batch_size=8, log_samples=True,
                          task_manager=TaskManager(include_path=str(folder)),
                          apply_chat_template=chat, bootstrap_iters=0, verbosity=None)
    return {task: {(s["doc_id"], s.get("filter")): (
                json.loads(json.dumps(s["filtered_resps"], default=str)),
                {m: float(s[m]) for m in s["metrics"]}) for s in samples}
            for task, samples in out["samples"].items()}


@pytest.mark.parametrize("chat", [False, True], ids=["raw", "chat_template"])
def test_engine_and_plain_lm_eval_agree_item_by_item(toy, tmp_path, chat):
    folder, model_dir = toy
    results, engine = _engine(model_dir, folder, tmp_path / "engine", raw=not chat)
    peer = _peer(model_dir, folder, chat=chat)
    for task in ("toy_mc", "toy_gen"):
        assert set(engine[task]) == set(peer[task])
        for key, (replies, metrics) in peer[task].items():
            got_replies, got_metrics = engine[task][key]
            assert json.loads(json.dumps(got_replies, default=str)) == replies, (task, key)
            assert got_metrics == pytest.approx(metrics, abs=1e-6), (task, key)
    mc = results["lm-eval:toy_mc"]
    assert mc["kinds"] == {"acc": "binary", "acc_norm": "binary"}
    assert sum(i["metric"] == "acc" for i in mc["items"]) == 12
    accs = {i["value"] for i in mc["items"] if i["metric"] == "acc"}
    assert accs == {0.0, 1.0}  # a random model gets some right and some wrong: a real check


def test_item_outcomes_kinds_and_a_binary_metric_that_is_not_0_or_1():
    samples = [{"doc_id": 0, "filter": "none", "metrics": ["acc", "bleu"], "acc": 1.0,
                "bleu": 0.31},
               {"doc_id": 1, "filter": "strict", "metrics": ["acc"], "acc": 0.0}]
    items, kinds = lm_eval_task.item_outcomes("t", samples)
    assert kinds == {"acc": "binary", "bleu": "continuous", "acc[strict]": "binary"}
    assert {"item": "t/1", "metric": "acc[strict]", "value": 0.0} in items
    with pytest.raises(ValueError, match="doc 0 is 0.5, not a 0/1"):
        lm_eval_task.item_outcomes("t", [{"doc_id": 0, "metrics": ["acc"], "acc": 0.5}])
    custom = [{"doc_id": 0, "metrics": ["exact_call"], "exact_call": 1.0}]
    assert lm_eval_task.item_outcomes("t", custom)[1] == {"exact_call": "continuous"}
    declared = lm_eval_task.item_outcomes("t", custom, frozenset({"exact_call"}))[1]
    assert declared == {"exact_call": "binary"}  # a task's metadata.binary_metrics


def test_unknown_task_and_unreadable_data_are_errors_naming_the_task(tmp_path):
    with pytest.raises(lm_eval_task.TaskError, match="'no_such_task_xyz': not found"):
        lm_eval_task.resolve_task("no_such_task_xyz")
    (tmp_path / "broken.yaml").write_text(MC.replace("toy_mc", "broken").format(
        folder=tmp_path / "missing"))
    with pytest.raises(lm_eval_task.TaskError, match="'broken': its data cannot be read"):
        lm_eval_task.resolve_task("broken", str(tmp_path))


def test_the_shipped_tool_call_task_is_held_out_and_scored_exactly():
    identity = lm_eval_task.resolve_task("dmt_tool_calls")
    assert identity.output_type == "generate_until" and identity.files_hash
    train = {r["messages"][0]["content"].split("call for: ")[1] for r in generate_tools(3000)}
    test = [d for d in generate_tools_test(200)]
    assert not train & {d["prompt"].split("call for: ")[1] for d in test}
    doc = test[0]
    args = json.loads(doc["arguments"])
    assert score_call(json.dumps({"name": doc["name"], "arguments": args}), doc["name"],
                      args) == {"exact_call": 1, "tool_name": 1}
    wrong = {**args, next(iter(args)): "elsewhere"}
    assert score_call(f'Sure. {{"name": "{doc["name"]}", "arguments": {json.dumps(wrong)}}}',
                      doc["name"], args) == {"exact_call": 0, "tool_name": 1}
    assert score_call("no call here", doc["name"], args) == {"exact_call": 0, "tool_name": 0}
    assert score_call('{"name": "set_timer", "arguments": {"minutes": 12.0}}', "set_timer",
                      {"minutes": 12}) == {"exact_call": 1, "tool_name": 1}
