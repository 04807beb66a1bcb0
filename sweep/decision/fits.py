"""Three models of a metric over the candidate space, each judged out of fold.

- `quadratic`: ridge regression (scikit-learn, its penalty chosen by internal cross-validation)
  on the features of sweep/decision/features.py and their squares and pairwise products:
  quadratic in log2 amounts, with strategy and presence terms. Prediction intervals from
  refits on bootstrap resamples of the observations.
- `mixing_law`: the Data Mixing Laws form (Ye et al. 2024), value = c + k exp(sum_j t_j r_j)
  over each source's token share r_j, fitted by scipy's least squares. It applies to one-stage
  mixes only (a staged run has no single mixture), with at least sources + 3 of them.
- `gaussian_process`: scikit-learn's GP with one length scale per feature and a noise term;
  its predictive standard deviation gives the interval.

Each is judged by leave-one-out predictions: their error (RMSE) against the error of
predicting the mean of the others, Spearman's rho, and decision accuracy (the share of pairs of
compositions the predictions order as the observations do, DataDecide's measure), pairs whose
observed difference lies within noise (|a - b| < 1.96 x their combined standard error) left out
and counted; 95% intervals by bootstrap over compositions. A model has signal when it predicts
better than the mean and the lower end of its rho's interval is above 0.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from sweep.decision.features import FeatureSpace, ratios
from sweep.decision.observations import Z95, Observations
from sweep.study.candidates import Composition

MODELS = ("quadratic", "mixing_law", "gaussian_process")
MIN_POINTS = 5  # fewer compositions than this: nothing is fitted
N_BOOT = 1000  # resamples for the intervals of the out-of-fold measures
MIN_DECISIONS = 10  # pairs clear of noise before decision accuracy alone can show a signal
N_REFIT = 60  # bootstrap refits for the quadratic model's prediction intervals


class Model(ABC):
    """fit(compositions, values) then predict(compositions) -> (mean, standard error)."""
    name = ""

    def applies(self, obs: Observations) -> str | None:
        """Why this model cannot fit `obs` (None: it can)."""
        return None

    @abstractmethod
    def fit(self, comps: Sequence[Composition], y: np.ndarray) -> Model: ...

    @abstractmethod
    def predict(self, comps: Sequence[Composition]) -> tuple[np.ndarray, np.ndarray]: ...


def _ridge():
    return make_pipeline(PolynomialFeatures(2, include_bias=False), StandardScaler(),
                         RidgeCV(alphas=np.logspace(-3, 3, 13)))


class Quadratic(Model):
    name = "quadratic"

    def __init__(self, space: FeatureSpace, seed: int = 0):
        self.space, self.seed = space, seed

    def fit(self, comps, y):
        x = self.space.matrix(comps)
        self.model = _ridge().fit(x, y)
        rng = np.random.default_rng(self.seed)
        self.refits = []
        for _ in range(N_REFIT):
            idx = rng.integers(0, len(y), len(y))
            if len(set(idx.tolist())) >= 3:
                self.refits.append(_ridge().fit(x[idx], y[idx]))
        return self

    def predict(self, comps):
        x = self.space.matrix(comps)
        mean = self.model.predict(x)
        spread = np.std([m.predict(x) for m in self.refits], axis=0) if self.refits \
            else np.zeros(len(comps))
        return mean, spread


class MixingLaw(Model):
    name = "mixing_law"

    def __init__(self, sources: Sequence[str], source_tokens: Mapping[str, float] | None):
        self.sources, self.tokens = tuple(sources), source_tokens

    def applies(self, obs):
        mixes = [p for p in obs.points if p.composition.strategy == "mix"]
        if len(mixes) != len(obs.points):
            return "staged or base runs: no single mixture (the form fits one-stage mixes)"
        if len(mixes) < len(self.sources) + 3:
            return f"{len(mixes)} mixes, needs at least {len(self.sources) + 3}"
        return None

    @staticmethod
    def _form(r, c, k, *t):
        with np.errstate(over="ignore"):  # the optimizer's wilder steps; their cost is inf
            return c + k * np.exp(r @ np.asarray(t))

    def fit(self, comps, y):
        r = ratios(comps, self.sources, self.tokens)
        p0 = [float(np.min(y)), float(np.ptp(y) or 1.0)] + [0.0] * len(self.sources)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            self.params, cov = optimize.curve_fit(self._form, r, y, p0=p0, maxfev=20000)
        self.cov = np.nan_to_num(cov, nan=0.0, posinf=0.0)
        return self

    def predict(self, comps):
        r = ratios(comps, self.sources, self.tokens)
        mean = self._form(r, *self.params)
        # the delta method through the form's gradient at the fitted parameters
        eps = 1e-6
        grads = []
        for i in range(len(self.params)):
            step = np.array(self.params, dtype=float)
            step[i] += eps
            grads.append((self._form(r, *step) - mean) / eps)
        g = np.stack(grads, axis=1)
        var = np.einsum("ij,jk,ik->i", g, self.cov, g)
        return mean, np.sqrt(np.clip(var, 0, None))


class GaussianProcess(Model):
    name = "gaussian_process"

    def __init__(self, space: FeatureSpace, seed: int = 0, noise_var: float = 0.0):
        self.space, self.seed = space, seed
        self.noise_var = noise_var  # the observations' mean squared standard error

    def fit(self, comps, y):
        x = self.space.matrix(comps)
        d = x.shape[1]
        # The white noise never goes below what the observations are known to carry (their
        # standard errors; y is normalized, so relative to its variance): otherwise the GP
        # interpolates and predicts a sampled composition with a zero-width interval.
        floor = min(self.noise_var / max(float(np.var(y)), 1e-12), 1.0) if self.noise_var else 0
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(d), (1e-2, 1e3)) \
            + WhiteKernel(max(0.1, floor), (max(1e-6, floor), 1e1))
        self.scaler = StandardScaler().fit(x)
        self.model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                              random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.scaler.transform(x), y)
        return self

    def predict(self, comps):
        x = self.scaler.transform(self.space.matrix(comps))
        mean, std = self.model.predict(x, return_std=True)
        return mean, std


def models_for(obs: Observations, source_tokens: Mapping[str, float] | None = None,
               seed: int = 0) -> dict[str, Model]:
    space = FeatureSpace.of([p.composition for p in obs.points])
    return {"quadratic": Quadratic(space, seed), "mixing_law": MixingLaw(space.sources,
                                                                         source_tokens),
            "gaussian_process": GaussianProcess(space, seed, noise_var=obs.noise_var)}


@dataclass(frozen=True)
class Judged:
    """A model's out-of-fold record on one metric."""
    model: str
    loo_error: tuple[float, float, float]  # RMSE [95% interval]
    baseline_error: tuple[float, float, float]  # RMSE of predicting the mean of the others
    spearman: tuple[float, float, float]
    decision_accuracy: tuple[float, float, float]
    pairs_compared: int
    pairs_within_noise: int  # left out: their observed difference is within noise
    n: int  # compositions
    signal: bool
    loo: tuple[float, ...] = ()  # the leave-one-out predictions, in the observations' order

    def to_dict(self) -> dict:
        def triple(t):  # NaN (no pair clear of noise) as null: strict JSON for any reader
            return {k: (None if math.isnan(v) else v)
                    for k, v in zip(("value", "ci_low", "ci_high"), t)}

        return {"loo_error": triple(self.loo_error),
                "baseline_error": triple(self.baseline_error),
                "spearman": triple(self.spearman),
                "decision_accuracy": triple(self.decision_accuracy),
                "pairs_compared": self.pairs_compared,
                "pairs_within_noise": self.pairs_within_noise, "n": self.n,
                "signal": self.signal}


def loo_predictions(model: Model, comps: Sequence[Composition], y: np.ndarray) -> np.ndarray:
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = [j for j in range(len(y)) if j != i]
        out[i] = model.fit([comps[j] for j in keep], y[keep]).predict([comps[i]])[0][0]
    return out


def judge(name: str, pred: np.ndarray, y: np.ndarray, se: np.ndarray,
          seed: int = 0) -> Judged:
    """The out-of-fold measures of `pred` against `y`, with bootstrap intervals."""
    n = len(y)
    baseline = np.array([(y.sum() - y[i]) / (n - 1) for i in range(n)])
    rng = np.random.default_rng(seed)
    idx = [np.arange(n)] + [rng.integers(0, n, n) for _ in range(N_BOOT)]
    rows = np.array([_measures(pred[i], y[i], se[i], baseline[i]) for i in idx])
    point, boot = rows[0], rows[1:]
    with warnings.catch_warnings():  # a measure NaN in every resample stays NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(boot, 2.5, axis=0), np.nanpercentile(boot, 97.5, axis=0)
    compared, within = pair_counts(y, se)
    triple = [(float(point[j]), float(lo[j]), float(hi[j])) for j in range(4)]
    # Signal: the fit beats predicting the mean, and orders compositions better than chance:
    # by rank correlation, or by the decisions that matter (pairs clear of noise, enough of
    # them that the interval means something).
    ranks = lo[2] > 0 or (compared >= MIN_DECISIONS and lo[3] > 0.5)
    signal = bool(point[0] < point[1] and ranks)
    return Judged(name, triple[0], triple[1], triple[2], triple[3], compared, within, n, signal,
                  tuple(float(v) for v in pred))


def _measures(pred, y, se, baseline) -> list[float]:
    error = float(np.sqrt(np.mean((pred - y) ** 2)))
    base = float(np.sqrt(np.mean((baseline - y) ** 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(pred, y).statistic if np.ptp(y) and np.ptp(pred) else np.nan
    return [error, base, float(rho), decision_accuracy(pred, y, se)]


def decision_accuracy(pred, y, se) -> float:
    diff = y[:, None] - y[None, :]
    noise = Z95 * np.sqrt(se[:, None] ** 2 + se[None, :] ** 2)
    upper = np.triu(np.ones_like(diff, dtype=bool), 1)
    clear = upper & (np.abs(diff) > noise)
    if not clear.any():
        return float("nan")
    agree = np.sign(pred[:, None] - pred[None, :]) == np.sign(diff)
    return float(agree[clear].mean())


def pair_counts(y, se) -> tuple[int, int]:
    diff = np.abs(y[:, None] - y[None, :])
    noise = Z95 * np.sqrt(se[:, None] ** 2 + se[None, :] ** 2)
    upper = np.triu(np.ones_like(diff, dtype=bool), 1)
    return int((upper & (diff > noise)).sum()), int((upper & (diff <= noise)).sum())


def fit_metric(obs: Observations, source_tokens: Mapping[str, float] | None = None,
               seed: int = 0) -> dict[str, Judged | str]:
    """model name -> its out-of-fold record, or why it was not fitted."""
    comps = [p.composition for p in obs.points]
    y = np.array([p.value for p in obs.points], dtype=float)
    se = np.array([p.se for p in obs.points], dtype=float)
    if len(y) < MIN_POINTS:
        return dict.fromkeys(MODELS, f"{len(y)} compositions, needs at least {MIN_POINTS}")
    out: dict[str, Judged | str] = {}
    for name, model in models_for(obs, source_tokens, seed).items():
        why = model.applies(obs)
        if why:
            out[name] = why
            continue
        try:
            out[name] = judge(name, loo_predictions(model, comps, y), y, se, seed)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as err:
            out[name] = f"did not fit ({type(err).__name__}: {err})"
    return out
