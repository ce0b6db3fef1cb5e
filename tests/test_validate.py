"""validate: real MNIST passes its schema, corrupted images are flagged with their reasons, a wrong shape, label or
class name fails the schema; the command exits 0 (schema OK), 1 (schema failed) or 2 (bad input)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from poisonlab import datasets
from poisonlab.defences.validate import KNOWN, check_schema, known_schema, observed_schema, parse_schema, validate
from poisonlab.errors import PoisonlabError

WHITE, INVERTED, NOISE = 10, 20, 30


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, 2000, download=False)


@pytest.fixture(scope="module")
def corrupted(mnist):
    x = mnist.x_train.copy()
    x[WHITE] = 255
    x[INVERTED] = 255 - x[INVERTED]
    x[NOISE] = np.random.default_rng(0).integers(0, 256, x[NOISE].shape, dtype=np.uint8)
    return replace(mnist, x_train=x)


def failed(checks: list[dict]) -> dict[str, str]:
    return {c["check"]: c["detail"] for c in checks if c["fatal"] and not c["ok"]}


def test_real_mnist_matches_its_schema_and_its_own_observed_schema(mnist):
    result = validate(mnist, known_schema("mnist"), 6.0, 0)
    assert result["schema_ok"] and all(c["ok"] for c in result["checks"]), result["checks"]
    assert observed_schema(mnist) == KNOWN["mnist"]
    assert not {WHITE, INVERTED, NOISE} & {item["index"] for item in result["outliers"]}


def test_corrupted_images_are_flagged_first_with_their_reasons(corrupted):
    result = validate(corrupted, known_schema("mnist"), 6.0, 0)
    assert result["schema_ok"]
    top = {item["index"]: {r["statistic"]: r for r in item["reasons"]} for item in result["outliers"][:3]}
    assert set(top) == {WHITE, INVERTED, NOISE}, result["outliers"][:5]
    assert top[WHITE]["saturated"]["value"] == 1.0 and top[WHITE]["mean"]["z"] > 6
    assert top[INVERTED]["dark"]["z"] < -6 and top[INVERTED]["mean"]["z"] > 6
    assert top[NOISE]["roughness"]["z"] > 6 and "saturated" not in top[NOISE]
    assert result["n_flagged"] < 0.01 * len(corrupted.y_train)
    assert all(r["statistic"] in (*result["statistics"], "isolation") for item in result["outliers"] for r in item["reasons"])


def test_wrong_shape_and_out_of_range_label_fail_the_schema(mnist):
    labels = mnist.y_train.copy()
    labels[5] = 10
    padded = np.pad(mnist.x_train, ((0, 0), (1, 1), (1, 1), (0, 0)))
    bad = failed(check_schema(known_schema("mnist"), replace(mnist, x_train=padded, y_train=labels)))
    assert bad == {"train image shape": "2000 images of 30x30x1, expected 28x28x1",
                   "train labels": "1 label outside 0..9 (first: index 5, label 10)",
                   "train/test consistency": "train 30x30x1 uint8, test 28x28x1 uint8"}


def test_wrong_class_names_and_value_range_fail(mnist):
    renamed = replace(mnist, classes=[*"012", "three", *"456789"])
    assert "class 3 is 'three', expected '3'" in failed(check_schema(known_schema("mnist"), renamed))["class names"]
    narrow = replace(KNOWN["mnist"], value_range=(0, 16))
    assert failed(check_schema(narrow, mnist))["train value range"] == "pixels 0..255, outside 0..16"


def test_missing_class_is_a_warning_not_a_failure(mnist):
    no_sevens = mnist.y_train != 7
    checks = check_schema(known_schema("mnist"), replace(mnist, x_train=mnist.x_train[no_sevens], y_train=mnist.y_train[no_sevens]))
    assert not failed(checks)
    (coverage,) = [c for c in checks if c["check"] == "class coverage"]
    assert not coverage["ok"] and coverage["detail"] == "no train items of class 7"


@pytest.mark.parametrize("doc, message", [
    ({"shape": [28, 28]}, "needs the fields"),
    ({"shape": [28, -1, 1], "dtype": "uint8", "value_range": [0, 255], "classes": ["a"]}, "'shape' must be"),
    ({"shape": [28, 28, 1], "dtype": "pixels", "value_range": [0, 255], "classes": ["a"]}, "'dtype' 'pixels'"),
    ({"shape": [28, 28, 1], "dtype": "uint8", "value_range": [255, 0], "classes": ["a"]}, "'value_range' must be"),
    ({"shape": [28, 28, 1], "dtype": "uint8", "value_range": [0, 255], "classes": []}, "'classes' must be"),
])
def test_bad_schema_files_are_one_line(doc, message):
    with pytest.raises(PoisonlabError, match=message) as excinfo:
        parse_schema(doc, "s.json")
    assert "\n" not in str(excinfo.value) and "write it like" in str(excinfo.value)


def test_schemas_round_trip_and_unknown_names_need_a_file():
    for schema in KNOWN.values():
        assert parse_schema(json.loads(json.dumps(schema.to_dict())), "x") == schema
    with pytest.raises(PoisonlabError, match="no built-in schema for imagefolder:/x; give an expected schema file"):
        known_schema("imagefolder:/x")


def test_cli_exit_codes_json_and_written_schema(tmp_path, cli):
    code, out = cli.text("validate", "--dataset", "digits", "--json", tmp_path / "v.json",
                     "--write-schema", tmp_path / "digits.schema.json")
    doc = json.loads((tmp_path / "v.json").read_text())
    assert code == 0 and "schema OK" in out and doc["schema_ok"] and doc["schema_source"] == "built-in digits"
    assert json.loads((tmp_path / "digits.schema.json").read_text())["shape"] == [8, 8, 1]
    assert cli("validate", "--dataset", "digits", "--schema", tmp_path / "digits.schema.json")[0] == 0
    (tmp_path / "wrong.json").write_text(json.dumps(KNOWN["mnist"].to_dict()))
    code, out = cli.text("validate", "--dataset", "digits", "--schema", tmp_path / "wrong.json")
    assert code == 1 and "SCHEMA FAILED: train image shape, test image shape" in out and "expected 28x28x1" in out
    code, out = cli.text("validate", "--dataset", "digits", "--schema", tmp_path / "missing.json")
    assert code == 2 and "error: cannot read schema" in out
    code, out = cli.text("validate")
    assert code == 2 and "pass --dataset NAME or --run RUN" in out


def coverage(doc: dict) -> str:
    return next(c["detail"] for c in doc["checks"] if c["check"] == "class coverage")


def test_cli_validates_the_poisoned_labels_of_a_run(tmp_path, cli):
    assert cli("train", "--dataset", "digits", "--percents", "30", "--model", "logreg", "--out", tmp_path)[0] == 0
    (run_file,) = tmp_path.glob("models/**/run.json")
    run = json.loads(run_file.read_text())
    labels = datasets.load("digits").y_train.copy()
    labels[run["poison"]["indices"]] = run["poison"]["new_labels"]
    counts = np.bincount(labels)
    code, out = cli.text("validate", "--run", run_file.parent, "--threshold", "3", "--top", "2",
                     "--json", tmp_path / "v.json")
    doc = json.loads((tmp_path / "v.json").read_text())
    assert code == 0 and doc["data"] == f"run {run_file.parent}" and doc["n_train"] == 1437
    assert coverage(doc) == f"every class in both splits; {counts.min()}..{counts.max()} training items per class"
    assert doc["n_flagged"] > 2 and f"and {doc['n_flagged'] - 2} more" in out
    cli("validate", "--dataset", "digits", "--json", tmp_path / "clean.json")
    assert coverage(json.loads((tmp_path / "clean.json").read_text())) != coverage(doc)
