"""A trial's whole input: the run, its ids, the preset and the sweep's provenance. It travels
through Tune's param space as plain data (`to_config`) and is rebuilt once, on the trial's first
line (`from_config`); from there the object itself is handed to the trial's Ray tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sweep.study.grid import Run, run_from_dict, run_to_dict
from sweep.study.presets import Preset, preset_from_dict, preset_to_dict


@dataclass(frozen=True)
class TrialJob:
    """What a trial needs, rebuilt from its plain-data Tune config on its first line."""
    run: Run
    run_id: str
    stage_ids: tuple[str, ...]
    preset: Preset
    provenance: dict | None = None  # sweep.execution.provenance.sweep_provenance(), computed on the driver

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
