"""The guarantee beside the attacks on real MNIST: the accuracy an aggregate keeps under each attack of B flipped
labels is never below its certified accuracy at B, only the base models a flipped item reaches train again, and the
study resumes and reports."""

import json

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

import poisonlab as pl
from poisonlab import datasets
from poisonlab.defences.certify import partitions
from poisonlab.studies.guarantee import attacked


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=2000, download=False, test_size=500)


@pytest.fixture(scope="module")
def study(mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("guarantee")
    result = pl.certify(mnist, partitions=8, model=KNeighborsClassifier(1), method="roe", attack_budgets=[2, 40, 400],
                        out=out)
    return out, result


def test_the_aggregate_keeps_at_least_its_certified_accuracy_under_every_attack(study, mnist):
    out, result = study
    doc = result.attacks
    assert [(r["attack"], r["budget"]) for r in doc["rows"]] == [
        (kind, b) for kind in ("random", "biased", "confident") for b in (2, 40, 400)]
    for row in doc["rows"]:
        assert row["flipped"] == row["budget"] and 1 <= row["models_retrained"] <= min(8, row["budget"])
        for name in ("dpa", "roe"):
            bound = row["certified_accuracy"][name]
            assert bound == np.mean((result.predicted == mnist.y_test) & (result.radius >= row["budget"])) \
                if name == "roe" else bound >= 0
            assert row["aggregate_accuracy"][name] >= bound  # the certificate is a lower bound under ANY attack
    assert any(r["certified_accuracy"]["dpa"] > 0.5 for r in doc["rows"])
    assert doc["certified"]["dpa"]["clean_accuracy"] == result.doc["methods"]["dpa"]["clean_accuracy"] > 0.75
    worst = min(r["ordinary_accuracy"] for r in doc["rows"] if r["budget"] == 400)
    assert worst < doc["ordinary_clean_accuracy"]  # 20 % flipped labels do hurt one ordinary model
    assert (out / "guarantee.png").stat().st_size > 10_000
    assert json.loads((out / "attacks.json").read_text()) == doc


def test_only_the_models_of_flipped_items_train_again_and_a_rerun_trains_nothing(study, mnist):
    out, result = study
    labels, mask = attacked(mnist.y_train, 10, "random", 40, 0, None)
    assert mask.sum() == 40 and (labels[mask] != mnist.y_train[mask]).all()
    reached = np.unique(partitions(mnist.x_train[mask], 8))
    assert sorted(int(p.stem) for p in (out / "attacks" / "random-40" / "partitions").glob("*.npy")) == reached.tolist()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "attacks").rglob("*.npy")}
    again = pl.certify(mnist, partitions=8, model=KNeighborsClassifier(1), method="roe", attack_budgets=[2, 40, 400],
                       out=out)
    assert again.attacks == result.attacks
    assert {p: p.stat().st_mtime_ns for p in (out / "attacks").rglob("*.npy")} == stamps


def test_confident_flips_take_the_items_a_clean_model_is_surest_of(mnist):
    probs = np.full((len(mnist.y_train), 10), 0.01)
    probs[np.arange(len(probs)), mnist.y_train] = np.linspace(0.2, 0.9, len(probs))
    labels, mask = attacked(mnist.y_train, 10, "confident", 25, 0, probs)
    assert np.flatnonzero(mask).tolist() == list(range(len(probs) - 25, len(probs)))


def test_certify_command_attacks_and_reports(tmp_path, cli):
    args = ("certify", "--dataset", "digits", "--partitions", "6", "--model", "logreg", "--out", tmp_path)
    cli.fails(r"--attack-budgets must be whole numbers of poisoned items above 0 such as 50,100,200, got '5,x'",
              *args, "--attack-budgets", "5,x")
    cli.fails(r"unknown attack 'foo'; choose one of random, biased, confident", *args, "--attack-budgets", "5",
              "--attacks", "foo")
    cli.fails(r"--attack-budgets attacks the clean labels; leave out --poison", *args, "--attack-budgets", "5",
              "--poison", "random", "--percents", "10")
    code, text = cli.text(*args, "--attack-budgets", "5,60", "--attacks", "biased")
    assert code == 0 and "biased flips of 60 items: aggregate DPA" in " ".join(text.split())
    code, text = cli.text("report", "--out", tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert code == 0 and "The guarantee beside the attacks" in html and "one ordinary model" in html
