"""A source's specification: its name, where it is (a local file, an s3:// / gs:// URI or a Hugging
Face dataset id), how it is read (format, config, split), what it holds once resolved (content)
and which samples it leaves out (tags, test items). What stage ids hash (`fingerprint_dict`),
and the one rule for `general_nocm` (`derive_nocm`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from trainers.data.decontamination import items_identity
from trainers.data.tagging import NOCM_TAGS

FORMATS = ("gsm8k", "rft", "code_alpaca", "sharegpt", "messages")


@dataclass(frozen=True)
class SourceSpec:
    """A named corpus: `location` is a local file, an s3:// / gs:// URI or a HF dataset id.
    `exclude_tags` removes samples the keyword tagger tags so (general_nocm: code, math)."""

    name: str
    location: str
    format: str = "auto"
    hf_config: str | None = None
    split: str = "train"
    exclude_tags: tuple[str, ...] = ()
    # What the location holds (core.content: "sha256:...", "hub:<revision>", "unresolved"),
    # resolved once at sweep start; a hub dataset is then read at that revision.
    content: str | None = None
    # The test items whose overlapping samples are left out (trainers/data/decontamination.py):
    # a content-named file in the run storage, written by the sweep's driver.
    decontaminate: str | None = None

    def __post_init__(self):
        if self.format != "auto" and self.format not in FORMATS:
            raise ValueError(f"source {self.name!r}: unknown format {self.format!r}; {FORMATS}")
        object.__setattr__(self, "exclude_tags", tuple(self.exclude_tags))

    def fingerprint_dict(self) -> dict:
        """What identifies the source in stage ids (core.ids.fingerprint_sources): where
        it is and how it is read; its content and test items once set (named by their hash, not
        by the storage they are in). Unset ones are left out, so raw sources keep their ids."""
        fields = {"location": self.location, "format": self.format, "hf_config": self.hf_config,
                  "split": self.split, "exclude_tags": self.exclude_tags}
        if self.content is not None:
            fields["content"] = self.content
        if self.decontaminate is not None:
            fields["decontaminate"] = items_identity(self.decontaminate)
        return fields


# The ablation's source (the paper's 4.2): the general corpus minus its code and math samples.
NOCM, NOCM_BASE = "general_nocm", "general"


def derive_nocm(general: SourceSpec) -> SourceSpec:
    """`general_nocm` from `general`: the same corpus, less the samples the keyword tagger tags
    code or math (ShareGPT 90K -> 63K in the paper). The one place this rule is written."""
    return replace(general, name=NOCM, exclude_tags=NOCM_TAGS)


def make_spec(name: str, location: str, fmt: str = "auto", **kw) -> SourceSpec:
    """A SourceSpec; the name `general_nocm` always means that corpus minus code and math."""
    spec = SourceSpec(name, location, fmt, **kw)
    return derive_nocm(spec) if name == NOCM and "exclude_tags" not in kw else spec


def parse_named(text: str) -> tuple[str, str]:
    """`NAME=VALUE` on a command line (`--source math=PATH_OR_HF_ID`, `--format math=rft`) ->
    (name, value): the argparse type of every command's --source."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE (--source NAME=PATH_OR_HF_ID)")
    return name.strip(), value.strip()
