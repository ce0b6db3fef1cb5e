"""Statistical monitors: label counts against a baseline (chi-square) and test accuracy of two runs (z-tests, Holm)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from poisonlab.errors import PoisonlabError


def check_alpha(alpha: float) -> None:
    """Reject a significance level outside the open interval (0, 1)."""
    if not 0.0 < alpha < 1.0:
        raise PoisonlabError(f"significance level alpha must be strictly between 0 and 1, got {alpha:g}; such as 0.05")


def compare_counts(observed: np.ndarray, baseline: np.ndarray, alpha: float = 0.05) -> dict:
    """Chi-square goodness of fit of `observed` class counts to the proportions of `baseline`, per-class residuals."""
    check_alpha(alpha)
    observed, baseline = np.asarray(observed, np.float64), np.asarray(baseline, np.float64)
    if observed.shape != baseline.shape or baseline.sum() <= 0 or observed.sum() <= 0:
        raise PoisonlabError(f"cannot compare {len(observed)} class counts with a baseline of {len(baseline)}; "
                             "use a baseline made from the same dataset")
    expected = baseline / baseline.sum() * observed.sum()
    present = expected > 0
    if (observed[~present] > 0).any():
        statistic, p_value = math.inf, 0.0  # items of a class the baseline never had
    else:
        statistic, p_value = (float(v) for v in stats.chisquare(observed[present], expected[present]))
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.where(present, (observed - expected) / np.sqrt(expected), np.where(observed > 0, np.inf, 0.0))
    bound = stats.norm.ppf(1 - alpha / (2 * len(observed)))  # Bonferroni over classes
    return {"n": int(observed.sum()), "statistic": statistic, "p_value": p_value, "flagged": p_value < alpha,
            "observed": observed.astype(int).tolist(), "expected": expected.tolist(),
            "delta": (observed - expected).tolist(), "residual": residual.tolist(),
            "moved": np.flatnonzero(np.abs(residual) > bound).tolist(), "residual_bound": float(bound)}


def flip_p_value(expected: np.ndarray, source: int, target: int, n: int) -> float:
    """P-value of the chi-square test when `n` items of `expected` counts move from `source` to `target`."""
    expected = np.asarray(expected, np.float64)
    moved = expected.copy()
    moved[source] -= n
    moved[target] += n
    present = expected > 0
    return float(stats.chisquare(moved[present], expected[present]).pvalue)


def minimal_flip(expected: np.ndarray, source: int, target: int, alpha: float = 0.05) -> int | None:
    """Fewest source->target moves the test flags at `alpha` (None if more than the source class holds)."""
    expected = np.asarray(expected, np.float64)
    if expected[source] <= 0 or expected[target] <= 0:
        return None
    critical = stats.chi2.ppf(1 - alpha, int((expected > 0).sum()) - 1)
    n = math.ceil(math.sqrt(critical / (1 / expected[source] + 1 / expected[target])))  # n^2 (1/e_s + 1/e_t) = critical
    while n > 1 and flip_p_value(expected, source, target, n - 1) < alpha:
        n -= 1
    while n <= expected[source] and flip_p_value(expected, source, target, n) >= alpha:
        n += 1
    return n if n <= expected[source] else None


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the pooled z-test that k1/n1 and k2/n2 share one rate (1.0 when undefined)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(k1 / n1 - k2 / n2) / spread))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def compare_accuracy(baseline: np.ndarray, candidate: np.ndarray, alpha: float = 0.05) -> dict:
    """Overall and per-class test accuracy of two confusion matrices (rows: true class), tested for change."""
    check_alpha(alpha)
    baseline, candidate = np.asarray(baseline, np.int64), np.asarray(candidate, np.int64)
    if baseline.shape != candidate.shape or baseline.ndim != 2 or baseline.shape[0] != baseline.shape[1]:
        raise PoisonlabError(f"confusion matrices of shape {baseline.shape} and {candidate.shape} cannot be compared; "
                             "compare two runs on the same dataset")
    k_b, n_b, k_c, n_c = np.diag(baseline), baseline.sum(1), np.diag(candidate), candidate.sum(1)
    p_class = [two_proportion_p(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(k_b, n_b, k_c, n_c)]
    adjusted = holm(p_class)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_b, acc_c = k_b / n_b, k_c / n_c
    classes = [{"baseline": _rate(a), "candidate": _rate(c), "p_value": p, "p_holm": q}
               for a, c, p, q in zip(acc_b, acc_c, p_class, adjusted)]
    total_b, total_c = int(n_b.sum()), int(n_c.sum())
    return {
        "overall": {"baseline": int(k_b.sum()) / max(total_b, 1), "candidate": int(k_c.sum()) / max(total_c, 1),
                    "p_value": two_proportion_p(int(k_b.sum()), total_b, int(k_c.sum()), total_c)},
        "classes": classes,
        "dropped": [i for i, c in enumerate(classes) if c["p_holm"] < alpha and c["candidate"] < c["baseline"]],
        "rose": [i for i, c in enumerate(classes) if c["p_holm"] < alpha and c["candidate"] > c["baseline"]],
        "same_test_set": bool((n_b == n_c).all()),
    }


def _rate(value: float) -> float | None:
    """A rate as a float, None when undefined (no test items of the class)."""
    return None if np.isnan(value) else float(value)
