"""Faults injected from the tests, never from production code: a Ray Train worker function that
wraps the project's own (trainers.loop.train_loop_per_worker) and makes one rank die once, right
after a given optimizer step, as a preempted or crashed worker would.

    monkeypatch.setattr(trainers.loop, "train_loop_per_worker", dies_once(1, 5, marker))

`trainers.fit.build_trainer` looks the worker function up when it builds the trainer, so the
patch reaches every worker; this module travels by value (workers cannot import tests/).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ray.cloudpickle


def dies_once(rank: int, after_step: int, marker: str | Path):
    """A worker function: rank `rank` exits (os._exit(1), no cleanup) after its `after_step`-th
    train step of the first attempt; `marker` remembers it happened, so the restart runs on."""
    marker = str(marker)

    def loop(config: dict) -> None:
        import ray.train

        import trainers.loop as worker_loop

        if ray.train.get_context().get_world_rank() == rank and not Path(marker).exists():
            real_step, steps = worker_loop.train_step, [0]

            def step_then_maybe_die(*args, **kwargs):
                stats = real_step(*args, **kwargs)
                steps[0] += 1
                if steps[0] == after_step:
                    Path(marker).write_text(f"killed rank {rank} after step {after_step}\n")
                    os._exit(1)
                return stats

            worker_loop.train_step = step_then_maybe_die
        # In the worker process the module still holds the real loop: only the driver's copy
        # was patched. (Capturing it here would pickle it by value, with its own globals.)
        worker_loop.train_loop_per_worker(config)

    return loop


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
