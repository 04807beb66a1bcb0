"""Training chats with planted overlaps of GSM8K and HumanEval test items, and the items file a
sweep writes for them: shared by the decontamination tests of both data readers."""

import json

from trainers.data import ngrams
from trainers.data.decontamination import items_payload, items_rel

GSM8K_Q = ("Janet's ducks lay sixteen eggs per day and she eats three for breakfast every "
           "morning and bakes muffins for her friends with four")


HUMANEVAL = ("def has_close_elements(numbers, threshold): check if in given list of numbers "
             "are any two numbers closer to each other than given threshold")


ITEMS = [ngrams.TestItem("gsm8k", "gsm8k/0", (GSM8K_Q, "She sells the rest at the market.")),
         ngrams.TestItem("humaneval", "HumanEval/0", (HUMANEVAL, "return False"))]


def planted_chats() -> list[dict]:
    ordinary = [chat(f"Tell me a story about a lighthouse keeper number {i} and the sea")
                for i in range(8)]
    return ordinary[:3] + [
        chat(f"Please solve: {GSM8K_Q}. Show your work.", rid="leak-math"),
        chat(f"Fix my python code:\n```python\n{HUMANEVAL}\n```", rid="leak-code"),
        chat(GSM8K_Q, HUMANEVAL, rid="leak-both"),
    ] + ordinary[3:]


def write_items(folder, n: int = 13) -> str:
    payload = items_payload(ITEMS, n)
    path = folder / items_rel(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return str(path)


def chat(user, reply="Sure, here it is.", rid=None):
    row = {"messages": [{"role": "user", "content": user},
                        {"role": "assistant", "content": reply}]}
    return {**row, "id": rid} if rid else row
