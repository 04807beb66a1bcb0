"""The built-in synthetic corpora: deterministic, labelled, correct, and in the real formats."""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics

import pytest

from trainers.data.corpora import (
    CORPUS_VERSIONS,
    DEFAULT_SIZES,
    FILES,
    chat_text,
    code_example,
    folder_specs,
    generate_code,
    generate_general,
    generate_general_test,
    generate_math,
    generate_math_test,
    write_builtin_corpora,
)
from trainers.data.records import Rejects
from trainers.data.sources import detect_format, read_records


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpora")
    return directory, write_builtin_corpora(directory)


def test_files_are_deterministic_and_labelled_synthetic(corpora, tmp_path):
    directory, paths = corpora
    again = write_builtin_corpora(tmp_path)
    for name, path in paths.items():
        assert path.read_bytes() == again[name].read_bytes(), name
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["synthetic"] is True and meta["sizes"] == DEFAULT_SIZES
    assert "SYNTHETIC" in (directory / "README.md").read_text()
    assert generate_math(50, seed=1) != generate_math(50, seed=0)


def test_every_source_reads_clean_in_its_real_format(corpora):
    directory, paths = corpora
    expected = {"math": "rft", "code": "code_alpaca", "general": "sharegpt", "math_test": "gsm8k",
                "general_test": "sharegpt"}
    specs = folder_specs(directory)
    for name, fmt in expected.items():
        text = paths[name].read_text()
        first = json.loads(text.splitlines()[0]) if fmt in ("rft", "gsm8k") else json.loads(text)[0]
        assert detect_format(first) == fmt
        rejects = Rejects()
        records = read_records(specs[name], rejects=rejects)
        assert len(records) == DEFAULT_SIZES[name] and rejects.total == 0, name
        assert all(r["id"].startswith("syn-") for r in records)


def test_math_answers_are_worked_and_right(corpora):
    _, paths = corpora
    rows = [json.loads(line) for line in paths["math"].read_text().splitlines()]
    for row in rows:
        final = row["response"].split("\n")[-1]
        assert re.fullmatch(r"#### -?\d+", final)
        for expr, value in re.findall(r"<<([^=]+)=([^>]+)>>", row["response"]):
            assert eval(expr, {"__builtins__": {}}) == int(value), expr  # our own data
    by_question = {}
    for row in rows:
        by_question.setdefault(row["query"], set()).add(row["response"])
    assert max(len(v) for v in by_question.values()) >= 2  # several reasoning paths (RFT)
    assert len(by_question) < len(rows)


def test_math_test_shares_no_question_with_math(corpora):
    _, paths = corpora
    train = {json.loads(x)["query"] for x in paths["math"].read_text().splitlines()}
    test = [json.loads(x) for x in paths["math_test"].read_text().splitlines()]
    assert len(test) == DEFAULT_SIZES["math_test"]
    assert not train & {t["question"] for t in test}
    assert all(t["answer"].split("\n")[-1].startswith("#### ") for t in test)


def test_the_code_chats_of_general_run_and_give_the_reference_answer():
    rng = random.Random(7)
    for _ in range(200):
        row = code_example(rng)
        namespace = {}
        exec(row["output"], namespace)  # noqa: S102 (our own generated code)
        (fn,) = [v for k, v in namespace.items() if callable(v) and not k.startswith("__")]
        result = fn() if row["_call"] is None else fn(row["_call"])
        assert result == row["_expect"], row["output"]
    assert {"id", "instruction", "input", "output"} == set(generate_code(1)[0])


def test_chats_are_longer_multi_turn_and_some_are_code_or_math(corpora):
    directory, _ = corpora
    specs = folder_specs(directory)
    general = read_records(specs["general"])
    math = read_records(specs["math"])

    def chars(records):
        return statistics.mean(sum(len(m["content"]) for m in r["messages"]) for r in records)

    assert chars(general) > 3 * chars(math)
    assert max(len(r["messages"]) for r in general) >= 6
    rejects = Rejects()
    nocm = read_records(specs["general_nocm"], rejects=rejects)
    assert rejects.counts["tag:code"] > 50 and rejects.counts["tag:math"] > 50
    assert len(nocm) + rejects.total == len(general)


# sha256 (first 16 hex) of each file for seed 0 at these sizes, as CORPUS_VERSIONS write them: a
# change here changes what existing runs trained on (bump that corpus's version, never silently).
# code: version 2 (function completion, trainers/data/code_corpus.py); the others version 1.
PINNED_SIZES = {"math": 50, "code": 20, "general": 20, "math_test": 10, "general_test": 10}
PINNED = {"math": "75e581fa8d2158b8", "code": "65db401d908a3e60", "general": "84243f85a92e4d85",
          "math_test": "836d0bc9c703e412", "general_test": "222c312f3c185317",
          "tools": "94e36719cb92d6f8"}


def test_corpus_bytes_are_pinned(tmp_path):
    assert CORPUS_VERSIONS == {"math": 1, "code": 2, "general": 1, "math_test": 1,
                               "general_test": 1, "tools": 1}
    assert set(write_builtin_corpora(tmp_path / "five", PINNED_SIZES)) == set(FILES)
    paths = write_builtin_corpora(tmp_path, {**PINNED_SIZES, "tools": 50})  # opt-in: named
    assert set(paths) == set(FILES) | {"tools"} == set(PINNED)
    got = {name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for name, path in paths.items()}
    assert got == PINNED


def test_general_test_is_held_out_from_general(corpora):
    directory, paths = corpora
    train = json.loads(paths["general"].read_text())
    test = json.loads(paths["general_test"].read_text())
    assert len(test) == DEFAULT_SIZES["general_test"] == 200
    assert [t["id"] for t in test] == [f"syn-general-test-{i:06d}" for i in range(len(test))]
    train_texts = {chat_text(t["conversations"]) for t in train}
    test_texts = [chat_text(t["conversations"]) for t in test]
    assert not train_texts & set(test_texts) and len(set(test_texts)) == len(test_texts)
    records = read_records(folder_specs(directory)["general_test"])
    assert len(records) == len(test) and max(len(r["messages"]) for r in records) >= 6


def test_general_test_drops_chats_equal_to_training_ones():
    train = generate_general(300, seed=0)
    unfiltered = generate_general_test(200, [], seed=0)
    clashes = {chat_text(t["conversations"]) for t in train} & \
        {chat_text(t["conversations"]) for t in unfiltered}
    assert clashes  # small code chats repeat by chance: the filter has work to do
    test = generate_general_test(200, train, seed=0)
    assert not clashes & {chat_text(t["conversations"]) for t in test}
    # a leading model turn (a ShareGPT split) does not make a chat different
    chat = train[0]["conversations"]
    assert chat_text([{"from": "gpt", "value": "Sure."}, *chat]) == chat_text(chat)


def test_math_test_supplies_300_held_out_questions():
    math = generate_math(2000, seed=0)
    train = {m["query"] for m in math}
    test = generate_math_test(300, train, seed=0)
    questions = [t["question"] for t in test]
    assert len(test) == 300 and len(set(questions)) == 300 and not train & set(questions)
    assert test[:200] == generate_math_test(200, train, seed=0)  # a larger split extends a smaller


def test_builtin_sources_are_written_once_into_a_content_named_folder(tmp_path, monkeypatch):
    """The one writer the sweep and the finetune command share: the folder is named by sizes,
    seed and generator version; a second call finds it (metadata.json, written last) and
    rewrites nothing; general_nocm is general less code and math."""
    from core.storage import Storage
    from trainers.data import builtin_sources as bs

    sizes = {"math": 6, "code": 4, "general": 4, "math_test": 3, "general_test": 3}
    storage = Storage(tmp_path / "runs")
    specs = bs.write_builtin_sources(storage, sizes, seed=2)
    folder = bs.builtin_folder(sizes, 2)
    assert folder.startswith("corpora/") and folder != bs.builtin_folder(sizes, 3)
    assert storage.exists(f"{folder}/metadata.json") and not storage.exists(f"{folder}.lock")
    assert set(specs) == set(FILES) | {"general_nocm"}
    assert specs["math"].location == storage.uri_of(f"{folder}/{FILES['math'][0]}")
    assert specs["general_nocm"].location == specs["general"].location
    assert specs["general_nocm"].exclude_tags == ("code", "math")
    assert len(read_records(specs["math"])) == 6

    monkeypatch.setattr(bs, "write_builtin_corpora", lambda *a, **k: pytest.fail("rewritten"))
    assert bs.write_builtin_sources(storage, sizes, seed=2) == specs
    fp = bs.builtin_fingerprint(sizes, 2)
    assert set(fp) == {"math", "code", "general", "general_nocm"}
    assert fp["general_nocm"]["size"] == fp["general"]["size"] == "4"
    assert fp["general_nocm"]["exclude_tags"] == "code,math" and fp["math"]["exclude_tags"] == ""
