"""TrainSettings: the paper's defaults, the batch arithmetic, the round trip through plain dicts,
the fingerprint, and the schedule (3% linear warmup then cosine decay to 0)."""

from __future__ import annotations

import json

import pytest
import torch

from core.settings import SettingsError, TrainSettings
from trainers import backends
from trainers.backends import deepspeed_config, make_scheduler, warmup_steps
from trainers.metrics import device_peak_flops


def test_paper_defaults():
    s = TrainSettings()
    assert (s.epochs, s.lr, s.warmup_ratio, s.global_batch, s.max_len) == (3, 2e-5, 0.03, 16, 2048)
    assert (s.optimizer, s.lr_schedule, s.weight_decay, s.overlong) == ("adamw", "cosine", 0.0,
                                                                         "truncate")
    assert s.resolved_precision(use_gpu=True) == "bf16"
    assert s.resolved_precision(use_gpu=False) == "fp32"
    assert TrainSettings(precision="bf16").resolved_precision(use_gpu=False) == "bf16"
    assert s.precision_mode(use_gpu=True) == "bf16-deepspeed"
    assert s.precision_mode(use_gpu=False) == "fp32"
    assert TrainSettings(precision="bf16", backend="ddp").precision_mode(True) == "bf16-autocast"
    assert s.resolved_backend(use_gpu=True) == "deepspeed" and s.zero_stage == 3


def test_global_batch_must_split_into_micro_batches_workers_and_accumulation():
    assert TrainSettings(micro_batch=2).grad_accum(workers=8) == 1
    assert TrainSettings(micro_batch=2).grad_accum(workers=2) == 4
    with pytest.raises(SettingsError, match="global_batch=16 is not a multiple of micro_batch=3"):
        TrainSettings(micro_batch=3).grad_accum(workers=2)


def test_bad_values_name_the_field():
    with pytest.raises(SettingsError, match="TrainSettings.precision='fp16'"):
        TrainSettings(precision="fp16")
    with pytest.raises(SettingsError, match="zero_stage"):
        TrainSettings(zero_stage=1)
    with pytest.raises(SettingsError, match="unknown fields"):
        TrainSettings.from_dict({"learning_rate": 1})


def test_round_trip_through_json():
    s = TrainSettings(lr=1e-4, packing=True, adam_betas=(0.9, 0.95), checkpoint_every_steps=5)
    assert TrainSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_fingerprint_keeps_what_changes_weights_only():
    base = TrainSettings()
    assert base.fingerprint_dict() == TrainSettings(checkpoint_every_steps=7,
                                                    max_failures=3).fingerprint_dict()
    assert base.fingerprint_dict() != TrainSettings(lr=1e-5).fingerprint_dict()
    assert base.fingerprint_dict() != TrainSettings(seed=1).fingerprint_dict()
    assert "checkpoint_every_steps" not in base.fingerprint_dict()


def test_template_is_in_the_fingerprint_only_when_not_the_papers():
    """Every stage trained before templates existed used Vicuna: its id must not change, and
    a stage trained with the model's own template must never be taken for it."""
    from core.ids import stage_id

    base, own = TrainSettings(), TrainSettings(template="model")
    assert "template" not in base.fingerprint_dict()
    assert own.fingerprint_dict() == {**base.fingerprint_dict(), "template": "model"}
    assert stage_id("model:m", [("math", 1)], base, 0) != stage_id("model:m", [("math", 1)], own, 0)
    assert TrainSettings.from_dict(own.to_dict()) == own
    with pytest.raises(SettingsError, match="TrainSettings.template='chatml'"):
        TrainSettings(template="chatml")


def test_schedule_warms_up_linearly_then_decays_to_zero():
    s = TrainSettings(lr=1.0)
    total = 100
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=s.lr)
    sched = make_scheduler(opt, s, total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm = warmup_steps(s, total)
    assert warm == 3
    assert lrs[0] == 0.0 and lrs[warm] == pytest.approx(1.0)
    assert lrs[1] == pytest.approx(1 / 3)
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))
    assert lrs[-1] < 0.01


def test_deepspeed_config_follows_the_settings():
    cfg = deepspeed_config(TrainSettings(offload=True), grad_accum=4, precision="bf16")
    assert cfg["bf16"]["enabled"] and cfg["gradient_accumulation_steps"] == 4
    assert cfg["train_micro_batch_size_per_gpu"] == 2 and cfg["gradient_clipping"] == 1.0
    zero = cfg["zero_optimization"]
    assert zero["stage"] == 3 and zero["overlap_comm"] and zero["contiguous_gradients"]
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    cfg2 = deepspeed_config(TrainSettings(zero_stage=2), grad_accum=1, precision="fp32")
    assert not cfg2["bf16"]["enabled"] and "offload_param" not in cfg2["zero_optimization"]


def test_peak_flops_table_picks_the_most_specific_name():
    assert device_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert device_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert device_peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert device_peak_flops("NVIDIA H200") == 989e12
    assert device_peak_flops("Some CPU") is None


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    with_bf16, without = tmp_path / "zen4", tmp_path / "zen2"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n"
                         "processor\t: 1\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert backends.cpu_has_native_bf16(str(with_bf16))
    assert not backends.cpu_has_native_bf16(str(without))
    assert not backends.cpu_has_native_bf16(str(tmp_path / "missing"))


def test_bf16_on_a_cpu_without_native_bf16_is_refused(monkeypatch, tiny_model):
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)
    for backend in ("ddp", "deepspeed"):
        settings = TrainSettings(precision="bf16", backend=backend, global_batch=2, micro_batch=2)
        with pytest.raises(SettingsError, match=r"precision='bf16'.*\"fp32\" or \"auto\""):
            backends.build_backend(tiny_model, settings, total_steps=1, grad_accum=1,
                                   use_gpu=False, device="cpu")
    with pytest.raises(SettingsError, match="no native bf16"):
        backends.TorchBackend(tiny_model, TrainSettings(), total_steps=1, device="cpu",
                              precision="bf16")
    # fp32 and auto (fp32 on CPU) are what the message offers, and they work.
    for precision in ("fp32", "auto"):
        backend = backends.build_backend(
            tiny_model, TrainSettings(precision=precision, backend="ddp"), total_steps=1,
            grad_accum=1, use_gpu=False, device="cpu")
        assert backend.precision_mode == "fp32"
