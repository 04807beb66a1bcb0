"""The finetune command end to end with real fits (tiny_llama, built-in corpora at 1/64, one
worker, one epoch), two fits in all: a math+code mix trains the stage that mixed sequential then
reuses as its first, mixed sequential trains only its second, and a re-run trains nothing. (The
dmt(k) x2 + mixed sequential count with a fake fit is in tests/test_stages.py.)"""

from fractions import Fraction as F

import pytest

from trainers import finetune

COMMON = ["--model", "tiny_llama", "--scale", "1/64", "--epochs", "1", "--max-len", "128",
          "--workers", "1"]


def test_options_build_the_strategies():
    args = finetune.build_parser().parse_args(["--strategy", "single", "--sources", "math",
                                               "--amount", "1/4"])
    assert [s.recipe for s in finetune.build_stages(args)] == [(("math", F(1, 4)),)]
    args = finetune.build_parser().parse_args(["--strategy", "mix", "--amount", "math=#8,code=1"])
    assert finetune.build_stages(args)[0].recipe == (("code", F(1)), ("math", 8))
    args = finetune.build_parser().parse_args(["--strategy", "dmt", "--k", "1/256"])
    scaled = finetune.scale_stages(finetune.build_stages(args), F(1, 64))
    assert [s.recipe for s in scaled] == [
        (("code", F(1, 64)), ("math", F(1, 64))),
        (("code", F(1, 16384)), ("general", F(1, 64)), ("math", F(1, 16384)))]
    assert finetune.scale_amount(300, F(1, 64)) == 4 and finetune.scale_amount(3, F(1, 64)) == 1
    with pytest.raises(SystemExit, match="--k"):
        finetune.build_stages(finetune.build_parser().parse_args(["--strategy", "dmt"]))
    args = finetune.build_parser().parse_args(["--source", "math=/x.jsonl"])
    with pytest.raises(SystemExit, match="general"):
        finetune.build_sources(args, {"math", "code", "general"})


@pytest.mark.slow
def test_cli_trains_each_stage_once_and_leaves_loadable_checkpoints(
        ray_local, tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForCausalLM

    from trainers import fit

    fits = []
    real_fit = fit.fit_stage

    def counting_fit(config):
        fits.append(config.name)
        return real_fit(config)

    monkeypatch.setattr(fit, "fit_stage", counting_fit)
    where = ["--storage", str(tmp_path / "runs"), "--corpora", str(tmp_path / "corpora")]

    # mix(math, code) is mixed sequential's (and every DMT's) first stage: two fits in all.
    [mixed] = finetune.main(COMMON + where + ["--strategy", "mix", "--amount", "math=1,code=1"])
    assert mixed.trained and fits == [mixed.stage_id]
    staged = finetune.main(COMMON + where + ["--strategy", "mixed_sequential"])
    assert staged[0].stage_id == mixed.stage_id
    assert [r.trained for r in staged] == [False, True] and fits == [r.stage_id for r in staged]
    assert staged[1].manifest["model_source"] == mixed.path
    for r in staged:
        model = AutoModelForCausalLM.from_pretrained(r.path)
        assert model.config.num_hidden_layers == 2
        assert r.manifest["tokens_seen"] > 0 and r.manifest["selected"]
    out = capsys.readouterr().out
    assert f"stage 2: {staged[1].stage_id}  trained  {staged[1].path}" in out

    again = finetune.main(COMMON + where + ["--strategy", "mixed_sequential"])
    assert [r.trained for r in again] == [False, False] and len(fits) == 2
    assert [r.stage_id for r in again] == [r.stage_id for r in staged]
    assert "0 trained, 2 reused" in capsys.readouterr().out
