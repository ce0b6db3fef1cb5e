"""Train/test segregation: test items that are also training items, byte for byte, or nearly so.

A test item found in the training set makes test accuracy a measure of memory, and an attacker who can write training
data can plant copies of test items with chosen labels. Exact copies are found by sorting the items' bytes; near
copies by each test item's nearest training item in a PCA embedding of the pixels: a near copy lies closer to that
training item than NEAR times the training item's own distance to its nearest other training item (a local scale, so
that dense regions such as MNIST's ones do not count as copies). Measured on the official splits at 0.5: MNIST 3
test items, Fashion-MNIST 51, CIFAR-10 107 (JPEG-decoded as shipped here: re-encoded or slightly shifted copies of
one photograph; CIFAR-10 pairs looked at by eye stay copies up to about 0.7, and stop being ones at 0.8)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from poisonlab.checks import check_fraction
from poisonlab.training.fitting import as_features

NEAR = 0.5  # near copy: closer to its nearest training item than this share of that item's own neighbour distance
COMPONENTS = 50  # PCA dimensions of the embedding


def exact_copies(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, training indices) of the test items (N_test, ...) whose bytes equal a training item's."""
    row = np.dtype((np.void, int(np.prod(x_train.shape[1:])) * x_train.dtype.itemsize))
    train = np.ascontiguousarray(x_train).reshape(len(x_train), -1).view(row).ravel()
    test = np.ascontiguousarray(x_test.astype(x_train.dtype, copy=False)).reshape(len(x_test), -1).view(row).ravel()
    order = np.argsort(train, kind="stable")
    at = np.minimum(np.searchsorted(train[order], test), len(train) - 1)
    found = np.flatnonzero(train[order][at] == test)
    return found, order[at[found]]


def leaks(x_train: np.ndarray, x_test: np.ndarray, *, near: float = NEAR, seed: int = 0) -> dict:
    """Exact and near copies of test items in the training set.

    Parameters
    ----------
    x_train, x_test : arrays (N, ...) and (M, ...) of one item shape (uint8 images or feature rows)
    near : float in [0, 1]
        A test item is a near copy when, in a PCA-50 embedding fitted on the training items, it lies closer to its
        nearest training item than `near` times that item's distance to its own nearest other training item.
    seed : int
        Seed of the PCA.

    Returns
    -------
    dict with ``exact`` and ``near`` (lists of {"test", "train"[, "ratio"]}, the near ones by ratio, exact copies
    left out), ``near_threshold``, ``n_test``, ``n_train`` and ``seconds``.
    """
    near = check_fraction(near, "near")
    started = time.perf_counter()
    test_idx, train_idx = exact_copies(x_train, x_test)
    train, test = as_features(x_train), as_features(x_test)
    pca = PCA(min(COMPONENTS, *train.shape), random_state=seed).fit(train[:: max(1, len(train) // 10_000)])
    embedded = pca.transform(train)
    index = NearestNeighbors(n_neighbors=2).fit(embedded)
    distance, nearest = index.kneighbors(pca.transform(test), n_neighbors=1)
    own = index.kneighbors(embedded[nearest[:, 0]])[0][:, 1]  # each matched training item's own nearest neighbour
    ratio = distance[:, 0] / np.maximum(own, 1e-12)
    close = np.setdiff1d(np.flatnonzero(ratio < near), test_idx)
    close = close[np.argsort(ratio[close], kind="stable")]
    return {"exact": [{"test": int(t), "train": int(j)} for t, j in zip(test_idx, train_idx)],
            "near": [{"test": int(t), "train": int(nearest[t, 0]), "ratio": round(float(ratio[t]), 4)} for t in close],
            "near_threshold": near, "n_test": len(test), "n_train": len(train),
            "seconds": round(time.perf_counter() - started, 3)}
