"""The built-in synthetic corpora: deterministic, labelled, correct, and in the real formats."""

from __future__ import annotations

import json
import random
import re
import statistics

import pytest

from trainers.corpora import (
    DEFAULT_SIZES,
    builtin_specs,
    code_example,
    generate_code,
    generate_math,
    write_builtin_corpora,
)
from trainers.records import Rejects
from trainers.sources import detect_format, read_records


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
    expected = {"math": "rft", "code": "code_alpaca", "general": "sharegpt", "math_test": "gsm8k"}
    specs = builtin_specs(directory)
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


def test_code_outputs_run_and_give_the_reference_answer():
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
    specs = builtin_specs(directory)
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
