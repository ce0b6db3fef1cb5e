"""Certified defence by partition aggregation: the radius formula against brute force, content-keyed partitions, and
the guarantee itself on real MNIST: an attack of r poisoned items flips a prediction certified below r and no
prediction certified at r or above."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import KNeighborsClassifier

import poisonlab as pl
from fuzzing import examples
from poisonlab import datasets
from poisonlab.defences.certify import ABSTAIN, certificates, certified_accuracy, partitions, vote_counts


def brute_force_radius(votes: np.ndarray) -> tuple[int, int]:
    """(prediction, radius) by trying every rival and every number of votes moved from the winner to it (the most a
    poisoned item can do: change one partition's vote), ties to the smaller class."""
    winner = int(np.argmax(votes))  # argmax takes the first maximum: the smaller class
    for moved in range(1, int(votes.sum()) + 2):
        for rival in range(len(votes)):
            if rival == winner:
                continue
            after = votes.copy()
            step = min(moved, after[winner])
            after[winner] -= step
            after[rival] += step
            if int(np.argmax(after)) != winner:
                return winner, moved - 1
    return winner, int(votes.sum())


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.integers(0, 12), min_size=2, max_size=6))
def test_radius_is_the_brute_force_one(counts):
    votes = np.array([counts])
    predicted, radius = certificates(votes)
    assert (int(predicted[0]), int(radius[0])) == brute_force_radius(np.array(counts))


def test_votes_ignore_abstaining_partitions_and_accuracy_counts_only_correct_certified():
    predictions = np.array([[0, 1, 2], [0, ABSTAIN, 2], [1, 1, ABSTAIN]])
    votes = vote_counts(predictions, 3)
    assert votes.tolist() == [[2, 1, 0], [0, 2, 0], [0, 0, 2]]
    predicted, radius = certificates(votes)
    assert predicted.tolist() == [0, 1, 2] and radius.tolist() == [0, 0, 0]  # one move ties, and the smaller class wins
    assert certified_accuracy(predicted, radius, np.array([0, 1, 0]), np.array([0, 1])).tolist() == [2 / 3, 0.0]


def test_partitions_depend_on_each_items_content_alone():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3000, 8, 8, 1), dtype=np.uint8)
    parts = partitions(x, 30)
    assert parts.min() == 0 and parts.max() == 29 and np.bincount(parts).min() > 50  # about 100 each
    order = rng.permutation(len(x))
    assert np.array_equal(partitions(x[order], 30), parts[order])  # not the index
    changed = x.copy()
    changed[7, 0, 0, 0] ^= 1
    moved = partitions(changed, 30) != parts
    assert moved.sum() <= 1 and not moved[np.arange(len(x)) != 7].any()  # one item's change touches only its own
    assert (partitions(x, 30, key=b"another key") != parts).mean() > 0.9  # the key decides where items land


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=2000, download=False, test_size=500)


def test_an_attack_of_r_items_changes_no_prediction_certified_at_r(mnist, tmp_path):
    """1-NN base models: a copy of a test image (one pixel nudged so that it lands in a chosen partition), labelled as
    the runner-up class, turns that partition's vote. r = R + 1 such insertions, aimed at an image certified at R,
    flip it; every prediction certified at r or more must survive them."""
    before = pl.certify(mnist, partitions=25, model=KNeighborsClassifier(1), out=tmp_path / "before")
    assert before.doc["clean_accuracy"] > 0.8 and before.doc["median_radius"] >= 3
    correct = np.flatnonzero((before.predicted == mnist.y_test) & (before.radius >= 1) & (before.radius <= 4))
    target = int(correct[0])
    radius, winner = int(before.radius[target]), int(before.predicted[target])
    votes = before.votes[target].copy()
    rivals = votes + (np.arange(len(votes)) < winner)
    rivals[winner] = -1
    runner_up = int(rivals.argmax())
    r = radius + 1
    # partitions whose base model votes for the winner on the target: each will get one nudged copy
    from poisonlab.studies.certify import _saved

    voting = [i for i in range(25) if _saved(tmp_path / "before" / "partitions" / f"{i}.npy", 500, 10)[target] == winner]
    image = mnist.x_test[target]
    copies, used = [], set()
    for position in range(image.size):
        nudged = image.copy().reshape(-1)
        nudged[position] = nudged[position] + 1 if nudged[position] < 255 else 254
        nudged = nudged.reshape(image.shape)
        part = int(partitions(nudged[None], 25)[0])
        if part in voting and part not in used:
            used.add(part)
            copies.append(nudged)
        if len(copies) == r:
            break
    assert len(copies) == r
    attacked = pl.from_arrays(np.concatenate([mnist.x_train, np.stack(copies)]),
                              np.concatenate([mnist.y_train, np.full(r, runner_up)]), mnist.x_test, mnist.y_test,
                              classes=mnist.classes, name="mnist-attacked")
    after = pl.certify(attacked, partitions=25, model=KNeighborsClassifier(1))
    assert after.predicted[target] != winner  # the attack worked where the certificate allowed it
    safe = before.radius >= r
    assert safe.sum() > 100 and np.array_equal(after.predicted[safe], before.predicted[safe])  # the guarantee held


def test_certify_command_writes_resumes_and_refuses_other_settings(tmp_path, cli):
    args = ("certify", "--dataset", "digits", "--partitions", "12", "--model", "logreg", "--out", tmp_path)
    code, text = cli.text(*args)
    assert code == 0 and "median certified radius" in text
    doc = json.loads((tmp_path / "certify.json").read_text())
    assert doc["status"] == "complete" and doc["partitions"] == 12 and doc["certified_accuracy"][0]["budget"] == 0
    assert doc["certified_accuracy"][0]["accuracy"] == doc["clean_accuracy"] > 0.8
    header = (tmp_path / "certify.csv").read_text().splitlines()[0]
    assert header == ",".join([f"votes_{c}" for c in range(10)] + ["predicted", "label", "radius"])
    code, text = cli.text(*args)
    assert code == 0 and "resuming: 12 of 12 base models already trained" in " ".join(text.split())
    cli.fails("holds a certify study with other settings or data", *args[:-2], "--seed", "1", "--out", tmp_path)
    cli.fails(r"--percents needs --poison random or biased", *args[:-2], "--percents", "10", "--out", tmp_path / "x")
    cli.fails(r"partitions must be a whole number from 1 to 1437, got 5000", "certify", "--dataset", "digits",
              "--partitions", "5000", "--model", "logreg", "--out", tmp_path / "y")
    assert not (tmp_path / "x").exists()
    code, text = cli.text("report", "--out", tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert code == 0 and "1 certify studies" in text and "Certified: digits, 12 partitions" in html
    assert "certified accuracy vs poisoned training items" in html and "data:image/png;base64," in html


def test_poisoned_labels_shrink_the_certified_accuracy(tmp_path):
    digits = pl.load_dataset("digits")
    clean = pl.certify(digits, partitions=12, model="logreg")
    dirty = pl.certify(digits, partitions=12, model="logreg", kind="random", rate=0.4)
    assert dirty.doc["poison"]["n_poisoned"] == round(0.4 * 1437)
    assert dirty.doc["clean_accuracy"] < clean.doc["clean_accuracy"] and dirty.doc["median_radius"] < clean.doc["median_radius"]
    assert list(clean.frame().columns[-3:]) == ["predicted", "label", "radius"]


def test_a_stacked_partition_trains_as_it_would_alone(mnist):
    """The certificate needs each base model to depend on its own items and seed only: the same partition trained in
    a stack of three (whose members take 4, 4 and 3 steps an epoch: the shorter one is masked) or alone ends with the
    same weights, up to float rounding (grouped vs single convolutions; Adam amplifies it over many steps)."""
    import torch

    from poisonlab.training import fitting
    from poisonlab.training.loop import TrainConfig
    from poisonlab.training.stacked import fit_on_own_items, predict_each

    x, y = fitting.as_tensor(mnist.x_train), torch.from_numpy(mnist.y_train)
    parts = partitions(mnist.x_train, 20)
    members = [np.flatnonzero(parts == i) for i in (3, 4, 5)]
    assert [len(m) for m in members] == [108, 102, 92]
    config = TrainConfig(max_epochs=3, batch_size=32, precision="fp32")
    for which in (1, 2):  # a model with the most steps, and the one masked at the end of each epoch
        three = [fitting.build("smallcnn", (28, 28, 1), 10, 10 + i) for i in range(3)]
        fit_on_own_items(three, x, members, y, config, [10, 11, 12])
        alone = [fitting.build("smallcnn", (28, 28, 1), 10, 10 + which)]
        fit_on_own_items(alone, x, members[which : which + 1], y, config, [10 + which])
        for a, b in zip(three[which].state_dict().values(), alone[0].state_dict().values()):
            torch.testing.assert_close(a.float(), b.float(), atol=1e-3, rtol=1e-3)
        together, single = predict_each(three, fitting.as_tensor(mnist.x_test))[which], predict_each(alone, fitting.as_tensor(mnist.x_test))[0]
        assert (together == single).mean() > 0.99
