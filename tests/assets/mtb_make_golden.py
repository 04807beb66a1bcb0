"""Writes mtb_judge_golden.jsonl: the judge messages FastChat's own `run_judge_single` sends.

FastChat's llm_judge imports `anthropic` and calls the pre-1.0 openai API, so this stubs the
former and captures the messages in place of the latter; everything else is FastChat's code path.
    python tests/assets/mtb_make_golden.py [MT_BENCH_DIR] > tests/assets/mtb_judge_golden.jsonl
"""

import json
import sys
import types
from pathlib import Path

sys.modules.setdefault("anthropic", types.ModuleType("anthropic"))
from fastchat.llm_judge import common
from fastchat.llm_judge.gen_judgment import make_judge_single

# One question per category (math, reasoning, coding use reference answers); answers exercise
# braces, unicode, trailing whitespace and an empty second turn.
QUESTION_IDS = [81, 95, 101, 111, 121, 131, 141, 151]
ANSWERS = [
    "First answer to {q}: uses {braces}, \"quotes\" and ünïcode ✓.\n\nLine two.  ",
    "",
]
JUDGMENT = "The answer is fine. Rating: [[7]]"


def main(folder: Path) -> None:
    questions = {q["question_id"]: q for q in common.load_questions(str(folder / "question.jsonl"),
                                                                     None, None)}
    prompts = common.load_judge_prompts(str(folder / "judge_prompts.jsonl"))
    refs = common.load_model_answers(str(folder / "reference_answer"))
    judges = make_judge_single("gpt-4", prompts)
    sent = []

    def capture(model, conv, temperature, max_tokens, api_dict=None):
        sent.append({"model": model, "messages": conv.to_openai_api_messages(),
                     "temperature": temperature, "max_tokens": max_tokens})
        return JUDGMENT

    common.chat_completion_openai = capture
    for qid in QUESTION_IDS:
        q = questions[qid]
        answer_turns = [a.replace("{q}", str(qid)) for a in ANSWERS]
        answer = {"choices": [{"turns": answer_turns}]}
        math = q["category"] in common.NEED_REF_CATS
        for turn, multi in ((1, False), (2, True)):
            judge = judges[("math" if math else "default") + ("-mt" if multi else "")]
            ref = refs["gpt-4"][qid] if math else None
            score, _, _ = common.run_judge_single(q, answer, judge, ref, multi_turn=multi)
            print(json.dumps({"question_id": qid, "turn": turn, "answer_turns": answer_turns,
                              "judge_name": judge.prompt_template["name"], "score": score,
                              **sent.pop()}, ensure_ascii=False))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/mt_bench"))
