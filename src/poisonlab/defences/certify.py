"""Certified defences by partition aggregation, as plain functions over arrays.

Deep Partition Aggregation (DPA; Levine & Feizi, ICLR 2021): the training items are split into k partitions by a
keyed hash of each item's CONTENT, one base model is trained per partition, and a test image gets the class most
partitions vote for (ties to the smaller class). Inserting, removing or relabelling one training item can change
only the partition its content hashes to, so it moves at most one vote: the prediction provably survives any
`radius` poisoned items, radius = floor((n_top - max_c (n_c + [c < top])) / 2).

Finite Aggregation (FA; Wang, Levine & Feizi, ICML 2022): the items hash to k*d buckets and each bucket trains d of
the k*d base models (each model sees d buckets, about N/k items). A poisoned item touches one bucket, so d votes; the
radius is the number of buckets whose largest possible effects still cannot overturn the vote.

Run-Off Election (ROE; Rezaei et al., ICML 2023): the same base models, two rounds: the two classes with the most
votes go to a run-off in which every base model votes for the one of the two it scores higher. Its certificate
below is a sound lower bound (each way the attacker could win needs at least as many poisoned items as the hardest
of its conditions, or as their combined effect allows).

Every radius here counts poisoned training items; `buckets` maps each item-holding bucket to the base models it
trains ((k, 1) for DPA and ROE, (k*d, d) for FA).
"""

from __future__ import annotations

import hashlib

import numpy as np

from poisonlab.checks import check_int

ABSTAIN = -1  # the vote of a partition with no training items
METHODS = ("dpa", "fa", "roe", "fa+roe")
_CELLS = 1 << 22  # bucket x test-item x contest cells per chunk (bounds the memory of the FA and ROE certificates)


def partitions(x: np.ndarray, k: int, *, key: bytes = b"poisonlab-dpa") -> np.ndarray:
    """The partition of each item, from a keyed BLAKE2b hash of its bytes (shape, dtype and values).

    Parameters
    ----------
    x : ndarray, shape (N, ...)
        The training items (images or feature rows).
    k : int
        Number of partitions (for FA, the k*d buckets).
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


def spread(n_buckets: int, d: int, *, key: bytes = b"poisonlab-dpa") -> np.ndarray:
    """The base models each bucket trains: bucket j trains models (j + o_t) mod n_buckets for d distinct offsets
    o_0 = 0, o_1 .. o_{d-1} drawn from the key, so every model trains on exactly d buckets.

    Parameters
    ----------
    n_buckets : int
        k * d, the number of buckets and of base models.
    d : int
        The spread (1: DPA's one model per bucket).
    key : bytes

    Returns
    -------
    ndarray of int64, shape (n_buckets, d)
    """
    n_buckets = check_int(n_buckets, "buckets", low=1)
    d = check_int(d, "spread", low=1, high=n_buckets)
    seed = int.from_bytes(hashlib.blake2b(b"spread", key=key, digest_size=8).digest(), "little")
    offsets = np.concatenate([[0], 1 + np.random.default_rng(seed).permutation(n_buckets - 1)[: d - 1]])
    return (np.arange(n_buckets)[:, None] + offsets[None, :]) % n_buckets


def model_items(parts: np.ndarray, buckets: np.ndarray) -> list[np.ndarray]:
    """The training items of every base model: the union of the buckets that train it.

    Parameters
    ----------
    parts : ndarray of int, shape (N,)
        Each item's bucket (see `partitions`).
    buckets : ndarray of int, shape (n_buckets, d)
        The models each bucket trains (see `spread`).

    Returns
    -------
    list of n_models sorted int64 arrays of item indices
    """
    owners = buckets[parts]  # (N, d): the models each item trains
    models = owners.reshape(-1)
    items = np.repeat(np.arange(len(parts)), buckets.shape[1])
    order = np.lexsort((items, models))
    bounds = np.searchsorted(models[order], np.arange(int(buckets.max(initial=-1)) + 2))
    return [items[order][bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


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
    """DPA: the aggregate's prediction and its certified radius per test item.

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
    gap = _gaps(votes, predicted)
    gap[np.arange(len(votes)), predicted] = np.iinfo(np.int64).max
    return predicted, np.floor_divide(gap.min(1), 2)


def fa_certificates(predictions: np.ndarray, buckets: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """FA: the aggregate's prediction and certified radius per test item (with (k, 1) buckets, exactly DPA's).

    Parameters
    ----------
    predictions : ndarray of int, shape (n_models, M)
        Every base model's class of every test item (ABSTAIN for a model without items).
    buckets : ndarray of int, shape (n_buckets, d)
        The models each bucket trains.
    num_classes : int

    Returns
    -------
    predicted, radius : ndarrays of int64, shape (M,)
        The plurality class (ties to the smaller class) and the number of poisoned items it provably survives.
    """
    predictions = np.asarray(predictions, dtype=np.int64)
    votes = vote_counts(predictions, num_classes)
    predicted = votes.argmax(1)
    radius = np.empty(len(predicted), dtype=np.int64)
    for part in _chunks(len(predicted), len(buckets) * num_classes):
        p, v = predicted[part], predictions[:, part]
        gap = _gaps(votes[part], p)  # (m, K)
        value = 1 + (v == p)[..., None] - (v[..., None] == np.arange(num_classes))  # (models, m, K)
        radius[part] = _masked_min(_survived(value, buckets, gap + 1), np.arange(num_classes) == p[:, None])
    return predicted, radius


def roe_certificates(rankings: np.ndarray, buckets: np.ndarray, num_classes: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROE (with FA's buckets: FA+ROE): the run-off's winner and a certified radius per test item.

    Round 1: each base model votes its top class; the two classes with the most votes (ties to the smaller) go on.
    Round 2: each base model votes for the one of the two it ranks higher; the most votes win (ties to the smaller).
    An attacker changes the winner p only if (i) the other finalist o wins the run-off, (ii) two classes overtake p
    in round 1, or (iii) a class c overtakes o in round 1 and beats p in the run-off. The radius is one less than
    the fewest poisoned items any of these needs, each bounded below by its conditions' individual needs and, for
    (ii), their combined one.

    Parameters
    ----------
    rankings : ndarray of int, shape (n_models, M, K)
        Every base model's classes of every test item from most to least preferred (all ABSTAIN for a model
        without items).
    buckets : ndarray of int, shape (n_buckets, d)
    num_classes : int

    Returns
    -------
    predicted, radius : ndarrays of int64, shape (M,)
    finalists : ndarray of int64, shape (M, 2)
        Round 1's top two classes.
    """
    rankings = np.asarray(rankings)
    n_models, n_test, k = rankings.shape
    classes = np.arange(num_classes)
    first = rankings[:, :, 0].astype(np.int64)
    votes = vote_counts(first, num_classes)
    c1 = votes.argmax(1)
    rest = votes.copy()
    rest[np.arange(n_test), c1] = -1
    c2 = rest.argmax(1)
    ci, ei = np.triu_indices(num_classes, 1)  # every pair of classes c < e
    predicted, radius = np.empty(n_test, np.int64), np.empty(n_test, np.int64)
    for part in _chunks(n_test, len(buckets) * (3 * num_classes + len(ci))):
        rows = np.arange(len(part))
        a, b, v, live = c1[part], c2[part], first[:, part], first[:, part] >= 0
        pos = _positions(rankings[:, part], num_classes)  # (models, m, K): each class's rank
        prefer_a = pos[:, rows, a] < pos[:, rows, b]
        for_a, for_b = (prefer_a & live).sum(0), (~prefer_a & live).sum(0)
        win_a = (for_a > for_b) | ((for_a == for_b) & (a < b))
        p, o = np.where(win_a, a, b), np.where(win_a, b, a)
        predicted[part] = p
        # the run-off of p against each class c: a model prefers p (value 2), c (0), or abstains (1)
        p_first = (pos[:, rows, p][..., None] < pos) & live[..., None]
        c_first = (pos[:, rows, p][..., None] > pos) & live[..., None]
        pair_gap = p_first.sum(0) - c_first.sum(0) - (classes < p[:, None])
        run_off = _survived(np.where(live[..., None], 2 * p_first, 1), buckets, pair_gap + 1)  # (m, K)
        # round 1: a class c overtaking p, or o (value 2 for a voter of the defender, 0 for a c voter, 1 otherwise)
        gap_p, gap_o = _gaps(votes[part], p), _gaps(votes[part], o)
        over_p = _survived(1 + (v == p)[..., None] - (v[..., None] == classes), buckets, gap_p + 1)
        over_o = _survived(1 + (v == o)[..., None] - (v[..., None] == classes), buckets, gap_o + 1)
        # (i) o wins the run-off; (iii) a class c other than p and o overtakes o and beats p in the run-off
        best = np.minimum(run_off[rows, o], _masked_min(np.maximum(over_o, run_off),
                                                         (classes == p[:, None]) | (classes == o[:, None])))
        # (ii) two classes c < e overtake p: each alone, and together (a p voter moved to c lowers the two margins by
        # 2 and 1, a voter of neither class by 1 and 0, a voter of c or e by at most 0 in all)
        together = 3 * (v == p)[..., None] + ((v != p)[..., None] & (v[..., None] != ci) & (v[..., None] != ei))
        both = _survived(together, buckets, gap_p[:, ci] + gap_p[:, ei] + 2)
        two = np.maximum(np.maximum(over_p[:, ci], over_p[:, ei]), both)
        radius[part] = np.minimum(best, _masked_min(two, (ci == p[:, None]) | (ei == p[:, None])))
    return predicted, radius, np.stack([c1, c2], 1)


def certified_accuracy(predicted: np.ndarray, radius: np.ndarray, labels: np.ndarray,
                       budgets: np.ndarray) -> np.ndarray:
    """Share of test items classified correctly with a certified radius of at least each budget, shape (B,)."""
    correct = np.asarray(predicted) == np.asarray(labels)
    return np.array([float(np.mean(correct & (np.asarray(radius) >= b))) for b in np.asarray(budgets)])


def _gaps(votes: np.ndarray, defender: np.ndarray) -> np.ndarray:
    """(M, K) margins of `defender` over every class c in a plurality vote: n_defender - n_c - [c < defender] (c
    wins once its margin is below 0, a smaller class winning ties)."""
    rows = np.arange(len(votes))
    return votes[rows, defender][:, None] - votes - (np.arange(votes.shape[1])[None, :] < defender[:, None])


def _survived(value: np.ndarray, buckets: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """How many poisoned items a contest provably survives: the largest r such that the r buckets with the largest
    effects, each the sum of its models' `value` (the most one changed model can lower the margin), still lower it
    by less than `needed`.

    value : (n_models, m, C) ints; buckets : (n_buckets, d); needed : (m, C). Returns (m, C) int64."""
    effect = value[buckets].sum(1, dtype=np.int64)  # (n_buckets, m, C)
    effect = -np.sort(-effect, axis=0)
    return (np.cumsum(effect, axis=0) < needed[None]).sum(0)


def _masked_min(radius: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Row minima of (m, C) `radius`, leaving out the `excluded` cells."""
    return np.where(excluded, np.iinfo(np.int64).max, radius).min(1)


def _positions(rankings: np.ndarray, num_classes: int) -> np.ndarray:
    """Each class's rank in every model's ranking, (n_models, m, K) (K for a model without items)."""
    n_models, m, k = rankings.shape
    position = np.full((n_models, m, num_classes), num_classes, dtype=np.int16)
    model, item = np.nonzero(rankings[:, :, 0] >= 0)
    position[model[:, None], item[:, None], rankings[model, item].astype(np.int64)] = np.arange(k, dtype=np.int16)
    return position


def _chunks(n: int, cells_per_item: int) -> list[np.ndarray]:
    """Consecutive index chunks of range(n) small enough for `_CELLS` cells each."""
    size = max(1, _CELLS // max(1, cells_per_item))
    return [np.arange(i, min(n, i + size)) for i in range(0, n, size)]
