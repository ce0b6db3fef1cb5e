"""Caches cannot be fooled: content changed in place, with the same size and mtime, is seen by load and verify."""

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poisonlab.datasets import load
from poisonlab.datasets.checksums import file_digest


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("POISONLAB_CACHE", str(cache))
    return cache


def make_bmp_folder(root: Path) -> None:
    """Uncompressed 4x4 grey BMPs (a pixel byte is a file byte), two classes, train and test."""
    rng = np.random.default_rng(3)
    for split, count in (("train", 4), ("test", 2)):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for n in range(count):
                image = rng.integers(0, 200, size=(4, 4), dtype=np.uint8)
                Image.fromarray(image).save(root / split / name / f"{n}.bmp")


def tamper_in_place(path: Path, offset_from_end: int) -> None:
    """Add 1 to two bytes near the end of `path`, keeping its size and restoring its mtime to the nanosecond."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    for i in (offset_from_end, offset_from_end + 1):
        data[-i] = (data[-i] + 1) % 256
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_folder_pixels_changed_in_place_are_seen_by_load_and_verify(tmp_path: Path, private_cache: Path, cli) -> None:
    make_bmp_folder(tmp_path / "set")
    spec = f"imagefolder:{tmp_path / 'set'}"
    manifest = tmp_path / "set.manifest.json"
    assert cli.code("manifest", "build", "--dataset", spec, "--out", manifest) == 0  # fills the decoded cache
    before = load(spec)
    assert len(list((private_cache / "decoded").glob("v*"))) == 1
    tamper_in_place(tmp_path / "set" / "train" / "b" / "2.bmp", 1)  # the last pixel row of a BMP is its top row
    after = load(spec)
    changed = np.flatnonzero((before.x_train != after.x_train).reshape(len(before.x_train), -1).any(axis=1))
    assert changed.tolist() == [6] and before.sources != after.sources
    assert cli.code("manifest", "verify", manifest, "--dataset", spec) == 1
    assert "VERIFIED" not in cli.out and "pixels" in cli.out


def test_archive_changed_in_place_is_seen_and_its_digest_is_of_every_byte(tmp_path: Path) -> None:
    make_bmp_folder(tmp_path / "set")
    (tmp_path / "pad.bin").write_bytes(np.random.default_rng(0).bytes(2 << 20))
    archive = tmp_path / "set.tar"  # uncompressed, so a pixel byte can change without changing the size
    with tarfile.open(archive, "w") as handle:  # the images come after the first 2 MiB
        handle.add(tmp_path / "pad.bin", arcname="pad.bin")
        handle.add(tmp_path / "set", arcname=".")
    spec = f"imagefolder:{archive}"
    before = load(spec)
    assert before.sources["set.tar"] == file_digest(archive, "sha256")
    data = archive.read_bytes()
    pixels_end = data.index(b"BM", data.index(b"train/b/3.bmp")) + 54 + 1024 + 4 * 4  # header, palette, pixels
    assert pixels_end > 2 << 20
    tamper_in_place(archive, len(data) - pixels_end + 2)
    after = load(spec)
    assert not np.array_equal(before.x_train, after.x_train)
    assert after.sources["set.tar"] == file_digest(archive, "sha256") != before.sources["set.tar"]


def test_idx_files_are_pinned_by_sha256_too(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from poisonlab.datasets import mnist
    from poisonlab.errors import PoisonlabError

    assert load("mnist", shared_data, 100, download=False).y_train[:3].tolist() == [5, 0, 4]  # the pins hold
    wrong = ("0" * 64, *mnist.SOURCES["mnist"].sha256[1:])
    monkeypatch.setitem(mnist.SOURCES, "mnist", replace(mnist.SOURCES["mnist"], sha256=wrong))
    with pytest.raises(PoisonlabError, match=r"checksum mismatch for mnist file .*train-images.* sha256 of "
                                             r"decompressed content is ba891046"):
        load("mnist", shared_data, 100, download=False)


def test_cached_arrays_replaced_or_re_hashed_are_decoded_again(tmp_path: Path, private_cache: Path) -> None:
    """Swapped labels written into the decoded cache (and meta.json rewritten to their SHA-256) are not served."""
    import hashlib
    import json

    make_bmp_folder(tmp_path / "set")
    spec = f"imagefolder:{tmp_path / 'set'}"
    clean = load(spec)
    (entry,) = private_cache.joinpath("decoded").glob("v*")
    assert oct((private_cache / "decoded" / ".key").stat().st_mode & 0o777) == "0o600"
    np.save(entry / "y_train.npy", 1 - clean.y_train)  # every label swapped
    assert np.array_equal(load(spec).y_train, clean.y_train)  # not authentic: decoded again (and re-cached)
    np.save(entry / "y_train.npy", 1 - clean.y_train)
    meta = json.loads((entry / "meta.json").read_text())
    meta["sha256"]["y_train"] = hashlib.sha256((entry / "y_train.npy").read_bytes()).hexdigest()
    (entry / "meta.json").write_text(json.dumps(meta))  # the digest matches now, the MAC does not
    assert np.array_equal(load(spec).y_train, clean.y_train)


def test_runs_on_an_image_folder_that_changed_since_are_not_reused(tmp_path: Path, cli) -> None:
    make_bmp_folder(tmp_path / "set")
    args = ("train", "--dataset", f"imagefolder:{tmp_path / 'set'}", "--percents", "0,50", "--model", "logreg",
            "--out", tmp_path / "runs")
    assert cli.code(*args) == 0
    assert cli.code(*args) == 0 and "2 of 2 runs already finished" in " ".join(cli.err.split())  # unchanged: reused
    tamper_in_place(tmp_path / "set" / "train" / "b" / "2.bmp", 1)
    cli.fails(r"holds a run made on other data \(sources\.set/ sha256:[0-9a-f]+ -> sha256:[0-9a-f]+\); retrain it",
              *args)
    assert cli.code(*args, "--overwrite") == 0
