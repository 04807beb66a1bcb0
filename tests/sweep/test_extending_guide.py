"""docs/EXTENDING.md, followed literally: its files written from its own code blocks, its command
run as printed (a subprocess on its own local Ray, the smoke preset). Three sources (two
built-in corpora, one file of the user's) and three abilities (GSM8K, the shipped
dmt_tool_calls task, the user's lm-eval task) come out as rq2's runs, one report column per
ability, each cell with its n and interval."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile

import pytest
from paths import REPO

from sweep.reporting.result_set import ResultSet

GUIDE = REPO / "docs" / "EXTENDING.md"
BLOCK = re.compile(r"```(\w+)(?: ([^\n]+))?\n(.*?)```", re.DOTALL)


def _blocks() -> list[tuple[str, str | None, str]]:
    return [(m[1], m[2], m[3]) for m in BLOCK.finditer(GUIDE.read_text())]


def _command() -> list[str]:
    """The guide's first sweep command, joined over its line continuations."""
    text = next(body for lang, _, body in _blocks()
                if lang == "bash" and "python -m sweep.rq2" in body and "--evals" in body)
    return shlex.split(text.replace("\\\n", " "))


@pytest.mark.slow
def test_the_guide_runs_as_written(tmp_path):
    files = [(name, body) for _, name, body in _blocks() if name]
    assert {n for n, _ in files} == {"support.jsonl", "my_tasks/support_faq.yaml",
                                     "my_tasks/support_faq.jsonl"}
    for name, body in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    command = _command()
    assert command[:3] == ["python", "-m", "sweep.rq2"]
    ray_dir = tempfile.mkdtemp(prefix="ray-guide-")
    out = subprocess.run([sys.executable, *command[1:], "--ray-temp-dir", ray_dir],
                         cwd=tmp_path, capture_output=True, text=True, timeout=1500, check=False,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled",
                              "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    results = ResultSet.from_storage(str(tmp_path / "runs" / "mine"))
    rows = results.rows
    strategies = {r["strategy"] for r in rows}
    assert strategies == {"base", "math only", "tools only", "support only", "mix"}
    mix = next(r for r in rows if r["strategy"] == "mix")
    assert mix["amounts"] == "math=1/4,support=1/4,tools=1/4"
    metrics = {r["metric"] for r in rows}
    assert {"dmt_tool_calls/exact_call", "support_faq/acc", "gsm8k/flexible"} <= metrics
    faq = [r for r in rows if r["metric"] == "support_faq/acc"]
    assert all(r["n"] == 2 and r["kind"] == "binary" and r["ci_low"] <= r["value"] <= r["ci_high"]
               for r in faq)
    report = (tmp_path / "runs" / "mine" / "report" / "report.md").read_text()
    header = next(line for line in report.splitlines()
                  if line.startswith("|") and "support_faq" in line)
    for ability in ("GSM8K", "dmt_tool_calls", "support_faq"):
        assert ability in header, header
    assert "support only" in report and "tools only" in report
