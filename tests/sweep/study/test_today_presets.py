"""Today's models as presets (core.model): the paper preset plans them offline from the
committed table (hub id, parameters, GPUs, template), and each trains with its template."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from core import model as models
from sweep import cli
from sweep.study import presets

TODAY = {"qwen2_5_7b": (7_615_616_512, "model"), "llama3_1_8b": (8_030_261_248, "vicuna"),
         "mistral_7b": (7_248_023_552, "vicuna")}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network and no model or tokenizer load: a dry run must need neither."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded a model, tokenizer or config")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("DMT_GSM8K_RFT", "DMT_JUDGE_URL", "DMT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(models, "load_tokenizer", refuse)
    monkeypatch.setattr(models, "build_model", refuse)
    for auto in (transformers.AutoTokenizer, transformers.AutoConfig,
                 transformers.AutoModelForCausalLM):
        monkeypatch.setattr(auto, "from_pretrained", refuse)


def dry_run(question: str, argv: list[str], capsys, as_json: bool = True):
    flags = ["--preset", "paper", "--dry-run", *(["--json"] if as_json else [])]
    assert cli.main(question, [*flags, *argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_the_table_holds_hub_ids_params_gpus_and_templates():
    for name, (params, template) in TODAY.items():
        preset = models.PRESETS[name]
        assert preset.params == params and preset.gpus_per_run == 8
        assert preset.template == template and "/" in preset.source
    assert models.PRESETS["qwen2_5_7b"].source == "Qwen/Qwen2.5-7B"


def test_rq2_plans_qwen_offline_with_its_figures(capsys):
    out = dry_run("rq2", ["--models", "qwen2_5_7b"], capsys)
    assert out["models"] == {"qwen2_5_7b": {"params": 7_615_616_512, "gpus_per_run": 8,
                                            "template": "model"}}
    assert out["gpu_hours"] > 0 and {r["model"] for r in out["run_list"]} == {"qwen2_5_7b"}
    # GPU hours are 6 x the table's parameters x tokens at the assumed throughput
    a = out["assumptions"]
    stage = next(iter(out["stages"].values()))
    expected = 6 * 7_615_616_512 * stage["processed_tokens"] / (a["peak_flops_per_gpu"] * a["mfu"])
    assert stage["gpu_hours"] == pytest.approx(expected / 3600)
    text = dry_run("rq2", ["--models", "qwen2_5_7b"], capsys, as_json=False)
    assert "params {'qwen2_5_7b': '7.62B'}" in text
    assert "chat templates {'qwen2_5_7b': 'model'}" in text


def test_all_plans_two_of_todays_models_offline(capsys):
    out = dry_run("all", ["--models", "qwen2_5_7b", "llama3_1_8b"], capsys)
    assert {m: (f["params"], f["template"]) for m, f in out["models"].items()} == \
        {m: TODAY[m] for m in ("qwen2_5_7b", "llama3_1_8b")}


def test_the_template_is_part_of_stage_and_run_ids(capsys):
    """A model preset's own template, or --template, renames its stages; Vicuna, the default,
    keeps the ids every stage was trained under (tests/sweep/planning/test_stage_ids_pinned.py)."""
    def ids(argv):
        out = dry_run("rq1", argv, capsys)
        return {(r["strategy"], r["fraction"]): (r["id"], tuple(r["stage_ids"]))
                for r in out["run_list"]}

    llama = ids(["--models", "llama3_1_8b", "--fractions", "1/256"])
    assert ids(["--models", "llama3_1_8b", "--fractions", "1/256", "--template", "vicuna"]) \
        == llama
    own = ids(["--models", "llama3_1_8b", "--fractions", "1/256", "--template", "model"])
    assert set(own) == set(llama)
    for key in llama:  # every run renamed, the base model's (no stages) included
        assert own[key][0] != llama[key][0]
        assert not set(own[key][1]) & set(llama[key][1])
    paper = presets.get_preset("paper")
    assert presets.train_settings(paper, "qwen2_5_7b").template == "model"
    assert presets.train_settings(paper, "llama_7b").template == "vicuna"
    # --template travels with the preset to the trials (preset_to_dict: their Tune config)
    forced = presets.preset_from_dict(presets.preset_to_dict(replace(paper, template="vicuna")))
    assert forced.template == "vicuna"
    assert presets.train_settings(forced, "qwen2_5_7b").template == "vicuna"
