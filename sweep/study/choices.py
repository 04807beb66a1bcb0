"""A user's sources, groups and abilities applied to a preset, one rule for every command.

Sources (`--source NAME=PATH_OR_HF_ID`, repeatable, names `[a-z][a-z0-9_]*`): when every name
given is one of the preset's sources, the given locations replace theirs (the paper's GSM8K-RFT
file; on smoke and local, a built-in corpus); otherwise the named sources alone are the
question's sources, on any preset. `builtin:NAME` names a built-in corpus (`builtin:tools` is
the opt-in fourth one). Names the engine reserves for itself are refused.
Groups: rq2 mixes all the question's sources (`--mix a,b`: those); rq3 and rq4 take
`--specialized a,b --general c`, rq4 `--order c,a,b` for sequential training; the paper's
grouping is the default where its names are the sources, and a name a question needs but the
user did not give is an error naming the flag to add. Abilities: `--evals` (built-in names and
`lm-eval:TASK`), `--limit`, `--lm-eval-include DIR`, `--lm-eval-raw`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from sweep.study.grid import SOURCES, GridSpec
from sweep.study.presets import Preset
from sweep.study.strategies import SPECIALIZED
from trainers.data.corpora import OPT_IN_SIZES
from trainers.data.source_spec import NOCM, NOCM_BASE, derive_nocm, make_spec

NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
RESERVED = ("math_test", "general_test", NOCM)  # the engine's own: held-out splits, the ablation
BUILTIN = "builtin:"
MAX_SOURCES = 16
PAPER_ORDER = ("code", "math", "general")
PAPER_ONLY = ("ablation", "tsne")  # questions that stay the paper's whatever the sources


class ChoiceError(ValueError):
    """A choice the question cannot run with; the message names the flag to add or fix."""


def sources_of(preset: Preset) -> tuple[str, ...]:
    """The question's sources: the ones the user named, else the paper's three."""
    return preset.source_names or SOURCES


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if name in RESERVED:
            raise ChoiceError(f"--source {name}=...: {name!r} is the engine's own name (reserved:"
                              f" {', '.join(RESERVED)}); call your source something else")
        if not NAME.match(name):
            raise ChoiceError(f"--source {name}=...: a source name is lower-case letters, digits "
                              "and _, starting with a letter (e.g. tool_use)")
    if not 1 <= len(names) <= MAX_SOURCES:
        raise ChoiceError(f"--source: between 1 and {MAX_SOURCES} sources, got {len(names)}")


def with_sources(preset: Preset, locations: Mapping[str, str]) -> Preset:
    """The preset with the user's `--source` locations (see the module's docstring)."""
    if not locations:
        return preset
    _check_names(list(locations))
    builtin = {n: loc.removeprefix(BUILTIN) for n, loc in locations.items()
               if loc.startswith(BUILTIN)}
    for name, corpus in builtin.items():
        if name != corpus:
            raise ChoiceError(f"--source {name}=builtin:{corpus}: a built-in corpus keeps its own "
                              f"name ({corpus}={BUILTIN}{corpus})")
        if not preset.builtin_corpora:
            raise ChoiceError(f"--source {name}=builtin:{corpus}: preset {preset.name!r} has no "
                              "built-in corpora (smoke and local have)")
    files = {n: loc for n, loc in locations.items() if n not in builtin}
    own = set(sources_of(preset)) | ({s.name for s in preset.sources} - {NOCM})
    if set(locations) <= own:  # new places for the paper's sources (builtin:NAME: no change)
        return _override(preset, files)
    sizes = dict(preset.corpus_sizes)
    for name in builtin:
        if name not in sizes and name in OPT_IN_SIZES:
            sizes[name] = opt_in_size(preset, name)
        if not sizes.get(name):
            raise ChoiceError(f"--source {name}=builtin:{name}: no built-in corpus of that name "
                              f"(built in: {', '.join([*SOURCES, *OPT_IN_SIZES])})")
    return replace(preset, sources=tuple(make_spec(n, loc) for n, loc in files.items()),
                   source_names=tuple(locations), corpus_sizes=tuple(sizes.items()))


def opt_in_size(preset: Preset, name: str) -> int:
    """An opt-in corpus is as large as the preset's largest built-in training corpus (local:
    384, like math; smoke: 16), at most its generator's default."""
    trained = [n for s, n in preset.corpus_sizes if s in SOURCES]
    return min(OPT_IN_SIZES[name], max(trained, default=OPT_IN_SIZES[name]))


def _override(preset: Preset, locations: Mapping[str, str]) -> Preset:
    """New locations for some of the preset's own sources; general_nocm follows general."""
    specs = {s.name: s for s in preset.sources}
    for name, location in locations.items():
        specs[name] = replace(specs[name], location=location) if name in specs \
            else make_spec(name, location)
    if NOCM_BASE in locations and (NOCM in specs or preset.builtin_corpora):
        specs[NOCM] = derive_nocm(specs[NOCM_BASE])
    return replace(preset, sources=tuple(specs.values()))


def grid_spec(preset: Preset, question: str, *, mix: Sequence[str] | None = None,
              specialized: Sequence[str] | None = None, general: str | None = None,
              order: Sequence[str] | None = None) -> GridSpec:
    """What each question composes, from the preset's sources and the user's groups."""
    sources = sources_of(preset)
    if question in PAPER_ONLY:
        if preset.source_names is not None:
            raise ChoiceError(f"{question} studies the paper's math, code and general (and "
                              "ShareGPT without code and math): --source there only gives "
                              "those new places, e.g. --source general=FILE")
        return GridSpec(amount=preset.amount)
    paper = set(sources) >= set(SOURCES)
    spec = GridSpec(sources=sources, amount=preset.amount,
                    mix=_subset(mix, sources, "--mix"),
                    specialized=tuple(specialized) if specialized else SPECIALIZED,
                    general=general or "general",
                    order=tuple(order) if order else PAPER_ORDER)
    needs = {"rq3": ("specialized", "general"), "rq4": ("specialized", "general", "order"),
             "all": ("specialized", "general", "order")}.get(question, ())
    given = {"specialized": specialized, "general": general, "order": order}
    for group in needs:
        names = {"specialized": spec.specialized, "general": (spec.general,),
                 "order": spec.order}[group]
        missing = [n for n in names if n not in sources]
        if missing:
            flag = f"--{group}"
            why = "" if given[group] or paper else " (the paper's grouping names math, code, general)"
            raise ChoiceError(f"{question} needs {flag}: {missing} not among your sources "
                              f"{list(sources)}{why}; add {flag} "
                              + {"specialized": "a,b", "general": "c", "order": "c,a,b"}[group])
    return spec


def _subset(names: Sequence[str] | None, sources: Sequence[str], flag: str):
    if not names:
        return None
    unknown = [n for n in names if n not in sources]
    if unknown:
        raise ChoiceError(f"{flag}: {unknown} not among the sources {list(sources)}")
    return tuple(names)


def parse_limit(text: str) -> int | dict[str, int | None]:
    """--limit: "20" (every eval) or "gsm8k=20,lm-eval:arc_easy=50,mtbench=none"."""
    try:
        if "=" not in text:
            return int(text)
        out: dict[str, int | None] = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            out[name.strip()] = None if value.strip().lower() in ("", "none", "all") \
                else int(value)
        return out
    except ValueError:
        raise ChoiceError(f"--limit {text}: N, or EVAL=N,... (N a whole number or none)") \
            from None


def with_evals(preset: Preset, names: Sequence[str] | None, limit=None,
               include: str | None = None, raw: bool = False) -> Preset:
    """The preset scoring `names` (built-in evals and lm-eval:TASK), with --limit (N, or
    {eval: N}), --lm-eval-include and --lm-eval-raw."""
    ev = preset.evaluation
    if names:
        ev = replace(ev, names=tuple(names))
    if isinstance(limit, Mapping):
        unknown = [n for n in limit if n not in ev.names]
        if unknown:
            raise ChoiceError(f"--limit: {unknown} not among --evals {list(ev.names)}")
        ev = replace(ev, limits=tuple({**dict(ev.limits), **limit}.items()))
    elif limit is not None:
        ev = replace(ev, limit=limit, limits=())
    if include or raw:
        ev = replace(ev, lm_eval_include=include or ev.lm_eval_include,
                     lm_eval_raw=raw or ev.lm_eval_raw)
    return replace(preset, evaluation=ev)
