"""Tests of downloading through real URLs (file://) with mirror fallback and verification."""

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from poisonlab.datasets import load
from poisonlab.datasets.fetch import DownloadFailed, fetch
from poisonlab.datasets.mnist import FILES, SOURCES
from poisonlab.errors import PoisonlabError


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    source = tmp_path / "mirror" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * 1000)
    return source


def test_fetch_verifies_and_returns_the_digest(payload: Path, tmp_path: Path) -> None:
    md5 = f"md5:{hashlib.md5(payload.read_bytes()).hexdigest()}"
    dest = tmp_path / "cache" / "data.bin"
    assert fetch([payload.as_uri()], dest, md5) == md5
    assert dest.read_bytes() == payload.read_bytes()
    assert fetch([payload.as_uri()], tmp_path / "unchecked", None).startswith("sha256:")


def test_wrong_checksum_leaves_nothing_behind(payload: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "data.bin"
    with pytest.raises(DownloadFailed) as excinfo:
        fetch([payload.as_uri()], dest, "md5:" + "0" * 32)
    assert isinstance(excinfo.value, PoisonlabError) and "\n" not in str(excinfo.value)
    assert f"expected md5:{'0' * 32}" in excinfo.value.reason
    assert list(dest.parent.iterdir()) == []


def test_mirrors_are_tried_in_turn(payload: Path, tmp_path: Path) -> None:
    missing = (payload.parent / "absent.bin").as_uri()
    dest = tmp_path / "data.bin"
    fetch([missing, "http://127.0.0.1:9/none", payload.as_uri()], dest, None)
    assert dest.read_bytes() == payload.read_bytes()


def test_expected_digest_of_decompressed_content(payload: Path, tmp_path: Path) -> None:
    packed = payload.with_name("data.bin.gz")
    packed.write_bytes(gzip.compress(payload.read_bytes()))
    md5 = f"md5:{hashlib.md5(payload.read_bytes()).hexdigest()}"
    fetch([packed.as_uri()], tmp_path / "data.bin.gz", md5, of_decompressed=True)
    assert (tmp_path / "data.bin.gz").read_bytes() == packed.read_bytes()


def test_mnist_downloads_from_a_mirror(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirrors = ((tmp_path / "dead").as_uri() + "/", (shared_data / "mnist").as_uri() + "/")
    monkeypatch.setitem(SOURCES, "mnist", replace(SOURCES["mnist"], mirrors=mirrors))
    dataset = load("mnist", tmp_path / "data", download=True)
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert dataset.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.array_equal(dataset.x_test, load("mnist", shared_data, download=False).x_test)


def test_failed_download_says_where_to_place_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SOURCES, "mnist", replace(SOURCES["mnist"], mirrors=((tmp_path / "none").as_uri() + "/",)))
    with pytest.raises(PoisonlabError) as excinfo:
        load("mnist", tmp_path, download=True)
    message = str(excinfo.value)
    assert "\n" not in message and message.startswith(f"mnist is not in {tmp_path / 'mnist'} and cannot be downloaded")
    assert "No such file" in message and "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in message
