"""A sweep's content identities (sweep/planning/resolution.py): resolved once, carried in the preset to
every trial, in the stage ids. A corpus file replaced in place is retrained, an unchanged one
reused; an unresolved hub id warns, or with --require-resolved refuses; --decontaminate is
another source in stage ids, its test items written once into the storage."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from stage_fakes import FakeFit

from core import content
from core.storage import Storage
from sweep import cli, finetune
from sweep.planning.plan import sources_fingerprint
from sweep.planning.resolution import UnresolvedContent, UnresolvedError, resolve_preset
from sweep.study.presets import get_preset, preset_from_dict, preset_to_dict, source_specs
from trainers.data.sources import read_records


@pytest.fixture(autouse=True)
def _hermetic(tmp_path, monkeypatch):
    """Own hash cache; hub ids known only to what a test injects; no paper env overrides."""
    monkeypatch.setenv("DMT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(content, "hub_lookup", lambda offline=False: lambda kind, repo: None)
    for name in ("DMT_GSM8K_RFT", "DMT_JUDGE_URL", "DMT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)


def rows(kind: str, n: int) -> str:
    return "".join(json.dumps({"question": f"{kind} question {i}?", "answer": f"#### {i}"})
                   + "\n" for i in range(n))


@pytest.fixture()
def training(monkeypatch):
    """finetune's stages with a fake fit (a tiny real checkpoint) and a data builder that reads
    the sources through the real reader: what each trained stage read, by stage id."""
    from trainers import fit
    from trainers.data import pipeline

    read = {}

    def reading_build(recipe, specs, tokenizer_name, *, seed, epochs, max_len, overlong,
                      template):
        ids = [r["id"] for source, _ in recipe for r in read_records(specs[source])]
        return ids, type("Report", (), {"to_dict": lambda self: {"sources": []}})()

    def fake_fit(config):
        read[config.name] = config.dataset
        return fake_fit.real(config)

    monkeypatch.setattr(finetune, "connect_ray", lambda address: None)
    monkeypatch.setattr(pipeline, "build_stage_dataset", reading_build)
    monkeypatch.setattr(fit, "fit_stage", fake_fit)
    return fake_fit, read


def test_a_corpus_replaced_in_place_is_retrained_and_an_unchanged_one_reused(
        tmp_path, training):
    fake_fit, read = training
    fake_fit.real = FakeFit(tmp_path / "fits")
    math, code = tmp_path / "math.jsonl", tmp_path / "code.jsonl"
    math.write_text(rows("math", 4))
    code.write_text(rows("code", 3))

    def train(source):
        return finetune.main(["--preset", "smoke", "--storage", str(tmp_path / "runs"),
                              "--source", f"math={math}", "--source", f"code={code}",
                              "--strategy", "single", "--sources", source, "--progress-bars"])

    [first_math], [first_code] = train("math"), train("code")
    assert first_math.trained and first_code.trained
    [again] = train("math")
    assert not again.trained and again.stage_id == first_math.stage_id
    math.write_text(rows("math", 5))  # same path, new content
    [new_math], [same_code] = train("math"), train("code")
    assert new_math.trained and new_math.stage_id != first_math.stage_id
    assert not same_code.trained and same_code.stage_id == first_code.stage_id
    assert len(read[new_math.stage_id]) == 5 and len(read[first_math.stage_id]) == 4
    assert len(fake_fit.real.calls) == 3
    # The manifest says what the stage read: the file's sha256.
    assert new_math.manifest.sources["math"]["content"] == content.source_content(str(math)).value


def test_the_dry_run_names_the_stages_the_training_run_trains(tmp_path, training, capsys):
    fake_fit, _ = training
    fake_fit.real = FakeFit(tmp_path / "fits")
    math = tmp_path / "math.jsonl"
    math.write_text(rows("math", 4))
    options = ["--preset", "smoke", "--storage", str(tmp_path / "runs"), "--source",
               f"math={math}", "--strategy", "single", "--sources", "math", "--progress-bars"]
    [planned] = finetune.main(options + ["--dry-run"])
    [trained] = finetune.main(options)
    assert planned.stage_id == trained.stage_id and trained.trained


def test_unresolved_hub_ids_warn_and_require_resolved_refuses(capsys):
    paper = get_preset("paper")
    with pytest.warns(UnresolvedContent, match="sahil2801/CodeAlpaca-20k"):
        resolved = resolve_preset(paper, offline=True)
    assert {s.name: s.content for s in resolved.sources}["code"] == content.UNRESOLVED
    with pytest.raises(UnresolvedError, match="source math: ./gsm8k_rft/u13b.jsonl"):
        resolve_preset(paper, offline=True, require=True)
    with pytest.raises(SystemExit, match="--require-resolved"):
        cli.main("rq4", ["--preset", "paper", "--dry-run", "--require-resolved"])


def test_an_injected_hub_resolves_and_a_new_revision_renames_the_stages(tmp_path):
    revisions = {"sahil2801/CodeAlpaca-20k": "c0de", "anon8231489123/ShareGPT_Vicuna_unfiltered":
                 "5ba2", "huggyllama/llama-7b": "7b7b"}
    math = tmp_path / "u13b.jsonl"
    math.write_text(rows("math", 2))
    paper = get_preset("paper")
    paper = replace(paper, models=("llama_7b",), sources=tuple(
        replace(s, location=str(math)) if s.name == "math" else s for s in paper.sources))

    def resolved(hub):
        return resolve_preset(paper, hub=lambda kind, repo: hub.get(repo), require=True)

    a = resolved(revisions)
    assert dict(a.model_contents) == {"llama_7b": "hub:7b7b"}
    assert sources_fingerprint(a)["code"]["content"] == "hub:c0de"
    assert sources_fingerprint(a)["general_nocm"]["content"] == "hub:5ba2"
    b = resolved({**revisions, "sahil2801/CodeAlpaca-20k": "c0de2"})
    assert sources_fingerprint(b)["code"] != sources_fingerprint(a)["code"]
    assert sources_fingerprint(b)["math"] == sources_fingerprint(a)["math"]
    # Recorded on every result row (sweep/execution/provenance.py, sweep/reporting/results.py).
    from sweep.execution.provenance import sweep_provenance

    prov = sweep_provenance(a)
    assert prov["models"] == {"llama_7b": "hub:7b7b"}
    assert prov["sources"]["code"]["content"] == "hub:c0de"
    # Carried to trials as plain data, and never resolved again there.
    assert preset_from_dict(json.loads(json.dumps(preset_to_dict(a)))) == a
    assert resolve_preset(a, hub=pytest.fail) == a


def test_decontaminate_is_another_source_and_writes_its_items_once(tmp_path, capsys):
    def plan(*flags):
        assert cli.main("rq4", ["--preset", "smoke", "--dry-run", "--json", *flags]) == 0
        return {r["id"]: r["stage_ids"] for r in json.loads(capsys.readouterr().out)["run_list"]}

    raw, clean = plan(), plan("--decontaminate", "humaneval,mtbench")
    raw_ids = {s for ids in raw.values() for s in ids}
    assert raw_ids and not raw_ids & {s for ids in clean.values() for s in ids}
    assert plan("--decontaminate", "mtbench,humaneval") == clean  # the items name it
    assert not (tmp_path / "runs").exists()

    storage = Storage(tmp_path / "runs")
    smoke = replace(get_preset("smoke"), storage=storage.uri, decontaminate=("humaneval",))
    preset = resolve_preset(smoke, storage=storage)
    items = preset.decontamination_items
    assert items.startswith(storage.uri_of("decontamination/"))
    written = json.loads(Path(items).read_text())
    assert written["ngram"] == 13 and {t for t, _, _ in written["items"]} == {"humaneval"}
    specs = source_specs(preset, storage)
    assert {n for n, s in specs.items() if s.decontaminate == items} == {
        "math", "code", "general", "general_nocm"}  # the held-out splits stay whole
    assert resolve_preset(smoke, storage=storage).decontamination_items == items


def test_decontaminate_names_what_it_cannot_load(tmp_path):
    with pytest.raises(SystemExit, match="--decontaminate: .*nope.jsonl"):
        cli.main("rq4", ["--preset", "smoke", "--dry-run", "--decontaminate",
                         f"gsm8k={tmp_path / 'nope.jsonl'}"])
    bad = tmp_path / "gsm8k.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(SystemExit, match="gsm8k.jsonl:1: no string field 'answer'"):
        cli.main("rq4", ["--preset", "smoke", "--dry-run", "--decontaminate", f"gsm8k={bad}"])
    with pytest.raises(SystemExit, match="unknown test set 'mmlu'"):
        cli.main("rq4", ["--preset", "smoke", "--dry-run", "--decontaminate", "mmlu"])
