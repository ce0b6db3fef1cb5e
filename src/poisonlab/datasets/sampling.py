"""Shrinking a training set to `dataset_size` items: the first N, or a seeded stratified sample."""

from dataclasses import replace

import numpy as np

from poisonlab.datasets.dataset import Dataset
from poisonlab.errors import PoisonlabError


def check_size(size: int) -> None:
    """Reject a negative dataset_size before any loading."""
    if size < 0:
        raise PoisonlabError(f"dataset_size must be 0 (all items) or positive, got {size}; pass a value >= 0")


def shrink(dataset: Dataset, size: int, ordered: bool, seed: int) -> Dataset:
    """Keep the first `size` training items (all for 0), or a stratified sample of them if not `ordered`."""
    total = len(dataset.y_train)
    if size > total:
        raise PoisonlabError(f"dataset_size {size} is larger than the {total} training items of {dataset.name}; "
                             f"pass at most {total}, or 0 for all")
    if size in (0, total):
        return dataset
    if ordered:
        keep, note = np.arange(size), f"first {size} of {total} training items"
    else:
        keep = stratified_sample(dataset.y_train, size, seed)
        note = (f"stratified seeded sample of {size} of {total} training items, seed {seed}, original order kept "
                "(class-grouped folder, no order file)")
    return replace(dataset, x_train=dataset.x_train[keep], y_train=dataset.y_train[keep],
                   notes=[*dataset.notes, note])


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` items whose class shares follow `labels` (largest remainders round up)."""
    counts = np.bincount(labels)
    exact = counts * size / len(labels)
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(quota - exact, kind="stable")[: size - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picks))
