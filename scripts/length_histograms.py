"""Token-length histograms per training source, for the dry run's token and GPU-hour figures
(sweep/planning/lengths.py reads them from sweep/planning/length_histograms.json, which this script writes).

Each sample goes through the trainer's own path: trainers.data.sources.read_records (format,
checks, general_nocm's tag filter) and trainers.data.formatting.tokenize_conversation (Vicuna
template, truncation at max_len 2048), so a length here is the row the trainer would see.
    python scripts/length_histograms.py [--data ../shared/data] [--out sweep/planning/length_histograms.json]

ASSUMPTIONS (also written into the JSON): the full GSM8K-RFT, Code Alpaca 20k and ShareGPT ~86K
and LLaMA's tokenizer are not available offline. So: GSM8K train's worked answers stand in for
RFT reasoning paths (the same kind of text, one path per question); the Code Alpaca 2k sample
stands in for the 20k set; a 1,011-conversation random sample of ShareGPT V3 for ShareGPT; and
SmolLM2's tokenizer for LLaMA's (LLaMA's gives roughly 10-20% more tokens on English text).
The built-in synthetic corpora (smoke/local presets) are generated in memory at their default
sizes and seed 0 and measured the same way.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: import the project from this checkout
    sys.path.insert(0, str(ROOT))

from trainers.data.corpora import (
    CORPUS_VERSIONS,
    DEFAULT_SIZES,
    OPT_IN_FILES,
    OPT_IN_SIZES,
    specs_of,
    write_builtin_corpora,
)
from trainers.data.formatting import FormatError, tokenize_conversation
from trainers.data.records import Rejects
from trainers.data.source_spec import SourceSpec, derive_nocm
from trainers.data.sources import read_records

MAX_LEN = 2048
TOKENIZER = "smollm2_135m"
DEFAULT_OUT = ROOT / "sweep" / "planning" / "length_histograms.json"
# The public stand-ins in ../shared/data (SOURCES.md): (relative path, format) per paper source.
PAPER_FILES = {"math": ("gsm8k/train.jsonl", "gsm8k"),
               "code": ("codealpaca/code_alpaca_2k.json", "code_alpaca"),
               "general": ("sharegpt/sharegpt_v3_sample1011.json", "sharegpt")}
ASSUMPTION = (
    "Lengths in tokens of the Vicuna v1.1 template, truncated at max_len 2048, with SmolLM2's "
    "tokenizer: LLaMA's (the paper's) is not available offline and gives roughly 10-20% more "
    "tokens. Stand-ins for the paper's corpora, which are not available offline: GSM8K train "
    "answers for GSM8K-RFT reasoning paths (same kind of text), the Code Alpaca 2k sample for "
    "Code Alpaca 20k, a 1,011-conversation random sample of ShareGPT V3 for ShareGPT ~86K, and "
    "that sample less its code/math-tagged conversations for general_nocm. Only the shape of "
    "the length distribution is taken from here; sample counts come from the paper (sweep/planning/plan.py "
    "PAPER_SIZES).")


def length_histogram(spec: SourceSpec, tokenizer, max_len: int = MAX_LEN) -> dict:
    """{"records", "rejects", "truncated", "counts": {length: samples}} of one source: every
    record the trainer would keep, as the number of tokens of its row (<= max_len). Deterministic:
    same file and tokenizer, same output."""
    rejects = Rejects()
    records = read_records(spec, rejects=rejects)
    counts: Counter[int] = Counter()
    format_rejects: Counter[str] = Counter()
    truncated = 0
    for record in records:
        try:
            row = tokenize_conversation(record["messages"], tokenizer, max_len, "truncate")
        except FormatError as err:
            format_rejects[err.reason] += 1
            continue
        counts[len(row["input_ids"])] += 1
        truncated += row["truncated"]
    return {"records": len(records), "read_rejects": dict(sorted(rejects.counts.items())),
            "format_rejects": dict(sorted(format_rejects.items())),
            "samples": sum(counts.values()), "truncated": truncated,
            "counts": {str(n): counts[n] for n in sorted(counts)}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def paper_histograms(data: Path, tokenizer) -> tuple[dict, dict]:
    """(histograms, inputs) of the paper's sources from their public stand-ins."""
    specs = {name: SourceSpec(name, str(data / rel), fmt)
             for name, (rel, fmt) in PAPER_FILES.items()}
    specs["general_nocm"] = derive_nocm(specs["general"])
    hists = {name: length_histogram(spec, tokenizer) for name, spec in specs.items()}
    inputs = {name: {"file": rel, "format": fmt, "sha256": sha256(data / rel)}
              for name, (rel, fmt) in PAPER_FILES.items()}
    inputs["general_nocm"] = {**inputs["general"],
                              "exclude_tags": list(specs["general_nocm"].exclude_tags)}
    return hists, inputs


def builtin_histograms(tokenizer) -> tuple[dict, dict]:
    """(histograms, generator facts) of the built-in synthetic corpora at their default sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_builtin_corpora(tmp, dict(OPT_IN_SIZES), seed=0)
        specs = specs_of({name: str(path) for name, path in paths.items()})
        hists = {name: length_histogram(specs[name], tokenizer)
                 for name in ("math", "code", "general", "general_nocm", *OPT_IN_FILES)}
    return hists, {"generator": "trainers.data.corpora", "versions": CORPUS_VERSIONS,
                   "seed": 0, "sizes": {**DEFAULT_SIZES, **OPT_IN_SIZES}}


def build(data: Path) -> dict:
    from core.model import load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER)
    paper, inputs = paper_histograms(data, tokenizer)
    builtin, generator = builtin_histograms(tokenizer)
    return {
        "about": "Token-length histograms per training source: counts maps a row length in "
                 "tokens to its number of samples. Written by scripts/length_histograms.py.",
        "assumption": ASSUMPTION,
        "provenance": {"date": datetime.date.today().isoformat(), "tokenizer": TOKENIZER,
                       "tokenizer_class": type(tokenizer).__name__, "max_len": MAX_LEN,
                       "template": "vicuna_v1.1 (trainers.data.vicuna)",
                       "data_root": "../shared/data (SOURCES.md)", "inputs": inputs,
                       "builtin": generator},
        "paper": paper,
        "builtin": builtin,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not found (the public files, see SOURCES.md)")
    out = build(args.data)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for group in ("paper", "builtin"):
        for name, h in out[group].items():
            print(f"{group}/{name}: {h['samples']} samples, {h['truncated']} truncated, "
                  f"rejects {h['read_rejects']} {h['format_rejects']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
