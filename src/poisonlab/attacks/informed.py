"""Informed (worst-case) label flips: which items to flip, and to which class, from a surrogate's class probabilities.

Pure functions of the clean labels, the surrogate's probabilities and the seed; they train nothing. The surrogate is
a model fitted on the CLEAN labels (out-of-fold probabilities are best: each item scored by a model that never saw it).
"""

from __future__ import annotations

import numpy as np

from poisonlab.attacks import STRATEGIES
from poisonlab.errors import PoisonlabError

INFORMED = ("margin", "confident")


def check_probs(pred_probs: np.ndarray | None, labels: np.ndarray, select: str) -> np.ndarray:
    """The surrogate's probabilities as float64 (N, K), or a one-line error when they are missing or malformed."""
    if pred_probs is None:
        raise PoisonlabError(f"selection '{select}' needs the surrogate's class probabilities (N, K); pass pred_probs")
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels) or (len(labels) and probs.shape[1] <= labels.max()):
        raise PoisonlabError(f"pred_probs must have shape (N, K) = ({len(labels)}, K > {labels.max(initial=0)}), "
                             f"got {probs.shape}; pass one row of class probabilities per training item")
    if not np.all(np.isfinite(probs)) or (probs < 0).any():
        raise PoisonlabError("pred_probs must be finite non-negative class probabilities; pass the surrogate's predict_proba")
    return probs


def margins(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Surrogate margin of each item's label: p[label] - the largest other class probability, shape (N,)."""
    others = _without_label(labels, pred_probs, -np.inf)
    return pred_probs[np.arange(len(labels)), labels] - others.max(1)


def runner_up(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """The most probable class other than each item's label, shape (N,)."""
    return _without_label(labels, pred_probs, -np.inf).argmax(1)


def loss_raising(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """The least probable class other than each item's label (the new label of highest surrogate loss), shape (N,)."""
    return _without_label(labels, pred_probs, np.inf).argmin(1)


def _without_label(labels: np.ndarray, pred_probs: np.ndarray, fill: float) -> np.ndarray:
    """A copy of the probabilities with each item's own label replaced by `fill`."""
    others = pred_probs.astype(np.float64, copy=True)
    others[np.arange(len(labels)), labels] = fill
    return others


def order(select: str, labels: np.ndarray, seed: int, pred_probs: np.ndarray | None = None) -> np.ndarray:
    """Every item index, in the order a strategy poisons them (take the first n: nested across budgets).

    Parameters
    ----------
    select : {"first", "last", "margin", "confident"}
        first: lowest indices; last: highest indices first (the original experiment's choice); margin: smallest surrogate margin first (nearest the decision boundary);
        confident: highest surrogate probability of the item's label first. Ties are broken by a seeded permutation.
    labels : ndarray of int, shape (N,)
        The clean labels.
    seed : int
    pred_probs : ndarray, shape (N, K), optional
        The surrogate's class probabilities; needed by margin and confident.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    labels = np.asarray(labels, dtype=np.int64)
    if select == "first":
        return np.arange(len(labels))
    if select == "last":
        return np.arange(len(labels))[::-1].copy()
    if select not in INFORMED:
        raise PoisonlabError(f"unknown selection '{select}'; choose one of {', '.join(STRATEGIES)}")
    probs = check_probs(pred_probs, labels, select)
    key = margins(labels, probs) if select == "margin" else -probs[np.arange(len(labels)), labels]
    ties = np.random.default_rng([seed, 5]).permutation(len(labels))
    return np.lexsort((ties, key))


def new_classes(select: str, labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """The class an informed strategy gives each item: margin its runner-up, confident its least probable class."""
    return runner_up(labels, pred_probs) if select == "margin" else loss_raising(labels, pred_probs)
