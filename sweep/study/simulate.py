"""`--simulate-gpus`: a sweep that asks Ray for the paper's GPUs, scaled down, while computing on
CPU with the preset's small model, so the scale path (GPU requests, packing runs onto nodes,
the autoscaler adding and losing nodes) runs on a laptop or CI.

Each Train worker asks for one `sim_gpu`, a custom resource the simulated cluster's worker
nodes declare (cluster_sim.yaml: a p4de's 8 A100s become 2 sim_gpu). A run gets one worker per
GPU that `like` (a paper model) asks for, divided by SIM_GPU_SCALE: llama_7b's 8 GPUs become 2
workers (one node), llama_33b's 16 become 4 (two nodes). Ray refuses `GPU` in a worker's
resources without `use_gpu`, hence a resource of our own. The stages are those of a plain CPU
run with the same worker count (`--workers N`): same ids, same numbers.
    python -m sweep.rq4 --preset smoke --simulate-gpus --address HEAD --cluster-config cluster_sim.yaml
"""

from __future__ import annotations

from dataclasses import replace

from core.model import PRESETS as MODEL_PRESETS
from sweep.study.presets import Preset

SIM_GPU = "sim_gpu"
SIM_GPU_SCALE = 4  # real GPUs per simulated one (cluster.yaml's 8 per node -> 2)
DEFAULT_LIKE = "llama_7b"


def simulated_workers(like: str) -> int:
    """Simulated GPUs (= Train workers) of one run of paper model `like`."""
    spec = MODEL_PRESETS.get(like)
    if spec is None or not spec.gpus_per_run:
        gpu_models = sorted(n for n, s in MODEL_PRESETS.items() if s.gpus_per_run)
        raise ValueError(f"--simulate-gpus {like!r}: not a GPU model preset; one of {gpu_models}")
    return max(1, spec.gpus_per_run // SIM_GPU_SCALE)


def simulate_gpus(preset: Preset, like: str = DEFAULT_LIKE) -> Preset:
    """`preset` asking for simulated GPUs the way `like` asks for real ones. Its fan-out then
    follows the cluster's simulated GPUs (the preset's own max_concurrent is for one machine),
    and a trial whose node is lost is retried as on the paper preset (a stage's own worker
    group restarts come first: TrainSettings.max_failures, at least 1)."""
    if preset.hardware.use_gpu:
        raise ValueError(f"--simulate-gpus computes on CPU: use a CPU preset (smoke, local), "
                         f"not {preset.name!r}")
    hardware = replace(preset.hardware, accelerator=SIM_GPU, workers=simulated_workers(like),
                       trial_retries=max(preset.hardware.trial_retries, 2))
    return replace(preset, hardware=hardware, max_concurrent=None)
