"""Label poisoning as pure functions: each returns (new_labels, changed_mask) and trains nothing."""

from __future__ import annotations

import numpy as np

from poisonlab.errors import PoisonlabError

KINDS = ("random", "biased")


def poison_count(n_items: int, percent: float) -> int:
    """Number of items poisoned at `percent` of `n_items`: round(p*N), halves rounded up."""
    check_percent(percent)
    return int(np.floor(n_items * percent / 100.0 + 0.5))


def check_percent(percent: float) -> None:
    """Reject percents outside 0..100 (or NaN) with a one-line error."""
    if not 0.0 <= percent <= 100.0:
        raise PoisonlabError(f"poison percent {percent:g} is outside 0..100; give values such as 0,10,50,100")


def _chosen(n_items: int, percent: float, seed: int) -> np.ndarray:
    """Seeded choice of round(p*N) indices; nested across percents for one seed (5% is inside 10%)."""
    order = np.random.default_rng([seed, 0]).permutation(n_items)
    return np.sort(order[: poison_count(n_items, percent)])


def random_flip(labels: np.ndarray, num_classes: int, percent: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give round(p*N) seeded items a uniformly chosen OTHER class."""
    labels = np.asarray(labels, dtype=np.int64)
    if num_classes < 2:
        raise PoisonlabError("random poisoning needs at least 2 classes")
    idx = _chosen(len(labels), percent, seed)
    offsets = np.random.default_rng([seed, 1]).integers(1, num_classes, size=len(labels))
    new = labels.copy()
    new[idx] = (labels[idx] + offsets[idx]) % num_classes
    return new, new != labels


def biased_flip(labels: np.ndarray, percent: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give the same items as `random_flip` class 0, or class 1 where the true label is 0."""
    labels = np.asarray(labels, dtype=np.int64)
    idx = _chosen(len(labels), percent, seed)
    new = labels.copy()
    new[idx] = np.where(labels[idx] == 0, 1, 0)
    return new, new != labels


def targeted_flip(
    labels: np.ndarray, source: int, target: int, n: int, select: str = "first", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel `n` items of class `source` as `target`: the lowest indices (`first`) or a seeded `random` choice."""
    labels = np.asarray(labels, dtype=np.int64)
    if source == target:
        raise PoisonlabError(f"source and target are both class {source}; choose two different classes")
    if n < 0:
        raise PoisonlabError(f"number of flips {n} is negative; give 0 or more")
    members = np.flatnonzero(labels == source)
    if n > len(members):
        raise PoisonlabError(f"cannot flip {n} items of class {source}: it has only {len(members)}; give n <= {len(members)}")
    if select == "first":
        idx = members[:n]
    elif select == "random":
        idx = np.sort(np.random.default_rng([seed, 2]).choice(members, size=n, replace=False))
    else:
        raise PoisonlabError(f"unknown selection '{select}'; choose first or random")
    new = labels.copy()
    new[idx] = target
    return new, new != labels


def apply(kind: str, labels: np.ndarray, num_classes: int, percent: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch a sweep poisoning `kind` (random or biased)."""
    if kind == "random":
        return random_flip(labels, num_classes, percent, seed)
    if kind == "biased":
        return biased_flip(labels, percent, seed)
    raise PoisonlabError(f"unknown poisoning kind '{kind}'; choose one of {', '.join(KINDS)}")
