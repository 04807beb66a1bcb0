"""The study as runs: one function per research question, following ../shared/paper/GRID.md.

A `Run` is a list of stages from a base model plus where it sits in the paper's tables
(question, strategy, the fraction f on the x-axis, DMT's k, the replicate seed). Stages carry no
settings here; the preset attaches them. Per model size: rq1 15 runs, rq2 5 mixes plus the 15
single-source runs they are compared with (rq1's own runs, shared by id), rq3 15, rq4 6 + one
DMT per k, ablation 5, tsne 2; every question but tsne also evaluates the untrained base model
(one `base` run per model, shared by all questions). `--seeds N` repeats every trained run.
`python -m sweep.rq1 --dry-run` prints a grid with its stages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from sweep.study import strategies as st
from sweep.study.candidates import BASE, Composition
from sweep.study.strategies import Stage
from trainers.data.recipe import Recipe, format_amount, format_recipe, make_recipe, parse_recipe

ONE = Fraction(1)
FRACTIONS = (ONE, Fraction(1, 4), Fraction(1, 16), Fraction(1, 64), Fraction(1, 256))
KS = (ONE, Fraction(1, 4), Fraction(1, 16), Fraction(1, 64), Fraction(1, 256))
EXTRA_KS = (Fraction(1, 2), Fraction(1, 8), Fraction(1, 32))  # named in the paper's 4.3
SOURCES = ("math", "code", "general")
TSNE_K = Fraction(1, 256)
QUESTIONS = ("rq1", "rq2", "rq3", "rq4", "ablation", "tsne")
# Which questions' runs a question's report reads: rq2 compares its mixes with rq1's singles.
REPORT_READS = {"rq2": ("rq1", "rq2"), "ablation": ("rq2", "ablation")}


@dataclass(frozen=True)
class Run:
    question: str
    model: str
    strategy: str  # the paper's name: "math only", "mix", "fixed general", "DMT", "base", ...
    stages: tuple[Stage, ...]  # empty for the base model (t-SNE)
    amounts: Recipe  # the last stage's recipe (empty for the base model)
    k: Fraction | None = None  # DMT's k
    fraction: Fraction | None = None  # the x-axis of the question's figure (rq1-rq3, ablation)
    seed: int = 0  # replicate: offsets the data seed and/or training seed (sweep.planning.plan.seeded)

    @property
    def label(self) -> str:
        """Readable, unique within a question: 'rq3/fixed general/f=1/4/llama_7b'."""
        point = (f"/f={format_amount(self.fraction)}" if self.fraction is not None else "") + (
            f"/k={format_amount(self.k)}" if self.k is not None else "") + (
            f"/seed={self.seed}" if self.seed else "")
        return f"{self.question}/{self.strategy}{point}/{self.model}"

    @property
    def amounts_text(self) -> str:
        return format_recipe(self.amounts) if self.amounts else ""


def _run(question, model, strategy, stages, k=None, fraction=None) -> Run:
    amounts = stages[-1].recipe if stages else ()
    return Run(question, model, strategy, tuple(stages), amounts, k, fraction)


def check_fractions(fractions: Sequence[Fraction], what: str = "fraction") -> tuple[Fraction, ...]:
    out = []
    for f in fractions:
        if not isinstance(f, Fraction) or not 0 < f <= 1:
            raise ValueError(f"a {what} must be a Fraction in (0, 1], got {f!r}")
        if f in out:
            raise ValueError(f"{what} {f} given twice")
        out.append(f)
    return tuple(out)


@dataclass(frozen=True)
class GridSpec:
    """Which sources each question composes, and what "all of a source" means. The defaults are
    the paper's (GRID.md); `amount` < 1 runs rq4's strategies on that part of every source (the
    local preset: 1/4), DMT's k then being k of it, and holds rq3's fixed sources there."""

    sources: tuple[str, ...] = SOURCES  # rq1: each alone; rq2: the singles
    mix: tuple[str, ...] | None = None  # rq2's mix: these (default: all of `sources`)
    specialized: tuple[str, ...] = st.SPECIALIZED  # rq3 / rq4 groups
    general: str = "general"
    order: tuple[str, ...] = ("code", "math", "general")  # rq4's sequential training
    amount: Fraction = ONE  # rq3 / rq4: what "all of a source" means

    @property
    def mixed(self) -> tuple[str, ...]:
        return self.mix or self.sources


PAPER = GridSpec()


def rq1(model: str, fractions=FRACTIONS, spec: GridSpec = PAPER) -> list[Run]:
    """Single source: [s@f] for each source s (the paper's: math, code, general) and f."""
    return [_run("rq1", model, f"{s} only", st.single(s, f), fraction=f)
            for s in spec.sources for f in fractions]


def mixes(model: str, fractions=FRACTIONS, general: str = "general",
          question="rq2", spec: GridSpec = PAPER) -> list[Run]:
    """Mixed source: [math@f + code@f + general@f] (5 runs), or the spec's mix."""
    names = [general if s == "general" else s for s in spec.mixed]
    return [_run(question, model, "mix", st.mix({s: f for s in names}), fraction=f)
            for f in fractions]


def rq2(model: str, fractions=FRACTIONS, spec: GridSpec = PAPER) -> list[Run]:
    """RQ2 compares each mix with its sources alone at the same amount (Fig. 3): the mixes plus
    rq1's single-source runs at the same fractions. The singles stay rq1 runs (same run and stage
    ids), so a sweep that ran rq1 before neither retrains nor re-scores them."""
    singles = replace(spec, sources=spec.mixed)
    return rq1(model, fractions, singles) + mixes(model, fractions, spec=spec)


def rq3(model: str, fractions=FRACTIONS, spec: GridSpec = PAPER) -> list[Run]:
    """Ratio setups (15 runs): (a) fixed general [math@f + code@f + general@1], (b) fixed
    specialized [math@1 + code@1 + general@f], (c) fixed 1/64 general [math@f + code@f +
    general@1/64]. f is the varied amount, the x-axis of Figure 4. The held parts of (a) and
    (b) are at `spec.amount` (the paper: all; the local preset: 1/4, so that a run fits its
    hour), and then named by it as the paper names (c): "fixed 1/4 general"; f and (c)'s 1/64
    stay fractions of the whole source."""
    special, general, a = spec.specialized, spec.general, spec.amount
    held = "" if a == ONE else f"{format_amount(a)} "
    setups = {  # a dict: at amount 1/64, (a) is (c)
        f"fixed {held}general": lambda f: {**{s: f for s in special}, general: a},
        f"fixed {held}specialized": lambda f: {**{s: a for s in special}, general: f},
        "fixed 1/64 general": lambda f: {**{s: f for s in special}, general: Fraction(1, 64)},
    }
    return [_run("rq3", model, name, st.mix(amounts(f)), fraction=f)
            for name, amounts in setups.items() for f in fractions]


def rq3_held(setup: str) -> tuple[str, Fraction]:
    """An rq3 setup's held group and its amount: "fixed general" -> ("general", 1), "fixed 1/4
    specialized" -> ("specialized", 1/4), "fixed 1/64 general" -> ("general", 1/64)."""
    words = setup.split()
    if len(words) not in (2, 3) or words[0] != "fixed" or words[-1] not in (
            "general", "specialized"):
        raise ValueError(f"not an rq3 setup: {setup!r}")
    return words[-1], (Fraction(words[1]) if len(words) == 3 else ONE)


def rq3_order(setup: str) -> tuple[int, Fraction]:
    """The paper's order of the setups (Table 4): general held whole (or at the preset's
    amount), specialized held, then general held at 1/64; larger held amounts first; any
    other name (results brought in from elsewhere) after them."""
    try:
        group, amount = rq3_held(setup)
    except ValueError:
        return 3, ONE
    rank = 1 if group == "specialized" else (0 if amount > Fraction(1, 64) else 2)
    return rank, -amount


def rq4(model: str, ks=KS, spec: GridSpec = PAPER) -> list[Run]:
    """Strategies (Table 1, Table 5): each source alone, multi-task, sequential, mixed
    sequential, plus DMT(k) for each k; at `spec.amount` of every source (the paper: all), which
    the runs record as their f when it is not 1."""
    a, f = spec.amount, (None if spec.amount == ONE else spec.amount)
    groups = {"general": spec.general, "specialized": spec.specialized, "amount": a}
    sources = [spec.general] + [s for s in spec.sources if s != spec.general]
    if spec.sources == SOURCES:
        sources = ["general", "math", "code"]  # the paper's table order
    runs = [_run("rq4", model, f"{s} only", st.single(s, a), fraction=f) for s in sources]
    runs += [
        _run("rq4", model, "multi-task", st.multi_task(spec.sources, a), fraction=f),
        _run("rq4", model, "sequential", st.sequential(spec.order, a), fraction=f),
        _run("rq4", model, "mixed sequential", st.mixed_sequential(**groups), fraction=f),
    ]
    return runs + [_run("rq4", model, "DMT", st.dmt(k, **groups), k=k, fraction=f) for k in ks]


def ablation(model: str, fractions=FRACTIONS) -> list[Run]:
    """RQ2's mixes with ShareGPT minus its code and math samples (5 runs)."""
    return mixes(model, fractions, general="general_nocm", question="ablation")


def tsne(model: str, k: Fraction = TSNE_K) -> list[Run]:
    """Representations of the base model and of DMT(k=1/256) (Figure 5)."""
    return [_run("tsne", model, "base", ()), _run("tsne", model, "DMT", st.dmt(k), k=k)]


def base(model: str) -> Run:
    """The untrained model, scored with the same template, decoding and items as every run: the
    reference each question's report compares its runs with. One per model, shared by all."""
    return _run("base", model, "base", ())


def build_grid(question: str, models: Sequence[str], fractions=FRACTIONS, ks=KS,
               seeds: int = 1, spec: GridSpec = PAPER) -> list[Run]:
    """Every run of one question for every model size, in the paper's order, each trained run
    repeated for seeds 0..seeds-1, and the base model first (not for tsne, whose base run is a
    representation map)."""
    makers: dict[str, Callable[[str], list[Run]]] = {
        "rq1": lambda m: rq1(m, fractions, spec),
        "rq2": lambda m: rq2(m, fractions, spec),
        "rq3": lambda m: rq3(m, fractions, spec),
        "rq4": lambda m: rq4(m, ks, spec),
        "ablation": lambda m: ablation(m, fractions),
        "tsne": lambda m: tsne(m),
    }
    if question not in makers:
        raise ValueError(f"unknown question {question!r}; one of {', '.join(QUESTIONS)}")
    fractions, ks = check_fractions(fractions), check_fractions(ks, "k")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    runs = []
    for model in models:
        if question != "tsne":
            runs.append(base(model))
        for run in makers[question](model):
            runs += [replace(run, seed=s) for s in range(seeds if run.stages else 1)]
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{question}: two runs share a label; models given twice?")
    return runs


# `python -m sweep.all`: every question in one sweep (t-SNE only when asked for).
ALL_QUESTIONS = ("rq1", "rq2", "rq3", "rq4", "ablation")


def build_all(models: Sequence[str], fractions=FRACTIONS, ks=KS, seeds: int = 1,
              tsne: bool = False, spec: GridSpec = PAPER,
              fractions_of: Callable[[str], Sequence[Fraction]] | None = None,
              questions: Sequence[str] = ALL_QUESTIONS) -> list[Run]:
    """Every question's runs in one list, each run once (rq2's singles are rq1's, one base run
    per model). Stages repeat across questions (rq1's singles at f=1 are rq4's, rq2's mix at
    f=1 is rq4's multi-task...); the plan trains each distinct stage id once. `fractions_of`:
    a question's own fractions where a preset gives them; `questions`: a subset (sources of
    the user's own leave out the ablation)."""
    runs, labels = [], set()
    for question in tuple(questions) + (("tsne",) if tsne else ()):
        own = fractions_of(question) if fractions_of else fractions
        for run in build_grid(question, models, own, ks, seeds, spec):
            if run.label not in labels:
                labels.add(run.label)
                runs.append(run)
    return runs


def composition_of(run: Run) -> Composition:
    """The run's point in the candidate space (sweep/study/candidates.py)."""
    return Composition.from_stages([format_recipe(s.recipe) for s in run.stages], run.strategy,
                                   run.k)


def run_of(composition: Composition, model: str, question: str = "search") -> Run:
    """A run that trains `composition` (sweep.search's trials): the same stages, so the same
    stage ids, as the grid's run of that composition."""
    strategy = "base" if composition.strategy == BASE else composition.strategy.replace("_", " ")
    stages = composition.stages()
    return _run(question, model, strategy, stages, k=composition.k)


def recipe_of(**amounts: Fraction) -> Recipe:
    """Test and report helper: recipe_of(math=1/4, code=1/4) in canonical order."""
    return make_recipe(amounts.items())


def run_to_dict(run: Run) -> dict:
    """Plain data for a Tune config (recipes as canonical text, fractions as "p/q")."""
    return {"question": run.question, "model": run.model, "strategy": run.strategy,
            "stages": [format_recipe(s.recipe) for s in run.stages],
            "k": None if run.k is None else str(run.k),
            "fraction": None if run.fraction is None else str(run.fraction), "seed": run.seed}


def run_from_dict(data: dict) -> Run:
    stages = tuple(Stage(parse_recipe(text)) for text in data["stages"])
    k, f = data.get("k"), data.get("fraction")
    run = _run(data["question"], data["model"], data["strategy"], stages,
               k=None if k is None else Fraction(k), fraction=None if f is None else Fraction(f))
    return replace(run, seed=int(data.get("seed", 0)))
