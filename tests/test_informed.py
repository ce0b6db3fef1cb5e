"""Informed label flips: pure-function properties of margin/confident/first, the run record, the results table column,
resume of old runs, and on real MNIST an informed strategy that hurts more than random flips at the same budget."""

import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzing import examples

import poisonlab as pl
from poisonlab import store
from poisonlab.attacks import flips, informed
from poisonlab.errors import PoisonlabError
from poisonlab.studies.run import RunSpec


@st.composite
def labelled_probs(draw):
    k = draw(st.integers(2, 8))
    n = draw(st.integers(1, 150))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    return k, rng.integers(0, k, n), rng.dirichlet(np.ones(k), n)


@settings(max_examples=examples(150), deadline=None)
@given(labelled_probs(), st.floats(0, 100, allow_nan=False), st.integers(0, 2**31 - 1),
       st.sampled_from(["first", "margin", "confident"]))
def test_informed_flips_change_exactly_round_pn_items_and_are_seeded(case, percent, seed, select):
    k, labels, probs = case
    new, mask = flips.random_flip(labels, k, percent, seed, select=select, pred_probs=probs)
    assert mask.sum() == flips.poison_count(len(labels), percent)
    assert np.all(new[mask] != labels[mask]) and np.array_equal(new[~mask], labels[~mask])
    assert new.max() < k
    again, again_mask = flips.random_flip(labels, k, percent, seed, select=select, pred_probs=probs)
    assert np.array_equal(new, again) and np.array_equal(mask, again_mask)


@settings(max_examples=examples(100), deadline=None)
@given(labelled_probs(), st.floats(0, 100, allow_nan=False), st.floats(0, 100, allow_nan=False),
       st.integers(0, 2**31 - 1), st.sampled_from(["first", "margin", "confident"]))
def test_informed_sets_are_nested_across_budgets(case, p1, p2, seed, select):
    k, labels, probs = case
    small, large = sorted((p1, p2))
    small_mask = flips.random_flip(labels, k, small, seed, select=select, pred_probs=probs)[1]
    large_mask = flips.random_flip(labels, k, large, seed, select=select, pred_probs=probs)[1]
    assert np.all(large_mask[small_mask])


@settings(max_examples=examples(150), deadline=None)
@given(labelled_probs(), st.floats(1, 99), st.integers(0, 2**31 - 1))
def test_margin_picks_the_lowest_margins_and_flips_to_the_runner_up(case, percent, seed):
    k, labels, probs = case
    new, mask = flips.random_flip(labels, k, percent, seed, select="margin", pred_probs=probs)
    margin = informed.margins(labels, probs)
    if mask.any() and (~mask).any():
        assert margin[mask].max() <= margin[~mask].min()
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -1
    assert np.all(new[mask] == others[mask].argmax(1))


@settings(max_examples=examples(150), deadline=None)
@given(labelled_probs(), st.floats(1, 99), st.integers(0, 2**31 - 1))
def test_confident_picks_the_surest_items_and_the_class_of_highest_loss(case, percent, seed):
    k, labels, probs = case
    new, mask = flips.random_flip(labels, k, percent, seed, select="confident", pred_probs=probs)
    own = probs[np.arange(len(labels)), labels]
    if mask.any() and (~mask).any():
        assert own[mask].min() >= own[~mask].max()
    loss_new = -np.log(probs[mask, new[mask]])
    others = probs.copy()
    others[np.arange(len(labels)), labels] = np.inf
    assert np.allclose(loss_new, -np.log(others[mask].min(1)))


def test_first_takes_the_lowest_indices_and_biased_keeps_its_rule():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    assert np.flatnonzero(flips.random_flip(labels, 4, 30, 0, select="first")[1]).tolist() == [0, 1, 2]
    new, mask = flips.biased_flip(labels, 30, 0, select="first")
    assert new[:3].tolist() == [1, 0, 0] and mask.sum() == 3


def test_poison_labels_api_and_its_errors():
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), labels] = 0.8
    probs[0] = [0.4, 0.35, 0.25]
    new, mask = pl.poison_labels(labels, rate=1 / 6, select="margin", pred_probs=probs)
    assert mask.tolist() == [True, False, False, False, False, False] and new[0] == 1
    with pytest.raises(PoisonlabError, match="needs the surrogate's class probabilities"):
        pl.poison_labels(labels, rate=0.5, select="confident")
    with pytest.raises(PoisonlabError, match=r"shape \(N, K\)"):
        pl.poison_labels(labels, rate=0.5, select="margin", pred_probs=probs[:3])
    with pytest.raises(PoisonlabError, match="unknown selection 'worst'"):
        pl.poison_labels(labels, rate=0.5, select="worst")
    assert pl.poison_labels(labels, rate=0.5, seed=2)[1].tolist() == flips.random_flip(labels, 3, 50, 2)[1].tolist()


def test_default_selection_keeps_todays_folders_and_configs():
    spec = RunSpec(dataset="mnist", dataset_size=1000, percent=10)
    assert "select" not in spec.to_dict() and str(spec.folder()) == "models/mnist_1000/10/seed0"
    informed_spec = RunSpec(dataset="mnist", dataset_size=1000, percent=10, select="margin")
    assert informed_spec.to_dict()["select"] == "margin"
    assert str(informed_spec.folder()) == "models/mnist_1000_margin/10/seed0"


def test_an_old_results_table_gains_the_new_columns(tmp_path):
    old = [c for c in store.COLUMNS if c not in store.ADDED_COLUMNS]
    with sqlite3.connect(tmp_path / store.DB_FILE) as db:
        db.execute(f"CREATE TABLE runs ({', '.join(c + (' PRIMARY KEY' if c == 'run_dir' else '') for c in old)})")
        db.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(old))})", ["models/x/0/seed0", "mnist", 0, "random", 0.0, 0,
                   "smallcnn", "split", 10, 100, 0, 0.9, 0.9, 3, 1.0, "2026-01-01"])
    db.close()
    rows = store.results(tmp_path)
    assert rows[0]["select"] == "random" and rows[0]["attack_success_rate"] is None and rows[0]["test_accuracy"] == 0.9


def test_informed_flips_hurt_more_than_random_on_real_mnist(shared_data, tmp_path):
    data = pl.load_dataset("mnist", size=2000, data_dir=shared_data)
    study = pl.sweep(data, rates=[0.2], select=["random", "margin", "confident"], model="logreg", out=tmp_path)
    frame = study.frame().set_index("select")
    assert sorted(frame.index) == ["confident", "margin", "random"]
    run = store.read_run(tmp_path / "models" / "mnist_logreg_confident" / "20" / "seed0")
    assert run["poison"]["surrogate"]["seed"] == 0 and run["poison"]["surrogate"]["out_of_fold"]
    assert run["poison"]["n_poisoned"] == 400
    clean = pl.train(data, model="logreg").accuracy
    removed = {s: clean - frame.loc[s, "test_accuracy"] for s in frame.index}
    assert max(removed["margin"], removed["confident"]) > removed["random"] + 0.01, removed


def test_detect_scores_the_detectors_against_each_selection(cli, tmp_path):
    code = cli.code("detect", "--dataset", "digits", "--dataset-size", "0", "--poison", "random", "--select", "random,margin",
                    "--percent", "20", "--method", "cl,loss", "--out", tmp_path)
    assert code == 0, cli.err
    rows = json.loads((tmp_path / "detect.json").read_text())["rows"]
    assert [r["kind"] for r in rows] == ["random", "random margin"] and {r["n_poisoned"] for r in rows} == {287}
    assert all(m["roc_auc"] is not None for r in rows for m in r["methods"])
    cli.fails("unknown item selection 'best'", "detect", "--dataset", "digits", "--select", "best", "--out", tmp_path)
