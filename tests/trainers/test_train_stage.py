"""One stage without Ray (`python -m trainers.train_stage`): the shared worker core trains
tiny_llama on a built-in recipe, the loss falls, the final folder loads as an HF model, a re-run
of a finished stage trains nothing, and a stage resumes from its mid-stage checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from paths import REPO

from core.settings import TrainSettings
from trainers import train_stage

SETTINGS = {"lr": 3e-3, "epochs": 3, "global_batch": 4, "micro_batch": 2, "max_len": 256,
            "warmup_ratio": 0.0, "lr_schedule": "constant", "precision": "fp32"}


def test_cli_trains_tiny_llama_and_the_checkpoint_loads(tmp_path, capsys):
    out = tmp_path / "stage"
    # 8 math samples x 3 epochs = 6 steps of 4: each sample is seen 3 times, so the loss falls.
    # In a process of its own: the plain launcher must never import Ray (this test process
    # has, through other tests).
    code = ("import sys; from trainers import train_stage; train_stage.main(sys.argv[1:]); "
            "assert 'ray' not in sys.modules, 'the plain launcher imported ray'")
    done = subprocess.run([sys.executable, "-c", code, "--recipe", "math=#8", "--model",
                           "tiny_llama", "--out", str(out), "--settings", json.dumps(SETTINGS)],
                          check=False, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["final"] and summary["precision"] == "fp32"
    curve = summary["loss_curve"]
    assert sum(curve[-2:]) / 2 < sum(curve[:2]) / 2 - 0.5, curve
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert isinstance(model, torch.nn.Module) and (out / "tokenizer.json").exists()
    state = json.loads((out / "train_state.json").read_text())
    assert state["done"] and state["step"] == 6
    capsys.readouterr()
    train_stage.main(["--recipe", "math=#8", "--model", "tiny_llama", "--out", str(out),
                      "--settings", json.dumps(SETTINGS)])  # finished: nothing retrained
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["steps"] == 6 and again["final_loss"] == curve[-1]


def test_resumes_from_a_mid_stage_checkpoint(tmp_path, monkeypatch):
    rows = train_stage.recipe_rows("math=#8", "tiny_llama", TrainSettings(**SETTINGS))
    settings = TrainSettings(**SETTINGS, checkpoint_every_steps=2)
    whole = train_stage.train_stage("tiny_llama", rows, tmp_path / "whole", settings, quiet=True)

    class Crash(Exception):
        pass

    def crash_after_checkpoint(self, backend, state, metrics):
        original(self, backend, state, metrics)
        if state.step == 4:
            raise Crash

    original = train_stage.LocalIO.checkpoint
    monkeypatch.setattr(train_stage.LocalIO, "checkpoint", crash_after_checkpoint)
    out = tmp_path / "crashed"
    try:
        train_stage.train_stage("tiny_llama", rows, out, settings, quiet=True)
    except Crash:
        pass
    assert (out / "checkpoints" / "step_0000004" / "train_state.json").exists()
    monkeypatch.setattr(train_stage.LocalIO, "checkpoint", original)
    resumed = train_stage.train_stage("tiny_llama", rows, out, settings, quiet=True)
    assert resumed["resumed_from"] == [4] and resumed["steps"] == whole["steps"] == 6
    # same data positions, weights, optimizer and RNG: the same curve (fp32 on one CPU)
    assert resumed["loss_curve"] == whole["loss_curve"]
    assert not (out / "checkpoints").exists()
