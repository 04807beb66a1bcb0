"""The judge of every sweep command: --judge-url/--judge-model or DMT_JUDGE_URL/DMT_JUDGE_MODEL
on any preset; the key read once from the driver's environment, removed from it, and never in
a pickled copy (Tune pickles its callbacks into the storage); --unsafe-sandbox in the preset."""

from __future__ import annotations

import os
import pickle

import pytest

from sweep import cli
from sweep.execution.judging import DriverJudge, driver_judge


def _preset(argv, question="rq2"):
    return cli.preset_from_args(cli.build_parser(question).parse_args(argv))


@pytest.mark.parametrize("name", ["smoke", "local", "paper"])
def test_every_preset_takes_the_judge_from_flags(name, monkeypatch):
    monkeypatch.delenv("DMT_JUDGE_URL", raising=False)
    monkeypatch.delenv("DMT_JUDGE_MODEL", raising=False)
    ev = _preset(["--preset", name, "--judge-url", "http://j/v1", "--judge-model", "m-1"]).evaluation
    assert (ev.judge_url, ev.judge_model) == ("http://j/v1", "m-1") and "mtbench" in ev.names
    assert not ev.unsafe_sandbox
    assert _preset(["--preset", name, "--unsafe-sandbox"]).evaluation.unsafe_sandbox


def test_the_judge_from_the_environment(monkeypatch):
    monkeypatch.setenv("DMT_JUDGE_URL", "http://env/v1")
    monkeypatch.setenv("DMT_JUDGE_MODEL", "env-model")
    ev = _preset(["--preset", "smoke"]).evaluation
    assert (ev.judge_url, ev.judge_model) == ("http://env/v1", "env-model")
    monkeypatch.delenv("DMT_JUDGE_MODEL")
    with pytest.raises(SystemExit, match="judge-model"):
        _preset(["--preset", "smoke"])  # a URL without a model


def test_the_key_stays_in_the_driver(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret")
    ev = _preset(["--preset", "smoke", "--judge-url", "http://j/v1", "--judge-model", "m"]
                 ).evaluation
    judge = driver_judge(ev, "MY_JUDGE_KEY")
    assert judge.api_key == "sk-secret"
    assert "MY_JUDGE_KEY" not in os.environ  # children never inherit it
    assert "sk-secret" not in repr(judge)
    assert b"sk-secret" not in pickle.dumps(judge)
    assert pickle.loads(pickle.dumps(judge)) == DriverJudge(judge.config, None)
    with pytest.raises(SystemExit, match="MY_JUDGE_KEY"):
        driver_judge(ev, "MY_JUDGE_KEY")  # named explicitly but not set


def test_the_judging_callback_pickles_without_its_judge(tmp_path):
    from ray import cloudpickle

    from core.storage import Storage
    from evals.judge import JudgeConfig
    from sweep.execution.judging import DriverJudging

    judging = DriverJudging(Storage(tmp_path), DriverJudge(JudgeConfig("u", "m"), "sk-held"))
    blob = cloudpickle.dumps(judging.callback())
    assert b"sk-held" not in blob and b"DriverJudging" not in blob
