"""Where the tests find the repository, their assets and themselves (tests live in folders that
mirror the packages: tests/core, tests/trainers/data, tests/evals, tests/sweep/..., tests/benchmarks)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
ASSETS = TESTS / "assets"
