"""The opt-in built-in `tools` corpus: SYNTHETIC tool-calling chats from our own seeded generator.

A fourth ability the paper does not study, so that "my data, my abilities" can be tried
end to end offline: the user turn lists two or three tools (one line each: name, typed parameters,
description) and asks for something one of them does; the assistant answers with one JSON call,
`{"name": ..., "arguments": {...}}`, its keys in the tool's parameter order. Rows are in the
`messages` format. Scored by the shipped lm-eval task `dmt_tool_calls` (evals/tasks/), whose
held-out requests come from this module's own stream: a request is a test request exactly
when the hash of its text says so (`is_held_out`), so no test request is ever a training
request, whatever the sizes and seeds. It is written only when a sweep names it
(`--source tools=builtin:tools`): the three paper corpora and their ids never change.
    python -c "from trainers.data.tools_corpus import generate_tools as g; print(g(1)[0])"
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HELD_OUT_SHARE = 5  # one request in five (by hash) is held out for the test set
INSTRUCTION = "Tools:\n{tools}\nReply with the JSON call for: {request}"

CITIES = ["Lisbon", "Kyoto", "Nairobi", "Oaxaca", "Tallinn", "Hanoi", "Quebec", "Seville",
          "Bergen", "Cusco", "Dakar", "Perth", "Porto", "Lyon", "Osaka", "Accra"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "INR", "BRL", "CAD", "CHF"]
LANGUAGES = ["French", "German", "Japanese", "Spanish", "Swahili", "Korean", "Italian"]
PHRASES = ["good morning", "where is the station", "thank you very much", "the bill, please",
           "I am lost", "see you tomorrow", "how much is this"]
PEOPLE = ["ana@example.com", "ben@example.org", "chloe@example.net", "dev@example.com",
          "elena@example.org", "farid@example.net"]
SUBJECTS = ["the budget", "Friday's meeting", "the trip", "the draft", "lunch plans"]
SYMBOLS = ["ACME", "GLOBX", "INITECH", "UMBR", "STARK", "WAYNE"]
EVENTS = ["dentist", "team sync", "yoga", "call with Sam", "book club", "flight"]
MONTHS = ["March", "April", "May", "June", "July", "August"]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: tuple[tuple[str, str], ...]  # (name, JSON type), in the call's key order
    request: Callable[[random.Random], tuple[str, dict]]  # -> (request text, arguments)

    def signature(self) -> str:
        """One line: `get_weather(city: string, unit: string): current weather of a city`."""
        params = ", ".join(f"{n}: {t}" for n, t in self.parameters)
        return f"{self.name}({params}): {self.description}"


def _weather(r: random.Random):
    city, unit = r.choice(CITIES), r.choice(["celsius", "fahrenheit"])
    text = r.choice(["What's the weather in {c} right now, in {u}?",
                     "Tell me the temperature in {c} ({u}).",
                     "How warm is it in {c}? Give it in {u}."]).format(c=city, u=unit)
    return text, {"city": city, "unit": unit}


def _currency(r: random.Random):
    amount, (a, b) = r.randint(2, 900), r.sample(CURRENCIES, 2)
    text = r.choice(["Convert {n} {a} to {b}.", "How much is {n} {a} in {b}?",
                     "I have {n} {a}; what is that in {b}?"]).format(n=amount, a=a, b=b)
    return text, {"amount": amount, "from": a, "to": b}


def _timer(r: random.Random):
    minutes = r.randint(1, 90)
    text = r.choice(["Set a timer for {m} minutes.", "Remind me in {m} minutes.",
                     "Start a {m}-minute timer."]).format(m=minutes)
    return text, {"minutes": minutes}


def _email(r: random.Random):
    to, subject = r.choice(PEOPLE), r.choice(SUBJECTS)
    text = r.choice(["Email {t} about {s}.", "Send a note to {t} with the subject {s}.",
                     "Write to {t} regarding {s}."]).format(t=to, s=subject)
    return text, {"to": to, "subject": subject}


def _flights(r: random.Random):
    (a, b), day, month = r.sample(CITIES, 2), r.randint(1, 28), r.choice(MONTHS)
    date = f"{month} {day}"
    text = r.choice(["Find flights from {a} to {b} on {d}.", "Any flights {a} -> {b} on {d}?",
                     "I need to fly from {a} to {b}, leaving {d}."]).format(a=a, b=b, d=date)
    return text, {"origin": a, "destination": b, "date": date}


def _calendar(r: random.Random):
    title, day, month, hour = r.choice(EVENTS), r.randint(1, 28), r.choice(MONTHS), \
        r.randint(7, 20)
    date, time = f"{month} {day}", f"{hour:02d}:00"
    text = r.choice(["Put {e} in my calendar on {d} at {t}.", "Add an event: {e}, {d}, {t}.",
                     "Schedule {e} for {d} at {t}."]).format(e=title, d=date, t=time)
    return text, {"title": title, "date": date, "time": time}


def _stock(r: random.Random):
    symbol = r.choice(SYMBOLS)
    text = r.choice(["What is {s} trading at?", "Get me the share price of {s}.",
                     "Current price of {s} stock?"]).format(s=symbol)
    return text, {"symbol": symbol}


def _translate(r: random.Random):
    phrase, language = r.choice(PHRASES), r.choice(LANGUAGES)
    text = r.choice(['Translate "{p}" into {l}.', 'How do you say "{p}" in {l}?',
                     'Say "{p}" in {l}, please.']).format(p=phrase, l=language)
    return text, {"text": phrase, "language": language}


TOOLS = (
    Tool("get_weather", "current weather of a city", (("city", "string"), ("unit", "string")),
         _weather),
    Tool("convert_currency", "convert an amount between currencies",
         (("amount", "number"), ("from", "string"), ("to", "string")), _currency),
    Tool("set_timer", "start a countdown timer", (("minutes", "integer"),), _timer),
    Tool("send_email", "send an email", (("to", "string"), ("subject", "string")), _email),
    Tool("search_flights", "find flights between two cities on a date",
         (("origin", "string"), ("destination", "string"), ("date", "string")), _flights),
    Tool("add_event", "add an event to the calendar",
         (("title", "string"), ("date", "string"), ("time", "string")), _calendar),
    Tool("get_stock_price", "latest price of a stock", (("symbol", "string"),), _stock),
    Tool("translate", "translate a phrase", (("text", "string"), ("language", "string")),
         _translate),
)


def is_held_out(request: str) -> bool:
    """Whether a request belongs to the test set: fixed by its text, so train and test never
    share one, whatever the sizes and seeds."""
    digest = hashlib.sha256(request.encode("utf-8")).digest()
    return digest[0] % HELD_OUT_SHARE == 0


def call_text(name: str, arguments: dict) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def _examples(r: random.Random, held_out: bool) -> Iterator[tuple[str, str, dict]]:
    """Endless distinct (prompt, tool name, arguments) on one side of the split."""
    seen: set[str] = set()
    while True:
        tool = r.choice(TOOLS)
        request, arguments = tool.request(r)
        if is_held_out(request) != held_out or request in seen:
            continue
        seen.add(request)
        others = r.sample([t for t in TOOLS if t is not tool], r.randint(1, 2))
        shown = others + [tool]
        r.shuffle(shown)
        tools = "\n".join(t.signature() for t in shown)
        yield INSTRUCTION.format(tools=tools, request=request), tool.name, arguments


def generate_tools(n: int, seed: int = 0) -> list[dict]:
    """Training rows (messages format). One stream per seed: the first k rows of any n >= k
    are the same. Runs out (an error) past the distinct requests the templates can make."""
    r, out = random.Random(f"tools-{seed}"), []
    for i, (prompt, name, arguments) in zip(range(n), _examples(r, held_out=False)):
        out.append({"id": f"syn-tools-{i:06d}", "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": call_text(name, arguments)}]})
    return out


def generate_tools_test(n: int, seed: int = 0) -> list[dict]:
    """Held-out test docs {id, prompt, name, arguments (JSON text)}: requests no training row
    of any seed or size has (`is_held_out`)."""
    r = random.Random(f"tools-test-{seed}")
    return [{"id": f"syn-tools-test-{i:06d}", "prompt": prompt, "name": name,
             "arguments": json.dumps(arguments, ensure_ascii=False)}
            for i, (prompt, name, arguments) in zip(range(n), _examples(r, held_out=True))]


def parse_call(text: str) -> dict | None:
    """The first JSON object in a reply, if it is a call {"name": str, "arguments": dict}."""
    start = text.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        ok = isinstance(value, dict) and isinstance(value.get("name"), str) \
            and isinstance(value.get("arguments"), dict)
        return value if ok else None
    return None


def score_call(reply: str, name: str, arguments: dict) -> dict[str, int]:
    """Per-item outcomes: `tool_name` (the right tool) and `exact_call` (the right tool with
    exactly the right arguments; numbers compare by value, 12 == 12.0)."""
    call = parse_call(reply)
    right_name = int(call is not None and call["name"] == name)
    exact = int(right_name == 1 and _same(call["arguments"], arguments))
    return {"exact_call": exact, "tool_name": right_name}  # the headline first


def _same(got: dict, want: dict) -> bool:
    if set(got) != set(want):
        return False
    for key, value in want.items():
        other = got[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in (value, other))
        if not (other == value if not numbers else float(other) == float(value)):
            return False
    return True
