"""A trial's evaluation: the preset's evals on the run's last stage (or the base model), in a
task of its own, with per-item results written to the sweep's storage; or the t-SNE map for the
representation runs.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from core.storage import Storage
from sweep.execution.job import TrialJob
from sweep.execution.progress import Progress, run_reporting
from sweep.planning.resolution import TASKS_IN_STORAGE
from sweep.reporting.results import Measurement, item_rows, measurements_of, write_items
from sweep.study.presets import builtin_specs, source_specs, template_for
from trainers.stages import stage_rel


def evaluate_outside_trial_group(job: TrialJob, last_stage,
                                 progress: Progress) -> list[Measurement]:
    """Evaluate in a task of its own: on GPU presets it holds the evaluation's GPU (the trial
    itself sits on the CPU head node), under --simulate-gpus one simulated GPU (so it runs on
    a worker node, and finds the stage through storage), on CPU presets no resource. Each
    eval's progress (items done of total) comes back to the trial as EvalEvents."""
    progress.start_evaluation()
    return run_reporting(_evaluate_task, job.preset.hardware.eval_options(), job,
                         progress.on_event, lambda events: (last_stage,))


def _evaluate_task(job: TrialJob, events, last_stage) -> list[Measurement]:
    hw = job.preset.hardware
    if not hw.use_gpu:
        # Ray starts workers with one intra-op thread; a CPU run's evaluation comes after its
        # training, so it may use the CPUs the run's Train workers held (measured on 2 cores:
        # 8 GSM8K replies of SmolLM2 took 6.6 s with 2 threads, 8.0 s with 1).
        import torch  # lazy: Ray worker start-up (torch in the evaluation task only)

        torch.set_num_threads(max(1, int(hw.workers * hw.cpus_per_worker)))
    storage = Storage(job.preset.storage)
    model = stage_model(last_stage, storage) if last_stage is not None else job.run.model
    return evaluate_run(job, model, storage, events.put)


def stage_model(stage, storage: Storage) -> str:
    """A local folder with the stage's weights (remote storage: downloaded once)."""
    return str(storage.download_dir(stage_rel(stage.stage_id)))


def evaluate_run(job: TrialJob, model: str, storage: Storage,
                 on_event=None) -> list[Measurement]:
    """The preset's evaluations (cached by evals: a checkpoint is never scored twice with the
    same settings), or the t-SNE map for the representation runs. `on_event(EvalEvent)` hears
    how far each eval is."""
    if job.run.question == "tsne":
        return represent(job, model, storage)
    from evals.run import evaluate  # lazy: Ray worker start-up (torch in the evaluation task only)

    ev = job.preset.evaluation
    data = {"gsm8k": ev.gsm8k, "general_loss": ev.general_heldout}
    for name, where in data.items():
        if where.startswith("builtin:"):  # a held-out split of the built-in corpora
            data[name] = builtin_specs(job.preset, storage)[where.removeprefix("builtin:")].location
    include = ev.lm_eval_include
    if include and include.startswith(TASKS_IN_STORAGE):  # copied in at sweep start
        include = str(storage.download_dir(include.removeprefix(TASKS_IN_STORAGE)))
    out_dir = _local_dir(storage, f"evals/{job.run_id}")
    # MT-Bench is only generated here: the driver judges the stored answers (sweep/execution/judging.py)
    out = evaluate(model, list(ev.names), limit=ev.limits_by_name(), judge=None,
                   out_dir=out_dir, cache_dir=_local_dir(storage, "eval_cache"), data=data,
                   max_new_tokens=ev.max_new_tokens, unsafe_sandbox=ev.unsafe_sandbox,
                   template=template_for(job.preset, job.run.model), on_event=on_event,
                   lm_eval_include=include, lm_eval_raw=ev.lm_eval_raw)
    _keep_answers(out.get("mtbench"), Path(out_dir))
    if not storage.is_local:  # the outputs (replies, judgments, sandbox results) live in storage
        storage.upload_dir(out_dir, f"evals/{job.run_id}")
    write_items(storage, job.run_id, item_rows(job.run_id, out))
    return measurements_of(out)


def _keep_answers(result: dict | None, out_dir: Path) -> None:
    """A cached MT-Bench result (same checkpoint scored for another run) left its answers in
    that run's folder: copy them here, where the driver looks for this run's."""
    here = out_dir / "mtbench_answers.jsonl"
    if result and not here.exists() and Path(result.get("records") or "").is_file():
        shutil.copyfile(result["records"], here)


def represent(job: TrialJob, model: str, storage: Storage) -> list[Measurement]:
    from evals.representations import (
        embed_and_plot,  # lazy: Ray worker start-up (torch in the evaluation task only)
    )

    specs = source_specs(job.preset, storage)
    out_dir = _local_dir(storage, f"evals/{job.run_id}")
    info = embed_and_plot([model], {s: specs[s] for s in ("math", "code", "general")},
                          out_dir, seed=job.preset.data_seed,
                          template=template_for(job.preset, job.run.model))
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
