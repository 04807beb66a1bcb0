"""Tags for the `general_nocm` ablation source: ShareGPT without code and math samples.

The paper tags ShareGPT with InsTag and removes code and math samples (90K -> 63K). Here a
`Tagger` maps records to tag sets: `KeywordTagger` (documented regexes, the default) or
`ModelTagger` (a causal LM prompted InsTag-style, run as Ray Data `map_batches`).
    python -m trainers.data.tag_report PATH.json   # what the keyword tagger removes from a ShareGPT file
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from core.model import build_model, load_tokenizer
from trainers.data.formatting import as_messages
from trainers.data.vicuna import eos_text_for, generation_prompt

CODE, MATH = "code", "math"
NOCM_TAGS = (CODE, MATH)  # what general_nocm leaves out (trainers.data.sources.derive_nocm)
PARSE_FAILED = "tagger:parse_failed"  # a model answer with no readable tags: counted, never removed


class Tagger(Protocol):
    def tags(self, records: list[dict]) -> list[set[str]]: ...


def _turns(record: dict, roles: Iterable[str]) -> list[str]:
    wanted = set(roles)
    return [str(m["content"]) for m in list(record["messages"]) if m["role"] in wanted]


def _rx(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern:
    return re.compile(pattern, flags | re.MULTILINE)


# (rule name, regex, kind): "syntax" rules look for code/maths written out, "topic" rules for
# words naming the subject. Which turns they read depends on KeywordTagger.scope.
CODE_RULES = (
    ("fenced_block", _rx(r"```"), "syntax"),
    ("python_def", _rx(r"^\s*(def|class)\s+\w+\s*[(:]", 0), "syntax"),
    ("python_import", _rx(r"^\s*(import\s+[\w.]+\s*$|from\s+[\w.]+\s+import\s+\w)", 0), "syntax"),
    ("c_include", _rx(r"^\s*#include\s*[<\"]", 0), "syntax"),
    ("js_syntax", _rx(r"\bfunction\s*\w*\s*\([^)]*\)\s*\{|console\.log\(|\)\s*=>\s*\{", 0), "syntax"),
    ("decl_statement", _rx(r"^\s*(const|var|let|int|public|private)\s+\w+.*[;{]\s*$", 0), "syntax"),
    ("sql", _rx(r"\bSELECT\b[^;]{1,200}?\bFROM\b|\bINSERT INTO\b|\bCREATE TABLE\b", 0), "syntax"),
    ("html_tag", _rx(r"</(html|div|span|script|body|head|ul|li|table|button|form|style)>"), "syntax"),
    ("language_name", _rx(
        r"(?<![./])\b(python|javascript|typescript|java|c\+\+|c#|golang|kotlin|php|ruby|sql|mysql|"
        r"postgres\w*|html|css|react(\.?js)?|angular|vue\.?js|node\.?js|django|flask|"
        r"spring boot|bash|powershell|dockerfile|kubernetes|regex|json|yaml|api|sdk)\b"), "topic"),
    ("coding_words", _rx(
        r"\b(source code|this code|the code|my code|following code|code snippet|write (a|the|me a) "
        r"(function|python script|program|class|code)|coding|programming|compile[rs]?|debug\w*|"
        r"stack ?trace|syntax error|algorithm|refactor|unit tests?|github|repository)\b"), "topic"),
)
MATH_RULES = (
    ("latex", _rx(r"\\(frac|sqrt|int|sum|prod|lim|cdot|times|leq|geq|infty)\b|"
                  r"\$[^$\n]*[=^\\][^$\n]*\$", 0), "syntax"),
    ("arithmetic_equation", _rx(r"\d\s*[-+*/×÷^]\s*\(?\d[\d\s.+\-*/×÷^()]*=\s*-?\$?\d"), "syntax"),
    ("variable_equation", _rx(r"\b\d*[a-z]\^\d|\b\d+[a-z]\s*[-+]\s*\d+\s*=|"
                              r"\b[a-z]\s*=\s*-?\d+(\.\d+)?\s*[-+*/]\s*\d", 0), "syntax"),
    ("math_request", _rx(r"\b(what is|calculate|compute|evaluate|simplify)\s+\(?-?\d[\d\s.,]*"
                         r"[-+*/×÷^x]\s*\d"), "topic"),
    ("math_words", _rx(
        r"\b(math|maths|mathematics|mathematical|solve for|equations?|integrals?|integrate|"
        r"derivatives? of|probability|theorem|prove that|algebra\w*|geometry|"
        r"calculus|polynomials?|quadratic|logarithms?|trigonometr\w*|matri(x|ces)|eigen\w*|"
        r"arithmetic|fractions?|percentages? of|standard deviation|variance|word problem)\b"),
        "topic"),
)


SCOPES = ("query", "conversation")


@dataclass(frozen=True)
class KeywordTagger:
    """Tags a record "code" and/or "math" when any rule of that tag matches.

    `scope="query"` (default) reads only the user turns, as InsTag tags user queries; of the 997
    records read from the 1,011-sample ShareGPT V3 file it removes 28% (paper: 90K -> 63K, 30%).
    `"conversation"` also applies syntax rules to replies (a "continue" answered with code is
    then code) and removes 45%.

    Code syntax: fenced ``` blocks; `def`/`class` lines; `import x` / `from x import y` lines;
    `#include <...>`; JavaScript `function f(...) {`, `console.log(`, `) => {`; declarations
    ending in `;` or `{` (`const`, `var`, `let`, `int`, `public`, `private`); SQL
    `SELECT ... FROM`, `INSERT INTO`, `CREATE TABLE`; closing HTML tags. Code topic: language
    and tool names (python, java, sql, html, react, api, json, regex, ...; not after "." or "/"
    as in URLs) and coding words ("the code", "write a function", debug, algorithm, github, ...).
    Math syntax: LaTeX commands or `$...$` with `=`, `^`, `\\`; arithmetic written out with a
    result (`12 * 3 = 36`); variable equations (`x^2`, `2x + 3 =`, `y = 4 * 2`). Math topic:
    "calculate/what is 25 * 4" requests and words (equation, integral, probability, theorem,
    algebra, matrix, fraction, percentage of, variance, math, ...).

    Known false positives: "api"/"json" in a product question, "Java" the island, "the code"
    of conduct, a closing `</div>` quoted in prose, "dot-matrix printer", "probability" or
    "variance" in a business question, `math.atan2` (code, tagged math too), prices like
    `$5 = ...`. Known false negatives: code described only in words ("write an Excel formula",
    shell one-liners in plain text), math word problems without math words or written-out
    equations ("Ann has 3 apples ..."), non-English samples (the words are English).
    """

    scope: str = "query"
    code_rules: tuple = CODE_RULES
    math_rules: tuple = MATH_RULES

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")

    def tags(self, records: list[dict]) -> list[set[str]]:
        return [set(self.matches(record)) for record in records]

    def matches(self, record: dict) -> dict[str, list[str]]:
        """{tag: names of the rules that fired}, for reports and for checking the rules."""
        asked = _turns(record, ("user",))
        every = _turns(record, ("user", "assistant", "system"))
        out = {}
        for tag, rules in ((CODE, self.code_rules), (MATH, self.math_rules)):
            fired = []
            for name, rx, kind in rules:
                texts = every if kind == "syntax" and self.scope == "conversation" else asked
                if any(rx.search(text) for text in texts):
                    fired.append(name)
            if fired:
                out[tag] = fired
        return out


@dataclass(frozen=True)
class NocmReport:
    """What `filter_general_nocm` removed: per tag (a sample with both counts under each), the
    distinct samples removed, and model answers that could not be parsed (kept, counted)."""

    total: int
    kept: int
    removed: int
    removed_by_tag: dict[str, int] = field(default_factory=dict)
    parse_failures: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        share = self.removed / self.total if self.total else 0.0
        tags = ", ".join(f"{t} {n}" for t, n in sorted(self.removed_by_tag.items()))
        return (f"general_nocm: {self.total} samples, removed {self.removed} ({share:.1%}; "
                f"by tag: {tags or 'none'}), kept {self.kept}, tagger parse failures "
                f"{self.parse_failures}")


def removal_report(tag_sets: list[set[str]], exclude: Iterable[str] = NOCM_TAGS) -> NocmReport:
    exclude = tuple(exclude)
    by_tag = Counter({tag: 0 for tag in exclude})
    removed = 0
    for tags in tag_sets:
        hit = [tag for tag in exclude if tag in tags]
        by_tag.update(hit)
        removed += bool(hit)
    failures = sum(PARSE_FAILED in tags for tags in tag_sets)
    return NocmReport(len(tag_sets), len(tag_sets) - removed, removed, dict(by_tag), failures)


def filter_general_nocm(
    records: list[dict], tagger: Tagger, exclude: Iterable[str] = NOCM_TAGS
) -> tuple[list[dict], NocmReport]:
    """Records without any `exclude` tag, and the report of what was removed and why."""
    exclude = tuple(exclude)
    tag_sets = tagger.tags(records)
    if len(tag_sets) != len(records):
        raise RuntimeError(f"tagger returned {len(tag_sets)} tag sets for {len(records)} records")
    kept = [r for r, tags in zip(records, tag_sets) if not any(t in tags for t in exclude)]
    return kept, removal_report(tag_sets, exclude)


# InsTagger's query prompt (OFA-Sys/InsTag; the paper used it with ChatGPT), put in the Vicuna
# template by trainers/data/vicuna.py as InsTagger itself was trained.
INSTAG_PROMPT = (
    "Please identify tags of user intentions in the following user query and provide an "
    'explanation for each tag. Please respond in the JSON format {{"tag": str, "explanation": '
    'str}}.\nUser query: {query}'
)
# Open-set InsTag tags ("python programming", "mathematical calculation") -> our two tags.
CODE_TAG = _rx(r"\b(code|coding|programming|program|software|python|javascript|java|c\+\+|sql|"
               r"html|css|web development|debug\w*|algorithm|api|scripting|database|regex|git)\b")
MATH_TAG = _rx(r"\b(math\w*|arithmetic|calculation|algebra|geometry|equations?|calculus|"
               r"probability|statistics|number theory|trigonometry)\b")
_TAG_FIELD = re.compile(r'"tag"\s*:\s*"((?:[^"\\]|\\.)*)"')


def parse_tags(text: str) -> list[str] | None:
    """Tags from a model answer: a JSON list (of {"tag": ...} objects or strings), loose
    {"tag": ...} objects, or bare `"tag": "..."` fields. None when nothing readable is there."""
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            items = json.loads(text[start:end + 1])
            tags = [i.get("tag") if isinstance(i, dict) else i for i in items]
            tags = [t.strip().lower() for t in tags if isinstance(t, str) and t.strip()]
            if tags:
                return tags
        except (json.JSONDecodeError, TypeError, AttributeError):
            pass  # fall through to the looser readings
    tags = [json.loads(f'"{m}"').strip().lower() for m in _TAG_FIELD.findall(text)]
    return [t for t in tags if t] or None


def categorize(raw_tags: Iterable[str]) -> set[str]:
    """Our tags for a list of open-set tags, plus each raw tag as "instag:<tag>"."""
    out = {f"instag:{tag}" for tag in raw_tags}
    for tag in raw_tags:
        if CODE_TAG.search(tag):
            out.add(CODE)
        if MATH_TAG.search(tag):
            out.add(MATH)
    return out


class ModelTagger:
    """A causal LM prompted InsTag-style for each record's user queries.

    `generate` (prompts -> completions) replaces the built-in greedy transformers generation,
    e.g. with vLLM or a test double. The model loads on first use, so a tagger pickles cheaply
    into Ray actors (`tag_dataset`). An answer with no readable tags gives {PARSE_FAILED}: the
    record is kept and counted, never a crash.
    """

    def __init__(self, model_name: str, *, max_new_tokens: int = 128, batch_size: int = 8,
                 max_query_chars: int = 2000, generate=None):
        self.model_name, self.max_new_tokens = model_name, max_new_tokens
        self.batch_size, self.max_query_chars = batch_size, max_query_chars
        self._generate, self._loaded = generate, None

    def __getstate__(self):
        return {**self.__dict__, "_loaded": None}

    def prompts(self, records: list[dict], eos_text: str = "</s>") -> list[str]:
        out = []
        for record in records:
            query = "\n\n".join(_turns(record, ("user",)))[: self.max_query_chars]
            message = {"role": "user", "content": INSTAG_PROMPT.format(query=query)}
            out.append(generation_prompt([message], eos_text=eos_text))
        return out

    def raw_tags(self, records: list[dict]) -> list[list[str] | None]:
        if self._generate is not None:
            completions = self._generate(self.prompts(records))
        else:
            completions = self._hf_generate(records)
        return [parse_tags(text) for text in completions]

    def tags(self, records: list[dict]) -> list[set[str]]:
        return [categorize(raw) if raw else {PARSE_FAILED} for raw in self.raw_tags(records)]

    def _load(self):
        if self._loaded is None:
            tokenizer = load_tokenizer(self.model_name)
            tokenizer.padding_side = "left"  # batched generation continues from the right edge
            self._loaded = (tokenizer, build_model(self.model_name).eval())
        return self._loaded

    def _hf_generate(self, records: list[dict]) -> list[str]:
        import torch  # lazy: light command (no torch)


        tokenizer, model = self._load()
        prompts = self.prompts(records, eos_text_for(tokenizer))
        out = []
        for i in range(0, len(prompts), self.batch_size):
            enc = tokenizer(prompts[i:i + self.batch_size], return_tensors="pt", padding=True)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id)
            out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:],
                                          skip_special_tokens=True)
        return out


class TagBatch:
    """Ray Data `map_batches` class (pandas batches with a `messages` column): adds `tags`."""

    def __init__(self, tagger: Tagger):
        self.tagger = tagger

    def __call__(self, batch):
        records = [{"messages": as_messages(value)} for value in batch["messages"]]
        tag_sets = self.tagger.tags(records)
        batch = batch.copy()
        batch["tags"] = [sorted(tags) for tags in tag_sets]
        return batch


def tag_dataset(ds, tagger: Tagger, *, batch_size: int = 16, concurrency: int = 1, **resources):
    """`ds` with a `tags` column (sorted list of str), tagged by `concurrency` Ray actors;
    `resources` (num_cpus=..., num_gpus=...) go to each actor."""
    return ds.map_batches(TagBatch, fn_constructor_args=(tagger,), batch_format="pandas",
                          batch_size=batch_size, concurrency=concurrency, **resources)


def filter_tagged_dataset(ds, exclude: Iterable[str] = NOCM_TAGS):
    """A tagged dataset without the `exclude` tags, and the report (reads the tags column once;
    materialize `ds` first to avoid tagging twice)."""
    exclude = tuple(exclude)
    tag_sets = [set(row["tags"]) for row in ds.select_columns(["tags"]).iter_rows()]
    kept = ds.filter(lambda row: not any(tag in row["tags"] for tag in exclude))
    return kept, removal_report(tag_sets, exclude)
