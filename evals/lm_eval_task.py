"""Any lm-evaluation-harness task as one of the engine's abilities: `lm-eval:TASK`.

lm-eval (0.4.13+, used as a library) scores the engine's own loaded checkpoint through
`EngineLM`, an `HFLM` around it whose prompts use the run's chat template (the paper's Vicuna,
or the tokenizer's own; `raw=True` scores without one, as plain lm-eval does). Both
`generate_until` and log-likelihood (`multiple_choice`, `loglikelihood`) tasks run. Per-item
outcomes come from lm-eval's logged samples, as `{"item": "TASK/doc_id", "metric", "value"}`, so
n, intervals and the paired tests apply unchanged; a metric is `TASK/METRIC` (a filter other
than lm-eval's "none" adds `[FILTER]`), binary when each item is 0 or 1 (acc, acc_norm,
exact_match, ...), else continuous. `resolve_task` loads a task before anything trains: one
lm-eval cannot find, or whose data cannot be read (offline), is an error naming it. The task's
identity (name, version, few-shot count, a hash of its config, lm-eval's version) is part of
the evaluation's cache key. Custom tasks: YAML files in a folder given as `include`
(`--lm-eval-include DIR`); evals/tasks/ ships the project's own.
    python -m evals.run --model smollm2_135m --evals lm-eval:dmt_tool_calls --lm-eval-include evals/tasks
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from core.ids import content_hash
from evals.spec import write_jsonl
from trainers.data.chat_template import chat_template

PREFIX = "lm-eval:"
SHIPPED = Path(__file__).resolve().parent / "tasks"  # the project's own task YAMLs
# lm-eval metrics whose per-item value is a 0/1 outcome (Wilson, exact McNemar); a task adds
# its own with `metadata: {binary_metrics: [...]}`; any other metric is continuous (bootstrap,
# sign-flip).
BINARY = frozenset({"acc", "acc_norm", "acc_mutual_info", "exact_match", "em", "pass@1",
                    "exact"})


class TaskError(ValueError):
    """An lm-eval task that cannot be found or read: raised before any training."""


def task_name(eval_name: str) -> str | None:
    """`lm-eval:TASK` -> TASK; another eval's name -> None."""
    return eval_name.removeprefix(PREFIX) if eval_name.startswith(PREFIX) else None


@dataclass(frozen=True)
class TaskIdentity:
    """What of a task decides its numbers: part of the evaluation's cache key."""
    task: str
    version: str
    num_fewshot: int
    output_type: str
    config_hash: str
    files_hash: str  # the task folder's YAML and Python files (a changed process_results too)
    lm_eval_version: str

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=8)
def task_manager(include: str | None) -> TaskManager:
    """lm-eval's index of tasks (its own, and the YAMLs in `include`), built once a process."""
    paths = [str(SHIPPED)] + ([str(Path(include).resolve())] if include else [])
    return TaskManager(include_path=paths)


def _plain(value: Any) -> Any:
    """A config value as JSON: callables by their qualified name, the rest as given."""
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


@functools.lru_cache(maxsize=32)
def resolve_task(task: str, include: str | None = None) -> TaskIdentity:
    """Load `task` (and read its data) as lm-eval would; its identity. A task lm-eval cannot
    find, a group instead of one task, or data it cannot read is a TaskError naming the task."""
    manager = task_manager(include)
    if task not in manager.all_tasks:
        where = f" or in {include}" if include else ""
        raise TaskError(f"lm-eval task {task!r}: not found among lm-eval's tasks{where} "
                        "(--lm-eval-include DIR adds a folder of task YAMLs)")
    try:
        loaded = manager.load([task])
    except Exception as err:  # noqa: BLE001 (lm-eval raises whatever its loader or datasets raise)
        raise TaskError(f"lm-eval task {task!r}: its data cannot be read ({type(err).__name__}:"
                        f" {err}); offline, a task must read local files") from None
    obj = loaded["tasks"].get(task)
    if obj is None or task in loaded["groups"]:
        raise TaskError(f"lm-eval task {task!r} is a group; name its tasks one by one")
    config = obj.dump_config()
    return TaskIdentity(task, str(obj.VERSION), int(config.get("num_fewshot") or 0),
                        str(config.get("output_type")), content_hash(_plain(config)),
                        folder_hash(getattr(manager.task_index[task], "yaml_path", None)),
                        metadata.version("lm_eval"))


def folder_hash(yaml_path) -> str:
    """A hash of the *.yaml and *.py files beside a task's YAML ("" for a task without one)."""
    if not yaml_path or not Path(yaml_path).is_file():
        return ""
    folder = Path(yaml_path).parent
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".py"))
    return content_hash({p.name: p.read_bytes().hex() for p in files})


class EngineLM(HFLM):
    """lm-eval's HFLM around the engine's loaded model and tokenizer. With a chat template its
    prompts are the run's (`chat.generation_prompt`), exactly as the engine's own evals and
    training render them; without one (raw), plain lm-eval prompts."""

    def __init__(self, model, tokenizer, template: str | None, batch_size: int = 8):
        super().__init__(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                         device=str(next(model.parameters()).device))
        self.engine_template = None if template is None else chat_template(template, tokenizer)

    def apply_chat_template(self, chat_history: list[dict[str, str]],
                            add_generation_prompt: bool = True) -> str:
        return self.engine_template.generation_prompt(list(chat_history))

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return None if self.engine_template is None else f"engine:{self.engine_template.name}"


def evaluate_task(model, tokenizer, task: str, *, out: Path, limit: int | None,
                  include: str | None, template: str | None, report) -> dict:
    """One task on the loaded (model, tokenizer): the engine's result dict (metrics, items,
    kinds, higher_is_better, counts, records)."""
    identity = resolve_task(task, include)
    lm = EngineLM(model, tokenizer, template)
    report("score", 0, limit)
    started = time.time()
    out_ = simple_evaluate(model=lm, tasks=[task], task_manager=task_manager(include),
                           limit=limit, log_samples=True, bootstrap_iters=0,
                           apply_chat_template=template is not None,
                           fewshot_as_multiturn=template is not None and identity.num_fewshot > 0,
                           confirm_run_unsafe_code=False, verbosity=None)
    samples = out_["samples"][task]
    declared = (out_["configs"][task].get("metadata") or {}).get("binary_metrics") or ()
    items, kinds = item_outcomes(task, samples, BINARY | set(declared))
    report("score", len({i["item"] for i in items}), len({i["item"] for i in items}))
    metrics = {key: sum(i["value"] for i in items if i["metric"] == key)
               / max(1, sum(i["metric"] == key for i in items)) for key in kinds}
    better = out_["higher_is_better"].get(task, {})
    path = write_jsonl(out / f"lm-eval_{task}_samples.jsonl", [_record(s) for s in samples])
    return {"eval": PREFIX + task, "version": identity.version, "metrics": metrics,
            "items": items, "kinds": kinds,
            "higher_is_better": {k: bool(better.get(k.split("[")[0], True)) for k in kinds},
            "counts": {"docs": len({s["doc_id"] for s in samples}),
                       "score_s": round(time.time() - started, 3)},
            "records": str(path), "identity": identity.to_dict()}


def item_outcomes(task: str, samples: list[dict],
                  binary: frozenset[str] = BINARY) -> tuple[list[dict], dict[str, str]]:
    """Per-item outcomes from lm-eval's logged samples, and each metric's kind. A metric named
    binary must be 0 or 1 on every item (anything else is an error, not a guess)."""
    items, kinds = [], {}
    for sample in samples:
        tail = "" if sample.get("filter", "none") == "none" else f"[{sample['filter']}]"
        for metric in sample.get("metrics", ()):
            value = float(sample[metric])
            key = metric + tail
            kinds[key] = "binary" if metric in binary else "continuous"
            if kinds[key] == "binary" and value not in (0.0, 1.0):
                raise ValueError(f"lm-eval task {task}: {metric} of doc {sample['doc_id']} is "
                                 f"{value}, not a 0/1 outcome")
            items.append({"item": f"{task}/{sample['doc_id']}", "metric": key, "value": value})
    return items, kinds


def _record(sample: dict) -> dict:
    keep = ("doc_id", "doc", "target", "filtered_resps", "filter", "metrics")
    out = {k: sample.get(k) for k in keep}
    out.update({m: float(sample[m]) for m in sample.get("metrics", ())})
    return json.loads(json.dumps(out, default=str))
