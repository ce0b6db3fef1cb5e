"""Targeted flips: exact bookkeeping on real MNIST labels, a real SVC and a real CNN flip, one-line bad input."""

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

import poisonlab as pl
from poisonlab import datasets
from poisonlab.reporting import flips as flipreport
from poisonlab.attacks import flips as poison
from poisonlab.studies import flip as targeted
from poisonlab.errors import PoisonlabError
from poisonlab.studies import flipstudy as flipexperiment
from poisonlab.studies.flip import FlipSpec
from poisonlab.training.loop import TrainConfig

RUN_KEYS = {"overall_accuracy", "per_class_accuracy", "correct_by_predicted", "incorrect_by_predicted", "confusion",
            "changed_indices"}


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()


@pytest.fixture(scope="module")
def mnist_2000(shared_data):
    return targeted.load_data("mnist", shared_data, 2000, 1000, download=False)


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", dataset_size=600)


@pytest.mark.parametrize("n", [0, 1, 10, 30, 100])
def test_bookkeeping_is_exact_on_real_mnist_labels(mnist_2000, n):
    labels = mnist_2000.y_train
    new, mask = poison.targeted_flip(labels, 1, 2, n)
    book = targeted.bookkeeping(labels, new, 1, 10)
    ones = np.flatnonzero(labels == 1)
    assert book["changed_indices"] == ones[:n].tolist() == np.flatnonzero(mask).tolist()
    change = np.asarray(book["counts_after"]) - np.asarray(book["counts_before"])
    assert change[1] == -n and change[2] == n and np.count_nonzero(change) == (2 if n else 0)
    assert book["counts_before"] == np.bincount(labels, minlength=10).tolist()
    assert book["n_changed"] == n and book["corruption_rate"] == n / 2000 and book["source_share"] == n / len(ones)


def test_random_selection_is_seeded_and_stays_in_the_source_class(mnist_2000):
    labels = mnist_2000.y_train
    books = [targeted.bookkeeping(labels, poison.targeted_flip(labels, 1, 2, 30, "random", seed)[0], 1, 10)
             for seed in (0, 0, 1)]
    assert books[0] == books[1] and books[0]["changed_indices"] != books[2]["changed_indices"]
    assert all(labels[i] == 1 for i in books[2]["changed_indices"]) and books[2]["n_changed"] == 30


def test_classes_resolve_by_name_or_number():
    classes = ["airplane", "automobile", "bird", "cat"]
    assert datasets.resolve_class("Cat", classes) == 3 and datasets.resolve_class("2", classes) == 2
    with pytest.raises(PoisonlabError, match="unknown class 'kat'.*airplane, automobile, bird, cat"):
        datasets.resolve_class("kat", classes)
    with pytest.raises(PoisonlabError, match="unknown class '4'"):
        datasets.resolve_class("4", classes)


def test_real_svc_flip_on_mnist_end_to_end(cli, shared_data, tmp_path):
    args = ["flip", "--dataset", "mnist", "--source", "1", "--target", "2", "--n", "100", "--model", "svc",
            "--train-size", "2000", "--test-size", "1000", "--data-dir", str(shared_data), "--no-download",
            "--out", str(tmp_path / "out"), "--json", str(tmp_path / "flip.json")]
    code, out, _ = cli(*args)
    assert code == 0 and str(tmp_path / "flip.json") in out
    doc = json.loads((tmp_path / "flip.json").read_text())
    assert doc["n"] == [0, 100] and doc["n_train"] == 2000 and doc["n_test"] == 1000
    clean, poisoned = doc["runs"]
    for run in (clean, poisoned):
        assert RUN_KEYS <= set(run)
        per_class = ("per_class_accuracy", "correct_by_predicted", "incorrect_by_predicted", "confusion")
        assert all(len(run[k]) == 10 for k in per_class)
        predictions = np.asarray(run["confusion"]).sum(axis=0)
        assert (np.add(run["correct_by_predicted"], run["incorrect_by_predicted"]) == predictions).all()
        assert predictions.sum() == 1000 and run["overall_accuracy"] == sum(run["correct_by_predicted"]) / 1000
    assert clean["changed_indices"] == [] and len(poisoned["changed_indices"]) == 100
    assert clean["confusion"] != poisoned["confusion"]
    assert poisoned["confusion"][1][2] > clean["confusion"][1][2]
    for name in ("class_counts", "flipped_images", "accuracy", "source_target", "confusion"):
        assert_png(tmp_path / "out" / "figures" / f"{name}.png")
    assert "| 100 |" in (tmp_path / "out" / "report.md").read_text()
    code, _, err = cli(*args)
    assert code == 0 and "0 runs trained, 2 already done" in err


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two spin-waiting threads make this tiny model many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_real_cnn_flip_same_seed_gives_the_same_clean_model(digits, one_thread):
    spec = FlipSpec(dataset="digits", source=3, target=8, n=0, model="smallcnn", train_size=600,
                    train=TrainConfig(max_epochs=2, batch_size=64))
    first, model_a = targeted.run(spec, digits)
    again, model_b = targeted.run(spec, digits)
    poisoned, model_c = targeted.run(replace(spec, n=30), digits)
    state_a, state_b, state_c = model_a.state_dict(), model_b.state_dict(), model_c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)
    assert first["metrics"] == again["metrics"] and len(first["history"]) == 2
    assert first["metrics"]["overall_accuracy"] > 0.3
    assert poisoned["flip"]["changed_indices"] == np.flatnonzero(digits.y_train == 3)[:30].tolist()


@pytest.mark.parametrize("extra, message", [
    (["--source", "kat"], "unknown class 'kat'"),
    (["--source", "3", "--n", "500"], "cannot flip 500 items of '3': the training set has only 146"),
    (["--source", "3", "--target", "3"], "source and target are both '3'"),
    (["--model", "gpt"], "unknown model 'gpt'"),
    (["--select", "best"], "unknown selection 'best'"),
    (["--n", "5,x"], "'x' is not a number"),
])
def test_bad_input_is_one_line(cli, tmp_path, extra, message):
    base = {"--dataset": "digits", "--source": "3", "--target": "8", "--n": "5", "--model": "svc", "--out": str(tmp_path)}
    base.update(dict(zip(extra[::2], extra[1::2])))
    code, _, err = cli("flip", *[x for pair in base.items() for x in pair])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err


def test_budget_bad_input_is_one_line(cli, tmp_path):
    code, _, err = cli("budget", "--dataset", "digits", "--source", "3", "--target", "3", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "both '3'" in err


def test_several_seeds_give_spreads_and_a_short_summary(tmp_path):
    base, data = flipexperiment.prepare("digits", "3", "8", [20], model="svc")
    buffer = io.StringIO()
    result = flipexperiment.run_flip(base, data, [20], [0, 1], tmp_path, Console(file=buffer, width=120))
    flipreport.print_summary(result["doc"], Console(file=buffer, width=120))
    summary = result["doc"]["summary"]
    assert [s["n"] for s in summary] == [0, 20] and summary[1]["overall_accuracy"]["count"] == 2
    assert summary[0]["delta_overall_accuracy"]["mean"] == 0.0
    assert len(buffer.getvalue().splitlines()) < 40


def test_two_jobs_give_the_same_flip_study_as_one_and_resume(digits, tmp_path, pool_threads):
    docs = {jobs: pl.flip(digits, source=3, target=8, n=(5,), seeds=(0, 1), model="simplecnn", epochs=1, jobs=jobs,
                          out=tmp_path / str(jobs)).doc for jobs in (1, 2)}
    runs = {jobs: [{k: v for k, v in r.items() if k != "train_seconds"} for r in doc["runs"]] for jobs, doc in docs.items()}
    assert len(runs[2]) == 4 and runs[1] == runs[2] and docs[1]["summary"] == docs[2]["summary"]
    assert json.loads((tmp_path / "2" / "flip.json").read_text())["summary"] == docs[2]["summary"]
    base, _ = flipexperiment.prepare(digits, "3", "8", [5], model="simplecnn",
                                     train=replace(targeted.FLIP_TRAINING, max_epochs=1))
    again = flipexperiment.run_flip(base, digits, [5], [0, 1], tmp_path / "2", Console(file=io.StringIO()), jobs=2)
    assert (again["trained"], again["reused"]) == (0, 4)
