"""Readers for every format and location, auto-detection, ids, and losing nothing silently."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
from paths import ASSETS

from trainers.data.records import RecordError, Rejects
from trainers.data.source_spec import SourceSpec, make_spec
from trainers.data.sources import detect_format, read_records


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _roles(record: dict) -> list[str]:
    return [m["role"] for m in record["messages"]]


def test_gsm8k_and_rft_become_one_user_assistant_pair(tmp_path):
    gsm = _jsonl(tmp_path / "g.jsonl", [{"question": "Q?", "answer": "A\n#### 1"}])
    rft = _jsonl(tmp_path / "r.jsonl", [{"query": "Q?", "response": "A\n#### 1"}])
    (g,), (r,) = read_records(SourceSpec("g", str(gsm))), read_records(SourceSpec("r", str(rft)))
    assert g["messages"] == [{"role": "user", "content": "Q?"},
                             {"role": "assistant", "content": "A\n#### 1"}]
    assert r["messages"] == g["messages"] and r["id"] == g["id"]  # content hash: same text
    assert g["source"] == "g" and g["id"].startswith("h")


def test_code_alpaca_appends_a_nonempty_input_after_a_newline(tmp_path):
    rows = [{"instruction": "Sum a list.", "input": "[1, 2]", "output": "sum(x)"},
            {"instruction": "Say hi.", "input": "", "output": "print('hi')"}]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(rows, indent=2))
    with_input, plain = read_records(SourceSpec("code", str(path)))
    assert with_input["messages"][0]["content"] == "Sum a list.\n[1, 2]"
    assert plain["messages"][0]["content"] == "Say hi."


def test_sharegpt_roles_repairs_and_rejects_are_located():
    rejects = Rejects()
    path = ASSETS / "data_corrupt_sharegpt.json"
    records = read_records(SourceSpec("general", str(path)), rejects=rejects)
    assert [r["id"] for r in records] == ["ok_0", "split_part", "other_names"]
    assert _roles(records[1]) == ["user", "assistant"]  # leading split turn dropped
    assert _roles(records[2]) == ["system", "user", "assistant", "user", "assistant"]
    assert dict(rejects.counts) == {
        "roles do not alternate user/assistant": 1, "ends without an assistant turn": 1,
        "unknown role: robot": 1, "missing field: conversations": 1}
    assert rejects.examples["unknown role: robot"] == [f"{path}:5"]  # the line its object starts
    assert rejects.repairs["dropped leading assistant turn (ShareGPT split)"] == 1
    assert len(records) + rejects.total == 7


def test_corrupted_jsonl_is_counted_by_reason_and_line():
    rejects = Rejects()
    path = ASSETS / "data_corrupt_gsm8k.jsonl"
    records = read_records(SourceSpec("gsm8k", str(path)), rejects=rejects)
    assert len(records) == 3 and rejects.total == 5
    where = {reason: ex for reason, ex in rejects.examples.items()}
    assert where == {
        "malformed JSON (Expecting ',' delimiter)": [f"{path}:2"],
        "missing field: answer": [f"{path}:3"],
        "non-string field: question": [f"{path}:4"],
        "empty turn: user": [f"{path}:6"],
        "row is not a JSON object": [f"{path}:9"],
    }


def test_strict_fails_on_the_first_problem_with_file_and_line():
    path = ASSETS / "data_corrupt_gsm8k.jsonl"
    with pytest.raises(RecordError) as err:
        read_records(SourceSpec("gsm8k", str(path)), strict=True)
    assert err.value.line == 2 and str(err.value).startswith(f"{path}:2: malformed JSON")
    with pytest.raises(RecordError, match=r"data_corrupt_sharegpt.json:3: roles do not alt"):
        read_records(SourceSpec("g", str(ASSETS / "data_corrupt_sharegpt.json")), strict=True)


def test_broken_json_list_is_a_whole_file_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"question": "a", "answer": "b"},\n {"question": "c",, }\n]')
    with pytest.raises(RecordError, match=r"broken.json:3: malformed JSON list"):
        read_records(SourceSpec("x", str(path)))


def test_messages_gz_parquet_and_file_uri_read_alike(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"m{i}", "messages": [{"role": "user", "content": f"q{i}"},
                                         {"role": "assistant", "content": f"a{i}"}]}
            for i in range(3)]
    plain = _jsonl(tmp_path / "m.jsonl", rows)
    gz = tmp_path / "m.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m.parquet")
    expected = read_records(SourceSpec("m", str(plain)))
    assert [r["id"] for r in expected] == ["m0", "m1", "m2"]
    for location in (str(gz), str(tmp_path / "m.parquet"), f"file://{plain}"):
        assert read_records(SourceSpec("m", location)) == expected, location


def test_format_is_detected_from_keys_and_can_be_overridden(tmp_path):
    assert detect_format({"query": "q", "response": "r"}) == "rft"
    assert detect_format({"instruction": "i", "input": "", "response": "r", "output": "o"}) \
        == "code_alpaca"  # new_codealpaca's extra `response` key
    assert detect_format({"answer": "only"}) == "gsm8k"  # so the missing question is reported
    path = _jsonl(tmp_path / "x.jsonl", [{"query": "q", "response": "r"}])
    rejects = Rejects()
    assert read_records(SourceSpec("x", str(path), format="gsm8k"), rejects=rejects) == []
    assert dict(rejects.counts) == {"missing field: question": 1}
    with pytest.raises(ValueError, match="unknown format"):
        SourceSpec("x", str(path), format="alpaca")


def test_duplicate_ids_are_renamed_in_file_order(tmp_path):
    row = {"question": "same", "answer": "same"}
    path = _jsonl(tmp_path / "d.jsonl", [row, row, {"question": "b", "answer": "c"}, row])
    rejects = Rejects()
    ids = [r["id"] for r in read_records(SourceSpec("d", str(path)), rejects=rejects)]
    first = ids[0]
    assert ids == [first, f"{first}#2", ids[2], f"{first}#3"]
    assert rejects.repairs["duplicate id renamed id#k"] == 2 and rejects.total == 0


def test_a_hugging_face_id_goes_to_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split, revision))
        return [{"question": "Q", "answer": "A"}, {"question": "Q2"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rejects = Rejects()
    spec = SourceSpec("gsm8k", "openai/gsm8k", hf_config="main", split="test")
    records = read_records(spec, rejects=rejects)
    assert calls == [("openai/gsm8k", "main", "test", None)]
    assert len(records) == 1 and rejects.examples["missing field: answer"] == ["openai/gsm8k:2"]
    # Resolved at sweep start (core.content): read at the revision the stage ids name.
    read_records(dataclasses.replace(spec, content="hub:0a1b2c"))
    assert calls[-1] == ("openai/gsm8k", "main", "test", "0a1b2c")


def test_a_missing_local_file_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(RecordError, match="no such file"):
        read_records(SourceSpec("x", str(tmp_path / "absent.jsonl")))


def test_length_limit_rejects_are_counted(tmp_path):
    path = _jsonl(tmp_path / "l.jsonl", [{"question": "q" * 50, "answer": "a"},
                                         {"question": "q", "answer": "a"}])
    rejects = Rejects()
    assert len(read_records(SourceSpec("l", str(path)), rejects=rejects, max_chars=20)) == 1
    assert dict(rejects.counts) == {"over length limit (20 chars)": 1}


def test_general_nocm_always_excludes_code_and_math(tmp_path):
    chats = [{"id": "py", "conversations": [
                 {"from": "human", "value": "Fix my Python code: def f(x): return x +"},
                 {"from": "gpt", "value": "```python\ndef f(x):\n    return x + 1\n```"}]},
             {"id": "trip", "conversations": [
                 {"from": "human", "value": "Where should I walk in Lisbon?"},
                 {"from": "gpt", "value": "Try the old town by the river."}]}]
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(chats))
    spec = make_spec("general_nocm", str(path))
    assert spec.exclude_tags == ("code", "math") and make_spec("general", "x").exclude_tags == ()
    rejects = Rejects()
    assert [r["id"] for r in read_records(spec, rejects=rejects)] == ["trip"]
    assert dict(rejects.counts) == {"tag:code": 1}
