"""Golden stage and run ids of the sweep's dry runs, copied from the commands' output before the
import-cycle refactor (issue 10), which moved the built-in corpora's fingerprint and folder name
into trainers/data/builtin_sources.py and the id chaining into trainers.identity.stage_ids alone.
A stage id names a trained checkpoint in every storage: if one of these changes, every finished
stage and run is silently retrained. Change a literal here only together with a deliberate
change (a preset's settings or sizes, a CODE_VERSION bump), never as a side effect.
    python -m sweep.rq4 --preset smoke --dry-run --json
"""

from __future__ import annotations

import json

import pytest

from sweep import cli

# (question, preset) -> {(model, strategy, f, k): (run id, [stage ids])}
PINNED = {
    ("rq4", "smoke"): {
        ("tiny_llama", "general only", None, None):
            ("rq4-general_only-be8db9f9ea", ["a0cd32bad049c023"]),
        ("tiny_llama", "sequential", None, None):
            ("rq4-sequential-d1cae1476a",
             ["293ec4c388342af0", "290a0a6eaf8069a4", "2cca60c9db9eee7b"]),
        ("tiny_llama", "mixed sequential", None, None):
            ("rq4-mixed_sequential-01501052d1", ["1e463ad01b0fbf5a", "004ad44ba00b9961"]),
        ("tiny_llama", "DMT", None, "1/256"):
            ("rq4-dmt-1273bfa7ff", ["1e463ad01b0fbf5a", "9a0432cbab582e2e"]),
        ("tiny_llama", "DMT", None, "1/1"):
            ("rq4-dmt-07b0fb36f6", ["1e463ad01b0fbf5a", "3ce16f2a3b060049"]),
        ("tiny_llama", "base", None, None): ("base-base-988921b70c", []),
    },
    # The local preset as retuned in docs/LOCAL_PRESET.md (general 192 chats, general_loss on 40,
    # 128 new tokens); the same ids came from the pre-refactor sweep/plan.py on this preset.
    ("rq2", "local"): {
        ("smollm2_135m", "math only", "1/4", None):
            ("rq1-math_only-561db61c37", ["3eb72b96f00b8aa1"]),
        ("smollm2_135m", "general only", "1/4", None):
            ("rq1-general_only-99ebdfd7ea", ["b738e272d95e29ec"]),
        ("smollm2_135m", "mix", "1/4", None): ("rq2-mix-4d9dc5b9c7", ["66aab3188d48ee83"]),
    },
    # Paper preset ids re-pinned by issue 13, a deliberate change: packing on by default
    # (TrainSettings.packing is in every stage id). The old ids are paper_padded's, pinned below.
    ("rq4", "paper"): {
        ("llama_7b", "DMT", None, "1/256"):
            ("rq4-dmt-9ea7aefe2e", ["a26e112dddf4f02e", "dde0edaa977a607f"]),
        ("llama_13b", "sequential", None, None):
            ("rq4-sequential-e5999d680c",
             ["54debe85fa0afe5c", "2ca2db4ed847a1f2", "2ee3e35dff35bf07"]),
        ("llama_33b", "multi-task", None, None):
            ("rq4-multi_task-e91df58abd", ["d004b8122b62812b"]),
        ("llama_33b", "mixed sequential", None, None):
            ("rq4-mixed_sequential-f6e88f0fe8", ["51a8ee5d925e2fc7", "713acf87e3491a91"]),
    },
    ("rq4", "paper_padded"): {
        ("llama_7b", "DMT", None, "1/256"):
            ("rq4-dmt-0a6820e4f6", ["97bd72acd7381736", "246b17d1cd9d01cf"]),
    },
    # general_nocm: derived from general, on the built-in corpora and on the paper's ShareGPT.
    ("ablation", "smoke"): {
        ("tiny_llama", "mix", "1/4", None): ("ablation-mix-cd1140ce3d", ["a2ed0d73bb0533b8"]),
    },
    ("ablation", "paper"): {
        ("llama_7b", "mix", "1/4", None): ("ablation-mix-cc2bf94d61", ["b80733efadf446b8"]),
        ("llama_13b", "mix", "1/256", None): ("ablation-mix-5c79efe10f", ["9d46c9ab0addeed4"]),
    },
}


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch):
    """The paper preset reads its math file and judge from the environment."""
    for name in ("DMT_GSM8K_RFT", "DMT_JUDGE_URL", "DMT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)


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
    from sweep.presets import get_preset
    from trainers.data.builtin_sources import builtin_folder

    for name, folder in (("smoke", "corpora/9d1cda033bb862c0"),
                         ("local", "corpora/14be36fa52787d14")):
        preset = get_preset(name)
        assert builtin_folder(dict(preset.corpus_sizes), preset.data_seed) == folder
