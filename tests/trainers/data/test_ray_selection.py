"""Selection in Ray Data (trainers/data/scan.py + pipeline.select_sources) against the driver-side
rule it replaces (selection.select over sources.read_records): the same ids, counts, rejects and
strict errors on any part layout, and no record body ever taken back by the driver.
    pytest -q tests/trainers/data/test_ray_selection.py
"""

from __future__ import annotations

import json
import pickle
from fractions import Fraction

import pytest

from trainers.data.corpora import folder_specs, write_builtin_corpora
from trainers.data.recipe import make_recipe
from trainers.data.records import RecordError, Rejects
from trainers.data.selection import select
from trainers.data.source_spec import SourceSpec
from trainers.data.sources import read_records

SIZES = {"math": 400, "code": 200, "general": 200, "math_test": 20}


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    directory = tmp_path_factory.mktemp("builtin")
    write_builtin_corpora(directory, SIZES)
    return folder_specs(directory)


def _messy_lines() -> str:
    """JSONL whose rows hit every path of read_records: rows before the format is detected,
    broken JSON, a raw U+2028 (str.splitlines cuts there), blank lines, repeated ids."""
    rows = ["not json", "[1, 2]", json.dumps({"foo": 1}),
            json.dumps({"question": "Q1", "answer": "A1"}),
            json.dumps({"question": "Q1", "answer": "A1"}),  # same content: same id, renamed
            json.dumps({"question": "Q2 \u2028 split", "answer": "A2"}, ensure_ascii=False),
            "", json.dumps({"question": "Q3", "answer": "A3", "id": "x"}),
            json.dumps({"question": "Q4", "answer": "A4", "id": "x"}),
            json.dumps({"question": "Q5"}), "[]", json.dumps({"question": " ", "answer": "A"})]
    rows += [json.dumps({"question": f"What is {i} + {i}?", "answer": f"{2 * i}"})
             for i in range(60)]
    return "\n".join(rows) + "\n"


def _messy_list() -> str:
    """A ShareGPT JSON list: two elements on one line, a split chat opening with the model's
    turn (repaired), an unknown role, a non-object element."""
    def chat(i, first="human"):
        return {"conversations": [{"from": first, "value": f"hello {i}"},
                                  {"from": "gpt", "value": f"hi {i}"}]}
    elements = [json.dumps(chat(i)) for i in range(40)]
    elements[3] = json.dumps({"conversations": [{"from": "gpt", "value": "cut"},
                                                {"from": "human", "value": "q"},
                                                {"from": "gpt", "value": "a"}]})
    elements[5] = json.dumps(chat(5, first="robot"))
    elements[7] = "17"
    elements[9] = elements[9] + ", " + json.dumps(chat(99))  # two on one line
    return "[\n" + ",\n".join(elements) + "\n]\n"


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("messy")
    (directory / "lines.jsonl").write_text(_messy_lines(), encoding="utf-8")
    (directory / "chats.json").write_text(_messy_list(), encoding="utf-8")
    return {"lines": SourceSpec("lines", str(directory / "lines.jsonl")),
            "chats": SourceSpec("chats", str(directory / "chats.json"))}


def _driver_side(spec, amount, seed):
    """The rule as it ran on the driver before: read everything, then select."""
    rejects = Rejects()
    records = read_records(spec, rejects=rejects)
    return [r["id"] for r in select(records, amount, seed, spec.name)], len(records), rejects


def _check_same(specs, recipe, seed, num_blocks):
    from trainers.data.pipeline import select_sources

    selections, counts = select_sources(recipe, specs, seed, num_blocks=num_blocks)
    for (source, amount), selection, count in zip(recipe, selections, counts):
        ids, kept, rejects = _driver_side(specs[source], amount, seed)
        assert sorted(selection.ids.to_pylist()) == sorted(ids), (source, num_blocks)
        assert count["kept"] == kept and count["selected"] == len(ids)
        assert count["rejects"] == rejects.to_dict(), (source, num_blocks)
        assert count["read"] == kept + rejects.total


@pytest.mark.parametrize("num_blocks", [None, 3])
def test_selected_ids_equal_the_driver_side_selection_on_the_builtin_corpora(
        ray_local, builtin, num_blocks):
    recipe = make_recipe([("math", Fraction(1, 4)), ("code", 33), ("general", Fraction(1, 3)),
                          ("general_nocm", Fraction(1, 2))])
    _check_same(builtin, recipe, seed=7, num_blocks=num_blocks)


@pytest.mark.parametrize("num_blocks", [1, 4, 9])
def test_every_reject_repair_and_renamed_id_as_read_records_counts_them(
        ray_local, messy, num_blocks):
    recipe = make_recipe([("lines", Fraction(1, 2)), ("chats", Fraction(1))])
    _check_same(messy, recipe, seed=3, num_blocks=num_blocks)


@pytest.mark.parametrize("num_blocks", [1, 4])
def test_decontamination_leaves_out_what_read_records_leaves_out(ray_local, tmp_path, num_blocks):
    """Planted test items, one of them also tagged code: both readers give each the same single
    reason (the test set it overlaps comes first) and keep the same ids."""
    from contamination import planted_chats, write_items

    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in planted_chats()))
    items = write_items(tmp_path)
    specs = {"clean": SourceSpec("clean", str(path), decontaminate=items),
             "nocm": SourceSpec("nocm", str(path), exclude_tags=("code", "math"),
                                decontaminate=items)}
    rejects = Rejects()
    read_records(specs["nocm"], rejects=rejects)
    assert rejects.counts["contaminated:humaneval"] == 1  # tagged code too, counted once
    recipe = make_recipe([("clean", Fraction(1)), ("nocm", Fraction(1))])
    _check_same(specs, recipe, seed=5, num_blocks=num_blocks)


def test_strict_fails_on_the_first_bad_row_as_read_records_does(ray_local, messy, tmp_path):
    from trainers.data.pipeline import select_sources

    for name in ("lines", "chats"):
        with pytest.raises(RecordError) as old:
            read_records(messy[name], strict=True)
        with pytest.raises(RecordError) as new:
            select_sources(make_recipe([(name, Fraction(1))]), messy, 0, strict=True,
                           num_blocks=3)
        assert str(new.value) == str(old.value)
    broken = tmp_path / "broken.json"  # a list that breaks is a whole-file error, strict or not
    broken.write_text('[{"query": "q", "response": "r"},\n{"query": "q2", "resp')
    specs = {"broken": SourceSpec("broken", str(broken))}
    with pytest.raises(RecordError) as old:
        read_records(specs["broken"])
    with pytest.raises(RecordError) as new:
        select_sources(make_recipe([("broken", Fraction(1))]), specs, 0)
    assert str(new.value) == str(old.value)


def test_the_driver_never_takes_back_a_record_body(ray_local, tmp_path, monkeypatch):
    """Every object the driver gets from Ray passes through pipeline.fetch: none holds a
    record's text, and all of them together come to a few dozen bytes per record read."""
    import ray

    from trainers.data import pipeline

    marker, n = "zebra-body-marker", 300
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps({"query": f"{marker} {i} " + "words " * 300,
                                        "response": f"answer {i}"}) + "\n" for i in range(n)))
    fetched = []

    def watching_fetch(refs):
        objects = ray.get(refs)
        fetched.append(pickle.dumps(objects))
        return objects

    monkeypatch.setattr(pipeline, "fetch", watching_fetch)
    specs = {"long": SourceSpec("long", str(path))}
    _, report = pipeline.build_stage_dataset(make_recipe([("long", Fraction(1, 2))]), specs,
                                             "tiny_llama", seed=0, epochs=1, max_len=4096,
                                             num_blocks=3)
    assert report.rows_per_epoch == n // 2
    assert fetched and not any(marker.encode() in blob for blob in fetched)
    per_record = sum(map(len, fetched)) / n
    assert per_record < 400 < path.stat().st_size / n  # bodies are ~1.8 kB here
