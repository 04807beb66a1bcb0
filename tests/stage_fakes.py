"""A fake fit and dataset builder for the stage machinery (trainers.stages) without training:
used by the stage tests, the content-identity tests and the S3 racers."""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import TrainSettings

SPECS = {"math": "/d/math.jsonl", "code": "/d/code.json", "general": "/d/sharegpt.json"}


SETTINGS = TrainSettings(epochs=1, max_len=64)


@dataclass
class Outcome:
    path: str
    metrics: dict
    loss_curve: list
    tokens_seen: int
    tokens_per_s: float
    wall_s: float
    steps: int


@dataclass
class Report:
    recipe: str
    sources: tuple

    def to_dict(self):  # the shape of data_report.DataReport.to_dict()
        return {"recipe": self.recipe, "sources": [
            {"name": s, "selected": 3, "used": 2, "rejects": {"total": 1, "counts": {"bad": 1}},
             "format_rejects": {"overlong": 1}} for s in self.sources]}


def fake_build(recipe, specs, tokenizer_name, *, seed, epochs, max_len, overlong, template):
    return ("dataset", recipe), Report(",".join(s for s, _ in recipe), tuple(s for s, _ in recipe))


@dataclass
class FakeFit:
    """Counts fits; writes a 1-layer LlamaForCausalLM so the stage folder is a real HF model."""

    root: Path
    delay_s: float = 0.0
    fail_names: set = field(default_factory=set)
    calls: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, config):
        from transformers import LlamaConfig, LlamaForCausalLM

        with self.lock:
            self.calls.append((config.name, config.model))
        time.sleep(self.delay_s)
        if config.name in self.fail_names:
            self.fail_names.discard(config.name)
            raise RuntimeError("worker group died")
        out = self.root / f"fit-{len(self.calls)}-{threading.get_ident()}"
        model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16,
                                             num_hidden_layers=1, num_attention_heads=2))
        model.save_pretrained(out)
        return Outcome(str(out), {"loss": 1.0}, [2.0, 1.0], 123, 45.6, 0.5, 2)
