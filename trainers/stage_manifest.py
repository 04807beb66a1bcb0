"""A finished stage's manifest (core.contracts.StageManifest), built from its plan, its data
report and its fit: what it trained on, how, and what the saved weights are. Used by
trainers/stages.py, which writes it last into `stages/<id>/manifest.json`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from core.contracts import StageManifest, to_plain
from core.ids import CODE_VERSION, canonical_recipe, fingerprint_settings
from trainers.data.recipe import format_recipe


def build_manifest(planned, start_from: str, sources_fp: dict, report: Any, outcome: Any,
                   model: str, data_seed: int, workers: int, use_gpu: bool, *,
                   stage_wall_s: float) -> StageManifest:
    """`planned`: trainers.stages.ChainedStage; `report`: its DataReport; `outcome`: FitOutcome."""
    data = to_plain(report)
    return StageManifest.from_dict(to_plain({
        "stage_id": planned.stage_id,
        "parent_id": planned.parent_id,
        "model": model,
        "model_source": start_from,
        "recipe": format_recipe(planned.recipe),
        "recipe_exact": canonical_recipe(planned.recipe),
        "data_seed": data_seed,
        "settings": planned.settings.to_dict(),
        "settings_fingerprint": fingerprint_settings(planned.settings),
        "sources": {s: sources_fp.get(s) for s, _ in planned.recipe},
        "code_version": CODE_VERSION,
        "precision": (outcome.metrics or {}).get("precision")
        or planned.settings.precision_mode(use_gpu),
        "saved_dtype": saved_dtype(outcome.path),
        **data_counts(data),
        "data_report": data,
        "tokens_seen": outcome.tokens_seen,
        "loss_curve": outcome.loss_curve,
        "tokens_per_s": outcome.tokens_per_s,
        "wall_s": outcome.wall_s,
        "steps": outcome.steps,
        "metrics": outcome.metrics,
        "workers": workers,
        "use_gpu": use_gpu,
        "trained_on": socket.gethostname(),
        "stage_wall_s": stage_wall_s,
        "placements": (outcome.metrics or {}).get("placements") or [],
        "finished_at": (outcome.metrics or {}).get("finished_at"),
    }))


# safetensors dtype codes of floating tensors -> torch's names.
SAFETENSORS_FLOATS = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                      "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def saved_dtypes(checkpoint: str | Path) -> list[str]:
    """The dtypes of the floating tensors in a checkpoint folder's safetensors files (a local
    path or a URI), read from each file's header (8-byte little-endian length, then JSON)."""
    text = str(checkpoint)
    fs, root = (pafs.FileSystem.from_uri(text) if "://" in text
                else (pafs.LocalFileSystem(), str(Path(text).resolve())))
    names = set()
    for info in fs.get_file_info(pafs.FileSelector(root)):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".safetensors"):
            continue
        with fs.open_input_stream(info.path) as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        names.update(SAFETENSORS_FLOATS[t["dtype"]] for key, t in header.items()
                     if key != "__metadata__" and t["dtype"] in SAFETENSORS_FLOATS)
    return sorted(names)


def saved_dtype(checkpoint: str | Path) -> str | None:
    """One name ("float32") when every floating tensor has that dtype, "+"-joined names when
    they differ, None when the folder has no safetensors file."""
    return "+".join(saved_dtypes(checkpoint)) or None


def data_counts(report: Any) -> dict:
    """Per source: records selected and used, and rejects by reason (at reading: invalid
    records; at formatting: e.g. over-long drops), from a trainers.data.data_report.DataReport as a dict."""
    sources = report.get("sources") if isinstance(report, Mapping) else None
    if not sources:
        return {"selected": None, "used": None, "rejected": None}
    selected, used, rejected = {}, {}, {}
    for s in sources:
        selected[s["name"]] = s.get("selected")
        used[s["name"]] = s.get("used")
        read = s.get("rejects") or {}
        rejected[s["name"]] = {"reading": read.get("counts", read),
                               "formatting": s.get("format_rejects") or {}}
    return {"selected": selected, "used": used, "rejected": rejected}

