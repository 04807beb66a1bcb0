"""The transformers floor in pyproject.toml is one the code runs on: the installed version meets
it, and it is not below 5.21, the first release whose causal LMs take a boolean
`logits_to_keep` mask (trainers/loop.py's compute_loss; 4.56.0 and 5.0.0 fail the suite).
The floor itself was checked by running the whole suite on it (see the comment there)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import torch
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
NEEDED = Version("5.21")


def declared_floor(package: str) -> Version:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(rf"{package}\s*(>=|$|\[)", d)]
    floor = re.search(r">=\s*([\w.]+)", spec)
    assert floor, f"{spec!r} has no >= floor"
    return Version(floor.group(1))


def test_installed_transformers_meets_the_declared_floor():
    floor = declared_floor("transformers")
    assert floor >= NEEDED, f"pyproject lets transformers {floor} in; the code needs {NEEDED}"
    assert Version(version("transformers")) >= floor


def test_boolean_logits_to_keep_is_what_the_floor_is_for(tiny_model):
    """What 5.21 added and compute_loss relies on: a (batch, seq) boolean mask keeps exactly
    the True positions, flattened, with the logits of the full forward at those positions."""
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    keep = torch.tensor([[False, True, True, False], [True, False, False, False]])
    with torch.no_grad():
        full = tiny_model(input_ids=ids, use_cache=False).logits
        kept = tiny_model(input_ids=ids, logits_to_keep=keep, use_cache=False).logits
    assert kept.shape == (3, tiny_model.config.vocab_size)
    torch.testing.assert_close(kept, full[keep], rtol=1e-5, atol=1e-5)
