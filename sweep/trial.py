"""One Tune trial = one run: its stages (sweep/training.py), then its evaluation
(sweep/evaluation.py), then its result file with what it cost.

`TrialJob` is the trial's whole input, carried through Tune's param space as plain data and
rebuilt on the trial's first line. Same run, same content-hash names: a finished run is never
launched again (sweep/driver.py checks before any trial starts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sweep.grid import Run, run_from_dict, run_to_dict
from sweep.presets import Preset, gpus_per_run, preset_from_dict, preset_to_dict
from sweep.progress import Progress
from sweep.results import RunCost, rows_for, write_result
from trainers.storage import Storage


@dataclass(frozen=True)
class TrialJob:
    """What a trial needs, rebuilt from its plain-data Tune config on its first line."""
    run: Run
    run_id: str
    stage_ids: tuple[str, ...]
    preset: Preset
    provenance: dict | None = None  # sweep.provenance.sweep_provenance(), computed on the driver

    def to_config(self) -> dict:
        point = " ".join(f"{n}={v}" for n, v in (("f", self.run.fraction), ("k", self.run.k),
                                                  ("seed", self.run.seed or None))
                         if v is not None)
        return {"run_id": self.run_id, "question": self.run.question,
                "strategy": self.run.strategy, "amounts": point or self.run.amounts_text,
                "model": self.run.model, "run": run_to_dict(self.run),
                "stage_ids": list(self.stage_ids), "preset": preset_to_dict(self.preset),
                "provenance": self.provenance}

    @classmethod
    def from_config(cls, config: dict) -> TrialJob:
        return cls(run_from_dict(config["run"]), config["run_id"], tuple(config["stage_ids"]),
                   preset_from_dict(config["preset"]), config.get("provenance"))


def trial(config: dict) -> None:
    """One run: its stages, then its evaluation, then its result file."""
    from sweep.evaluation import evaluate_outside_trial_group
    from sweep.training import train_outside_trial_group

    job = TrialJob.from_config(config["job"])
    progress = Progress(len(job.run.stages))
    progress.report()
    t0 = time.time()
    stages = train_outside_trial_group(config["job"], progress)
    progress.status = "evaluating"
    progress.report()
    t_eval = time.time()
    measurements = evaluate_outside_trial_group(config["job"], stages[-1] if stages else None)
    cost = run_cost(job, stages, wall_s=time.time() - t0, eval_s=time.time() - t_eval)
    write_result(Storage(job.preset.storage), job.run_id,
                 rows_for(job.run, job.run_id, job.preset.name, job.stage_ids, measurements, cost,
                          job.provenance))
    progress.status = "done"
    progress.report(wall_hours=cost.wall_hours)


def run_cost(job: TrialJob, stages: list, *, wall_s: float, eval_s: float) -> RunCost:
    """GPU time this run used itself: its trained stages on the run's GPUs (reused stages were
    paid for by the run that trained them), plus its evaluation's GPUs."""
    trained = [s for s in stages if s.trained]
    hw = job.preset.hardware
    train_h = sum(s.manifest.stage_wall_s for s in trained) / 3600
    gpu_h = train_h * gpus_per_run(job.preset, job.run.model) + eval_s / 3600 * (
        hw.eval_gpus if hw.use_gpu else 0)
    return RunCost(tokens_trained=sum(s.manifest.tokens_seen for s in trained),
                   tokens_in_stages=sum(s.manifest.tokens_seen for s in stages),
                   wall_hours=wall_s / 3600, gpu_hours=gpu_h)
