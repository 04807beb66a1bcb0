"""The sweep on Ray Tune: one trial per run, in Ray 2.60's Train-in-Tune pattern.

A trial runs its stages (`trainers.stages.run_stages`: each stage one `TorchTrainer.fit()`,
reused when another run trained it), evaluates the last stage (`evals.run.evaluate`), writes
the run's result file and reports question, strategy, amounts, stage and loss to Tune. Trials
hold no CPU or GPU, only the custom resource `train_driver`; Train workers hold the hardware.
Names are content hashes, so the same command again skips finished runs before any trial.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sweep import plan as planning
from sweep.grid import Run, run_from_dict, run_to_dict
from sweep.presets import (
    Preset,
    builtin_specs,
    gpus_per_run,
    preset_from_dict,
    preset_to_dict,
    source_specs,
    workers_for,
)
from sweep.results import (
    Measurement,
    RunCost,
    has_result,
    item_rows,
    measurements_of,
    rows_for,
    write_items,
    write_result,
)
from sweep.strategies import with_settings
from trainers.identity import content_hash
from trainers.storage import Storage

DRIVER_RESOURCE = "train_driver"
DRIVER_SHARE = 0.01  # per trial: 100 trials per unit of the resource
REPO = Path(__file__).resolve().parents[1]


@dataclass
class SweepSummary:
    runs: int
    skipped: list[str] = field(default_factory=list)  # finished before: never launched
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stages_trained: int = 0
    stages_reused: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self) -> str:
        lines = [(f"{self.runs} runs: {len(self.skipped)} already finished, "
                  f"{len(self.finished)} finished now, {len(self.failed)} failed; stages trained "
                  f"{self.stages_trained}, reused {self.stages_reused}; {self.wall_s:.0f} s")]
        return "\n".join(lines + [f"  FAILED {rid}: {why}" for rid, why in self.failed.items()])


# ---- one trial -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialJob:
    """What a trial needs, rebuilt from its plain-data Tune config on its first line."""
    run: Run
    run_id: str
    stage_ids: tuple[str, ...]
    preset: Preset

    def to_config(self) -> dict:
        point = " ".join(f"{n}={v}" for n, v in (("f", self.run.fraction), ("k", self.run.k),
                                                  ("seed", self.run.seed or None))
                         if v is not None)
        return {"run_id": self.run_id, "question": self.run.question,
                "strategy": self.run.strategy, "amounts": point or self.run.amounts_text,
                "model": self.run.model, "run": run_to_dict(self.run),
                "stage_ids": list(self.stage_ids), "preset": preset_to_dict(self.preset)}

    @classmethod
    def from_config(cls, config: dict) -> TrialJob:
        return cls(run_from_dict(config["run"]), config["run_id"], tuple(config["stage_ids"]),
                   preset_from_dict(config["preset"]))


class Progress:
    """Reports the trial's state to Tune: which stage, trained or reused, and the loss."""

    def __init__(self, job: TrialJob):
        self.job, self.stage, self.status = job, 0, "starting"
        self.trained, self.reused = 0, 0

    def report(self, **extra) -> None:
        from ray import tune

        of = len(self.job.run.stages)
        tune.report({"stage": f"{self.stage}/{of}", "stage_index": self.stage,
                     "status": self.status, "stages_trained": self.trained,
                     "stages_reused": self.reused, **extra})

    def on_event(self, event: dict) -> None:
        if event.get("event") != "stage":
            if "loss" in event:
                self.report(loss=event["loss"])
            return
        self.stage, self.status = event["index"] + 1, f"stage {event['status']}"
        self.trained += event["status"] == "trained"
        self.reused += event["status"] == "reused"
        self.report()


def metrics_forwarder(events):
    """A Ray Train callback that puts each step's loss on the trial's event queue: the stages
    run in a task outside the Tune session, so Tune's own TuneReportCallback cannot be used."""
    from ray.train.v2.api.callback import UserCallback

    class ForwardLoss(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            first = metrics[0] if metrics else {}
            if "loss" in first:
                events.put({"event": "metrics", "loss": float(first["loss"]),
                            "step": first.get("step"), "epoch": first.get("epoch")})

    return ForwardLoss()


def fit_with_callbacks(cfg, callbacks=()):
    """trainers.fit.fit_stage, with Train's per-step metrics (loss) forwarded to the trial."""
    from trainers import fit

    if callbacks:
        cfg = dataclasses.replace(cfg, callbacks=(*cfg.callbacks, *callbacks))
    return fit.fit_stage(cfg)


def trial(config: dict) -> None:
    """One run: its stages, then its evaluation, then its result file."""
    job = TrialJob.from_config(config["job"])
    progress = Progress(job)
    progress.report()
    t0 = time.time()
    storage = Storage(job.preset.storage)
    stages = train_outside_trial_group(config["job"], progress)
    progress.status = "evaluating"
    progress.report()
    t_eval = time.time()
    measurements = evaluate_outside_trial_group(config["job"], stages[-1] if stages else None)
    wall_h, eval_h = (time.time() - t0) / 3600, (time.time() - t_eval) / 3600
    trained = [s for s in stages if s.trained]
    hw = job.preset.hardware
    # GPU time this run used itself: its trained stages on the run's GPUs (reused stages were
    # paid for by the run that trained them), plus its evaluation's GPUs.
    train_h = sum(float(s.manifest.get("stage_wall_s") or 0) for s in trained) / 3600
    gpu_h = train_h * gpus_per_run(job.preset, job.run.model) + eval_h * (
        hw.eval_gpus if hw.use_gpu else 0)
    cost = RunCost(tokens_trained=sum(int(s.manifest.get("tokens_seen") or 0) for s in trained),
                   tokens_in_stages=sum(int(s.manifest.get("tokens_seen") or 0) for s in stages),
                   wall_hours=wall_h, gpu_hours=gpu_h)
    write_result(storage, job.run_id, rows_for(job.run, job.run_id, job.preset.name,
                                               job.stage_ids, measurements, cost))
    progress.status = "done"
    progress.report(wall_hours=wall_h)


def train_outside_trial_group(job_config: dict, progress: Progress) -> list:
    """Run the stages in a zero-CPU task scheduled outside the trial's placement group.

    Tune captures a trial's child tasks into its placement group, which holds only
    `train_driver`: Ray Data's tasks (CPU 1) then cannot be scheduled at all. A task with an
    explicit "DEFAULT" strategy is not captured, nor are its children. Stage events come back
    through the same queue as Train's per-step metrics (loss), which the trial reports to Tune."""
    import ray
    from ray.util.queue import Empty, Queue

    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": "DEFAULT"})
    task = ray.remote(_train_task).options(num_cpus=0, scheduling_strategy="DEFAULT")
    ref = task.remote(job_config, events, metrics_forwarder(events))
    while True:
        done, _ = ray.wait([ref], timeout=1.0)
        while True:
            try:
                progress.on_event(events.get_nowait())
            except Empty:
                break
        if done:
            return ray.get(ref)


def evaluate_outside_trial_group(job_config: dict, last_stage) -> list[Measurement]:
    """Evaluate in a task of its own: on GPU presets it holds the evaluation's GPU (the trial
    itself sits on the CPU head node), on CPU presets it takes no resource, like the trial."""
    import ray

    job = TrialJob.from_config(job_config)
    gpus = job.preset.hardware.eval_gpus if job.preset.hardware.use_gpu else 0
    task = ray.remote(_evaluate_task).options(num_cpus=0, num_gpus=gpus,
                                              scheduling_strategy="DEFAULT")
    return ray.get(task.remote(job_config, last_stage))


def _evaluate_task(job_config: dict, last_stage) -> list[Measurement]:
    job = TrialJob.from_config(job_config)
    hw = job.preset.hardware
    if not hw.use_gpu:
        # Ray starts workers with one intra-op thread; a CPU run's evaluation comes after its
        # training, so it may use the CPUs the run's Train workers held (measured on 2 cores:
        # 8 GSM8K replies of SmolLM2 took 6.6 s with 2 threads, 8.0 s with 1).
        import torch

        torch.set_num_threads(max(1, int(hw.workers * hw.cpus_per_worker)))
    storage = Storage(job.preset.storage)
    model = stage_model(last_stage, storage) if last_stage is not None else job.run.model
    return evaluate_run(job, model, storage)


def _train_task(job_config: dict, events, callback) -> list:
    import ray.data

    # Ray Data's progress bars would scroll through Tune's table; stage events say enough.
    ray.data.DataContext.get_current().enable_progress_bars = False
    job = TrialJob.from_config(job_config)
    return train_run(job, Storage(job.preset.storage), events.put, callback)


def train_run(job: TrialJob, storage: Storage, on_event, callback=None) -> list:
    from trainers.stages import run_stages

    if not job.run.stages:
        return []  # the base model (t-SNE)
    preset, model = job.preset, job.run.model
    settings, data_seed = planning.seeded(job.run, preset)
    hw = preset.hardware
    results = run_stages(
        model, with_settings(job.run.stages, settings), source_specs(preset, storage), storage,
        settings=settings, seed=data_seed, workers=workers_for(preset, model),
        use_gpu=hw.use_gpu, on_event=on_event,
        fit=functools.partial(fit_with_callbacks, callbacks=[callback] if callback else []),
        resources_per_worker={"GPU": 1} if hw.use_gpu else {"CPU": hw.cpus_per_worker},
        sources_fp=planning.sources_fingerprint(preset))
    ids = tuple(r.stage_id for r in results)
    if ids != job.stage_ids:  # the plan and the trainer must name stages alike
        raise RuntimeError(f"run {job.run_id}: planned stages {job.stage_ids}, trained {ids}")
    return results


def stage_model(stage, storage: Storage) -> str:
    """A local folder with the stage's weights (remote storage: downloaded once)."""
    from trainers.stages import stage_rel

    return str(storage.download_dir(stage_rel(stage.stage_id)))


def evaluate_run(job: TrialJob, model: str, storage: Storage) -> list[Measurement]:
    """The preset's evaluations (cached by evals: a checkpoint is never scored twice with the
    same settings), or the t-SNE map for the representation runs."""
    if job.run.question == "tsne":
        return represent(job, model, storage)
    from evals.judge import JudgeConfig
    from evals.run import evaluate

    ev = job.preset.evaluation
    judge = JudgeConfig(ev.judge_url, ev.judge_model) if ev.judge_url and ev.judge_model else None
    data = {"gsm8k": ev.gsm8k, "general_loss": ev.general_heldout}
    for name, where in data.items():
        if where.startswith("builtin:"):  # a held-out split of the built-in corpora
            data[name] = builtin_specs(job.preset, storage)[where.removeprefix("builtin:")].location
    out = evaluate(model, list(ev.names), limit=ev.limits_by_name(), judge=judge,
                   out_dir=_local_dir(storage, f"evals/{job.run_id}"),
                   cache_dir=_local_dir(storage, "eval_cache"), data=data,
                   max_new_tokens=ev.max_new_tokens)
    write_items(storage, job.run_id, item_rows(job.run_id, out))
    return measurements_of(out)


def represent(job: TrialJob, model: str, storage: Storage) -> list[Measurement]:
    from evals.representations import embed_and_plot

    specs = source_specs(job.preset, storage)
    out_dir = _local_dir(storage, f"evals/{job.run_id}")
    info = embed_and_plot([model], {s: specs[s] for s in ("math", "code", "general")},
                          out_dir, seed=job.preset.data_seed)
    if not storage.is_local:
        storage.upload_dir(out_dir, f"evals/{job.run_id}")
    _copy_file(Path(info["parquet"]), storage, f"representations/{job.run_id}.parquet")
    layer = next(iter(info["layers"].values()))
    return [Measurement("tsne/points", float(sum(info["counts"].values()))),
            Measurement("tsne/layer", float(layer))]


def _local_dir(storage: Storage, rel: str) -> str:
    if storage.is_local:
        path = storage.local_path(rel)
    else:
        path = storage.cache_dir() / rel
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _copy_file(src: Path, storage: Storage, rel: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="copy-"))
    (tmp / Path(rel).name).write_bytes(src.read_bytes())
    storage.upload_dir(tmp, str(Path(rel).parent))


# ---- the sweep -------------------------------------------------------------------------------

def max_concurrent(preset: Preset, models, resources: dict) -> int:
    """Runs at once. GPUs: as many runs as the cluster's GPUs hold. CPUs: what the Train
    workers need plus one CPU for the trial's own data and evaluation work, so workers never
    starve (1 on 2 CPUs)."""
    if preset.max_concurrent:
        return preset.max_concurrent
    if preset.hardware.use_gpu:
        need = max(gpus_per_run(preset, m) for m in models)
        have = int(resources.get("GPU", 0))
        if have == 0:
            print("note: the cluster shows no GPUs yet (autoscaling from 0): one run at a time "
                  "until you pass --max-concurrent")
        return max(1, have // need)
    per_run = max(workers_for(preset, m) for m in models) * preset.hardware.cpus_per_worker + 1
    return max(1, int(resources.get("CPU", 1) // per_run))


def init_ray(address: str | None, temp_dir: str | None) -> bool:
    """Connect to a cluster, or start a local Ray with the driver resource. True if started."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)  # the head node declares train_driver (cluster.yaml)
        return True
    ray.init(resources={DRIVER_RESOURCE: 1.0}, _temp_dir=temp_dir,
             # trials and workers import this project from the checkout
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    return True


def pending_jobs(runs, preset: Preset, storage: Storage, summary: SweepSummary) -> list[TrialJob]:
    jobs = []
    plan = planning.build_plan(runs, preset)  # one entry per distinct run
    summary.runs = len(plan.runs)
    for p in plan.runs:
        if has_result(storage, p.run_id):
            summary.skipped.append(p.run_id)
        else:
            jobs.append(TrialJob(p.run, p.run_id, p.stage_ids, preset))
    return jobs


def run_sweep(runs: list[Run], preset: Preset, *, address: str | None = None,
              ray_temp_dir: str | None = None, grow_report: bool = True) -> SweepSummary:
    t0 = time.time()
    storage = Storage(preset.storage)
    # Tune runs each trial in a working dir of its own: a relative "./runs" would put results there.
    preset = dataclasses.replace(preset, storage=storage.uri)
    summary = SweepSummary(runs=len(runs))
    jobs = pending_jobs(runs, preset, storage, summary)
    if jobs:
        source_specs(preset, storage)  # write built-in corpora once, before trials race for it
        started = init_ray(address, ray_temp_dir)
        try:
            tune_jobs(jobs, preset, storage, summary, grow_report)
        finally:
            if started:
                import ray

                ray.shutdown()
    summary.wall_s = time.time() - t0
    storage.write_json(f"sweeps/{_sweep_name(runs, preset)}.json",
                       {**dataclasses.asdict(summary), "ok": summary.ok})
    return summary


def _sweep_name(runs, preset: Preset) -> str:
    questions = "+".join(sorted({r.question for r in runs})) or "empty"
    return f"{questions}-{preset.name}-{content_hash([r.label for r in runs])[:8]}"


def report_callback(storage: Storage):
    """Rewrites the report each time a run finishes, so it grows during a long sweep."""
    from ray.tune import Callback

    from sweep.report import write_report

    class ReportOnFinish(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            try:
                write_report(storage)
            except (OSError, ValueError, RuntimeError) as e:  # the sweep goes on regardless
                print(f"note: report not updated after {trial}: {e}")

    return ReportOnFinish()


def tune_jobs(jobs: list[TrialJob], preset: Preset, storage: Storage,
              summary: SweepSummary, grow_report: bool = True) -> None:
    import ray
    from ray import tune

    # Tune's new console output ignores CLIReporter; the classic table shows our columns.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    reporter = tune.CLIReporter(
        parameter_columns={"job/question": "question", "job/strategy": "strategy",
                           "job/amounts": "amounts"},
        metric_columns={"stage": "stage", "status": "status", "loss": "loss"},
        max_report_frequency=15)
    name_of = _trial_name
    tuner = tune.Tuner(
        tune.with_resources(trial, {DRIVER_RESOURCE: DRIVER_SHARE}),
        param_space={"job": tune.grid_search([j.to_config() for j in jobs])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent(preset, {j.run.model for j in jobs},
                                                 ray.cluster_resources()),
            trial_name_creator=name_of, trial_dirname_creator=name_of),
        run_config=tune.RunConfig(
            name=f"sweep-{content_hash(sorted(j.run_id for j in jobs))[:12]}",
            storage_path=storage.uri_of("tune"), progress_reporter=reporter, verbose=1,
            callbacks=[report_callback(storage)] if grow_report else None,
            failure_config=tune.FailureConfig(max_failures=0)))
    for result in tuner.fit():
        run_id = result.config["job"]["run_id"]
        metrics = result.metrics or {}
        summary.stages_trained += int(metrics.get("stages_trained") or 0)
        summary.stages_reused += int(metrics.get("stages_reused") or 0)
        if result.error is None and has_result(storage, run_id):
            summary.finished.append(run_id)
        else:
            why = str(result.error or "no result file written").strip().splitlines()
            summary.failed[run_id] = why[-1][:300] if why else "unknown"


def _trial_name(trial) -> str:
    return trial.config["job"]["run_id"]
