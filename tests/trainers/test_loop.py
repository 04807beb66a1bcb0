"""The step logic in-process (no Ray): every parameter moves, the loss falls on a repeated batch,
batch 2 x accumulation 1 equals batch 1 x accumulation 2, packed equals padded, and the step plan
maps positions to steps exactly (including the partial last batch)."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from training_reference import make_rows

from core.settings import TrainSettings
from trainers.backends import TorchBackend
from trainers.data.collate import IGNORE, collate_padded
from trainers.loop import StepSchedule, collate_micro_batches, compute_loss, iter_steps, train_step


def backend_for(model, backend_cls=None, **overrides) -> TorchBackend:
    settings = TrainSettings(**{"lr": 1e-3, "warmup_ratio": 0.0, "lr_schedule": "constant",
                                **overrides})
    return (backend_cls or TorchBackend)(model, settings, total_steps=100, device="cpu",
                                         precision="fp32")


class GradRecorder(TorchBackend):
    """TorchBackend that keeps each step's accumulated gradients, taken before the optimizer
    step (which consumes and zeroes them)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.grads: list[dict[str, torch.Tensor]] = []

    def step(self) -> float:
        self.grads.append({n: p.grad.detach().clone() for n, p in self.module.named_parameters()
                           if p.grad is not None})
        return super().step()


def test_one_step_changes_every_trainable_parameter(tiny_model):
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    backend = backend_for(tiny_model, micro_batch=4, global_batch=4)
    plan = StepSchedule.create(backend.settings, 4, 1)
    rows = make_rows(4)
    stats = train_step(backend, collate_micro_batches(rows, plan, 0, packing=False))
    # Each row labels its second half; a label is a target from position 1 on, and the first
    # half (at least 3 tokens) is never labelled: len - len // 2 targets per row.
    lengths = [len(r["input_ids"]) for r in rows]
    assert stats.label_tokens == sum(n - n // 2 for n in lengths)
    assert stats.real_tokens == sum(lengths) and stats.padded_tokens == 4 * max(lengths)
    # a random model's loss before its first update: about ln(vocab) nats per token
    vocab = tiny_model.config.vocab_size
    assert abs(stats.loss - math.log(vocab)) < 0.5, (stats.loss, math.log(vocab))
    unchanged = [n for n, p in tiny_model.named_parameters()
                 if p.requires_grad and torch.equal(p.detach(), before[n])]
    assert unchanged == []


def test_twenty_steps_on_a_repeated_batch_lower_the_loss(tiny_model):
    backend = backend_for(tiny_model, micro_batch=4, global_batch=4, lr=5e-3)
    plan = StepSchedule.create(backend.settings, 4, 1)
    batches = collate_micro_batches(make_rows(4), plan, 0, packing=False)
    losses = [train_step(backend, batches).loss for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0], losses
    assert sum(b < a for a, b in itertools.pairwise(losses)) >= 17, losses


def _run(model, rows, micro_batch, global_batch, packing=False, steps=2):
    backend = backend_for(model, GradRecorder, micro_batch=micro_batch,
                          global_batch=global_batch)
    plan = StepSchedule.create(backend.settings, len(rows), 1)
    out = []
    for _, _, step_rows in list(iter_steps(rows, plan))[:steps]:
        out.append(train_step(backend, collate_micro_batches(step_rows, plan, 0, packing)))
    return out, backend


def assert_same_gradients(a: dict, b: dict, rel: float = 1e-4) -> None:
    """Per tensor, ||a - b|| <= rel x ||b||. The same weights and tokens summed in another
    order differ by float32 rounding only (measured on the tiny model: 2.3e-6 at most, so 40x
    headroom); a wrong token weighting or scale is off by far more (measured on the test
    below: a mean per micro-batch instead of over the global batch gives 0.10-0.13 on every
    tensor, a micro-batch's own mean without dividing by the accumulation steps 0.51-0.54)."""
    assert a.keys() == b.keys()
    for name, ga in a.items():
        err, size = float((ga - b[name]).norm()), float(b[name].norm())
        assert err <= rel * size + 1e-12, (name, err, size)


# Adam moves each element by lr x m_hat / (sqrt(v_hat) + eps). In the first steps the
# bias-corrected |m_hat| / sqrt(v_hat) is at most ~1 whatever the gradient's size
# (Cauchy-Schwarz over the moment weights with betas (0.9, 0.999): 1 at step 1, 1.0014 at
# step 2, 1.0068 at step 4), weight decay is 0, and clipping rescales the whole gradient,
# which Adam ignores. So each run moves an element by at most ~lr per step, and two runs
# differ by at most 2 x 1.007 x lr x steps, however tiny the gradient difference behind it:
# an element whose gradient is ~0 gets a step of ~lr of either sign (measured: after 2 steps
# at lr 1e-3 here, weights differ by up to 1.1e-4, and on another CPU 4 of 3.1M weights by
# 1.8e-4, while losses and gradient norms agree). Hence this bound rather than a tolerance
# tuned on one CPU. It is loose by design: a broken accumulation can stay inside it (the
# per-micro-batch mean above gives 4.0e-3 < 5e-3), which is why the gradients before the
# first step, the losses and the gradient norms are what carry the equivalence.
ADAM_FLIPS = 2.5


def assert_weights_within_adam_bound(a, b, lr: float, steps: int) -> None:
    bound = ADAM_FLIPS * lr * steps
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        diff = float((pa.detach() - pb.detach()).abs().max())
        assert diff <= bound, (name, diff, bound)


@pytest.mark.parametrize("packing", [False, True])
def test_batch_2_accum_1_equals_batch_1_accum_2(tiny_model, packing):
    # Unequal lengths and answer sizes: a per-micro-batch mean would weight tokens differently.
    rows = make_rows(4, seed=3, lo=5, hi=30)
    a_stats, a = _run(copy.deepcopy(tiny_model), rows, 2, 2, packing)
    b_stats, b = _run(copy.deepcopy(tiny_model), rows, 1, 2, packing)
    # The first step starts from the same weights: its gradients must agree tightly.
    assert_same_gradients(a.grads[0], b.grads[0])
    for x, y in zip(a_stats, b_stats):
        assert x.label_tokens == y.label_tokens
        assert x.loss == pytest.approx(y.loss, rel=1e-5)
        assert x.grad_norm == pytest.approx(y.grad_norm, rel=1e-4)
    assert_weights_within_adam_bound(a.module, b.module, a.settings.lr, len(a_stats))


def test_loss_is_the_mean_over_labelled_tokens_of_the_global_batch(tiny_model):
    rows = make_rows(3, seed=5)
    batch = collate_padded(rows, pad_id=0)
    loss_sum, n = compute_loss(tiny_model, batch)
    labels = batch["labels"]
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                            labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                                            reduction="sum")
    assert n == int((labels[:, 1:] != IGNORE).sum())
    torch.testing.assert_close(loss_sum, ref, rtol=1e-5, atol=1e-4)


def test_packed_loss_equals_padded_loss(tiny_model):
    rows = make_rows(3, seed=7)
    plan = StepSchedule(len(rows), 1, 3, 3, 1)
    padded = collate_micro_batches(rows, plan, 0, packing=False)[0]
    packed = collate_micro_batches(rows, plan, 0, packing=True)[0]
    (ls_pad, n_pad), (ls_pack, n_pack) = compute_loss(tiny_model, padded), \
        compute_loss(tiny_model, packed)
    assert n_pad == n_pack
    torch.testing.assert_close(ls_pad, ls_pack, rtol=1e-4, atol=1e-3)
    assert int(packed["real_tokens"]) == int(padded["real_tokens"]) == packed["input_ids"].numel()


def test_step_plan_covers_every_position_once_per_epoch_on_every_worker_count():
    settings = TrainSettings(epochs=2, global_batch=4, micro_batch=1)
    for world in (1, 2, 4):
        plan = StepSchedule.create(settings, 10, world)
        assert plan.steps_per_epoch == 3 and plan.total_steps == 6
        seen = []
        for rank in range(world):
            rows = [{"epoch": e, "position": p} for e in range(2) for p in range(10)
                    if p % world == rank]
            steps = list(iter_steps(rows, plan))
            assert len(steps) == plan.total_steps  # every rank joins every step
            for epoch, step, mine in steps:
                assert all(step * 4 <= r["position"] < step * 4 + 4 for r in mine)
                seen += [(r["epoch"], r["position"]) for r in mine]
        assert sorted(seen) == [(e, p) for e in range(2) for p in range(10)]


def test_iter_steps_resumes_at_a_position_and_rejects_disorder():
    plan = StepSchedule(10, 2, 4, 2, 2)
    rows = [{"epoch": e, "position": p} for e in range(2) for p in range(10)]
    resumed = list(iter_steps([r for r in rows if (r["epoch"], r["position"]) >= (0, 8)], plan,
                              start=(0, 8)))
    assert [(e, s) for e, s, _ in resumed] == [(0, 2), (1, 0), (1, 1), (1, 2)]
    with pytest.raises(ValueError, match="order"):
        list(iter_steps([rows[1], rows[0]] + rows[2:], plan))
    with pytest.raises(ValueError, match="outside the plan"):
        list(iter_steps(rows + [{"epoch": 2, "position": 0}], plan))


def test_short_last_step_gets_dummy_micro_batches_without_labels():
    plan = StepSchedule(5, 1, 4, 1, 4)
    batches = collate_micro_batches(make_rows(1), plan, 0, packing=False)
    assert len(batches) == 4
    assert all(int(b["real_tokens"]) == 0 and (b["labels"] == IGNORE).all() for b in batches[1:])
