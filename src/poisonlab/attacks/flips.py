"""Label-flip attacks as pure functions over label arrays: each returns (new_labels, changed_mask) and trains nothing."""

from __future__ import annotations

import numpy as np

from poisonlab.attacks import BIASED_RULES, KINDS, informed
from poisonlab.checks import (check_choice, check_fraction, check_int, check_labels, check_num_classes,
                              check_seed)
from poisonlab.errors import PoisonlabError

SELECTIONS = ("first", "last", "random")


def poison_count(n_items: int, percent: float) -> int:
    """Number of items poisoned at `percent` of `n_items`: round(p*N), halves rounded up."""
    check_percent(percent)
    return int(np.floor(n_items * percent / 100.0 + 0.5))


def check_percent(percent: float) -> None:
    """Reject percents outside 0..100 (or NaN) with a one-line error."""
    if not 0.0 <= percent <= 100.0:
        raise PoisonlabError(f"poison percent {percent:g} is outside 0..100; give values such as 0,10,50,100")


def _chosen(labels: np.ndarray, percent: float, seed: int, select: str = "random",
            pred_probs: np.ndarray | None = None) -> np.ndarray:
    """The round(p*N) indices a strategy poisons (`random`: a seeded choice); nested across percents for one seed."""
    if select == "random":
        order = np.random.default_rng([seed, 0]).permutation(len(labels))
    else:
        order = informed.order(select, labels, seed, pred_probs)
    return np.sort(order[: poison_count(len(labels), percent)])


def random_flip(labels: np.ndarray, num_classes: int, percent: float, seed: int, *, select: str = "random",
                pred_probs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Give round(p*N) items chosen by `select` another class: uniformly drawn (random, first), the surrogate's
    runner-up (margin) or its least probable class (confident); `pred_probs` (N, K) are the surrogate's."""
    labels = np.asarray(labels, dtype=np.int64)
    if num_classes < 2:
        raise PoisonlabError("random poisoning needs at least 2 classes")
    idx = _chosen(labels, percent, seed, select, pred_probs)
    new = labels.copy()
    if select in informed.INFORMED:
        new[idx] = informed.new_classes(select, labels[idx], np.asarray(pred_probs, np.float64)[idx])
        return new, new != labels
    offsets = np.random.default_rng([seed, 1]).integers(1, num_classes, size=len(labels))
    new[idx] = (labels[idx] + offsets[idx]) % num_classes
    return new, new != labels


def biased_flip(labels: np.ndarray, percent: float, seed: int, *, select: str = "random",
                pred_probs: np.ndarray | None = None, rule: str = "readme") -> tuple[np.ndarray, np.ndarray]:
    """Give the items `random_flip` chooses (same `select`) a wrong label from the first two classes.

    rule "readme" (the original README's words): class 0, or class 1 where the true label is 0. Rule "code" (what the
    original program does): class 0 or class 1 with equal odds where the true label is 2 or more, 1 for 0, 0 for 1."""
    check_choice(rule, BIASED_RULES, "biased rule")
    labels = np.asarray(labels, dtype=np.int64)
    idx = _chosen(labels, percent, seed, select, pred_probs)
    new = labels.copy()
    if rule == "readme":
        new[idx] = np.where(labels[idx] == 0, 1, 0)
    else:
        coin = np.random.default_rng([seed, 6]).integers(0, 2, size=len(labels))
        new[idx] = np.where(labels[idx] == 0, 1, np.where(labels[idx] == 1, 0, coin[idx]))
    return new, new != labels


def targeted_flip(
    labels: np.ndarray, source: int, target: int, n: int, select: str = "first", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel `n` items of class `source` as `target`: the lowest indices (`first`), the highest (`last`) or a seeded
    `random` choice."""
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
    elif select == "last":
        idx = members[len(members) - n:]
    elif select == "random":
        idx = np.sort(np.random.default_rng([seed, 2]).choice(members, size=n, replace=False))
    else:
        raise PoisonlabError(f"unknown selection '{select}'; choose one of {', '.join(SELECTIONS)}")
    new = labels.copy()
    new[idx] = target
    return new, new != labels


def apply(kind: str, labels: np.ndarray, num_classes: int, percent: float, seed: int, *, select: str = "random",
          pred_probs: np.ndarray | None = None, biased_rule: str = "readme") -> tuple[np.ndarray, np.ndarray]:
    """Dispatch a sweep poisoning `kind` (random or biased, the latter by `biased_rule`) with item strategy `select`
    (see `informed`)."""
    if select not in informed.STRATEGIES:
        raise PoisonlabError(f"unknown selection '{select}'; choose one of {', '.join(informed.STRATEGIES)}")
    if kind == "random":
        return random_flip(labels, num_classes, percent, seed, select=select, pred_probs=pred_probs)
    if kind == "biased":
        if num_classes < 2:
            raise PoisonlabError("biased poisoning needs at least 2 classes (it relabels items as class 0 or 1)")
        return biased_flip(labels, percent, seed, select=select, pred_probs=pred_probs, rule=biased_rule)
    raise PoisonlabError(f"unknown poisoning kind '{kind}'; choose one of {', '.join(KINDS)}")


def poison_labels(
    labels, kind: str = "random", *, rate: float | None = None, n: int | None = None, num_classes: int | None = None,
    source: int | None = None, target: int | None = None, select: str | None = None,
    pred_probs: np.ndarray | None = None, seed: int = 0, biased_rule: str = "readme",
) -> tuple[np.ndarray, np.ndarray]:
    """Poison a copy of `labels` and return it with the mask of changed items.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Clean class labels in 0..K-1.
    kind : {"random", "biased", "targeted"}
        random: each chosen item gets a uniformly drawn other class; biased: a class among the first two (see
        `biased_rule`); targeted: `n` items of class `source` become `target`.
    rate : float in [0, 1], optional
        Share of items to poison for random and biased (a FRACTION: 0.2 poisons 20 %). Exactly round(rate * N) items
        change; for one seed the chosen items are nested across rates.
    n : int, optional
        Number of items to flip for targeted.
    num_classes : int, optional
        K; default max(labels) + 1.
    source, target : int, optional
        The class pair of targeted.
    select : str, optional
        Which items are poisoned. random and biased: "random" (default, a seeded choice), "first" (lowest indices),
        "last" (highest indices, as the original experiment poisons),
        "margin" (smallest surrogate margin first, each flipped to the surrogate's runner-up class; random kind) or
        "confident" (highest surrogate probability of the true label first, each flipped to the class of least
        probability, which raises the loss most; random kind). targeted: "first" (default), "last" or "random" source
        items.
    pred_probs : ndarray, shape (N, K), optional
        Class probabilities of a surrogate model trained on the CLEAN labels (out-of-fold is best); needed by margin
        and confident.
    seed : int
        Seed of the choice of items and of the new classes.
    biased_rule : {"readme", "code"}
        biased only. "readme" (default): class 0, or class 1 where the label is 0 (the original README's sentence);
        "code": what the original program does, class 0 or 1 with equal odds where the label is 2 or more, and 0 and
        1 swapped. The true class stays the most common label of its items below 1/2 poisoned for "readme", and for
        "code" below 1/2 for classes 0 and 1 but 2/3 for the others.

    Returns
    -------
    new_labels : ndarray of int64, shape (N,)
    mask : ndarray of bool, shape (N,)
        True where the label changed.
    """
    labels, seed = check_labels(labels, None, "labels"), check_seed(seed)
    check_choice(kind, (*KINDS, "targeted"), "kind")
    if kind == "targeted":
        if source is None or target is None or n is None:
            raise PoisonlabError("kind='targeted' needs source, target and n (the number of items to flip)")
        if rate is not None:
            raise PoisonlabError("kind='targeted' takes n, not rate; pass n=<number of items>")
        k = max(int(labels.max(initial=0)) + 1, 2) if num_classes is None else check_num_classes(num_classes, labels)
        return targeted_flip(labels, check_int(source, "source", low=0, high=k - 1),
                             check_int(target, "target", low=0, high=k - 1), check_int(n, "n", low=0),
                             select or "first", seed)
    if n is not None or rate is None:
        raise PoisonlabError(f"kind='{kind}' takes rate, a fraction in [0, 1] such as 0.2; got rate={rate}, n={n}")
    rate = check_fraction(rate, "rate")
    k = max(int(labels.max(initial=0)) + 1, 2) if num_classes is None else check_num_classes(num_classes, labels)
    check_choice(biased_rule, BIASED_RULES, "biased_rule")
    return apply(kind, labels, k, 100.0 * rate, seed, select=select or "random", pred_probs=pred_probs,
                 biased_rule=biased_rule)
