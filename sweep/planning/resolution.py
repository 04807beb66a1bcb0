"""A sweep's content identities, resolved once at its start and carried in the preset to every
trial: what each training source and base model contains (core/content.py: file hashes
cached by size and mtime, hub revisions) and, with --decontaminate, the test items every
training source leaves out (written into the run storage, named by their hash). Stage ids hash
all three, so a file replaced in place, a hub update or decontamination renames the stages.
An unresolved identity (offline and not in the hub cache, a missing file) is a warning, or with
--require-resolved an error. Dry runs resolve offline and write nothing:
    python -m sweep.rq2 --preset paper --dry-run --decontaminate --require-resolved
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core import content
from core.ids import content_hash
from sweep.planning.test_items import TESTS, load_tests
from sweep.study.presets import Preset
from trainers.data.decontamination import items_payload, items_rel
from trainers.data.ngrams import DEFAULT_N

if TYPE_CHECKING:
    from core.storage import Storage



class UnresolvedContent(UserWarning):
    """A source or model whose content could not be identified: its stages are named by where
    it is only, as before content identities."""


class UnresolvedError(ValueError):
    """--require-resolved and something is unresolved."""


def resolve_preset(preset: Preset, *, storage: Storage | None = None, offline: bool = False,
                   require: bool = False, hub: content.HubLookup | None = None) -> Preset:
    """The preset with its sources' and models' contents and its decontamination items set
    (what is set already is kept: resolving twice is free). `storage`: where the test items
    are written (None: a dry run, which only names them); `offline`: hub ids from the local
    hub cache only; `hub`: the lookup (tests inject one)."""
    hub = hub or content.hub_lookup(offline)
    unresolved: list[str] = []
    by_location: dict[str, content.ContentId] = {}  # general and general_nocm share a file

    def source(spec):
        if spec.content is not None:
            return spec
        found = by_location.get(spec.location) or content.source_content(
            spec.location, hub=hub, offline=offline)
        by_location[spec.location] = found
        if not found.resolved:
            unresolved.append(f"source {spec.name}: {found.how}")
        return replace(spec, content=found.value)

    sources = tuple(source(s) for s in preset.sources)
    models = dict(preset.model_contents)
    for model in preset.models:
        if model not in models:
            found = content.model_content(model, hub=hub, offline=offline)
            models[model] = found.value
            if not found.resolved:
                unresolved.append(f"model {model}: {found.how}")
    _report(unresolved, require)
    items = preset.decontamination_items
    if preset.decontaminate and items is None:
        items = write_test_items(preset, storage)
    preset = with_shipped_tasks(preset, storage)
    return replace(preset, sources=sources, model_contents=tuple(sorted(models.items())),
                   decontamination_items=items)


TASKS_IN_STORAGE = "storage:"  # an --lm-eval-include folder copied into the run storage


def with_shipped_tasks(preset: Preset, storage: Storage | None) -> Preset:
    """--lm-eval-include DIR as every evaluation can read it: the absolute folder on a local
    storage (one machine); on a remote one, the folder's files copied once into the storage
    under their hash (`storage:lm_eval_tasks/<hash>`), which an evaluation on any node
    downloads (sweep/execution/evaluation.py)."""
    include = preset.evaluation.lm_eval_include
    if not include or include.startswith(TASKS_IN_STORAGE) or storage is None:
        return preset
    folder = Path(include).resolve()
    if storage.is_local:
        shipped = str(folder)
    else:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        rel = "lm_eval_tasks/" + content_hash(
            {str(p.relative_to(folder)): p.read_bytes().hex() for p in files})
        if not storage.exists(rel):
            storage.upload_dir(folder, rel)
        shipped = TASKS_IN_STORAGE + rel
    return replace(preset, evaluation=replace(preset.evaluation, lm_eval_include=shipped))


def _report(unresolved: Sequence[str], require: bool) -> None:
    if unresolved and require:
        raise UnresolvedError("--require-resolved: content not identified for "
                              + "; ".join(unresolved))
    for what in unresolved:
        warnings.warn(f"{what}; its stages are named without its content "
                      f"({content.UNRESOLVED}; --require-resolved refuses this)",
                      UnresolvedContent, stacklevel=3)


def with_decontamination(preset: Preset, tests: str) -> Preset:
    """--decontaminate TESTS: the test sets named (each bare, as the evals load it offline, or
    NAME=PATH), or when none is named the preset's own evals among gsm8k, humaneval, mtbench."""
    chosen = tuple(t.strip() for t in tests.split(",") if t.strip())
    chosen = chosen or tuple(t for t in preset.evaluation.names if t in TESTS)
    if not chosen:
        raise ValueError("--decontaminate: no test set named, and the preset evaluates none of "
                         f"{', '.join(TESTS)}")
    return replace(preset, decontaminate=chosen)


def write_test_items(preset: Preset, storage: Storage | None) -> str:
    """The test items loaded as the evals load them, written once into `storage` under a name
    that is their hash (every worker, on any node, reads that file); with no storage (a dry
    run) only the name it would have."""
    try:
        items, info = load_tests(",".join(preset.decontaminate))
    except OSError as err:  # a named file that is not there (a bad one is a RecordError)
        raise ValueError(f"--decontaminate: {err}") from None
    missing = {t: i["unavailable"] for t, i in info.items() if "unavailable" in i}
    if missing:
        raise ValueError(f"--decontaminate: test sets unavailable: {missing}; name their files "
                         "(e.g. --decontaminate gsm8k=PATH,humaneval)")
    payload = items_payload(items, DEFAULT_N)
    rel = items_rel(payload)
    if storage is None:
        return f"{str(preset.storage).rstrip('/')}/{rel}"
    if not storage.exists(rel):
        storage.write_json(rel, payload)
    return storage.uri_of(rel)
