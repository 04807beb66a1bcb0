"""Sweep presets: which models, data, training settings, evaluations and hardware a sweep uses.

`smoke` (tiny_llama, built-in corpora, minutes on 2 CPUs; CI runs it), `local` (smollm2_135m,
built-in corpora and the real HumanEval; the README's default) and `paper` (LLaMA 7B/13B/33B,
the paper's sources, full test sets, GPT-4 judge, 8/8/16 GPUs per run). A variant is a function
that calls a base preset and `dataclasses.replace`s one field. `python -m sweep.rq2 --preset X`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from core.model import PRESETS as MODEL_PRESETS
from core.settings import TrainSettings
from trainers.data.builtin_sources import HELD_OUT, write_builtin_sources
from trainers.data.source_spec import SourceSpec, derive_nocm

if TYPE_CHECKING:
    from core.storage import Storage


@dataclass(frozen=True)
class Hardware:
    """What one run asks Ray for: Train workers, each with a GPU or a share of the CPUs."""
    workers: int = 8  # per run; GPU presets take the model's GPU count (core.model)
    use_gpu: bool = True
    cpus_per_worker: float = 1.0
    eval_gpus: int = 1  # GPUs of a run's evaluation (a 33B model fits one A100 80GB in bf16)
    # Tune re-runs a failed trial this many times (a preempted node, a lost worker group beyond
    # the stage's own restarts): finished stages are reused, a stage in flight resumes from its
    # last mid-stage checkpoint in storage, finished evaluations come from the cache.
    trial_retries: int = 0
    # Simulated GPUs (--simulate-gpus, sweep/study/simulate.py): each Train worker, and a run's
    # evaluation, asks for one of this custom resource instead of a GPU and computes on CPU.
    accelerator: str | None = None

    def worker_resources(self) -> dict[str, float]:
        """What one Train worker asks Ray for. A GPU worker names no CPU: Ray Train then asks
        for none, and the node's CPUs stay for Ray Data's tasks."""
        if self.use_gpu:
            return {"GPU": 1}
        if self.accelerator:
            return {self.accelerator: 1}
        return {"CPU": self.cpus_per_worker}

    def eval_options(self) -> dict:
        """Ray options of a run's evaluation task: its GPUs, one simulated GPU, or nothing
        (a CPU run evaluates after its training, on the CPUs its workers held)."""
        if self.use_gpu:
            return {"num_gpus": self.eval_gpus}
        if self.accelerator:
            return {"resources": {self.accelerator: 1}}
        return {}


@dataclass(frozen=True)
class Evaluation:
    names: tuple[str, ...] = ("gsm8k", "humaneval", "mtbench")
    limit: int | None = None  # examples per eval; None = the full test set
    limits: tuple[tuple[str, int | None], ...] = ()  # per-eval overrides of `limit`
    judge_url: str | None = None  # OpenAI-compatible endpoint; None = MT-Bench not judged
    judge_model: str | None = None
    gsm8k: str = "openai/gsm8k"  # test set: HF id, local JSONL, or the built-in math_test
    # Held-out general chats (never trained on) for the judge-free general proxy `general_loss`.
    general_heldout: str = "builtin:general_test"
    max_new_tokens: int | None = None  # caps every eval's own budget (small presets only)
    # Run HumanEval's model code even without sandbox isolation (evals.sandbox refuses it
    # otherwise); the results' `isolation` then says "rlimits (unsafe)".
    unsafe_sandbox: bool = False
    # lm-eval tasks (`lm-eval:TASK` in names): a folder of task YAMLs besides lm-eval's own and
    # evals/tasks/; `lm_eval_raw` scores them without the run's chat template.
    lm_eval_include: str | None = None
    lm_eval_raw: bool = False

    def limit_of(self, name: str) -> int | None:
        return dict(self.limits).get(name, self.limit)

    def limits_by_name(self) -> dict[str, int | None]:
        return {name: self.limit_of(name) for name in self.names}


def judged_or_proxy(judge_url: str | None, judge_model: str | None) -> tuple[str, ...]:
    """General ability: MT-Bench when a judge is configured, else the labelled proxy (loss on
    held-out chats), so the general column is never empty and nothing is generated unjudged."""
    if judge_url and judge_model:
        return ("mtbench", "general_loss")
    return ("general_loss",)


def with_judge(preset: Preset, url: str | None, model: str | None) -> Preset:
    """The preset judged by `model` at `url` (the sweep commands' --judge-url/--judge-model or
    DMT_JUDGE_URL/DMT_JUDGE_MODEL), MT-Bench added to its evals where it had only the proxy.
    The key is never part of a preset: the driver holds it (sweep/execution/judging.py)."""
    if not (url or model):
        return preset
    ev = preset.evaluation
    url, model = url or ev.judge_url, model or ev.judge_model
    if not (url and model):
        raise ValueError("a judge needs both a URL and a model (--judge-url and --judge-model, "
                         "or DMT_JUDGE_URL and DMT_JUDGE_MODEL)")
    names = ev.names if "mtbench" in ev.names else ev.names + ("mtbench",)
    return replace(preset, evaluation=replace(ev, judge_url=url, judge_model=model, names=names))


@dataclass(frozen=True)
class Preset:
    name: str
    models: tuple[str, ...]
    # Training sources given explicitly (the paper's files, or the user's --source); on a
    # preset with built-in corpora, each replaces the built-in one of its name.
    sources: tuple[SourceSpec, ...] = ()
    # Whether the built-in corpora (trainers.data.corpora, written into the storage so every
    # worker reads the same bytes) provide the sources not given explicitly and the held-out
    # splits: smoke and local; the paper preset reads only its own files.
    builtin_corpora: bool = True
    # The question's sources in the user's order (sweep.study.choices): None means the
    # paper's math, code and general.
    source_names: tuple[str, ...] | None = None
    # Samples per built-in corpus (trainers.data.corpora.write_builtin_corpora's `sizes`).
    corpus_sizes: tuple[tuple[str, int], ...] = (("math", 2000), ("code", 1000),
                                                 ("general", 1000), ("math_test", 200))
    settings: TrainSettings = field(default_factory=TrainSettings)  # the paper's defaults
    hardware: Hardware = field(default_factory=Hardware)
    data_seed: int = 0  # subset selection and epoch order
    evaluation: Evaluation = field(default_factory=Evaluation)
    storage: str = "./runs"
    max_concurrent: int | None = None  # None: as many runs as the cluster's GPUs (or CPUs) hold
    seed_varies: str = "both"  # what a replicate seed changes: "both", "data" or "train"
    fractions: tuple[Fraction, ...] | None = None  # the grid's f values; None: the paper's five
    # A question's own f values where they differ from `fractions` ((question, fs), ...).
    question_fractions: tuple[tuple[str, tuple[Fraction, ...]], ...] = ()
    ks: tuple[Fraction, ...] | None = None  # DMT's k values; None: the paper's five
    amount: Fraction = Fraction(1)  # rq3 / rq4: what "all of a source" means (the paper: 1)
    # The chat template of every model (`--template`); None: each model preset's own
    # (core.model), else the settings' (the paper's Vicuna).
    template: str | None = None
    # --decontaminate: test sets whose overlapping samples every training source leaves out
    # (empty: raw sources); once resolved (sweep/planning/resolution.py), the test-items file in storage.
    decontaminate: tuple[str, ...] = ()
    decontamination_items: str | None = None
    # The base models' content identities ((model, identity), ...), resolved at sweep start.
    model_contents: tuple[tuple[str, str], ...] = ()
    # "full", or the cheap setting standing in for full fine-tuning (sweep's --proxy): "lora",
    # "model=NAME"; recorded in every result row's `proxy` column.
    proxy: str = "full"


SHAREGPT = ("hf://datasets/anon8231489123/ShareGPT_Vicuna_unfiltered/"
            "ShareGPT_V3_unfiltered_cleaned_split_no_imsorry.json")
PAPER_GENERAL = SourceSpec("general", SHAREGPT, "sharegpt")  # ~86K conversations (Vicuna's split)
PAPER_SOURCES = (
    # GSM8K-RFT (Yuan et al. 2023) has no official Hugging Face id: take data/rft/u13b.jsonl
    # from github.com/OFA-Sys/gsm8k-ScRel (query/response). The paper does not say which RFT
    # file it used; u13b (the union of 13B models' paths, ~110K responses) is our assumption.
    # Pass the file with --source math=PATH or DMT_GSM8K_RFT.
    SourceSpec("math", os.environ.get("DMT_GSM8K_RFT", "./gsm8k_rft/u13b.jsonl"), "rft"),
    SourceSpec("code", "sahil2801/CodeAlpaca-20k", "code_alpaca"),  # 20,022 samples
    PAPER_GENERAL,
    derive_nocm(PAPER_GENERAL),  # the ablation: ShareGPT minus code and math (90K -> 63K)
)


# A LoRA proxy's defaults (--proxy lora): rank 16 on every projection; its learning rate
# where the preset's is the paper's 2e-5 (adapters start at zero and need a larger step);
# 10x the preset's on the small presets, whose few steps must move the adapters.
LORA_RANK, LORA_ALPHA = 16, 32


def with_proxy(preset: Preset, proxy: str | None, *, rank: int | None = None,
               alpha: int | None = None, lr: float | None = None) -> Preset:
    """The preset trained by a cheap proxy: "lora" (adapters on the same model, DDP) or
    "model=NAME" (a smaller model); None or "full": unchanged."""
    if proxy in (None, "full"):
        return preset
    if proxy.startswith("model="):
        name = proxy.removeprefix("model=")
        if not name:
            raise ValueError("--proxy model=NAME: name the smaller model")
        return replace(preset, models=(name,), proxy=proxy)
    if proxy != "lora":
        raise ValueError(f"--proxy {proxy!r}: lora, or model=NAME")
    settings = replace(preset.settings, lora_rank=rank or LORA_RANK,
                       lora_alpha=alpha or LORA_ALPHA,
                       lora_lr=lr or min(1e-3, 10 * preset.settings.lr), backend="ddp")
    return replace(preset, settings=settings, proxy="lora")


def smoke() -> Preset:
    """tiny_llama on the built-in corpora: the whole rq2 grid in minutes on 2 CPUs."""
    return Preset(
        name="smoke",
        models=("tiny_llama",),
        corpus_sizes=(("math", 16), ("code", 8), ("general", 8), ("math_test", 4),
                      ("general_test", 4)),
        settings=TrainSettings(epochs=1, lr=1e-3, global_batch=4, micro_batch=4, max_len=128,
                               precision="fp32", backend="ddp"),
        hardware=Hardware(workers=1, use_gpu=False, cpus_per_worker=1.0),
        evaluation=Evaluation(names=("gsm8k", "humaneval", "mtbench", "general_loss"), limit=2,
                              gsm8k="builtin:math_test", max_new_tokens=16),
        storage="./runs/smoke",
        max_concurrent=1,
        fractions=(Fraction(1, 4),),
    )


LOCAL_FRACTIONS = (Fraction(1, 4),)
# The claims (sweep.claims) need more than rq2's one amount: rq1 at two (does math rise with
# amount? does general level off?), rq3 at two with the fixed sources at a quarter, rq4 on a
# quarter of each source with DMT at two k. Not 1/2 as well, and not rq3 with its fixed
# sources whole: after the main job, each question must stay within an hour on 2 cores (1/2
# adds three runs of about 20 minutes each; rq3 at the paper's amount trains 527k tokens at
# about 100 a second, 88 minutes before its evaluations).
LOCAL_TWO_AMOUNTS = (Fraction(1, 4), Fraction(1, 16))
LOCAL_AMOUNT, LOCAL_KS = Fraction(1, 4), (Fraction(1, 4), Fraction(1, 16))


def local() -> Preset:
    """smollm2_135m on the built-in corpora with the real HumanEval, sized so that rq2 (base
    model, math/code/general alone and mixed at f=1/4) finishes in under 45 minutes on 2 cores
    and can still show an effect: GSM8K-format math on 100 held-out questions.

    Why these settings (docs/LOCAL_PRESET.md has the measurements): fp32 weights (a CPU without
    native bf16 emulates it several times slower, and pure bf16 weights lose small updates);
    lr 1e-4 because the paper's 2e-5 is tuned for thousands of steps, and a stage here takes
    16-56; 2 epochs; packing (same samples and loss, no padding tokens to pay for on a CPU);
    max_len 256 (the built-in math and code samples are shorter, general chats are cut).
    MT-Bench is generated and judged only with a judge (DMT_JUDGE_URL/DMT_JUDGE_MODEL); without
    one, general ability is the labelled proxy `general_loss` on 40 held-out chats. Replies are
    capped at 128 new tokens (the tuned math answers take at most ~95; the base model rambles
    to the cap). Measured in docs/LOCAL_PRESET.md."""
    judge_url, judge_model = os.environ.get("DMT_JUDGE_URL"), os.environ.get("DMT_JUDGE_MODEL")
    return Preset(
        name="local",
        models=("smollm2_135m",),
        corpus_sizes=(("math", 384), ("code", 256), ("general", 192), ("math_test", 200),
                      ("general_test", 100)),
        settings=TrainSettings(epochs=2, lr=1e-4, global_batch=8, micro_batch=4, max_len=256,
                               precision="fp32", packing=True, backend="ddp"),
        hardware=Hardware(workers=2, use_gpu=False, cpus_per_worker=1.0),
        evaluation=Evaluation(names=("gsm8k", "humaneval") + judged_or_proxy(judge_url,
                                                                             judge_model),
                              limits=(("gsm8k", 100), ("humaneval", 20), ("mtbench", 10),
                                      ("general_loss", 40)),
                              judge_url=judge_url, judge_model=judge_model,
                              gsm8k="builtin:math_test", max_new_tokens=128),
        storage="./runs/local",
        max_concurrent=1,
        fractions=LOCAL_FRACTIONS,
        question_fractions=(("rq1", LOCAL_TWO_AMOUNTS), ("rq3", LOCAL_TWO_AMOUNTS)),
        ks=LOCAL_KS,
        amount=LOCAL_AMOUNT,
    )


def paper() -> Preset:
    """The paper's setup (App. C): LLaMA 7B/13B/33B, 3 epochs, lr 2e-5, batch 16, bf16 with
    DeepSpeed ZeRO-3 on 8/8/16 GPUs per run, full test sets, GPT-4 as MT-Bench judge."""
    return Preset(
        name="paper",
        models=("llama_7b", "llama_13b", "llama_33b"),
        sources=PAPER_SOURCES,
        builtin_corpora=False,
        # Spot workers get preempted: a mid-stage checkpoint every 2,000 steps (7B on 8 A100s at
        # the planned 40% MFU: ~0.5 s a step, so ~15-20 minutes of work at risk; a ZeRO-3
        # checkpoint of 7B with Adam states is ~110 GB to write), and a stage's worker group is
        # restarted up to 3 times from its last checkpoint (the trial retries on top: tuner.py).
        # Packing on: a packed micro-batch gives each sample the loss it has padded (tested on
        # CPU sdpa/eager in tests/trainers/data/test_collate.py; on GPU kernels by benchmarks.gpu_check part
        # b, docs/GPU_CHECK.md) and computes no pad tokens. paper_padded() keeps FastChat's
        # padded batches for fidelity.
        settings=TrainSettings(precision="bf16", backend="deepspeed", zero_stage=3,
                               checkpoint_every_steps=2000, max_failures=3, packing=True),
        hardware=Hardware(workers=8, use_gpu=True, trial_retries=2),
        evaluation=Evaluation(judge_url=os.environ.get("DMT_JUDGE_URL",
                                                       "https://api.openai.com/v1"),
                              judge_model="gpt-4"),
        storage="s3://dmt-sweep/runs",
    )


def paper_padded() -> Preset:
    """The paper preset with FastChat's padded micro-batches (packing off): its fidelity option."""
    base = paper()
    return replace(base, name="paper_padded", settings=replace(base.settings, packing=False))


def paper_batch_128() -> Preset:
    """The paper's other version states batch size 128."""
    base = paper()
    return replace(base, name="paper_batch_128",
                   settings=replace(base.settings, global_batch=128, micro_batch=8))


PRESETS: dict[str, Callable[[], Preset]] = {
    "smoke": smoke, "local": local, "paper": paper, "paper_padded": paper_padded,
    "paper_batch_128": paper_batch_128,
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def gpus_per_run(preset: Preset, model: str) -> int:
    """GPUs one run of this model needs (the paper: 8, 8, 16); 0 on a CPU preset."""
    if not preset.hardware.use_gpu:
        return 0
    spec = MODEL_PRESETS.get(model)
    return spec.gpus_per_run if spec and spec.gpus_per_run else preset.hardware.workers


def workers_for(preset: Preset, model: str) -> int:
    """Train workers per run: one per GPU on GPU presets, the preset's count on CPU (and one
    per simulated GPU under --simulate-gpus: sweep/study/simulate.py sets the count)."""
    return gpus_per_run(preset, model) or preset.hardware.workers


def template_for(preset: Preset, model: str) -> str:
    """The chat template `model` trains and is evaluated with: the preset's `--template`, else
    the model preset's own (core.model), else the settings' (an HF id or a path)."""
    if preset.template is not None:
        return preset.template
    spec = MODEL_PRESETS.get(model)
    return spec.template if spec else preset.settings.template


def accelerator_of(preset: Preset) -> str | None:
    """The resource runs are sized by: "GPU", the simulated one, or None (CPUs)."""
    return "GPU" if preset.hardware.use_gpu else preset.hardware.accelerator


def train_settings(preset: Preset, model: str, workers: int | None = None) -> TrainSettings:
    """The preset's settings for one model size (on `workers` Train workers, default the
    preset's) and its chat template. The global batch stays the paper's; the micro-batch
    shrinks where more workers would overshoot it (33B: 16 GPUs, batch 16)."""
    settings = preset.settings
    if template_for(preset, model) != settings.template:
        settings = replace(settings, template=template_for(preset, model))
    workers = workers or workers_for(preset, model)
    micro = min(settings.micro_batch, max(1, settings.global_batch // workers))
    if micro != settings.micro_batch:
        settings = replace(settings, micro_batch=micro)
    settings.grad_accum(workers)  # raises SettingsError naming the fields when it cannot split
    return settings


def source_specs(preset: Preset, storage: Storage) -> dict:
    """name -> SourceSpec: the built-in corpora where the preset has them (written once into
    the storage and named by their content, so every trial and worker on any node reads the
    same bytes; the held-out splits included: evaluation reads them), with the preset's
    explicit sources in place of the built-in ones of their names."""
    specs = builtin_specs(preset, storage) if preset.builtin_corpora else {}
    return decontaminated({**specs, **{s.name: s for s in preset.sources}}, preset)


def decontaminated(specs: dict, preset: Preset) -> dict:
    """The training sources reading the preset's test items (--decontaminate), if any; the
    built-in held-out splits stay whole (evaluation reads them)."""
    items = preset.decontamination_items
    if items is None:
        return specs
    return {name: spec if name in HELD_OUT else replace(spec, decontaminate=items)
            for name, spec in specs.items()}


def builtin_specs(preset: Preset, storage: Storage) -> dict:
    """The built-in corpora of the preset's sizes and data seed, in the storage."""
    return write_builtin_sources(storage, dict(preset.corpus_sizes), preset.data_seed)


def preset_to_dict(preset: Preset) -> dict:
    """Plain data for a Tune config; `preset_from_dict` rebuilds it on the trial's first line."""
    return {"name": preset.name, "models": list(preset.models),
            "sources": [asdict(s) for s in preset.sources],
            "builtin_corpora": preset.builtin_corpora,
            "source_names": None if preset.source_names is None else list(preset.source_names),
            "corpus_sizes": [list(p) for p in preset.corpus_sizes],
            "settings": preset.settings.to_dict(), "hardware": asdict(preset.hardware),
            "evaluation": asdict(preset.evaluation), "storage": preset.storage,
            "max_concurrent": preset.max_concurrent, "data_seed": preset.data_seed,
            "seed_varies": preset.seed_varies, "template": preset.template,
            "fractions": None if preset.fractions is None else [str(f) for f in preset.fractions],
            "question_fractions": [[q, [str(f) for f in fs]] for q, fs in preset.question_fractions],
            "ks": None if preset.ks is None else [str(k) for k in preset.ks],
            "amount": str(preset.amount),
            "decontaminate": list(preset.decontaminate),
            "decontamination_items": preset.decontamination_items,
            "model_contents": [list(p) for p in preset.model_contents],
            "proxy": preset.proxy}


def preset_from_dict(data: dict) -> Preset:
    sources = tuple(SourceSpec(**{**s, "exclude_tags": tuple(s.get("exclude_tags", ()))})
                    for s in data["sources"])
    evaluation = dict(data["evaluation"])
    evaluation["names"] = tuple(evaluation["names"])
    evaluation["limits"] = tuple((n, v) for n, v in evaluation.get("limits", ()))
    fractions = data.get("fractions")
    names = data.get("source_names")
    return Preset(name=data["name"], models=tuple(data["models"]), sources=sources,
                  builtin_corpora=data.get("builtin_corpora", not sources),
                  source_names=None if names is None else tuple(names),
                  corpus_sizes=tuple((n, int(v)) for n, v in data["corpus_sizes"]),
                  settings=TrainSettings.from_dict(data["settings"]),
                  hardware=Hardware(**data["hardware"]), evaluation=Evaluation(**evaluation),
                  storage=data["storage"], max_concurrent=data["max_concurrent"],
                  data_seed=data["data_seed"], seed_varies=data.get("seed_varies", "both"),
                  template=data.get("template"),
                  fractions=None if fractions is None else tuple(Fraction(f) for f in fractions),
                  question_fractions=tuple((q, tuple(Fraction(f) for f in fs))
                                           for q, fs in data.get("question_fractions", ())),
                  ks=None if data.get("ks") is None else tuple(Fraction(k) for k in data["ks"]),
                  amount=Fraction(data.get("amount", "1")),
                  decontaminate=tuple(data.get("decontaminate", ())),
                  decontamination_items=data.get("decontamination_items"),
                  model_contents=tuple((m, c) for m, c in data.get("model_contents", ())),
                  proxy=data.get("proxy", "full"))
