"""What a trial holds and how many trials run at once.

Trials hold no CPU or GPU, only a sliver of the custom resource `train_driver` (declared by the
head node: cluster.yaml, or the local Ray the driver starts); Train workers hold the hardware.
"""

from __future__ import annotations

from sweep.presets import Preset, gpus_per_run, workers_for

DRIVER_RESOURCE = "train_driver"
DRIVER_SHARE = 0.01  # per trial: 100 trials per unit of the resource


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
