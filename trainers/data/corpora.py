"""Built-in offline corpora: SYNTHETIC data from our own seeded generator, in the real formats.

`math` (GSM8K-RFT query/response, several reasoning paths per question, answers end `#### N`),
`code` (Code Alpaca rows that complete Python functions from a signature and docstring, each
tested when written: trainers/data/code_corpus.py), `general`
(ShareGPT multi-turn chats, longer, some about code or math), and two held-out splits that are
never trained on: `math_test` (GSM8K question/answer, no question shared with `math`; any size,
e.g. 300+) and `general_test` (ShareGPT chats from their own seeded stream, none equal to a
`general` chat of the same seed and size; scored by evals' `general_loss`). Opt-in, written only
when named: `tools` (tool-calling chats, trainers/data/tools_corpus.py). Each corpus has its
own seeded stream, so adding a corpus never changes another's bytes. Every id starts `syn-`.
Try it:
    python -c "from trainers.data.corpora import write_builtin_corpora as w; print(w('/tmp/corpora'))"
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from trainers.data.code_corpus import generate_code
from trainers.data.source_spec import NOCM, NOCM_BASE, SourceSpec, derive_nocm
from trainers.data.tools_corpus import generate_tools

DEFAULT_SIZES = {"math": 2000, "code": 1000, "general": 1000, "math_test": 200,
                 "general_test": 200}
FILES = {"math": ("math_rft.jsonl", "rft"), "code": ("code_alpaca.json", "code_alpaca"),
         "general": ("general_sharegpt.json", "sharegpt"),
         "math_test": ("math_test_gsm8k.jsonl", "gsm8k"),
         "general_test": ("general_test_sharegpt.json", "sharegpt")}
# Corpora written only when a sweep names them (`--source tools=builtin:tools`), at this size
# unless the preset gives one: tool-calling chats (trainers/data/tools_corpus.py).
OPT_IN_FILES = {"tools": ("tools_calls.jsonl", "messages")}
OPT_IN_SIZES = {"tools": 1000}
# Each corpus's generator version, bumped only when that corpus's bytes change for a given seed
# and size: a stage id carries the version of each source it reads, so a new code corpus renames
# the stages that read code and no others. code 2: HumanEval-style function completion, tested
# (trainers/data/code_corpus.py); code 1 was instruction-only snippets, kept for the code chats
# in `general` (code_example).
CORPUS_VERSIONS = {"math": 1, "code": 2, "general": 1, "math_test": 1, "general_test": 1,
                   "tools": 1}
NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jamal",
         "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara"]
ITEMS = ["apples", "stickers", "marbles", "pencils", "cookies", "stamps", "shells", "cards"]


# ---- math: each problem gives (question, [worked solutions], answer) --------------------------

def _bags(r: random.Random):
    name, item = r.choice(NAMES), r.choice(ITEMS)
    a, b, c = r.randint(2, 60), r.randint(2, 9), r.randint(2, 12)
    q = (f"{name} has {a} {item}. {name} buys {b} bags with {c} {item} in each bag. "
         f"How many {item} does {name} have now?")
    n = a + b * c
    paths = [(f"The bags hold {b} * {c} = <<{b}*{c}={b*c}>>{b*c} {item}.\n"
             f"{name} now has {a} + {b*c} = <<{a}+{b*c}={n}>>{n} {item}."),
             (f"Each bag has {c} {item}, so {b} bags have {c} * {b} = <<{c}*{b}={b*c}>>{b*c}.\n"
             f"Adding the {a} {item} {name} already had gives {b*c} + {a} = <<{b*c}+{a}={n}>>{n}.")]
    return q, paths, n


def _wage(r: random.Random):
    name = r.choice(NAMES)
    a, b, c = r.randint(8, 40), r.randint(2, 9), r.randint(2, 6)
    q = (f"{name} earns ${a} an hour and works {b} hours a day for {c} days. "
         f"How much does {name} earn?")
    n = a * b * c
    paths = [(f"Each day {name} earns {a} * {b} = $<<{a}*{b}={a*b}>>{a*b}.\n"
             f"Over {c} days that is {a*b} * {c} = $<<{a*b}*{c}={n}>>{n}."),
             (f"{name} works {b} * {c} = <<{b}*{c}={b*c}>>{b*c} hours in total.\n"
             f"At ${a} an hour that is {b*c} * {a} = $<<{b*c}*{a}={n}>>{n}.")]
    return q, paths, n


def _change(r: random.Random):
    name, price, k = r.choice(NAMES), r.randint(2, 15), r.randint(2, 6)
    bill = next(x for x in (20, 50, 100, 200) if x > price * k)
    q = (f"Pens cost ${price} each. {name} buys {k} pens and pays with a ${bill} bill. "
         f"How much change does {name} get?")
    n = bill - price * k
    paths = [(f"The pens cost {k} * {price} = $<<{k}*{price}={k*price}>>{k*price}.\n"
             f"The change is {bill} - {k*price} = $<<{bill}-{k*price}={n}>>{n}."),
             (f"{name} spends {price} * {k} = <<{price}*{k}={k*price}>>{k*price} dollars.\n"
             f"So {name} gets back {bill} - {k*price} = <<{bill}-{k*price}={n}>>{n} dollars."),
             (f"One pen is ${price}, so {k} pens are ${k*price}.\n"
             f"{bill} - {k*price} = <<{bill}-{k*price}={n}>>{n}, so the change is ${n}.")]
    return q, paths, n


def _trip(r: random.Random):
    name = r.choice(NAMES)
    s1, h1, s2, h2 = r.randint(20, 70), r.randint(1, 5), r.randint(20, 70), r.randint(1, 5)
    q = (f"{name} drives at {s1} miles per hour for {h1} hours, then at {s2} miles per hour "
         f"for {h2} hours. How many miles does {name} drive in total?")
    d1, d2 = s1 * h1, s2 * h2
    paths = [(f"First part: {s1} * {h1} = <<{s1}*{h1}={d1}>>{d1} miles.\n"
             f"Second part: {s2} * {h2} = <<{s2}*{h2}={d2}>>{d2} miles.\n"
             f"Total: {d1} + {d2} = <<{d1}+{d2}={d1+d2}>>{d1+d2} miles."),
             (f"{name} covers {h2} * {s2} = <<{h2}*{s2}={d2}>>{d2} miles at the end "
             f"and {h1} * {s1} = <<{h1}*{s1}={d1}>>{d1} miles at the start.\n"
             f"Together {d2} + {d1} = <<{d2}+{d1}={d1+d2}>>{d1+d2} miles.")]
    return q, paths, d1 + d2


def _share(r: random.Random):
    name, item = r.choice(NAMES), r.choice(ITEMS)
    b, c = r.randint(2, 8), r.randint(2, 7)
    a = b * c + r.randint(1, 40)
    q = (f"{name} has {a} {item} and gives {b} {item} to each of {c} friends. "
         f"How many {item} does {name} have left?")
    n = a - b * c
    paths = [(f"{name} gives away {b} * {c} = <<{b}*{c}={b*c}>>{b*c} {item}.\n"
             f"{name} has {a} - {b*c} = <<{a}-{b*c}={n}>>{n} {item} left."),
             (f"After the first friend {name} has {a} - {b} = <<{a}-{b}={a-b}>>{a-b}.\n"
             f"The other {c-1} friends take {b} * {c-1} = <<{b}*{c-1}={b*(c-1)}>>{b*(c-1)}.\n"
             f"{a-b} - {b*(c-1)} = <<{a-b}-{b*(c-1)}={n}>>{n} {item} are left.")]
    return q, paths, n


MATH_TEMPLATES = (_bags, _wage, _change, _trip, _share)


def _math_problems(r: random.Random, exclude: set[str] = frozenset()):
    """Endless distinct problems (question, paths, answer), skipping questions in `exclude`."""
    seen = set(exclude)
    while True:
        q, paths, n = r.choice(MATH_TEMPLATES)(r)
        if q not in seen:
            seen.add(q)
            yield q, [f"{p}\n#### {n}" for p in paths], n


def generate_math(n: int, seed: int = 0) -> list[dict]:
    """RFT rows: 1 to 3 accepted reasoning paths per question, as GSM8K-RFT has."""
    r, rows = random.Random(f"math-{seed}"), []
    for qi, (q, paths, _) in enumerate(_math_problems(r)):
        for pi, path in enumerate(paths[: r.randint(1, len(paths))]):
            if len(rows) == n:
                return rows
            rows.append({"id": f"syn-math-{qi:06d}-{pi}", "query": q, "response": path})
    return rows


def generate_math_test(n: int, train_questions: set[str], seed: int = 0) -> list[dict]:
    r, rows = random.Random(f"math-test-{seed}"), []
    for qi, (q, paths, _) in enumerate(_math_problems(r, exclude=train_questions)):
        if len(rows) == n:
            return rows
        rows.append({"id": f"syn-math-test-{qi:06d}", "question": q, "answer": paths[0]})
    return rows


# ---- code snippets for the code chats of `general` (the `code` corpus: code_corpus.py) -----

CODE_TEMPLATES = (
    (("Write a Python function `{f}` that returns the sum of the numbers in a list that are "
     "greater than {k}."), "[{k}, {k1}, 3, {k2}]",
     "def {f}(numbers):\n    return sum(x for x in numbers if x > {k})",
     lambda k, xs: sum(x for x in xs if x > k)),
    ("Write a function `{f}` that multiplies every element of a list by {k}.", "[1, 2, 3]",
     "def {f}(items):\n    return [x * {k} for x in items]", lambda k, xs: [x * k for x in xs]),
    ("Create a Python function `{f}` that counts how many times {k} occurs in a list.",
     "[{k}, 1, {k}, 2]", ("def {f}(items):\n    count = 0\n    for x in items:\n"
     "        if x == {k}:\n            count += 1\n    return count"),
     lambda k, xs: xs.count(k)),
    ("Write a function `{f}` that keeps only the elements of a list divisible by {k}.",
     "[{k}, {k1}, {k2}, 7]", "def {f}(numbers):\n    return [x for x in numbers if x % {k} == 0]",
     lambda k, xs: [x for x in xs if x % k == 0]),
    ("Write a Python function `{f}` that returns the largest element of a list plus {k}.",
     "[4, {k1}, 2]", ("def {f}(numbers):\n    best = numbers[0]\n    for x in numbers[1:]:\n"
     "        if x > best:\n            best = x\n    return best + {k}"),
     lambda k, xs: max(xs) + k),
    (("Write a function `{f}` that removes duplicates from a list, keeping the first "
     "occurrence, and returns at most {k} items."), "[3, 1, 3, 2, 1, {k}]",
     ("def {f}(items):\n    seen = set()\n    out = []\n    for x in items:\n"
     "        if x not in seen:\n            seen.add(x)\n            out.append(x)\n"
     "    return out[:{k}]"), lambda k, xs: list(dict.fromkeys(xs))[:k]),
    (("Write a Python function `{f}` that returns the sum of the first {k} squares "
     "(1*1 + 2*2 + ...)."), "",
     "def {f}():\n    return sum(i * i for i in range(1, {k} + 1))",
     lambda k, xs: sum(i * i for i in range(1, k + 1))),
    (("Write a function `{f}` that returns the list of numbers shifted up by {k} and sorted "
     "in descending order."), "[{k1}, 5, {k2}]",
     "def {f}(numbers):\n    return sorted((x + {k} for x in numbers), reverse=True)",
     lambda k, xs: sorted((x + k for x in xs), reverse=True)),
    (("Create a function `{f}` that returns True when a number is a multiple of {k} "
     "for every number in a list."), "[{k}, {k1}]",
     "def {f}(numbers):\n    return all(x % {k} == 0 for x in numbers)",
     lambda k, xs: all(x % k == 0 for x in xs)),
    (("Write a Python function `{f}` that returns the {k}-th Fibonacci number "
     "(with fib(0) = 0 and fib(1) = 1)."), "",
     "def {f}():\n    a, b = 0, 1\n    for _ in range({k}):\n        a, b = b, a + b\n    return a",
     lambda k, xs: _fib(k)),
)
FUNCTION_NAMES = ["compute", "transform", "process_list", "solve", "helper", "calc", "apply_rule"]


def _fib(k: int) -> int:
    a, b = 0, 1
    for _ in range(k):
        a, b = b, a + b
    return a


def code_example(r: random.Random) -> dict:
    """One Code Alpaca row plus what a test needs to run it: `_call` args and `_expect`."""
    t = r.randrange(len(CODE_TEMPLATES))
    instruction, example, code, reference = CODE_TEMPLATES[t]
    k = r.randint(2, 9)
    fmt = {"f": f"{r.choice(FUNCTION_NAMES)}_{t}_{k}", "k": k, "k1": k * 3, "k2": k * 5 + 1}
    example = example.format(**fmt)
    args = json.loads(example) if example else None
    return {"instruction": instruction.format(**fmt), "input": example,
            "output": code.format(**fmt), "_call": args, "_expect": reference(k, args)}


# ---- general: ShareGPT chats, longer than math/code; ~10% about code, ~10% about math ----------

TOPICS = {
    "travel": ("planning a trip to {place}", [
        "Pack light layers, since the weather in {place} changes quickly.",
        "Book the first night near the station so arrival is easy.",
        "Local markets are the best place to try regional food.",
        "Keep a paper copy of your reservations in case your phone runs out of battery.",
        "Mornings are quieter at the popular sights, so start early."]),
    "cooking": ("cooking a dinner with {place} flavours", [
        "Start with the aromatics and let them soften slowly.",
        "Taste as you go and adjust salt at the end.",
        "A squeeze of lemon brightens a heavy sauce.",
        "Resting the dish for five minutes lets the flavours settle.",
        "Prepare every ingredient before you turn on the stove."]),
    "writing": ("writing a short story set in {place}", [
        "Open with a concrete image rather than a summary.",
        "Give the main character a clear want and an obstacle.",
        "Cut adjectives that repeat what the noun already says.",
        "End scenes a moment earlier than feels natural.",
        "Read the dialogue aloud to hear what sounds off."]),
    "career": ("preparing for a job interview in {place}", [
        "Research the company's recent projects.",
        "Prepare two stories that show how you solved a hard problem.",
        "Ask the interviewer what success looks like in the first six months.",
        "Send a short thank-you note the same day.",
        "Practice your answers out loud."]),
}
PLACES = ["Lisbon", "Kyoto", "Nairobi", "Oaxaca", "Tallinn", "Hanoi", "Quebec", "Seville"]
OPENERS = ["Can you help me with {subject}?", "I need some advice about {subject}.",
           "What should I keep in mind when {subject}?"]
FOLLOW_UPS = ["Can you say more about that?", "What would you do first?",
              "Could you give me a shorter version?", "Any other tips?"]


def _reply(r: random.Random, sentences: list[str], place: str) -> str:
    paras = [" ".join(s.format(place=place) for s in r.sample(sentences, r.randint(3, 5)))
             for _ in range(r.randint(2, 4))]
    return "\n\n".join(paras)


def _code_chat(r: random.Random) -> list[tuple[str, str]]:
    row = code_example(r)
    return [(f"How do I do this in Python? {row['instruction']}",
             (f"Here is a Python function that does it:\n\n```python\n{row['output']}\n```\n\n"
             "The function loops over the input once, so it runs in linear time."))]


def _math_chat(r: random.Random) -> list[tuple[str, str]]:
    q, paths, n = r.choice(MATH_TEMPLATES)(r)
    return [(f"Can you solve this math problem step by step? {q}",
             paths[0].replace("<<", "").replace(">>", " ") + f"\nSo the answer is {n}.")]


def _topic_chat(r: random.Random) -> list[tuple[str, str]]:
    subject_fmt, sentences = TOPICS[r.choice(sorted(TOPICS))]
    place = r.choice(PLACES)
    subject = subject_fmt.format(place=place)
    turns = [(r.choice(OPENERS).format(subject=subject), _reply(r, sentences, place))]
    for _ in range(r.randint(0, 3)):
        turns.append((r.choice(FOLLOW_UPS), _reply(r, sentences, place)))
    return turns


def _general_chat(r: random.Random) -> list[dict]:
    """One ShareGPT conversation; like ShareGPT V3 splits, about 3% open with the model's turn."""
    kind = r.random()
    pairs = _code_chat(r) if kind < 0.1 else _math_chat(r) if kind < 0.2 else _topic_chat(r)
    conv = [t for u, a in pairs for t in ({"from": "human", "value": u},
                                          {"from": "gpt", "value": a})]
    if r.random() < 0.03:
        conv.insert(0, {"from": "gpt", "value": "Sure, here is the rest of my answer."})
    return conv


def generate_general(n: int, seed: int = 0) -> list[dict]:
    """ShareGPT rows. One stream per seed, so the first k rows of any n >= k are the same."""
    r = random.Random(f"general-{seed}")
    return [{"id": f"syn-general-{i:06d}", "conversations": _general_chat(r)} for i in range(n)]


def chat_text(conversations: list[dict]) -> tuple[str, ...]:
    """What makes two chats equal: their turns' texts, a leading model turn left out (the
    loaders drop it, so a chat with and one without it train and test alike)."""
    turns = list(conversations)
    if len(turns) > 1 and turns[0]["from"] == "gpt":
        turns = turns[1:]
    return tuple(f"{t['from']}: {t['value']}" for t in turns)


def generate_general_test(n: int, train_rows: list[dict], seed: int = 0) -> list[dict]:
    """Held-out ShareGPT rows from their own stream, none equal (`chat_text`) to a training row
    or to an earlier test row; ids `syn-general-test-NNNNNN` numbered as kept."""
    r = random.Random(f"general-test-{seed}")
    seen = {chat_text(row["conversations"]) for row in train_rows}
    rows: list[dict] = []
    while len(rows) < n:
        conv = _general_chat(r)
        key = chat_text(conv)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"id": f"syn-general-test-{len(rows):06d}", "conversations": conv})
    return rows


# ---- files ------------------------------------------------------------------------------------

def _write(path: Path, rows: list[dict]) -> None:
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False, indent=1)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic, so a concurrent reader never sees half a file


def write_builtin_corpora(directory, sizes: dict[str, int] | None = None,
                          seed: int = 0) -> dict[str, Path]:
    """Write the synthetic corpora (three to train on, two held out, and each opt-in corpus
    `sizes` names) and a README saying they are synthetic. The held-out splits exclude what the
    training corpora of this seed and these sizes hold."""
    opt_in = {name: files for name, files in OPT_IN_FILES.items() if name in (sizes or {})}
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    math_rows = generate_math(sizes["math"], seed)
    general_rows = generate_general(sizes["general"], seed)
    rows = {"math": math_rows, "code": generate_code(sizes["code"], seed),
            "general": general_rows,
            "math_test": generate_math_test(sizes["math_test"], {m["query"] for m in math_rows},
                                            seed),
            "general_test": generate_general_test(sizes["general_test"], general_rows, seed)}
    if "tools" in opt_in:
        rows["tools"] = generate_tools(sizes["tools"], seed)
    paths = {}
    for name, (filename, _) in {**FILES, **opt_in}.items():
        paths[name] = out / filename
        _write(paths[name], rows[name])
    meta = {"synthetic": True, "generator": "trainers.data.corpora",
            "versions": written_versions(sizes),
            "seed": seed, "sizes": sizes,
            "files": {k: v[0] for k, v in {**FILES, **opt_in}.items()}}
    (out / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    (out / "README.md").write_text(
        "SYNTHETIC data written by `trainers.data.corpora` (our own seeded generator), not real "
        "GSM8K/Code Alpaca/ShareGPT text. Same formats as the real files; every id starts `syn-`."
        f"\n{json.dumps(meta)}\n")
    return paths


def written_versions(sizes) -> dict[str, int]:
    """The generator versions of the corpora written for `sizes`: the five always written and
    the opt-in ones named (so naming none keeps every folder and metadata file as before)."""
    return {name: v for name, v in CORPUS_VERSIONS.items() if name in FILES or name in sizes}


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def folder_specs(directory) -> dict[str, SourceSpec]:
    """SourceSpecs of the built-in corpora in `directory` (the held-out `math_test` and
    `general_test` included: evaluation data, never a training source), plus `general_nocm`
    (general minus samples tagged code or math)."""
    return specs_of({name: str(Path(directory) / f) for name, (f, _) in FILES.items()})


def specs_of(locations: dict[str, str]) -> dict[str, SourceSpec]:
    """SourceSpecs of the built-in corpora at `locations` (name -> file path or URI; the opt-in
    ones where given), plus `general_nocm` derived from `general`."""
    specs = {name: SourceSpec(name, locations[name], fmt)
             for name, (_, fmt) in {**FILES, **OPT_IN_FILES}.items() if name in locations}
    return {**specs, NOCM: derive_nocm(specs[NOCM_BASE])}
