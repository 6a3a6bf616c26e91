"""Statistics for comparing policies: bootstrap confidence intervals (stratified by training run), the
interquartile mean, paired differences on common random numbers and the probability of improvement,
as rliable defines them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


def paired_difference_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b over the same seeds (common random numbers) with its 95% bootstrap interval."""
    return stratified_ci([np.asarray(a, dtype=float) - np.asarray(b, dtype=float)], np.mean)


def iqm(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% (scipy.stats.trim_mean), along ``axis``."""
    return stats.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)


def stratified_ci(strata: Sequence[np.ndarray],
                  statistic: Callable[..., np.ndarray | float]) -> tuple[float, float, float]:
    """``statistic`` of the pooled strata and its 95% percentile-bootstrap interval, each stratum (a
    training seed, say) resampled within itself, as rliable's StratifiedBootstrap does. ``statistic``
    takes one array and an ``axis`` (``np.mean``, :func:`iqm`), so scipy evaluates all resamples at once."""
    strata = [np.asarray(s, dtype=float) for s in strata]
    point = float(statistic(np.concatenate(strata), axis=-1))
    if sum(len(s) for s in strata) < 2 or all(np.ptp(s) == 0 for s in strata):
        return point, point, point

    def pooled(*samples, axis=-1):
        return statistic(np.concatenate(samples, axis=axis), axis=axis)

    res = stats.bootstrap(tuple(strata), pooled, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                          method="percentile", random_state=np.random.default_rng(0))
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs: the Mann-Whitney U statistic over n·m (rliable's definition)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(stats.mannwhitneyu(x, y).statistic / (len(x) * len(y)))
