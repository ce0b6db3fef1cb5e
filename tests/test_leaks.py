"""Train/test segregation on real MNIST: planted exact and near copies of test items found with their training
indices, the official split nearly free of them, and `validate --leaks` failing on an image folder with a copy."""

import numpy as np
import pytest
from PIL import Image

from poisonlab import datasets
from poisonlab.defences.leaks import exact_copies, leaks
from poisonlab.errors import PoisonlabError


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=3000)


def test_planted_copies_are_found_with_their_training_items(mnist):
    x = mnist.x_train.copy()
    exact_at, near_at = [10, 500, 2999], [20, 1200, 2500]
    x[exact_at] = mnist.x_test[[1, 2, 3]]
    noise = np.random.default_rng(0).integers(-6, 7, size=(3, *x.shape[1:]))
    x[near_at] = np.clip(mnist.x_test[[4, 5, 6]].astype(int) + noise, 0, 255).astype(np.uint8)
    found = leaks(x, mnist.x_test[:1000])
    assert [(p["test"], p["train"]) for p in found["exact"]] == [(1, 10), (2, 500), (3, 2999)]
    near = {p["test"]: p for p in found["near"]}
    assert {4, 5, 6} <= set(near) and all(near[t]["train"] == j for t, j in zip((4, 5, 6), near_at))
    assert not {1, 2, 3} & set(near)  # an exact copy is listed once
    assert len(near) <= 6, found["near"]  # the official test items are not copies of MNIST's first 3000


def test_exact_copies_compare_bytes_not_closeness(mnist):
    test = mnist.x_train[[7, 8]].copy()
    test[1, 0, 0, 0] ^= 1  # one pixel off by one grey level: not an exact copy
    assert [list(a) for a in exact_copies(mnist.x_train, test)] == [[0], [7]]


def test_a_near_threshold_outside_0_1_is_refused(mnist):
    with pytest.raises(PoisonlabError, match="near"):
        leaks(mnist.x_train[:100], mnist.x_test[:10], near=5)


def test_validate_leaks_fails_on_a_folder_whose_test_image_is_a_training_image(mnist, tmp_path, cli):
    for split, items in (("train", range(0, 40)), ("test", range(40, 60))):
        for i in items:
            folder = tmp_path / "set" / split / str(mnist.y_train[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mnist.x_train[i][:, :, 0]).save(folder / f"{i}.png")
    copied = tmp_path / "set" / "test" / str(mnist.y_train[5])
    copied.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mnist.x_train[5][:, :, 0]).save(copied / "copy.png")
    code, text = cli.text("validate", "--dataset", f"imagefolder:{tmp_path / 'set'}", "--leaks", "--write-schema",
                          tmp_path / "schema.json")
    assert code == 1 and "FAILED, 1 of 21 test items are training items byte for byte" in text, text
