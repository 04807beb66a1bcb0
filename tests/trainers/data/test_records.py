"""The one record shape: validation reasons, located errors and reject counting."""

from __future__ import annotations

import json

import pytest

from trainers.data.records import MAX_EXAMPLES, RecordError, Rejects, check_messages, content_id


def _conv(*roles: str) -> list[dict]:
    return [{"role": r, "content": f"{r} text {i}"} for i, r in enumerate(roles)]


def test_record_error_names_file_line_and_reason():
    err = RecordError("data/x.jsonl", 17, "missing field: answer")
    assert str(err) == "data/x.jsonl:17: missing field: answer"
    assert (err.path, err.line, err.reason) == ("data/x.jsonl", 17, "missing field: answer")
    assert str(RecordError("x.json", None, "no such file")) == "x.json: no such file"


@pytest.mark.parametrize("messages, reason", [
    (_conv("user", "assistant"), None),
    (_conv("system", "user", "assistant", "user", "assistant"), None),
    ([], "empty conversation"),
    (_conv("system"), "no user turn"),
    (_conv("assistant"), "no user turn"),
    (_conv("user", "user", "assistant"), "roles do not alternate user/assistant"),
    (_conv("user", "system", "assistant"), "roles do not alternate user/assistant"),
    (_conv("user", "assistant", "user"), "ends without an assistant turn"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": " \n"}],
     "empty turn: assistant"),
    ([{"role": "user"}, {"role": "assistant", "content": "x"}], "missing field: content"),
    ([{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}],
     "non-string field: content"),
    ([{"role": "bot", "content": "a"}, {"role": "assistant", "content": "x"}], "unknown role: bot"),
])
def test_check_messages_reasons(messages, reason):
    assert check_messages(messages) == reason


def test_length_limit_counts_characters():
    messages = [{"role": "user", "content": "a" * 6}, {"role": "assistant", "content": "b" * 4}]
    assert check_messages(messages, max_chars=10) is None
    assert check_messages(messages, max_chars=9) == "over length limit (9 chars)"


def test_content_id_is_stable_and_content_sensitive():
    a = _conv("user", "assistant")
    # pinned: record ids name selected subsets, so the same text keeps this id on any machine
    assert content_id(a) == "ha8fd0c562e3dd9596b45"
    assert content_id(json.loads(json.dumps(a))) == "ha8fd0c562e3dd9596b45"
    b = [dict(m) for m in a]
    b[1]["content"] += "!"
    assert content_id(a) != content_id(b)


def test_rejects_count_keep_examples_merge_and_round_trip():
    a, b = Rejects(), Rejects()
    for line in range(1, 6):
        a.add("malformed JSON", f"f.jsonl:{line}")
    a.repair("dropped leading assistant turn", "f.json:3")
    b.add("malformed JSON", "g.jsonl:9")
    b.add("tag:code", "", 4)
    assert a.total == 5 and len(a.examples["malformed JSON"]) == MAX_EXAMPLES
    merged = a.merge(b)
    assert merged is a
    assert dict(a.counts) == {"malformed JSON": 6, "tag:code": 4} and a.total == 10
    assert a.examples["malformed JSON"] == ["f.jsonl:1", "f.jsonl:2", "f.jsonl:3"]
    saved = json.loads(json.dumps(a.to_dict()))
    assert saved["total"] == 10 and saved["repairs"] == {"dropped leading assistant turn": 1}
    again = Rejects.from_dict(saved)
    assert again.counts == a.counts and again.examples == a.examples
    text = a.report()
    assert "6  malformed JSON  (e.g. f.jsonl:1" in text and "4  tag:code" in text
    assert "kept, repaired 1: dropped leading assistant turn" in text
    assert Rejects().report().strip() == "no rejects"
