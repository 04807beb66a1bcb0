"""Stages are trained once: shared stages across strategies, concurrent runs, crashed fits.

The fast tests inject a fake fit (it writes a tiny but real HF model) and a fake data builder, so
they count fits without Ray; tests/sweep/test_finetune_cli.py does the same with real fits.
"""

import threading
import time
from fractions import Fraction as F
from pathlib import Path

import pytest
from stage_fakes import SETTINGS, SPECS, FakeFit, fake_build

from core.settings import TrainSettings
from core.storage import Lease, Storage
from sweep.study import strategies as st
from trainers.stages import missing_stages, plan_stages, read_manifest, run_stages, stage_rel


def run(strategy, storage, fit, **kw):
    return run_stages("tiny_llama", strategy, SPECS, storage, settings=SETTINGS, fit=fit,
                      build_dataset=fake_build, poll_s=0.05, **kw)


def test_shared_first_stage_is_trained_once(tmp_path):
    storage = Storage(tmp_path / "runs")
    fit = FakeFit(tmp_path / "fits")
    events = []
    a = run(st.dmt(F(1, 4)), storage, fit, on_event=events.append)
    b = run(st.dmt(F(1, 16)), storage, fit)
    c = run(st.mixed_sequential(), storage, fit)
    assert a[0].stage_id == b[0].stage_id == c[0].stage_id
    assert [r.trained for r in a + b + c] == [True, True, False, True, False, True]
    names = [name for name, _ in fit.calls]
    assert len(names) == 4 and len(set(names)) == 4 and names.count(a[0].stage_id) == 1
    # The second stage starts from the first stage's folder; the first from the preset.
    assert fit.calls[0][1] == "tiny_llama"
    assert fit.calls[1][1] == str(storage.local_path(stage_rel(a[0].stage_id)))
    assert [e.status for e in events] == ["training", "trained", "training", "trained"]
    assert missing_stages("tiny_llama", st.dmt(F(1, 64)), SPECS, storage, settings=SETTINGS) \
        == plan_stages("tiny_llama", st.dmt(F(1, 64)), SPECS, settings=SETTINGS)[1:]
    again = run(st.dmt(F(1, 4)), storage, fit)
    assert [r.trained for r in again] == [False, False] and len(fit.calls) == 4


def test_stage_folder_is_a_loadable_model_with_its_manifest(tmp_path):
    from transformers import AutoModelForCausalLM

    storage = Storage(tmp_path / "runs")
    results = run(st.mixed_sequential(), storage, FakeFit(tmp_path / "fits"))
    first, second = results
    assert Path(second.path) == storage.local_path(stage_rel(second.stage_id))
    AutoModelForCausalLM.from_pretrained(second.path)
    m = read_manifest(storage, second.stage_id)
    assert m == second.manifest
    assert m.parent_id == first.stage_id and m.recipe == "general=1"
    assert m.selected == {"general": 3} and m.used == {"general": 2}
    assert m.rejected == {"general": {"reading": {"bad": 1}, "formatting": {"overlong": 1}}}
    assert m.settings["epochs"] == 1 and m.tokens_seen == 123 and m.loss_curve == [2, 1]
    assert m.model_source == first.path and m.code_version
    # Read from the saved safetensors headers; "auto" resolves to fp32 on CPU.
    assert m.saved_dtype == "float32" and m.precision == "fp32"
    assert not storage.exists(f"{stage_rel(second.stage_id)}/.lock")


def test_saved_dtype_is_read_from_the_checkpoint_files(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from trainers.stage_manifest import saved_dtype

    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16,
                                         num_hidden_layers=1, num_attention_heads=2))
    model.save_pretrained(tmp_path / "fp32")
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    assert saved_dtype(tmp_path / "fp32") == "float32"
    assert saved_dtype(tmp_path / "bf16") == "bfloat16"
    assert saved_dtype(tmp_path) is None  # no safetensors file directly in it


def test_concurrent_runs_train_each_missing_stage_once(tmp_path):
    storage = Storage(tmp_path / "runs")
    fit = FakeFit(tmp_path / "fits", delay_s=0.4)
    results, errors = {}, []

    def go(name, strategy):
        try:
            results[name] = run(strategy, storage, fit)
        except Exception as e:  # noqa: BLE001 - a thread's error is surfaced below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(n, s)) for n, s in
               [("a", st.dmt(F(1, 4))), ("b", st.mixed_sequential()), ("c", st.dmt(F(1, 4)))]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    names = [name for name, _ in fit.calls]
    assert len(names) == len(set(names)) == 3  # first stage + two distinct second stages
    assert sum(r.trained for rs in results.values() for r in rs) == 3


def test_failed_fit_releases_the_lock_and_a_rerun_trains(tmp_path):
    storage = Storage(tmp_path / "runs")
    first_id = plan_stages("tiny_llama", st.mixed_sequential(), SPECS, settings=SETTINGS)[0]
    fit = FakeFit(tmp_path / "fits", fail_names={first_id.stage_id})
    with pytest.raises(RuntimeError, match="worker group died"):
        run(st.mixed_sequential(), storage, fit)
    assert not storage.exists(f"{stage_rel(first_id.stage_id)}/.lock")
    assert read_manifest(storage, first_id.stage_id) is None
    assert [r.trained for r in run(st.mixed_sequential(), storage, fit)] == [True, True]


def test_waits_for_a_live_holder_then_reuses(tmp_path):
    storage = Storage(tmp_path / "runs")
    fit = FakeFit(tmp_path / "fits")
    sid = plan_stages("tiny_llama", st.single("math"), SPECS, settings=SETTINGS)[0].stage_id
    holder = Lease(storage, f"{stage_rel(sid)}/.lock", ttl_s=30)
    assert holder.try_acquire()
    events = []
    done = threading.Event()

    def finish():  # the holder finishes the stage while we wait
        time.sleep(0.3)
        run(st.single("math"), Storage(tmp_path / "other-runs"), fit)
        storage.upload_dir(Storage(tmp_path / "other-runs").local_path(stage_rel(sid)),
                           stage_rel(sid))
        holder.release()
        done.set()

    threading.Thread(target=finish).start()
    [result] = run(st.single("math"), storage, fit, on_event=events.append)
    assert done.wait(10) and not result.trained and len(fit.calls) == 1
    assert [e.status for e in events] == ["waiting", "reused"]


def test_stage_settings_win_and_unknown_sources_are_an_error():
    own = st.with_settings(st.single("math"), TrainSettings(epochs=2))
    [planned] = plan_stages("tiny_llama", own, SPECS, settings=SETTINGS)
    assert planned.settings.epochs == 2
    assert plan_stages("m", st.single("math"), SPECS)[0].settings == TrainSettings()
    with pytest.raises(ValueError, match="general_nocm"):
        plan_stages("m", st.single("general_nocm"), SPECS)
