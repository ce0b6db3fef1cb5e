"""Detectors on real data: each beats chance on poisoned MNIST, cl is cleanlab's, runs repeat; the command end to end."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cleanlab.count import num_label_issues
from cleanlab.filter import find_label_issues

from poisonlab import datasets
from poisonlab.attacks import flips as poison
from poisonlab.defences import DETECTION_METHODS
from poisonlab.defences import detectors as detect
from poisonlab.defences.evaluate import score
from poisonlab.defences.folds import DetectorConfig, out_of_fold
from poisonlab.errors import PoisonlabError

@pytest.fixture(scope="module")
def mnist_poisoned(shared_data):
    data = datasets.load("mnist", shared_data, 2000, download=False)
    labels, mask = poison.random_flip(data.y_train, data.num_classes, 20, 0)
    return data, labels, mask


@pytest.fixture(scope="module")
def mnist_detections(mnist_poisoned):
    data, labels, _ = mnist_poisoned
    return {d.method: d for d in detect.run(list(DETECTION_METHODS), data.x_train, labels, data.num_classes, 0)}


@pytest.mark.parametrize("method", DETECTION_METHODS)
def test_each_method_beats_chance_on_real_mnist(mnist_poisoned, mnist_detections, method):
    result = score(mnist_detections[method], mnist_poisoned[2])
    assert result["roc_auc"] > 0.75 and result["precision"] > 2 * 0.20 and result["recall"] > 0.5, result


def test_cl_is_cleanlab_on_out_of_fold_probabilities(mnist_poisoned, mnist_detections):
    data, labels, _ = mnist_poisoned
    oof = out_of_fold(data.x_train, labels, data.num_classes, 0, DetectorConfig())
    cl, loss = mnist_detections["cl"], mnist_detections["loss"]
    np.testing.assert_array_equal(cl.flagged, find_label_issues(labels, oof.pred_probs))
    np.testing.assert_allclose(cl.scores, 1 - oof.pred_probs[np.arange(len(labels)), labels])
    np.testing.assert_array_equal(cl.suggested, oof.pred_probs.argmax(1))
    assert loss.flagged.sum() == num_label_issues(labels, oof.pred_probs)
    assert loss.scores[loss.flagged].min() >= loss.scores[~loss.flagged].max()


def test_torch_detector_repeats_per_seed_and_keeps_features_per_fold():
    data = datasets.load("digits")
    labels, _ = poison.random_flip(data.y_train, data.num_classes, 20, 0)
    config = DetectorConfig(model="smallcnn", epochs=1, members=2)
    first, again, other = (detect.run(list(detect.METHODS), data.x_train, labels, data.num_classes, seed, config)
                           for seed in (0, 0, 1))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.flagged, b.flagged)
    assert not np.array_equal(first[0].scores, other[0].scores)
    oof = out_of_fold(data.x_train, labels, data.num_classes, 0, config)
    assert oof.features.shape == (len(labels), 96) and np.bincount(oof.groups).tolist() == [288, 288, 287, 287, 287]


def test_command_cleans_and_retrains_on_real_digits(tmp_path, cli):
    assert cli.code("detect", "--dataset", "digits", "--dataset-size", "0", "--poison", "biased", "--percent", "40", "--method",
                "cl,knn,loss", "--then", "clean", "--model", "logreg", "--out", str(tmp_path), "--json", str(tmp_path / "copy.json")) == 0
    doc = json.loads((tmp_path / "detect.json").read_text())
    assert doc == json.loads((tmp_path / "copy.json").read_text())
    (row,) = doc["rows"]
    assert (row["kind"], row["n_poisoned"]) == ("biased", 575) and row["poisoned_accuracy"] < doc["clean_accuracy"]
    for result in row["methods"]:
        assert result["accuracy_after"] >= row["poisoned_accuracy"], result
    assert len((tmp_path / "detect.csv").read_text().splitlines()) == 1 + 3
    for name in ("detect.png", "recovery.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_command_relabels_targeted_flips(tmp_path, cli):
    assert cli.code("detect", "--dataset", "digits", "--dataset-size", "0", "--poison", "targeted", "--source", "7", "--target", "1",
                "--n", "10,40", "--method", "knn-pixels,ensemble", "--then", "relabel", "--model", "logreg",
                "--out", str(tmp_path)) == 0
    rows = json.loads((tmp_path / "detect.json").read_text())["rows"]
    assert [(r["kind"], r["setting"], r["n_poisoned"]) for r in rows] == [("targeted 7->1", "n=10", 10), ("targeted 7->1", "n=40", 40)]
    assert all(isinstance(m["accuracy_after"], float) for r in rows for m in r["methods"])


@pytest.mark.parametrize("args, message", [
    (["--method", "cl,magic"], "unknown detection method 'magic'"),
    (["--poison", "evil"], "unknown poisoning kind 'evil'"),
    (["--percent", "150"], "outside 0..100"),
    (["--then", "burn"], "unknown --then 'burn'"),
    (["--detector-model", "svc"], "unknown detector model 'svc'"),
    (["--labels", "cifar10n:worse"], "belong to CIFAR-10, not digits"),
    (["--labels", "cifar10n:best"], "unknown cifar10n label set 'best'"),
    (["--poison", "targeted"], "needs a class pair"),
])
def test_bad_input_is_one_line(tmp_path, cli, args, message):
    cli.fails(re.escape(message), "detect", "--dataset", "digits", "--dataset-size", "0", "--out", str(tmp_path), *args)


@pytest.mark.slow
def test_real_human_noise_of_cifar10n(shared_data, tmp_path, cli):
    labels = shared_data / "cifar_n" / "cifar10n_labels.npz"
    assert cli.code("detect", "--dataset", "cifar10", "--labels", "cifar10n:worse", "--method", "cl", "--cifar-n", str(labels),
                    "--data-dir", str(shared_data), "--no-download", "--out", str(tmp_path)) == 0 == 0
    (row,) = json.loads((tmp_path / "detect.json").read_text())["rows"]
    assert row["setting"] == "worse" and 0.35 < row["rate"] < 0.45 and row["changed_percent"] == pytest.approx(100 * row["rate"])
    assert row["methods"][0]["roc_auc"] > 0.6
    with np.load(labels) as npz:
        np.savez(tmp_path / "shifted.npz", **{k: np.roll(npz[k], 1) for k in npz.files})
    cli.fails("differ from the loaded CIFAR-10 training labels", "detect", "--dataset", "cifar10", "--labels", "cifar10n:worse",
              "--cifar-n", str(tmp_path / "shifted.npz"), "--data-dir", str(shared_data), "--no-download", "--out", str(tmp_path))


def test_default_size_is_clipped_to_a_smaller_dataset(tmp_path, cli):
    assert cli.code("detect", "--dataset", "digits", "--method", "cl", "--jobs", "2", "--out", tmp_path) == 0
    doc = json.loads((tmp_path / "detect.json").read_text())
    assert doc["n_train"] == 1437 and doc["dataset_size"] == 0 and doc["detector"]["jobs"] == 2


def test_auto_detector_model_is_a_cnn_on_images_and_logreg_on_rows():
    images, rows = np.zeros((4, 8, 8, 1), np.uint8), np.zeros((4, 16), np.float32)
    assert DetectorConfig().for_items(images).model == "smallcnn"
    assert DetectorConfig().for_items(rows).model == "logreg"
    assert DetectorConfig(model="logreg").for_items(images).model == "logreg"


def test_default_detect_records_the_cnn_it_used(cli, shared_data, tmp_path):
    assert cli.code("detect", "--dataset", "mnist", "--dataset-size", "600", "--poison", "random", "--percent", "20",
                    "--method", "cl", "--detector-epochs", "1", "--data-dir", shared_data, "--no-download",
                    "--out", tmp_path) == 0
    assert json.loads((tmp_path / "detect.json").read_text())["detector"]["model"] == "smallcnn"


def test_two_jobs_train_the_same_fold_and_ensemble_models_as_one(pool_threads):
    data = datasets.load("digits", dataset_size=300)
    labels, _ = poison.random_flip(data.y_train, data.num_classes, 20, 0)
    one, two = (detect.run(["cl", "loss", "knn", "ensemble"], data.x_train, labels, data.num_classes, 0,
                           DetectorConfig(model="smallcnn", epochs=1, folds=3, members=3, jobs=jobs)) for jobs in (1, 2))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(a.flagged, b.flagged)
        np.testing.assert_array_equal(a.suggested, b.suggested)
    with pytest.raises(PoisonlabError, match="jobs must be a whole number of at least 1, got 0"):
        DetectorConfig(jobs=0)


def test_detect_rows_store_rate_as_a_fraction_and_old_files_still_read():
    from poisonlab.reporting.detectplots import changed_percent

    assert changed_percent({"rate": 0.2, "changed_percent": 20.0}) == 20.0
    assert changed_percent({"rate": 20.0}) == 20.0  # detect.json of earlier releases: the percent under "rate"
    old = json.loads(next(Path(__file__).resolve().parents[1].glob("docs/detect_cifar10_50000/detect.json")).read_text())
    assert all(changed_percent(row) > 1 for row in old["rows"])  # percents, read as percents


def test_then_parses_a_cleaning_action_and_a_remedy():
    from poisonlab.studies.detection import check_then

    assert check_then("clean+gce") == ("clean", "gce") and check_then("relabel") == ("relabel", "none")
    for bad, words in (("none+gce", "retrains nothing"), ("clean+focal", "unknown defence"), ("purge", "unknown action")):
        with pytest.raises(PoisonlabError, match=words):
            check_then(bad)


def test_cleaning_then_robust_training_beats_the_poisoned_model_on_real_mnist(shared_data, tmp_path, cli):
    code = cli.code("detect", "--dataset", "mnist", "--dataset-size", "2000", "--data-dir", shared_data,
                    "--no-download", "--percents", "40", "--method", "loss", "--then", "clean+gce", "--epochs", "20",
                    "--out", tmp_path)
    assert code == 0
    doc = json.loads((tmp_path / "detect.json").read_text())
    row = doc["rows"][0]
    assert doc["then"] == "clean+gce" and row["methods"][0]["accuracy_after"] >= row["poisoned_accuracy"] + 0.01, row
