"""Content-hash identities for stages and runs: the same inputs give the same id, on any machine.

A stage's id hashes its parent's id, its exact recipe, its training settings, the data seed, the
sources it reads and CODE_VERSION; it names the stage's folder, so a re-run finds what was done.
Pure and cheap (no torch or ray import), so dry runs can plan a sweep without training anything:
    python -c "from core.ids import stage_id; help(stage_id)"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

# Bump whenever the same (parent, recipe, settings, seed, sources) would train different weights:
# a change to the loss, formatting/template, selection, epoch order, optimizer schedule or saving.
# Old stages then stop matching and are retrained instead of silently reused. Pure refactors and
# speedups that give the same weights do not bump it.
# "2": bf16 on CPU used to train pure bf16 weights, where most AdamW updates at lr 2e-5 round
# away (the weights barely move); bf16 now keeps fp32 master weights under autocast and saves
# fp32. Stages trained the old way must never be reused, so every id changed.
CODE_VERSION = "2"

ID_HEX_CHARS = 16  # 64 bits: collisions are out of reach for the few thousand stages of a sweep


def canonical_amount(amount: Any) -> str | int:
    """Fraction -> "p/q" (even "1/1"), int count -> int, so Fraction(1, 4) and 4 never collide."""
    if isinstance(amount, bool) or not isinstance(amount, (Fraction, int)):
        raise TypeError(f"an amount is a Fraction or an int count, not {type(amount).__name__}")
    if isinstance(amount, Fraction):
        return f"{amount.numerator}/{amount.denominator}"
    return int(amount)


def canonical_recipe(recipe: Sequence[tuple[str, Any]]) -> list[list]:
    """[[source, amount], ...] sorted by source; the recipe as JSON without losing exactness."""
    pairs = sorted((str(source), canonical_amount(amount)) for source, amount in recipe)
    sources = [source for source, _ in pairs]
    if len(set(sources)) != len(sources):
        raise ValueError(f"a source appears twice in recipe {recipe!r}")
    return [list(pair) for pair in pairs]


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no spaces, ASCII; non-JSON values are an error."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def content_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("ascii")).hexdigest()[:ID_HEX_CHARS]


def fingerprint_settings(settings: Any) -> dict:
    """What of the settings changes the weights: `fingerprint_dict()` when the object has one
    (TrainSettings leaves out e.g. logging knobs), else the dict itself."""
    if settings is None:
        raise ValueError("a stage id needs its settings (pass TrainSettings() for the defaults)")
    if hasattr(settings, "fingerprint_dict"):
        return dict(settings.fingerprint_dict())
    if isinstance(settings, Mapping):
        return dict(settings)
    raise TypeError(f"settings must be a dict or have fingerprint_dict(), not {type(settings)}")


def fingerprint_sources(specs: Mapping[str, Any]) -> dict:
    """name -> what identifies a source (location, format, HF config, split, and its content
    and decontamination once resolved: SourceSpec.fingerprint_dict).

    Accepts SourceSpec objects (any dataclass), plain dicts or bare location strings. The bytes
    enter through `content`, which the sweep resolves once at its start (core/content.py,
    cached by size and mtime), so a file replaced in place renames the stages that read it."""
    out = {}
    for name, spec in specs.items():
        if isinstance(spec, str):
            fields = {"location": spec}
        elif hasattr(spec, "fingerprint_dict"):  # SourceSpec: its content and test items too
            fields = dict(spec.fingerprint_dict())
        elif dataclasses.is_dataclass(spec):
            fields = dataclasses.asdict(spec)
        elif isinstance(spec, Mapping):
            fields = dict(spec)
        else:
            raise TypeError(f"source {name!r}: cannot fingerprint a {type(spec).__name__}")
        fields.pop("name", None)  # the key already says it
        out[str(name)] = {k: _plain_field(v) for k, v in fields.items()}
    return out


def _plain_field(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value)


def stage_id(parent_id: str, recipe: Sequence[tuple[str, Any]], settings_fingerprint: Any,
             data_seed: int, sources_fingerprint: Mapping[str, Any] | None = None) -> str:
    """Short hex id of one stage. `parent_id` is the previous stage's id, or the base model's
    name/path for the first stage. Only the sources the recipe reads enter the hash, so adding
    an unrelated source to a sweep does not rename existing stages."""
    recipe_json = canonical_recipe(recipe)
    used = {source for source, _ in recipe_json}
    sources = fingerprint_sources(sources_fingerprint or {})
    missing = sorted(used - set(sources)) if sources_fingerprint is not None else []
    if missing:
        raise ValueError(f"recipe reads sources {missing} that the sources fingerprint lacks")
    if isinstance(data_seed, bool) or not isinstance(data_seed, int):
        raise TypeError(f"data_seed must be an int, not {type(data_seed).__name__}")
    return content_hash({
        "kind": "stage",
        "parent": str(parent_id),
        "recipe": recipe_json,
        "settings": fingerprint_settings(settings_fingerprint),
        "data_seed": data_seed,
        "sources": {name: sources[name] for name in sorted(used) if name in sources},
        "code_version": CODE_VERSION,
    })


def root_id(base_model: str, content: str | None = None) -> str:
    """The parent id of a first stage: the model's preset name, HF id or path, as given, and
    what its weights are (core.content.model_content: a revision or a hash) once resolved."""
    return f"model:{base_model}" + (f"@{content}" if content is not None else "")


def stage_ids(base_model: str, stages: Sequence[Any], settings_fp: Any, seed: int,
              sources_fp: Mapping[str, Any] | None = None,
              model_content: str | None = None) -> list[str]:
    """Ids of a strategy's stages, each chained to the one before. A stage is anything with a
    `.recipe` (sweep.study.strategies.Stage) or a bare recipe. `settings_fp` is one fingerprint for
    every stage, or a sequence with one per stage. `model_content`: the base model's content
    identity, when resolved."""
    per_stage = _per_stage_settings(settings_fp, len(stages))
    ids, parent = [], root_id(base_model, model_content)
    for stage, fp in zip(stages, per_stage):
        parent = stage_id(parent, getattr(stage, "recipe", stage), fp, seed, sources_fp)
        ids.append(parent)
    return ids


def _per_stage_settings(settings_fp: Any, n: int) -> list:
    if isinstance(settings_fp, (list, tuple)):
        if len(settings_fp) != n:
            raise ValueError(f"{len(settings_fp)} settings for {n} stages")
        return list(settings_fp)
    return [settings_fp] * n


def chain_id(base_model: str, ids: Sequence[str], model_content: str | None = None) -> str:
    """A whole run: its base model and its chain of stage ids (which already hash everything);
    the model's content too, so a base run (no stages) is renamed when its weights change."""
    extra = {"model_content": model_content} if model_content is not None else {}
    return content_hash({"kind": "run", "model": str(base_model), "stages": list(ids),
                         "code_version": CODE_VERSION, **extra})
