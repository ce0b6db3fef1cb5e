"""Property tests of the poisoning functions: counts, changed labels, rules, determinism, edges."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzing import examples

from poisonlab.attacks import flips as poison
from poisonlab.errors import PoisonlabError

label_arrays = st.integers(2, 12).flatmap(
    lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), min_size=0, max_size=300).map(np.array))
)
percents = st.floats(0, 100, allow_nan=False)
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=examples(200), deadline=None)
@given(label_arrays, percents, seeds)
def test_random_flip_changes_exactly_round_pn_items_to_other_classes(case, percent, seed):
    k, labels = case
    new, mask = poison.random_flip(labels, k, percent, seed)
    assert mask.sum() == int(np.floor(len(labels) * percent / 100 + 0.5))
    assert np.all(new[mask] != labels[mask]) and np.array_equal(new[~mask], labels[~mask])
    assert new.min(initial=0) >= 0 and new.max(initial=0) < k
    again, again_mask = poison.random_flip(labels, k, percent, seed)
    assert np.array_equal(new, again) and np.array_equal(mask, again_mask)


@settings(max_examples=examples(200), deadline=None)
@given(label_arrays, percents, seeds)
def test_biased_flip_follows_rule_and_picks_same_items_as_random(case, percent, seed):
    k, labels = case
    new, mask = poison.biased_flip(labels, percent, seed)
    _, random_mask = poison.random_flip(labels, k, percent, seed)
    assert np.array_equal(mask, random_mask)
    assert np.all(new[mask] == np.where(labels[mask] == 0, 1, 0))
    assert np.array_equal(new[~mask], labels[~mask])


@given(label_arrays, seeds)
def test_zero_and_hundred_percent(case, seed):
    k, labels = case
    assert not poison.random_flip(labels, k, 0, seed)[1].any()
    assert poison.random_flip(labels, k, 100, seed)[1].all()
    assert poison.biased_flip(labels, 100, seed)[1].all()


def test_poison_sets_are_nested_across_percents_and_differ_across_seeds():
    labels = np.random.default_rng(1).integers(0, 10, 5000)
    small = poison.random_flip(labels, 10, 5, seed=3)[1]
    large = poison.random_flip(labels, 10, 20, seed=3)[1]
    assert np.all(large[small]) and large.sum() == 1000
    assert not np.array_equal(small, poison.random_flip(labels, 10, 5, seed=4)[1])


def test_random_flip_new_class_is_uniform_over_other_classes():
    labels = np.zeros(50000, dtype=np.int64)
    new, _ = poison.random_flip(labels, 10, 100, seed=0)
    counts = np.bincount(new, minlength=10)
    assert counts[0] == 0
    assert np.all(np.abs(counts[1:] - 50000 / 9) < 5 * np.sqrt(50000 / 9))


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan")])
def test_percent_outside_range_is_rejected(percent):
    with pytest.raises(PoisonlabError, match="outside 0..100"):
        poison.random_flip(np.zeros(10, dtype=np.int64), 10, percent, 0)


def test_targeted_first_flips_lowest_indices_of_source():
    labels = np.array([3, 5, 3, 3, 1, 3, 5])
    new, mask = poison.targeted_flip(labels, source=3, target=5, n=2)
    assert np.flatnonzero(mask).tolist() == [0, 2]
    assert new.tolist() == [5, 5, 5, 3, 1, 3, 5]


@given(st.lists(st.integers(0, 4), min_size=1, max_size=200).map(np.array), st.integers(0, 40), seeds)
def test_targeted_random_flips_n_source_items_to_target(labels, n, seed):
    n = min(n, int((labels == 2).sum()))
    new, mask = poison.targeted_flip(labels, 2, 4, n, select="random", seed=seed)
    assert mask.sum() == n and np.all(labels[mask] == 2) and np.all(new[mask] == 4)
    assert np.array_equal(new, poison.targeted_flip(labels, 2, 4, n, select="random", seed=seed)[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": 1, "target": 1, "n": 1}, "both class 1"),
        ({"source": 1, "target": 2, "n": 4}, "has only 3"),
        ({"source": 1, "target": 2, "n": -1}, "negative"),
        ({"source": 1, "target": 2, "n": 1, "select": "best"}, "unknown selection"),
    ],
)
def test_targeted_bad_input(kwargs, message):
    with pytest.raises(PoisonlabError, match=message):
        poison.targeted_flip(np.array([1, 1, 1, 0]), **kwargs)


def test_unknown_kind():
    with pytest.raises(PoisonlabError, match="unknown poisoning kind"):
        poison.apply("sneaky", np.zeros(3, dtype=np.int64), 10, 10, 0)
