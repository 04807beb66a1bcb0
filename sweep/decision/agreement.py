"""How far a cheap proxy (LoRA, a smaller model) orders compositions as full fine-tuning does.

Runs of the two sets are paired by their composition (sweep/study/candidates.py `key()`), per
metric. For each metric: Kendall's tau and Spearman's rho between proxy and full values, and
decision accuracy (DataDecide: the share of pairs of compositions the proxy orders as the full
runs do, pairs whose full difference lies within noise left out and counted), each with a 95%
interval by bootstrap over compositions. Accuracy-like metrics (0/1 per item) and the
likelihood companions (continuous) are reported apart: at small scale the latter are the
better predictors (DataDecide), and a proxy may pass on one and fail on the other.
    python -m sweep.report --agreement PROXY_STORAGE FULL_STORAGE
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from sweep.decision.fits import N_BOOT, decision_accuracy, pair_counts
from sweep.decision.observations import observations
from sweep.study.candidates import BASE

MIN_PAIRED = 3


def proxy_of(rows: Sequence[dict]) -> str:
    """The one proxy setting of a set of rows ("full" when none)."""
    found = sorted({r.get("proxy") or "full" for r in rows})
    if len(found) > 1:
        raise ValueError(f"rows of several settings {found}: give one proxy's runs")
    return found[0] if found else "full"


def agreement(proxy_rows: Sequence[dict], full_rows: Sequence[dict],
              metrics: Sequence[str] | None = None, seed: int = 0) -> dict:
    """metric -> {group, n, kendall, spearman, decision_accuracy, pairs...}."""
    proxy = observations(proxy_rows, proxy=proxy_of(proxy_rows))
    full = observations(full_rows, proxy=proxy_of(full_rows))
    out = {}
    for metric in metrics or sorted(set(proxy) & set(full)):
        if metric not in proxy or metric not in full:
            continue
        p = {o.composition.key(): o for o in proxy[metric].points}
        f = {o.composition.key(): o for o in full[metric].points}
        # the untrained model is the same model in both: pairing it would agree for free
        keys = sorted(k for k in set(p) & set(f) if not k.startswith(BASE))
        entry = {"group": "accuracy" if full[metric].kind == "binary" else "likelihood",
                 "paired": len(keys), "proxy_only": len(set(p) - set(f)),
                 "full_only": len(set(f) - set(p))}
        if len(keys) >= MIN_PAIRED:
            x = np.array([p[k].value for k in keys])
            y = np.array([f[k].value for k in keys])
            se = np.array([f[k].se for k in keys])
            entry.update(_measures_with_intervals(x, y, se, seed))
        out[metric] = entry
    return out


def _measures(x, y, se) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau = stats.kendalltau(x, y).statistic if np.ptp(x) and np.ptp(y) else np.nan
        rho = stats.spearmanr(x, y).statistic if np.ptp(x) and np.ptp(y) else np.nan
    return [float(tau), float(rho), decision_accuracy(x, y, se)]


def _measures_with_intervals(x, y, se, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = len(x)
    point = _measures(x, y, se)
    boot = np.array([_measures(x[i], y[i], se[i])
                     for i in (rng.integers(0, n, n) for _ in range(N_BOOT))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lo, hi = np.nanpercentile(boot, 2.5, axis=0), np.nanpercentile(boot, 97.5, axis=0)
    compared, within = pair_counts(y, se)
    names = ("kendall", "spearman", "decision_accuracy")
    return {**{name: {"value": point[j], "ci_low": float(lo[j]), "ci_high": float(hi[j])}
               for j, name in enumerate(names)},
            "pairs_compared": compared, "pairs_within_noise": within}


def format_agreement(result: dict, titles: dict | None = None) -> list[str]:
    titles = titles or {}
    lines = [("| metric | group | paired | Kendall tau | Spearman rho | decision accuracy "
             "(pairs; within noise) |"), "|---|---|---|---|---|---|"]
    for metric, e in sorted(result.items(), key=lambda kv: (kv[1]["group"], kv[0])):
        if "kendall" not in e:
            lines.append(f"| {titles.get(metric, metric)} | {e['group']} | {e['paired']} | "
                         f"fewer than {MIN_PAIRED} paired | | |")
            continue
        cells = [_t(e[k]) for k in ("kendall", "spearman", "decision_accuracy")]
        lines.append(f"| {titles.get(metric, metric)} | {e['group']} | {e['paired']} | "
                     f"{cells[0]} | {cells[1]} | {cells[2]} ({e['pairs_compared']}; "
                     f"{e['pairs_within_noise']}) |")
    return lines


def _t(v: dict) -> str:
    if v["value"] != v["value"]:
        return "n/a"
    return f"{v['value']:.2f} [{v['ci_low']:.2f}, {v['ci_high']:.2f}]"
