"""Hidden-state maps of queries by source (the paper's t-SNE figures).

Each query (a record's first user message) is rendered with the generation prompt of the
model's training template (the paper's Vicuna by default), as the model sees it at inference; its layer-L hidden states are averaged over the query's own tokens
(the template's fixed system text would otherwise dominate the mean), then t-SNE maps them to 2-D.
    python -m evals.representations --model smollm2_135m --source math=PATH --source code=PATH \
        --out DIR [--n 100] [--layer 15] [--seed 0] [--template vicuna|model]
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
from sklearn.manifold import TSNE

from core.model import build_model, load_tokenizer
from core.settings import DEFAULT_TEMPLATE, TEMPLATES
from trainers.data.chat_template import chat_template
from trainers.data.records import Rejects
from trainers.data.source_spec import SourceSpec, parse_named
from trainers.data.sources import read_records


def sample_queries(specs: Mapping[str, SourceSpec | str], n_per_source: int, seed: int,
                   rejects: Rejects | None = None) -> list[dict]:
    """Up to `n_per_source` seeded random queries per source: `{"source", "id", "text"}`."""
    rejects = rejects if rejects is not None else Rejects()
    queries = []
    for name, spec in specs.items():
        spec = spec if isinstance(spec, SourceSpec) else SourceSpec(name, str(spec))
        records = sorted(read_records(spec, rejects=rejects), key=lambda r: r["id"])
        rows = []
        for record in records:
            text = next((m["content"] for m in record["messages"] if m["role"] == "user"), None)
            if text is None:
                rejects.add("no user message to embed", f"{spec.location}:{record['id']}")
                continue
            rows.append({"source": name, "id": record["id"], "text": text})
        # A per-source stream, so adding a source never changes the others' samples.
        picked = random.Random(f"{seed}:{name}").sample(rows, min(n_per_source, len(rows)))
        queries.extend(picked)
    return queries


def effective_layer(model, layer: int) -> int:
    """`layer` clamped to the model's depth; 0 is the embeddings, L the output of block L."""
    return max(0, min(layer, model.config.num_hidden_layers))


def embed_queries(model, tokenizer, texts: Sequence[str], layer: int,
                  batch_size: int = 16, template: str = DEFAULT_TEMPLATE) -> np.ndarray:
    """Mean of layer `layer`'s hidden states over each query's tokens: `[len(texts), hidden]`."""

    chosen = chat_template(template, tokenizer)
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        prompts = [chosen.generation_prompt([{"role": "user", "content": t}]) for t in batch]
        enc = tokenizer(prompts, return_tensors="pt", padding=True,
                        return_offsets_mapping=True, add_special_tokens=chosen.add_special_tokens)
        offsets = enc.pop("offset_mapping")
        mask = torch.zeros_like(enc["attention_mask"], dtype=torch.float32)
        for i, (prompt, text) in enumerate(zip(prompts, batch, strict=True)):
            lo = prompt.rfind(text)
            hi = lo + len(text)
            tok_lo, tok_hi = offsets[i, :, 0], offsets[i, :, 1]
            inside = (tok_hi > lo) & (tok_lo < hi) & (tok_hi > tok_lo)
            mask[i] = (inside & enc["attention_mask"][i].bool()).float()
        if bool((mask.sum(1) == 0).any()):
            raise ValueError("a query has no tokens of its own (empty text?)")
        with torch.inference_mode():
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer].float()
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        out.append(pooled.cpu().numpy())
    return np.concatenate(out, axis=0)


def tsne_coordinates(vectors: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE; perplexity 30 as usual, lowered for small sets (it must stay below n)."""
    n = len(vectors)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 queries, got {n}")
    perplexity = min(30.0, max(1.0, (n - 1) / 3))
    # Exact gradients up to a few thousand points: on these CPUs Barnes-Hut took 34 s where
    # exact took 5.5 s for 300 points (its OpenMP threads contend); O(n^2) beyond that.
    method = "exact" if n <= 2000 else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, init="pca", method=method,
                random_state=seed).fit_transform(vectors)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip("/")).strip("_") or "model"


def plot_map(rows: list[dict], title: str, path: Path) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: light command (pyplot only when drawing)

    fig, ax = plt.subplots(figsize=(6, 5))
    for source in sorted({r["source"] for r in rows}):
        pts = [(r["x"], r["y"]) for r in rows if r["source"] == source]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, label=source, alpha=0.8)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _load(model) -> tuple[str, object, object]:
    if isinstance(model, tuple):
        return model  # (name, model, tokenizer): already loaded

    return str(model), build_model(str(model)), load_tokenizer(str(model))


def embed_and_plot(models: Sequence, specs: Mapping[str, SourceSpec | str], out_dir,
                   n_per_source: int = 100, layer: int = 15, seed: int = 0,
                   template: str = DEFAULT_TEMPLATE) -> dict:
    """For each model (preset, path, or `(name, model, tokenizer)`): embed the same seeded
    queries, t-SNE them, write `tsne_<model>.png`; all coordinates go to `tsne.parquet`.
    `template`: the chat template the models were trained with."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rejects = Rejects()
    queries = sample_queries(specs, n_per_source, seed, rejects)
    rows, pngs, layers = [], [], {}
    for entry in models:
        name, model, tokenizer = _load(entry)
        layers[name] = effective_layer(model, layer)
        vectors = embed_queries(model, tokenizer, [q["text"] for q in queries], layers[name],
                                template=template)
        xy = tsne_coordinates(vectors, seed)
        model_rows = [{"source": q["source"], "id": q["id"], "x": float(x), "y": float(y),
                       "model": name, "layer": layers[name]}
                      for q, (x, y) in zip(queries, xy, strict=True)]
        png = out / f"tsne_{_slug(name)}.png"
        plot_map(model_rows, f"{name}, layer {layers[name]}", png)
        rows.extend(model_rows)
        pngs.append(str(png))
    parquet = out / "tsne.parquet"
    pd.DataFrame(rows, columns=["source", "id", "x", "y", "model", "layer"]).to_parquet(parquet)
    counts = {s: sum(q["source"] == s for q in queries) for s in specs}
    return {"parquet": str(parquet), "pngs": pngs, "layers": layers, "counts": counts,
            "rejects": rejects.to_dict()}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--source", action="append", type=parse_named, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", choices=TEMPLATES, default=DEFAULT_TEMPLATE)
    args = parser.parse_args(argv)
    result = embed_and_plot(args.model, dict(args.source), args.out, args.n, args.layer, args.seed,
                            template=args.template)
    print(f"queries per source: {result['counts']}; layers: {result['layers']}")
    if result["rejects"]["total"]:
        print(f"records left out: {result['rejects']['counts']} "
              f"(e.g. {result['rejects']['examples']})")
    print(f"wrote {result['parquet']} and {', '.join(result['pngs'])}")
    return result


if __name__ == "__main__":
    main()
