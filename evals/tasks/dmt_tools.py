"""The dmt_tool_calls task's data and scoring (lm-eval loads this file by path, from the YAML's
`!function`): the held-out requests of trainers.data.tools_corpus and its exact-call scorer."""

from __future__ import annotations

import json

import datasets

from trainers.data.corpora import CORPUS_VERSIONS
from trainers.data.tools_corpus import generate_tools_test, score_call


def held_out(size: int = 200, seed: int = 0, generator_version: int = 1,
             **_metadata) -> datasets.DatasetDict:
    """The test split: `size` held-out requests of the generator's test stream for `seed`,
    refused when the YAML names another generator version than the code writes."""
    if int(generator_version) != CORPUS_VERSIONS["tools"]:
        raise ValueError(f"dmt_tool_calls.yaml: generator_version {generator_version}, but the "
                         f"tools generator is version {CORPUS_VERSIONS['tools']}: update the YAML")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(
        generate_tools_test(int(size), int(seed)))})


def process_results(doc: dict, results: list[str]) -> dict[str, int]:
    return score_call(results[0], doc["name"], json.loads(doc["arguments"]))
