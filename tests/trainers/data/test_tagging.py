"""The general_nocm tagger: keyword rules on hand-written ShareGPT-style samples, robust parsing of
model answers, the model tagger's Ray Data plumbing, and the removal share on real ShareGPT."""

from __future__ import annotations

import json

import pytest

from trainers.data.tagging import (
    INSTAG_PROMPT,
    PARSE_FAILED,
    KeywordTagger,
    ModelTagger,
    filter_general_nocm,
    filter_tagged_dataset,
    parse_tags,
    tag_dataset,
)


def chat(*turns: str, rid: str = "") -> dict:
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    return {"id": rid or turns[0][:20], "source": "general", "messages": messages}


SAMPLES = {  # name: (record, expected tags with scope="query")
    "python_request": (chat("Write a Python function that reverses a list.",
                            "```python\ndef rev(xs):\n    return xs[::-1]\n```"), {"code"}),
    "sql_in_query": (chat("Why does SELECT name FROM users WHERE id = 1 return nothing?",
                          "Check that a row with id 1 exists."), {"code"}),
    "html_in_query": (chat("Center this: <div class='a'><p>hi</p></div>", "Use flexbox."),
                      {"code"}),
    "c_include": (chat("#include <stdio.h>\nint main() { return 0; }\nwhy no output?",
                       "Nothing is printed."), {"code"}),
    "equation": (chat("Solve for x: 2x + 3 = 11", "x = 4"), {"math"}),
    "arithmetic": (chat("What is 25 * 4?", "100"), {"math"}),
    "latex": (chat("Compute $\\int_0^1 x^2 dx$ for me", "It is 1/3."), {"math"}),
    "probability": (chat("What is the probability of two heads in two coin flips?", "1/4"),
                    {"math"}),
    "both": (chat("Write a python function to compute the derivative of a polynomial.",
                  "```python\ndef d(c):\n    return [i * x for i, x in enumerate(c)][1:]\n```"),
             {"code", "math"}),
    "recipe": (chat("Give me a recipe for banana bread.", "Mash 3 bananas, mix with flour..."),
               set()),
    "travel": (chat("Plan a 3-day trip to Lisbon.", "Day 1: Alfama. Day 2: Belem.",
                    "Make day 2 shorter.", "Day 2: Belem tower only."), set()),
    "email": (chat("Write an email to my landlord about the broken heater.",
                   "Dear Mr. Smith, the heater has been broken since Monday..."), set()),
    "continue_with_code": (chat("continue", "```js\nconsole.log('done');\n```"), set()),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_keyword_tagger_on_hand_written_samples(name):
    record, expected = SAMPLES[name]
    assert KeywordTagger().tags([record]) == [expected]


def test_conversation_scope_reads_code_in_replies():
    record = SAMPLES["continue_with_code"][0]
    assert KeywordTagger(scope="conversation").tags([record]) == [{"code"}]
    assert KeywordTagger(scope="conversation").matches(record) == {
        "code": ["fenced_block", "js_syntax"]}
    with pytest.raises(ValueError, match="scope"):
        KeywordTagger(scope="replies")


def test_filter_general_nocm_counts_removed_samples_per_tag():
    records = [record for record, _ in SAMPLES.values()]
    kept, report = filter_general_nocm(records, KeywordTagger())
    expected_kept = [r for r, tags in SAMPLES.values() if not tags]
    assert kept == expected_kept
    assert report.total == len(SAMPLES) and report.kept == len(expected_kept)
    assert report.removed == len(SAMPLES) - len(expected_kept) == 9
    # "both" counts under each tag; the total counts it once
    assert report.removed_by_tag == {"code": 5, "math": 5}
    assert report.to_dict()["removed_by_tag"] == {"code": 5, "math": 5}
    kept_code_only, report = filter_general_nocm(records, KeywordTagger(), exclude=("code",))
    assert report.removed == 5 and report.removed_by_tag == {"code": 5}
    assert SAMPLES["equation"][0] in kept_code_only


def test_parse_tags_reads_what_models_write():
    good = 'Sure: [{"tag": "Python Programming", "explanation": "x"}, {"tag": "debugging"}]'
    assert parse_tags(good) == ["python programming", "debugging"]
    assert parse_tags('["math", "algebra"]') == ["math", "algebra"]
    loose = '{"tag": "travel planning", "explanation": "a trip"} {"tag": "itinerary"'
    assert parse_tags(loose) == ["travel planning", "itinerary"]
    assert parse_tags('[{"tag": "a \\"quoted\\" tag", "explanation": "broken') == [
        'a "quoted" tag']
    for garbage in ("", "I am not sure.", "[1, 2, 3]", "[{]", '[{"explanation": "no tag"}]'):
        assert parse_tags(garbage) is None


class FakeModel:
    """A deterministic stand-in for the model: its answer depends on the query it is given."""

    def __init__(self):
        self.prompts: list[str] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.prompts += prompts
        out = []
        for prompt in prompts:
            if "function" in prompt:
                out.append(json.dumps([{"tag": "Python programming", "explanation": "code"}]))
            elif "Solve" in prompt:
                out.append('{"tag": "mathematical problem solving", "explanation": "an equation"}')
            elif "banana" in prompt:
                out.append('[{"tag": "cooking", "explanation": "a recipe"}]')
            else:
                out.append("Tags: none that I can think of")
        return out


def test_model_tagger_prompts_parses_and_counts_failures():
    fake = FakeModel()
    records = [SAMPLES[n][0] for n in ("python_request", "equation", "recipe", "travel")]
    kept, report = filter_general_nocm(records, ModelTagger("unused", generate=fake))
    assert [r["id"] for r in kept] == [records[2]["id"], records[3]["id"]]
    assert report.removed_by_tag == {"code": 1, "math": 1} and report.parse_failures == 1
    prompt = fake.prompts[3]
    assert INSTAG_PROMPT.split("{")[0] in prompt and prompt.endswith("ASSISTANT:")
    assert "User query: Plan a 3-day trip to Lisbon.\n\nMake day 2 shorter." in prompt
    tags = ModelTagger("unused", generate=FakeModel()).tags(records)
    assert tags[2] == {"instag:cooking"} and tags[3] == {PARSE_FAILED}


@pytest.mark.slow
def test_model_tagger_runs_as_ray_data_actor(ray_local):
    """In Ray Data actors the tagger tags each row as it does in-process, and the filter keeps
    and removes the rows those tags say. tiny_llama at its default init answers every prompt
    with one repeated token, so each of its answers is a parse failure (kept, counted); a
    stand-in generator whose answer depends on the query checks the removal by tag."""
    import ray

    records = [SAMPLES[n][0] for n in ("python_request", "equation", "recipe", "travel")]
    tagger = ModelTagger("tiny_llama", max_new_tokens=6, batch_size=2)
    ds = tag_dataset(ray.data.from_items(records), tagger, batch_size=2).materialize()
    rows = {r["id"]: r for r in ds.take_all()}
    assert sorted(rows) == sorted(r["id"] for r in records)
    in_process = ModelTagger("tiny_llama", max_new_tokens=6, batch_size=2).tags(records)
    assert {r["id"]: sorted(t) for r, t in zip(records, in_process)} == {
        i: list(r["tags"]) for i, r in rows.items()} == {r["id"]: [PARSE_FAILED] for r in records}
    assert all(list(rows[r["id"]]["messages"]) == r["messages"] for r in records)
    kept, report = filter_tagged_dataset(ds)
    assert (report.total, report.kept, report.removed, report.parse_failures) == (4, 4, 0, 4)
    assert kept.count() == 4

    def by_keyword(prompts):  # built here, so Ray ships it by value to the actor
        answers = {"function": '[{"tag": "Python programming"}]', "Solve": '["algebra"]',
                   "banana": '[{"tag": "cooking"}]'}
        return [next((a for k, a in answers.items() if k in p), "no idea") for p in prompts]

    fake = ModelTagger("unused", generate=by_keyword)
    ds = tag_dataset(ray.data.from_items(records), fake, batch_size=2).materialize()
    assert {r["id"]: list(r["tags"]) for r in ds.take_all()} == {
        records[0]["id"]: ["code", "instag:python programming"],
        records[1]["id"]: ["instag:algebra", "math"], records[2]["id"]: ["instag:cooking"],
        records[3]["id"]: [PARSE_FAILED]}
    kept, report = filter_tagged_dataset(ds)
    assert sorted(r["id"] for r in kept.take_all()) == sorted([records[2]["id"],
                                                               records[3]["id"]])
    assert report.removed_by_tag == {"code": 1, "math": 1} and report.parse_failures == 1


def test_removal_share_on_real_sharegpt_sample(shared_data, capsys):
    from trainers.data.records import Rejects
    from trainers.data.source_spec import SourceSpec
    from trainers.data.sources import read_records

    path = shared_data / "sharegpt" / "sharegpt_v3_sample1011.json"
    rejects = Rejects()
    records = read_records(SourceSpec("general", str(path)), rejects=rejects)
    assert len(records) + rejects.total == 1011
    _, report = filter_general_nocm(records, KeywordTagger())
    with capsys.disabled():
        print(f"\n{path.name}: {report.text()} (paper, InsTag on 90K: about 30% removed)")
    assert 0.1 < report.removed / report.total < 0.5
    assert report.removed_by_tag["code"] > report.removed_by_tag["math"] > 0
