"""Fit every ability, judge the fits out of fold, and propose: the predicted best composition per
ability and the Pareto set across abilities, each with its predicted values and intervals and
how far it lies outside what was sampled. An ability no model predicts better than its mean,
with a rank correlation whose interval clears 0, gets "no signal" and no proposal.
Used by `python -m sweep.recommend` and the report's Recommendation section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sweep.decision import proposals as pr
from sweep.decision.fits import MODELS, Judged, fit_metric, models_for
from sweep.decision.observations import Observations, observations

NO_SIGNAL = "no signal"


def recommend(rows: Sequence[dict], metrics: Sequence[str] | None = None, *,
              proxy: str = "full", model: str | None = None,
              source_tokens: Mapping[str, float] | None = None, seed: int = 0) -> dict:
    """The recommendation as plain data (the `--json` schema, docs/DECISIONS.md)."""
    found = observations(rows, proxy=proxy, model=model)
    metrics = [m for m in (metrics or found) if m in found]
    fits = {m: fit_metric(found[m], source_tokens, seed) for m in metrics}
    chosen = {m: _chosen(fits[m]) for m in metrics}
    with_signal = [m for m in metrics if chosen[m]]
    out = {"fits": {name: {m: _plain(fits[m][name]) for m in metrics} for name in MODELS},
           "chosen": {m: chosen[m] for m in metrics},
           "no_signal": [m for m in metrics if not chosen[m]],
           "left_out": {m: dict(found[m].left_out) for m in metrics if found[m].left_out},
           "compositions": {m: len(found[m].points) for m in metrics},
           "loo": {m: _loo(found[m], fits[m][chosen[m]]) for m in metrics if chosen[m]},
           "higher_is_better": {m: found[m].higher_is_better for m in metrics},
           "proposals": [], "pareto": []}
    if not with_signal:
        return out
    observed = _observed(found, with_signal)
    comps = pr.candidates(list(observed.values()), seed)
    fitted = {m: models_for(found[m], source_tokens, seed)[chosen[m]].fit(
        [p.composition for p in found[m].points], np.array([p.value for p in found[m].points]))
        for m in with_signal}
    preds = pr.predictions(fitted, comps)
    run_ids = {p.composition.key(): p.run_ids for m in with_signal for p in found[m].points}
    sampled = list(observed.values())
    bounds = {m: pr.bounds_of(found[m]) for m in with_signal}

    def entry(i: int, ability: str | None) -> dict:
        c = comps[i]
        return {**({"ability": ability} if ability else {}), **c.to_dict(),
                "predicted": {m: v.to_dict()
                              for m, v in pr.predicted_at(i, preds, bounds).items()},
                "outside_sampled": pr.outside(c, sampled, run_ids)}

    out["proposals"] = [entry(pr.best(m, preds, found[m]), m) for m in with_signal]
    higher = {m: found[m].higher_is_better for m in with_signal}
    costs = [pr.training_tokens(c, source_tokens) for c in comps]
    out["pareto"] = [entry(i, None) for i in pr.pareto(preds, higher, costs)]
    return out


def _chosen(fits: Mapping[str, Judged | str]) -> str | None:
    """The model with signal and the lowest out-of-fold error, if any."""
    judged = [j for j in fits.values() if isinstance(j, Judged) and j.signal]
    return min(judged, key=lambda j: j.loo_error[0]).model if judged else None


def _loo(obs: Observations, fit: Judged) -> list[dict]:
    """The chosen model's out-of-fold prediction of each observed composition (the figure)."""
    return [{"composition": p.composition.key(), "observed": p.value, "se": p.se,
             "predicted": pred, "runs": list(p.run_ids)} for p, pred in zip(obs.points, fit.loo)]


def _plain(fit: Judged | str) -> dict:
    return fit.to_dict() if isinstance(fit, Judged) else {"not_fitted": fit}


def _observed(found: Mapping[str, Observations], metrics: Sequence[str]) -> dict:
    return {p.composition.key(): p.composition for m in metrics for p in found[m].points}


def markdown(rec: Mapping, titles: Mapping[str, str] | None = None) -> list[str]:
    """The report's Recommendation section."""
    titles = titles or {}
    lines = ["## Recommendation", "",
             ("Each ability fitted over the candidate space (sweep/decision/fits.py) and judged "
             "leave-one-out: error vs predicting the mean, Spearman's rho, decision accuracy "
             "(pairs within noise left out); 95% intervals by bootstrap over compositions."), "",
             ("| ability | model | compositions | LOO error (mean-only) | rho | decision acc. "
             "(pairs) | |"), "|---|---|---|---|---|---|---|"]
    for metric, n in rec["compositions"].items():
        for name in MODELS:
            fit = rec["fits"][name][metric]
            if "not_fitted" in fit:
                continue
            mark = "chosen" if rec["chosen"][metric] == name else ""
            lines.append(
                f"| {titles.get(metric, metric)} | {name} | {n} | {_t(fit['loo_error'])} "
                f"({fit['baseline_error']['value']:.3g}) | {_t(fit['spearman'], 2)} | "
                f"{_t(fit['decision_accuracy'], 2)} ({fit['pairs_compared']}; "
                f"{fit['pairs_within_noise']} within noise) | {mark} |")
    lines.append("")
    for metric in rec["no_signal"]:
        lines.append(f"- {titles.get(metric, metric)}: **{NO_SIGNAL}**: no fit predicts it "
                     "better than its mean while ordering compositions better than chance (rho, or "
                     "decision accuracy on 10+ pairs, clear of chance); nothing proposed.")
    for p in rec["proposals"]:
        lines.append(f"- best predicted {titles.get(p['ability'], p['ability'])}: "
                     f"{_composition(p)}: {_t(p['predicted'][p['ability']], dash=False)}; "
                     f"{_where(p['outside_sampled'])}")
    if rec["pareto"]:
        lines += ["", ("Pareto set across abilities (no composition is predicted better at one "
                  "without being worse at another):"), ""]
        lines += [f"- {_composition(p)}: " + ", ".join(
            f"{titles.get(m, m)} {_t(v, dash=False)}" for m, v in p["predicted"].items())
            for p in rec["pareto"]]
    return lines + [""]


def _t(v: Mapping, digits: int = 3, dash: bool = True) -> str:
    if v is None or v.get("value") is None or v["value"] != v["value"]:
        return "-" if dash else "n/a"
    return f"{v['value']:.{digits}g} [{v['ci_low']:.{digits}g}, {v['ci_high']:.{digits}g}]"


def _composition(p: Mapping) -> str:
    amounts = ", ".join(f"{s}={a}" for s, a in p["amounts"].items())
    k = f" k={p['k']}" if p.get("k") else ""
    return f"{p['strategy']}{k} ({amounts})"


def _where(o: Mapping) -> str:
    if o["sampled"]:
        return f"a sampled composition ({', '.join(o['nearest_runs'])})"
    beyond = f"; beyond the sampled amounts of {', '.join(o['beyond_sampled_amounts'])}" \
        if o["beyond_sampled_amounts"] else ""
    return f"not sampled: {o['doublings_from_nearest']:g} doublings from {o['nearest']}{beyond}"
