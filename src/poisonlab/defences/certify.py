"""Certified defence by Deep Partition Aggregation (Levine & Feizi, ICLR 2021), as plain functions over arrays.

The training items are split into k partitions by a keyed hash of each item's CONTENT, one base model is trained per
partition, and a test image gets the class most partitions vote for (ties to the smaller class). Inserting, removing
or relabelling one training item can change only the partition its content hashes to, so it moves at most one vote:
the prediction provably survives any `radius` poisoned items, radius = floor((n_top - max_c (n_c + [c < top])) / 2).
"""

from __future__ import annotations

import hashlib

import numpy as np

from poisonlab.checks import check_int

ABSTAIN = -1  # the vote of a partition with no training items


def partitions(x: np.ndarray, k: int, *, key: bytes = b"poisonlab-dpa") -> np.ndarray:
    """The partition of each item, from a keyed BLAKE2b hash of its bytes (shape, dtype and values).

    Parameters
    ----------
    x : ndarray, shape (N, ...)
        The training items (images or feature rows).
    k : int
        Number of partitions.
    key : bytes
        The hash key (at most 64 bytes); a secret key keeps an attacker from choosing where an item lands.

    Returns
    -------
    ndarray of int64, shape (N,)
        Partition numbers in 0..k-1; an item's partition depends on its content alone, not its index or label.
    """
    k = check_int(k, "partitions", low=1)
    x = np.ascontiguousarray(x)
    header = f"{x.dtype.str}{x.shape[1:]}".encode()
    digests = [hashlib.blake2b(header + item.tobytes(), key=key, digest_size=8).digest() for item in x]
    return (np.frombuffer(b"".join(digests), dtype="<u8") % np.uint64(k)).astype(np.int64)


def vote_counts(predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Votes per class of each test item.

    Parameters
    ----------
    predictions : ndarray of int, shape (k, M)
        Each partition's predicted class of each of M test items (ABSTAIN for an empty partition).
    num_classes : int

    Returns
    -------
    ndarray of int64, shape (M, K)
    """
    predictions = np.asarray(predictions, dtype=np.int64)
    counts = np.zeros((predictions.shape[1], num_classes), dtype=np.int64)
    voted = predictions >= 0
    np.add.at(counts, (np.broadcast_to(np.arange(predictions.shape[1]), predictions.shape)[voted], predictions[voted]), 1)
    return counts


def certificates(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The aggregate's prediction and its certified radius per test item.

    Parameters
    ----------
    votes : ndarray of int, shape (M, K)

    Returns
    -------
    predicted : ndarray of int64, shape (M,)
        The class with the most votes, ties to the smaller class.
    radius : ndarray of int64, shape (M,)
        The number of poisoned training items (insertions, removals or label flips) that provably cannot change
        the prediction: floor((n_top - max over c != top of (n_c + [c < top])) / 2).
    """
    votes = np.asarray(votes, dtype=np.int64)
    predicted = votes.argmax(1)
    rows = np.arange(len(votes))
    rivals = votes + (np.arange(votes.shape[1])[None, :] < predicted[:, None])  # a smaller class wins a tie
    rivals[rows, predicted] = np.iinfo(np.int64).min
    gap = votes[rows, predicted] - rivals.max(1)
    return predicted, np.floor_divide(gap, 2)


def certified_accuracy(predicted: np.ndarray, radius: np.ndarray, labels: np.ndarray,
                       budgets: np.ndarray) -> np.ndarray:
    """Share of test items classified correctly with a certified radius of at least each budget, shape (B,)."""
    correct = np.asarray(predicted) == np.asarray(labels)
    return np.array([float(np.mean(correct & (np.asarray(radius) >= b))) for b in np.asarray(budgets)])
