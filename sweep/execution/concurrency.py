"""What a trial holds and how many trials run at once.

Trials hold no CPU or GPU, only a sliver of the custom resource `train_driver` (declared by the
head node: cluster.yaml, or the local Ray the driver starts); Train workers hold the hardware.
How many runs go at once follows what the cluster can GROW to, not what it has at start: an
autoscaling cluster starts with no GPU worker, and it is the pending trials' requests that make
the autoscaler add nodes. The growth comes from the cluster config (`--cluster-config`, or the
launcher's copy `~/ray_bootstrap_config.yaml` on a `ray up` head): each worker type's resources
times its max_workers (bounded by the cluster's max_workers), plus the head's.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from sweep.study.presets import Preset, accelerator_of, gpus_per_run, workers_for

DRIVER_RESOURCE = "train_driver"
DRIVER_SHARE = 0.01  # per trial: 100 trials per unit of the resource
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")  # where `ray up` puts it on the head


def growth_capacity(config: dict) -> dict[str, float]:
    """Resources of the largest cluster the config allows: the head's plus, per worker type,
    min(its max_workers, the cluster's max_workers) nodes of its declared resources (workers of
    all types together capped by the cluster's max_workers, largest GPU types first)."""
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    left = int(config.get("max_workers", 0))
    total: dict[str, float] = dict((types.get(head) or {}).get("resources") or {})
    workers = sorted(((n, t) for n, t in types.items() if n != head),
                     key=lambda nt: -float((nt[1].get("resources") or {}).get("GPU", 0)))
    for _, node_type in workers:
        count = min(int(node_type.get("max_workers", left)), left)
        left -= count
        for key, value in (node_type.get("resources") or {}).items():
            total[key] = total.get(key, 0.0) + count * float(value)
    return total


def read_cluster_config(path: str | Path | None) -> tuple[dict | None, str | None]:
    """(config, where it came from): `path`, else the launcher's bootstrap copy on this head,
    else (None, None)."""
    candidates = [Path(path).expanduser()] if path else [BOOTSTRAP_CONFIG.expanduser()]
    for candidate in candidates:
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text()), str(candidate)
    if path:
        raise FileNotFoundError(f"--cluster-config {path}: no such file")
    return None, None


def max_concurrent(preset: Preset, models, resources: dict,
                   capacity: dict | None = None) -> int:
    """Runs at once. GPUs (real or simulated): as many runs as the cluster's GPUs hold once
    grown (`capacity`), or as it is now when no config says how far it grows. CPUs: what the
    Train workers need plus one CPU for the trial's own data and evaluation work, so workers
    never starve (1 on 2 CPUs)."""
    if preset.max_concurrent:
        return preset.max_concurrent
    have = {k: max(float(resources.get(k, 0)), float((capacity or {}).get(k, 0)))
            for k in set(resources) | set(capacity or {})}
    accelerator = accelerator_of(preset)
    if accelerator:
        need = max(gpus_per_run(preset, m) or workers_for(preset, m) for m in models)
        count = int(have.get(accelerator, 0))
        if count == 0:
            print(f"note: the cluster shows no {accelerator} and no cluster config says how far "
                  "it grows (--cluster-config): one run at a time unless you pass "
                  "--max-concurrent")
        return max(1, count // need)
    per_run = max(workers_for(preset, m) for m in models) * preset.hardware.cpus_per_worker + 1
    return max(1, int(have.get("CPU", 1) // per_run))
