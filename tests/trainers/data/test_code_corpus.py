"""The built-in code corpus teaches what HumanEval measures: most rows ask, in HumanEval's own
prompt wording, to complete a function from its signature and docstring, and answer with the
whole function in one fenced block, as evals.humaneval scores a reply; every function passes its
own examples; and none shares a 13-gram with HumanEval (the decontamination command's test)."""

from __future__ import annotations

import doctest
import random

import pytest

from evals.humaneval import INSTRUCTION, extract_code, load_problems
from sweep.decontaminate import scan_sources
from trainers.data.code_corpus import COMPLETE, FAMILIES, Family, _function, generate_code
from trainers.data.corpora import write_builtin_corpora


def test_completion_rows_use_humaneval_prompt_and_reply_format():
    rows = generate_code(400)
    assert COMPLETE == INSTRUCTION  # the wording a HumanEval prompt is given in
    completions = [r for r in rows if r["instruction"].startswith("Complete the following")]
    assert 0.65 < len(completions) / len(rows) < 0.85
    for row in completions:
        prompt = row["instruction"].split("```python\n", 1)[1].removesuffix("```")
        function = extract_code(row["output"])
        assert function.startswith(prompt) and '"""' in prompt and ">>> " in prompt
        assert row["output"] == f"```python\n{function}\n```"


def test_every_function_passes_its_own_docstring_examples():
    for row in generate_code(300, seed=3):
        namespace: dict = {}
        code = extract_code(row["output"])
        exec(code, namespace)  # noqa: S102 (our own generated code, not a model's)
        (name,) = [n for n, v in namespace.items() if callable(v) and not n.startswith("__")]
        test = doctest.DocTestParser().get_doctest(namespace[name].__doc__, namespace, name,
                                                   None, 0)
        runner = doctest.DocTestRunner(verbose=False)
        runner.run(test, out=lambda _: None)
        assert runner.summarize(verbose=False).failed == 0, code
        assert runner.summarize(verbose=False).attempted == 1


def test_a_wrong_body_fails_the_generator_not_a_training_run():
    wrong = Family(("broken",), "(numbers: list[int]) -> int", "returns the sum plus {k}",
                   "    return sum(numbers)", lambda k, xs: sum(xs) + k,
                   lambda r, k: ([1, 2],))
    with pytest.raises(AssertionError, match="broken"):
        _function(random.Random(0), wrong)


def test_many_different_functions_and_no_humaneval_problem(tmp_path):
    rows = generate_code(1000)
    assert len({extract_code(r["output"]).split("(")[0] for r in rows}) > 150
    assert len(FAMILIES) >= 20
    paths = write_builtin_corpora(tmp_path, {"math": 4, "code": 1000, "general": 4,
                                             "math_test": 2, "general_test": 2})
    report = scan_sources({"code": str(paths["code"])}, "humaneval")
    assert report["tests"]["humaneval"]["items"] == len(load_problems()) == 164
    assert report["sources"]["code"]["read"] == 1000
    assert report["sources"]["code"]["overlapping"] == 0
