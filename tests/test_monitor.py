"""Monitors: a single cat->dog flip is invisible to the chi-square test on real CIFAR-10 labels, a large shift is not;
accuracy alerts name the classes that dropped in real poisoned runs."""

import json

import numpy as np
import pytest

from poisonlab import datasets, store
from poisonlab.defences import monitor
from poisonlab.studies.run import RunSpec
from poisonlab.studies.run import run as sweep_run
from poisonlab.studies.flip import FlipSpec
from poisonlab.studies.flip import run as flip_run

CAT, DOG = 3, 5



@pytest.fixture(scope="module")
def cifar_counts(shared_data) -> np.ndarray:
    """Class counts of the real CIFAR-10 training labels (official order, from CIFAR-10N's clean_label)."""
    labels = np.load(shared_data / "cifar_n" / "cifar10n_labels.npz")["clean_label"]
    return np.bincount(labels, minlength=10)


def flipped(counts: np.ndarray, n: int) -> np.ndarray:
    moved = counts.copy()
    moved[CAT] -= n
    moved[DOG] += n
    return moved


def test_one_cat_dog_flip_is_invisible_and_the_threshold_is_exact(cifar_counts):
    one = monitor.compare_counts(flipped(cifar_counts, 1), cifar_counts)
    assert one["p_value"] > 0.9999 and not one["flagged"] and one["moved"] == []
    n = monitor.minimal_flip(cifar_counts, CAT, DOG)
    below, at = monitor.flip_p_value(cifar_counts, CAT, DOG, n - 1), monitor.flip_p_value(cifar_counts, CAT, DOG, n)
    print(f"CIFAR-10 cat->dog: 1 flip p={one['p_value']:.6f}; flagged from N={n} (p={at:.4f}; N-1: p={below:.4f})")
    assert at < 0.05 <= below and n == 206
    assert monitor.compare_counts(flipped(cifar_counts, n), cifar_counts)["flagged"]


def test_large_shift_is_flagged_with_the_classes_that_moved(cifar_counts):
    result = monitor.compare_counts(flipped(cifar_counts, 500), cifar_counts)
    assert result["flagged"] and result["p_value"] < 1e-10 and result["moved"] == [CAT, DOG]
    assert result["delta"][CAT] == -500 and result["delta"][DOG] == 500


def test_detectable_flip_grows_like_the_square_root_of_the_set(cifar_counts):
    sizes = [monitor.minimal_flip(cifar_counts * f, CAT, DOG) for f in (0.1, 1, 10)]
    assert sizes[0] < sizes[1] < sizes[2] and 2.5 < sizes[2] / sizes[1] < 3.7


def test_counts_cli_against_a_manifest_and_a_counts_file(tmp_path, cli):
    data = datasets.load("digits")
    record, _ = sweep_run(RunSpec(dataset="digits", kind="biased", percent=20, model="svc"), data)
    store.write_json(tmp_path / "biased" / store.RUN_FILE, record)
    manifest = tmp_path / "digits.manifest.json"
    assert cli.code("manifest", "build", "--dataset", "digits", "--out", manifest) == 0
    assert cli.code("monitor", "counts", "--baseline", manifest) == 0
    assert "no significant shift" in cli.out
    assert cli.code("monitor", "counts", "--baseline", manifest, "--run", tmp_path / "biased") == 1
    out = cli.out
    assert "SHIFTED" in out and "MOVED" in out and "smallest" in out
    counts_file = tmp_path / "counts.json"
    counts_file.write_text(json.dumps({"classes": data.classes, "counts": [100] * 10}))
    assert cli.code("monitor", "counts", "--baseline", counts_file, "--dataset", "digits", "--source", "3", "--target", "8") == 0
    counts_file.write_text(json.dumps({"counts": [1, 2]}))
    cli.fails("cannot compare 10 class counts", "monitor", "counts", "--baseline", counts_file, "--dataset", "digits")


def test_holm():
    assert monitor.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_accuracy_alert_names_only_the_class_that_dropped():
    rng = np.random.default_rng(0)
    base = np.full((10, 10), 20) + np.diag(np.full(10, 820))  # 1000 test items a class, 82% right
    candidate = base.copy()
    candidate[CAT, CAT], candidate[CAT, DOG] = 560, 280  # cat->dog flip: cats now read as dogs
    candidate += np.diag(rng.integers(-10, 10, 10)) * (np.arange(10) != CAT)  # noise elsewhere
    result = monitor.compare_accuracy(base, candidate)
    assert result["dropped"] == [CAT] and result["rose"] == [] and result["classes"][CAT]["p_holm"] < 1e-10
    assert monitor.compare_accuracy(base, base)["dropped"] == []


def test_accuracy_cli_on_real_poisoned_runs(tmp_path, cli):
    data = datasets.load("digits")
    runs = {
        "clean": sweep_run(RunSpec(dataset="digits", model="svc"), data)[0],
        "biased60": sweep_run(RunSpec(dataset="digits", kind="biased", percent=60, model="svc"), data)[0],
        "flip0": flip_run(FlipSpec(dataset="digits", source=3, target=8, n=0, model="svc"), data)[0],
        "flip100": flip_run(FlipSpec(dataset="digits", source=3, target=8, n=100, model="svc"), data)[0],
    }
    for name, record in runs.items():
        store.write_json(tmp_path / name / store.RUN_FILE, record)
    assert cli.code("monitor", "accuracy", "--baseline", tmp_path / "clean", "--candidate", tmp_path / "clean") == 0
    assert "no significant accuracy drop" in cli.out
    assert cli.code("monitor", "accuracy", "--baseline", tmp_path / "clean", "--candidate", tmp_path / "biased60") == 1
    alert = [line for line in cli.out.splitlines() if line.startswith("ALERT")]
    assert len(alert) == 1 and len(alert[0].split(":")[-1].split(",")) >= 5
    assert cli.code("monitor", "accuracy", "--baseline", tmp_path / "flip0", "--candidate", tmp_path / "flip100") == 1
    alert = [line for line in cli.out.splitlines() if line.startswith("ALERT")]
    assert alert[0].endswith(": 3")
    cli.fails("not a finished poisonlab run", "monitor", "accuracy", "--baseline", tmp_path / "missing", "--candidate", tmp_path / "clean")


def test_accuracy_refuses_runs_of_different_datasets(tmp_path, cli, shared_data):
    """digits and MNIST both name their classes 0..9: the dataset itself must match, not only the class names."""
    digits, mnist = datasets.load("digits"), datasets.load("mnist", shared_data, dataset_size=500)
    store.write_json(tmp_path / "digits" / store.RUN_FILE, sweep_run(RunSpec(dataset="digits", model="svc"), digits)[0])
    store.write_json(tmp_path / "mnist" / store.RUN_FILE,
                     sweep_run(RunSpec(dataset="mnist", dataset_size=500, model="svc"), mnist)[0])
    cli.fails("the baseline ran on digits and the candidate on mnist; compare two runs of the same dataset",
              "monitor", "accuracy", "--baseline", tmp_path / "digits", "--candidate", tmp_path / "mnist")
