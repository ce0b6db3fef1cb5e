"""Tests of the dataset registry, the IDX loaders (MNIST, Fashion-MNIST), digits and the embedded subset."""

import gzip
import json
import shutil
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fuzzing import examples

from poisonlab.datasets import DATASETS, Dataset, load, resolve_cache_dir, resolve_data_dir
from poisonlab.datasets.idx import encode_idx, parse_idx
from poisonlab.datasets.mnist import FILES
from poisonlab.datasets.sampling import stratified_sample
from poisonlab.errors import PoisonlabError

MNIST_MD5 = ["6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
             "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


@pytest.fixture(scope="module")
def mnist(shared_data: Path) -> Dataset:
    return load("mnist", shared_data, download=False)


@pytest.fixture(scope="module")
def fashion(shared_data: Path) -> Dataset:
    return load("fashion_mnist", shared_data, download=False)


def copy_mnist(shared_data: Path, tmp_path: Path) -> Path:
    """A writable copy of the shared MNIST folder as <tmp>/mnist; returns that folder."""
    folder = tmp_path / "mnist"
    shutil.copytree(shared_data / "mnist", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_mnist_full_load(mnist: Dataset) -> None:
    assert mnist.name == "mnist"
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.int64
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.classes == [str(d) for d in range(10)] and mnist.num_classes == 10
    assert np.bincount(mnist.y_train).tolist()[:2] == [5923, 6742]
    assert mnist.x_train.max() == 255 and 30 < mnist.x_train.mean() < 36


def test_mnist_sources_are_official_md5_of_recompressed_copies(mnist: Dataset, shared_data: Path) -> None:
    assert list(mnist.sources.values()) == [f"md5:{md5}" for md5 in MNIST_MD5]
    assert list(mnist.sources) == [f"{name}.gz" for name in FILES]


def test_fashion_full_load(fashion: Dataset) -> None:
    assert fashion.x_train.shape == (60000, 28, 28, 1) and fashion.x_test.shape == (10000, 28, 28, 1)
    assert fashion.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert fashion.classes == FASHION_CLASSES
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10


def test_dataset_size_keeps_first_n_training_items(mnist: Dataset, shared_data: Path) -> None:
    small = load("mnist", shared_data, dataset_size=1000, download=False)
    assert np.array_equal(small.x_train, mnist.x_train[:1000])
    assert np.array_equal(small.y_train, mnist.y_train[:1000])
    assert np.array_equal(small.x_test, mnist.x_test) and len(small.y_test) == 10000
    assert small.notes == ["first 1000 of 60000 training items"]


def test_recompressed_and_raw_idx_copies_pass(mnist: Dataset, shared_data: Path, tmp_path: Path) -> None:
    folder = copy_mnist(shared_data, tmp_path)
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes()), compresslevel=1))
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    (folder / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(labels.read_bytes()))
    labels.unlink()
    copy = load("mnist", tmp_path, download=False)
    assert np.array_equal(copy.x_train, mnist.x_train) and np.array_equal(copy.y_test, mnist.y_test)
    assert copy.sources["t10k-labels-idx1-ubyte"] == f"md5:{MNIST_MD5[3]}"


def test_one_changed_byte_is_a_checksum_mismatch(shared_data: Path, tmp_path: Path) -> None:
    folder = copy_mnist(shared_data, tmp_path)
    labels = folder / "train-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] = (content[100] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(PoisonlabError) as excinfo:
        load("mnist", tmp_path, download=False)
    message = one_line_error(excinfo)
    assert message.startswith(f"checksum mismatch for mnist file {labels}: md5 of decompressed content is ")
    assert f"expected {MNIST_MD5[1]}" in message and "delete it" in message


def test_truncated_gzip_is_reported(shared_data: Path, tmp_path: Path) -> None:
    folder = copy_mnist(shared_data, tmp_path)
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(PoisonlabError) as excinfo:
        load("mnist", tmp_path, download=False)
    message = one_line_error(excinfo)
    assert message.startswith(f"mnist file {images} is truncated or corrupted (")
    assert "delete it and re-run to download it again" in message


def test_missing_files_without_download_name_each_file(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(PoisonlabError) as excinfo:
        load("fashion_mnist", tmp_path, download=False)
    message = one_line_error(excinfo)
    assert message.startswith(f"fashion_mnist is not in {tmp_path / 'fashion_mnist'} and cannot be downloaded (")
    assert all(f"{name}.gz" in message for name in FILES) and "choose the data folder that holds them" in message
    folder = copy_mnist(shared_data, tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(PoisonlabError, match=r"place t10k-images-idx3-ubyte\.gz there \(from https://ossci"):
        load("mnist", tmp_path, download=False)


@pytest.mark.parametrize("spec", ["mnsit", "mnist:coarse", ""])
def test_unknown_dataset(spec: str) -> None:
    with pytest.raises(PoisonlabError) as excinfo:
        load(spec)
    assert one_line_error(excinfo) == (f"unknown dataset {spec!r}; choose one of mnist, fashion_mnist, cifar10, "
                                       "cifar100, digits, embedded or imagefolder:PATH")


def test_unknown_cifar100_label_set() -> None:
    with pytest.raises(PoisonlabError, match="^unknown CIFAR-100 label set 'medium' in 'cifar100:medium'; use"):
        load("cifar100:medium")
    with pytest.raises(PoisonlabError, match=r"^imagefolder needs a path; write imagefolder:PATH"):
        load("imagefolder:")


def test_bad_dataset_sizes() -> None:
    with pytest.raises(PoisonlabError, match="dataset_size must be 0 .* got -1"):
        load("digits", dataset_size=-1)
    with pytest.raises(PoisonlabError) as excinfo:
        load("digits", dataset_size=1438)
    assert one_line_error(excinfo) == ("dataset_size 1438 is larger than the 1437 training items of digits; "
                                       "pass at most 1437, or 0 for all")


def test_digits() -> None:
    digits = load("digits")
    assert digits.x_train.shape == (1437, 8, 8, 1) and digits.x_test.shape == (360, 8, 8, 1)
    assert digits.x_train.dtype == np.uint8 and digits.x_train.max() == 255
    assert digits.y_train[:10].tolist() == list(range(10))
    assert set(np.unique(digits.x_train)) <= {round(v * 255 / 16) for v in range(17)}
    assert "first 1437 train, last 360 test" in digits.notes[0]


def test_embedded_is_a_balanced_real_fashion_subset(fashion: Dataset) -> None:
    embedded = load("embedded", data_dir="/nonexistent", download=False)
    assert embedded.x_train.shape == (10000, 28, 28, 1) and embedded.x_test.shape == (2000, 28, 28, 1)
    assert np.bincount(embedded.y_train).tolist() == [1000] * 10
    assert np.bincount(embedded.y_test).tolist() == [200] * 10
    assert embedded.classes == FASHION_CLASSES
    folder = files("poisonlab").joinpath("data", "embedded")
    provenance = json.loads(folder.joinpath("provenance.json").read_text())
    train, test = (np.array(provenance["source_indices"][split]) for split in ("train", "test"))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.array_equal(embedded.x_train, fashion.x_train[train])
    assert np.array_equal(embedded.y_test, fashion.y_test[test])
    assert embedded.sources == provenance["md5"]
    assert "Copyright (c) 2017 Zalando SE" in folder.joinpath("NOTICE").read_text()


def test_embedded_is_small() -> None:
    folder = Path(str(files("poisonlab").joinpath("data", "embedded")))
    assert sum(path.stat().st_size for path in folder.iterdir()) < 6_000_000


def test_every_listed_dataset_is_dispatched(tmp_path: Path) -> None:
    assert DATASETS == ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "embedded")
    for name in ("mnist", "fashion_mnist", "cifar10", "cifar100"):
        with pytest.raises(PoisonlabError, match=f"^{name} is not in {tmp_path / name} "):
            load(name, tmp_path, download=False)


def test_data_and_cache_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("POISONLAB_DATA", raising=False)
    monkeypatch.delenv("POISONLAB_CACHE", raising=False)
    assert resolve_data_dir() == Path.home() / ".cache" / "poisonlab" == resolve_cache_dir()
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "env" and resolve_cache_dir() == tmp_path / "cache"
    assert resolve_data_dir("~/x") == Path.home() / "x"


@given(arrays(np.uint8, st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple)))
def test_idx_round_trip(array: np.ndarray) -> None:
    decoded = parse_idx(encode_idx(array), "test")
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, array)


def test_idx_rejects_bad_headers_and_lengths() -> None:
    data = encode_idx(np.arange(12, dtype=np.uint8).reshape(3, 4))
    with pytest.raises(PoisonlabError, match="not an IDX file"):
        parse_idx(b"\x01" + data[1:], "x")
    with pytest.raises(PoisonlabError, match=r"has 19 bytes but its IDX header \(3, 4\) needs 24"):
        parse_idx(data[:-5], "x")
    big_endian = b"\0\0\x0b\x01\0\0\0\x02\x01\x02\xff\xfe"
    assert parse_idx(big_endian, "x").tolist() == [258, -2]


@settings(max_examples=examples(50))
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.data())
def test_stratified_sample_is_proportional(labels: list[int], data: st.DataObject) -> None:
    labels_array = np.array(labels)
    size = data.draw(st.integers(1, len(labels)))
    chosen = stratified_sample(labels_array, size, seed=data.draw(st.integers(0, 9)))
    assert len(chosen) == size and np.all(np.diff(chosen) > 0)
    wanted = np.bincount(labels_array) * size / len(labels)
    assert np.all(np.abs(np.bincount(labels_array[chosen], minlength=len(wanted)) - wanted) < 1)


def test_dataset_rejects_wrong_dtypes() -> None:
    images = np.zeros((2, 4, 4, 1), np.uint8)
    with pytest.raises(ValueError, match="int64"):
        Dataset("x", images, np.zeros(2, np.int32), images, np.zeros(2, np.int64), ["a"], {}, [])
