"""Integrity manifests on real MNIST and digits: every kind of change is listed exactly, forged signatures fail."""

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from poisonlab import datasets, store
from poisonlab.defences import integrity
from poisonlab.studies.run import RunSpec
from poisonlab.studies.run import run as sweep_run
from poisonlab.studies.flip import FlipSpec
from poisonlab.studies.flip import run as flip_run

MNIST_SIZE = 2000



@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, MNIST_SIZE, download=False)


@pytest.fixture(scope="module")
def manifest(mnist):
    return integrity.build(mnist, "mnist", MNIST_SIZE)


def test_unchanged_data_match(mnist, manifest):
    result = integrity.diff(manifest, mnist)
    assert result["root"] == manifest["root"] and result["header"] == [] and integrity.self_check(manifest) == []
    assert not any(integrity.summary(result).values())
    assert manifest["splits"]["train"]["class_counts"] == np.bincount(mnist.y_train, minlength=10).tolist()


def test_one_changed_label_pixel_added_and_removed_item_are_listed_exactly(mnist, manifest):
    y = mnist.y_train.copy()
    y[5] = (y[5] + 1) % 10
    x = mnist.x_train.copy()
    x[7, 3, 4, 0] ^= 1
    tampered = replace(mnist, x_train=np.concatenate([x, mnist.x_test[:1]]), y_train=np.append(y, mnist.y_test[0]),
                       x_test=mnist.x_test[:-1], y_test=mnist.y_test[:-1])
    result = integrity.diff(manifest, tampered)
    assert result["changes"] == {
        "labels": [{"split": "train", "index": 5, "old": int(mnist.y_train[5]), "new": int(y[5])}],
        "pixels": [{"split": "train", "index": 7}],
        "added": [{"split": "train", "index": MNIST_SIZE, "label": int(mnist.y_test[0])}],
        "removed": [{"split": "test", "index": 9999, "label": int(mnist.y_test[-1])}],
    }
    assert result["root"] != manifest["root"]


def test_any_single_change_changes_the_root(mnist, manifest):
    one_label = mnist.y_train.copy()
    one_label[-1] = (one_label[-1] + 1) % 10
    one_pixel = mnist.x_test.copy()
    one_pixel[0, 0, 0, 0] += 1
    for data in (replace(mnist, y_train=one_label), replace(mnist, x_test=one_pixel),
                 replace(mnist, x_train=mnist.x_train[:-1], y_train=mnist.y_train[:-1])):
        assert integrity.root_of(integrity.dataset_items(data)) != manifest["root"]


def test_merkle_tree_shape():
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(integrity.NODE + left + right).digest()

    assert integrity.merkle_root([a, b, c]) == node(node(a, b), node(c, c))
    assert integrity.merkle_root([a, b]) != integrity.merkle_root([b, a])


def test_edited_manifest_fails_its_self_check(manifest):
    edited = json.loads(json.dumps(manifest))
    edited["items"]["train"]["labels"][3] = (edited["items"]["train"]["labels"][3] + 1) % 10
    assert integrity.self_check(edited)
    edited = json.loads(json.dumps(manifest))
    edited["items"]["test"]["pixel_sha256"][0] = "00" * 32
    assert integrity.self_check(edited) == ["stored items do not hash to the recorded root"]


def test_signatures_catch_forgery(manifest):
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = integrity.sign(manifest, key)
    assert integrity.check_signature(signed, key.public_key())[0]
    assert integrity.check_signature(signed, None)[0]
    forged = json.loads(json.dumps(signed))
    value = forged["signature"]["value"]
    forged["signature"]["value"] = ("0" if value[0] != "0" else "1") + value[1:]
    assert integrity.check_signature(forged, None) == (False, "BAD (forged, altered, or signed with another key)")
    assert not integrity.check_signature({**signed, "root": "ab" * 32}, key.public_key())[0]
    resigned = integrity.sign(manifest, other)  # an attacker's own key passes only the embedded-key check
    assert integrity.check_signature(resigned, None)[0] and not integrity.check_signature(resigned, key.public_key())[0]
    assert not integrity.check_signature(manifest, key.public_key())[0]


def test_full_mnist_is_hashed_item_by_item(shared_data):
    data = datasets.load("mnist", shared_data, download=False)
    built = integrity.build(data, "mnist", 0)
    assert (built["splits"]["train"]["count"], built["splits"]["test"]["count"]) == (60000, 10000)
    assert integrity.build(data, "mnist", 0)["root"] == built["root"]


def test_cli_build_sign_verify_and_forged_signature(tmp_path, shared_data, cli):
    common = ("--data-dir", shared_data, "--no-download")
    path = tmp_path / "mnist.manifest.json"
    assert cli.code("manifest", "keygen", "--out", tmp_path / "key") == 0
    assert cli.code("manifest", "build", "--dataset", "mnist", "--dataset-size", MNIST_SIZE, "--out", path,
               "--sign-key", tmp_path / "key.pem", *common) == 0
    assert cli.code("manifest", "verify", path, "--public-key", tmp_path / "key.pub.pem", *common) == 0
    assert "VERIFIED" in cli.out
    assert cli.code("manifest", "verify", path, "--dataset-size", 500, *common) == 0  # a run on the first 500
    assert "VERIFIED" in cli.out and "subset: the first 500 training items" in " ".join(cli.out.split())
    doc = json.loads(path.read_text())
    doc["signature"]["value"] = doc["signature"]["value"][::-1]
    path.write_text(json.dumps(doc))
    assert cli.code("manifest", "verify", path, *common) == 1
    assert "signature: BAD" in cli.out
    assert cli.code("manifest", "keygen", "--out", tmp_path / "other") == 0
    integrity.write(path, integrity.sign(integrity.read(path), integrity.load_key(tmp_path / "other.pem", True)))
    assert cli.code("manifest", "verify", path, "--public-key", tmp_path / "key.pub.pem", *common) == 1
    # without --public-key the audit log still knows the build's signer: another key is caught, so is a dropped one
    assert cli.code("manifest", "verify", path, *common) == 1
    assert "AUDIT LOG: this manifest is signed with another key" in " ".join(cli.out.split())
    integrity.write(path, {k: v for k, v in integrity.read(path).items() if k != "signature"})
    assert cli.code("manifest", "verify", path, *common) == 1
    assert "was signed but this manifest is not (its signature was dropped)" in " ".join(cli.out.split())


def test_a_subset_is_compared_item_by_item_not_as_removals(mnist, manifest):
    first = replace(mnist, x_train=mnist.x_train[:800], y_train=mnist.y_train[:800])
    as_removals = integrity.diff(manifest, first)
    assert len(as_removals["changes"]["removed"]) == MNIST_SIZE - 800 and not integrity.matches(manifest, as_removals)
    result = integrity.diff(manifest, first, subset=True)
    assert result["outside"] == MNIST_SIZE - 800 and integrity.matches(manifest, result, subset=True)
    labels = first.y_train.copy()
    labels[5] = (labels[5] + 1) % 10
    changed = integrity.diff(manifest, replace(first, y_train=labels), subset=True)
    assert changed["changes"]["labels"] == [{"split": "train", "index": 5, "old": int(first.y_train[5]),
                                             "new": int(labels[5])}]
    assert not integrity.matches(manifest, changed, subset=True)
    shorter_test = replace(first, x_test=mnist.x_test[:10], y_test=mnist.y_test[:10])
    assert not integrity.matches(manifest, integrity.diff(manifest, shorter_test, subset=True), subset=True)


def save(run_dir, record) -> None:
    store.write_json(run_dir / store.RUN_FILE, record)


def test_cli_verify_run_lists_exactly_the_poisoned_items(tmp_path, cli):
    data = datasets.load("digits")
    swept, _ = sweep_run(RunSpec(dataset="digits", kind="random", percent=5, model="svc"), data)
    flipped, _ = flip_run(FlipSpec(dataset="digits", source=3, target=8, n=20, model="svc"), data)
    save(tmp_path / "swept", swept)
    save(tmp_path / "flipped", flipped)
    path = tmp_path / "digits.manifest.json"
    assert cli.code("manifest", "build", "--dataset", "digits", "--out", path) == 0
    assert cli.code("manifest", "verify", path) == 0
    assert cli.code("manifest", "verify", path, "--run", tmp_path / "swept", "--json", tmp_path / "swept.json") == 1
    report = json.loads((tmp_path / "swept.json").read_text())
    assert [c["index"] for c in report["changes"]["labels"]] == swept["poison"]["indices"]
    assert [c["new"] for c in report["changes"]["labels"]] == swept["poison"]["new_labels"]
    assert not report["changes"]["pixels"] and not report["unchanged"]
    assert cli.code("manifest", "verify", path, "--run", tmp_path / "flipped", "--limit", 0) == 1
    listed = [line for line in cli.out.splitlines() if line.startswith("label")]
    assert listed == [f"label   train[{i}]: 3 -> 8" for i in flipped["flip"]["changed_indices"]]


def test_cli_bad_input_is_one_clear_error(tmp_path, cli):
    (tmp_path / "junk.json").write_text("{}")
    cli.fails("cannot read manifest", "manifest", "verify", tmp_path / "missing.json")
    cli.fails("is not a poisonlab-manifest/1 manifest", "manifest", "verify", tmp_path / "junk.json")
    cli.fails("not an unencrypted private key", "manifest", "build", "--dataset", "digits", "--out", tmp_path / "m.json", "--sign-key", tmp_path / "junk.json")
    assert cli.code("manifest", "keygen", "--out", tmp_path / "key.pem") == 0
    cli.fails("already exist", "manifest", "keygen", "--out", tmp_path / "key")
