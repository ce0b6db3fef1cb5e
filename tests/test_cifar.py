"""Tests of the CIFAR-10/100 binary loaders on the real fixtures, tiny built releases and the JPEG copy."""

import io
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poisonlab.datasets import cifar, load
from poisonlab.datasets.checksums import file_digest
from poisonlab.datasets.cifar import parse_cifar_records
from poisonlab.datasets.tarread import read_files
from poisonlab.errors import PoisonlabError

CIFAR10_FIRST20 = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
CIFAR100_FINE_FIRST20 = [49, 33, 72, 51, 71, 92, 15, 14, 23, 0, 71, 75, 81, 69, 40, 43, 92, 97, 70, 53]
# The fixture's coarse bytes as stored (they group fine classes differently from the usual 20 superclasses).
CIFAR100_COARSE_FIRST20 = [10, 10, 4, 4, 10, 14, 14, 7, 10, 4, 10, 12, 19, 19, 7, 18, 14, 18, 14, 4]
CIFAR10_BATCHES = [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]


def encode_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Official CIFAR records written plane by plane, independently of the parser under test."""
    records = [bytes(label) + image[:, :, 0].tobytes() + image[:, :, 1].tobytes() + image[:, :, 2].tobytes()
               for image, label in zip(images, labels.astype(np.uint8).reshape(len(labels), -1))]
    return b"".join(records)


def known_images(count: int) -> np.ndarray:
    """Images whose every pixel and channel differs, so any axis or channel mix-up shows."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def test_cifar10_fixture_records(shared_data: Path) -> None:
    images, labels = parse_cifar_records((shared_data / "cifar10" / "test_batch_first20.bin").read_bytes(), 1)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert labels.shape == (20, 1) and labels[:, 0].tolist() == CIFAR10_FIRST20


def test_cifar100_fixture_records(shared_data: Path) -> None:
    images, labels = parse_cifar_records((shared_data / "cifar100" / "test_first20.bin").read_bytes(), 2)
    assert images.shape == (20, 32, 32, 3)
    assert labels[:, 1].tolist() == CIFAR100_FINE_FIRST20
    assert labels[:, 0].tolist() == CIFAR100_COARSE_FIRST20


def test_records_decode_to_rgb_rows() -> None:
    images = known_images(3)
    parsed, labels = parse_cifar_records(encode_records(images, np.array([[1, 2], [3, 4], [5, 6]])), 2)
    assert np.array_equal(parsed, images) and labels.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_fixture_matches_the_jpeg_copy_of_the_same_images(shared_data: Path) -> None:
    images, _ = parse_cifar_records((shared_data / "cifar10" / "test_batch_first20.bin").read_bytes(), 1)
    names = {"test/cat/0000.jpg", "test/ship/0000.jpg"}
    jpegs = read_files(shared_data / "cifar10" / "cifar10-jpeg-imagefolder.tar.gz", names, "jpeg copy", "")
    for index, name in ((0, "test/cat/0000.jpg"), (1, "test/ship/0000.jpg")):
        jpeg = np.asarray(Image.open(io.BytesIO(jpegs[name])).convert("RGB")).astype(float)
        error = np.abs(images[index] - jpeg).mean()
        assert error < 8
        assert error < np.abs(images[index][:, :, ::-1] - jpeg).mean() / 2
        assert error < np.abs(images[index].transpose(1, 0, 2) - jpeg).mean() / 2


def test_truncated_batch_is_reported(shared_data: Path) -> None:
    data = (shared_data / "cifar10" / "test_batch_first20.bin").read_bytes()
    with pytest.raises(PoisonlabError, match=r"^f has 61459 bytes, not a whole number of 3073-byte CIFAR records"):
        parse_cifar_records(data[:-1], 1, "f")


def test_official_layout_folder_from_the_fixture(shared_data: Path, tmp_path: Path) -> None:
    fixture = (shared_data / "cifar10" / "test_batch_first20.bin").read_bytes()
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in CIFAR10_BATCHES:
        (folder / name).write_bytes(fixture)
    dataset = load("cifar10", tmp_path, download=False)
    assert dataset.x_train.shape == (100, 32, 32, 3) and dataset.x_test.shape == (20, 32, 32, 3)
    assert dataset.y_test.tolist() == CIFAR10_FIRST20 and dataset.y_train[20:40].tolist() == CIFAR10_FIRST20
    assert dataset.classes[3] == "cat" and dataset.num_classes == 10
    assert list(dataset.sources) == CIFAR10_BATCHES and dataset.sources["test_batch.bin"].startswith("sha256:")
    (folder / "data_batch_3.bin").write_bytes(fixture[:-1])
    with pytest.raises(PoisonlabError, match="cifar10 file data_batch_3.bin has 61459 bytes"):
        load("cifar10", tmp_path, download=False)


def write_cifar10_archive(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A cifar-10-binary.tar.gz whose six batches hold the given records, with a batches.meta.txt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [(n, encode_records(images, labels)) for n in CIFAR10_BATCHES] + [("batches.meta.txt", b"")]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_official_archive_is_read_without_extracting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = known_images(4), np.array([0, 9, 2, 5])
    archive = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    write_cifar10_archive(archive, images, labels)
    with pytest.raises(PoisonlabError, match=r"^checksum mismatch for cifar10 archive .* md5 of content is "):
        load("cifar10", tmp_path, download=False)
    md5 = file_digest(archive, "md5")
    monkeypatch.setattr(cifar, "CIFAR10", replace(cifar.CIFAR10, md5=md5, sha256=file_digest(archive, "sha256")))
    dataset = load("cifar10", tmp_path, download=False)
    assert np.array_equal(dataset.x_train[4:8], images) and np.array_equal(dataset.x_test, images)
    assert dataset.y_train.tolist() == [0, 9, 2, 5] * 5 and dataset.sources == {archive.name: md5}
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_archive_with_the_official_md5_but_not_the_official_sha256_is_refused_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli, name: str) -> None:
    source = {"cifar10": cifar.CIFAR10, "cifar100": cifar.CIFAR100}[name]
    assert source.sha256 == {"cifar10": "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                             "cifar100": "sha256:58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec"}[name]
    archive = tmp_path / name / source.archive
    write_cifar10_archive(archive, known_images(2), np.array([1, 2]))
    forged = replace(source, md5=file_digest(archive, "md5"))  # as an MD5 collision with the official file would be
    monkeypatch.setattr(cifar, name.upper(), forged)
    monkeypatch.setattr(cifar, "read_files", lambda *args, **kwargs: pytest.fail("a member was read"))
    line = cli.fails(rf"^error: checksum mismatch for {name} archive {archive}: sha256 of content is "
                     rf"{file_digest(archive, 'sha256')[7:]}, expected {source.sha256[7:]}; delete it and re-run",
                     "manifest", "build", "--dataset", name, "--data-dir", tmp_path, "--no-download",
                     "--out", tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists(), line


def test_unsafe_archive_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        info = tarfile.TarInfo("../escape.bin")
        handle.addfile(info, io.BytesIO(b""))
    with pytest.raises(PoisonlabError, match=r"unsafe member path '\.\./escape\.bin'"):
        read_files(archive, {"x"}, f"archive {archive}", "fix")


def test_cifar100_fine_and_coarse(shared_data: Path, tmp_path: Path) -> None:
    fixture = (shared_data / "cifar100" / "test_first20.bin").read_bytes()
    folder = tmp_path / "cifar100" / "cifar-100-binary"
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(fixture * 2)
    (folder / "test.bin").write_bytes(fixture)
    fine = load("cifar100", tmp_path, download=False)
    assert fine.name == "cifar100" and fine.num_classes == 100 and fine.x_train.shape == (40, 32, 32, 3)
    assert fine.y_test.tolist() == CIFAR100_FINE_FIRST20
    assert [fine.classes[i] for i in fine.y_test[:3]] == ["mountain", "forest", "seal"]
    coarse = load("cifar100:coarse", tmp_path, download=False)
    assert coarse.name == "cifar100:coarse" and coarse.num_classes == 20
    assert coarse.y_test.tolist() == CIFAR100_COARSE_FIRST20 and np.array_equal(coarse.x_test, fine.x_test)
    assert coarse.classes[10] == "large_natural_outdoor_scenes"


def test_cifar100_missing_names_the_archive(tmp_path: Path) -> None:
    with pytest.raises(PoisonlabError) as excinfo:
        load("cifar100", tmp_path, download=False)
    assert str(excinfo.value) == (
        f"cifar100 is not in {tmp_path / 'cifar100'} and cannot be downloaded (downloading is disabled); place "
        "cifar-100-binary.tar.gz there (from https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz) "
        "or choose the data folder that holds them")


@pytest.mark.slow
def test_cifar10_from_the_jpeg_copy_in_official_order(shared_data: Path) -> None:
    start = time.perf_counter()
    dataset = load("cifar10", shared_data, download=False, dataset_size=1000)
    print(f"CIFAR-10 JPEG copy loaded in {time.perf_counter() - start:.1f} s")
    assert dataset.x_train.shape == (1000, 32, 32, 3) and dataset.x_test.shape == (10000, 32, 32, 3)
    assert dataset.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(dataset.y_test).tolist() == [1000] * 10
    assert dataset.notes == [f"training items in the order of {shared_data / 'cifar10' / 'train_canonical_order.csv'}",
                             "CIFAR-10 from the JPEG image-folder copy (lossy), official training order",
                             "first 1000 of 50000 training items"]
    assert dataset.sources["cifar10-jpeg-imagefolder.tar.gz"] == (
        "sha256:4c4c64191219bb0d642174fc7cd91a6fd198d75348c2c209d525c5d9c34ff31c")
    official, _ = parse_cifar_records((shared_data / "cifar10" / "test_batch_first20.bin").read_bytes(), 1)
    cat = dataset.x_test[dataset.y_test == 3][0].astype(float)
    assert np.abs(cat - official[0]).mean() < 8
    # its test split is ordered by class: a test subset takes every class (not 1000 airplanes), and says so
    subset = load("cifar10", shared_data, download=False, dataset_size=1000, test_size=1000)
    assert np.bincount(subset.y_test).tolist() == [100] * 10
    assert np.array_equal(subset.x_test[subset.y_test == 3][0], dataset.x_test[dataset.y_test == 3][0])
    assert subset.notes[-1] == "1000 test items taken round-robin over the classes (the test split is ordered by class)"


def test_jpeg_copy_without_its_order_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar10-jpeg-imagefolder.tar.gz").write_bytes(b"")
    with pytest.raises(PoisonlabError, match="needs train_canonical_order.csv beside it for the official training"):
        load("cifar10", tmp_path, download=False)
