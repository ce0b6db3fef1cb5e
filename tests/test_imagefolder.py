"""Tests of `imagefolder:PATH` on small folders and archives generated with Pillow."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poisonlab.datasets import imagefolder, load
from poisonlab.datasets.checksums import file_digest
from poisonlab.errors import PoisonlabError

TRAIN_COUNTS = {"cat": 4, "dog": 6, "emu": 10}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("POISONLAB_CACHE", str(cache))
    return cache


def make_folder(root: Path, grey: bool = False) -> dict[str, np.ndarray]:
    """Write PNGs `<split>/<class>/<n>.png` with distinct pixels; return each path's pixels (H, W, C)."""
    rng = np.random.default_rng(1)
    pixels = {}
    for split, counts in (("train", TRAIN_COUNTS), ("test", {"cat": 2, "emu": 1})):
        for name, count in counts.items():
            (root / split / name).mkdir(parents=True)
            for n in range(count):
                image = rng.integers(0, 256, size=(5, 6, 1 if grey else 3), dtype=np.uint8)
                Image.fromarray(image[..., 0] if grey else image).save(root / split / name / f"{n:03d}.png")
                pixels[f"{split}/{name}/{n:03d}.png"] = image
    (root / "README.txt").write_text("not an image")
    return pixels


def stacked(pixels: dict[str, np.ndarray], split: str) -> np.ndarray:
    return np.stack([pixels[name] for name in sorted(pixels) if name.startswith(split)])


def write_order(path: Path, names: list[str]) -> None:
    labels = {name: i for i, name in enumerate(sorted(TRAIN_COUNTS))}
    rows = [f"{i},{labels[name.split('/')[1]]},{name}" for i, name in enumerate(names)]
    path.write_text("\n".join(["index,label,path", *rows]) + "\n")


def test_folder_without_order_is_class_grouped(tmp_path: Path) -> None:
    pixels = make_folder(tmp_path / "set")
    dataset = load(f"imagefolder:{tmp_path / 'set'}")
    assert dataset.name == f"imagefolder:{tmp_path / 'set'}" and dataset.classes == ["cat", "dog", "emu"]
    assert np.array_equal(dataset.x_train, stacked(pixels, "train"))
    assert np.array_equal(dataset.x_test, stacked(pixels, "test"))
    assert dataset.y_train.tolist() == [0] * 4 + [1] * 6 + [2] * 10 and dataset.y_test.tolist() == [0, 0, 2]
    assert list(dataset.sources) == ["set/"] and dataset.sources["set/"].startswith("sha256:")


def test_dataset_size_without_order_is_a_stratified_sample(tmp_path: Path) -> None:
    make_folder(tmp_path / "set")
    full = load(f"imagefolder:{tmp_path / 'set'}")
    sample = load(f"imagefolder:{tmp_path / 'set'}", dataset_size=10, seed=3)
    assert np.bincount(sample.y_train).tolist() == [2, 3, 5]
    rows = [int(np.flatnonzero((full.x_train == image).all(axis=(1, 2, 3)))[0]) for image in sample.x_train]
    assert rows == sorted(rows)
    assert sample.notes[-1] == ("stratified seeded sample of 10 of 20 training items, seed 3, original order kept "
                                "(class-grouped folder, no order file)")
    again = load(f"imagefolder:{tmp_path / 'set'}", dataset_size=10, seed=4)
    assert not np.array_equal(again.x_train, sample.x_train)


def test_order_file_beside_the_folder_sets_training_order(tmp_path: Path) -> None:
    pixels = make_folder(tmp_path / "set")
    names = sorted(name for name in pixels if name.startswith("train"))[::-1]
    write_order(tmp_path / "order.csv", names)
    dataset = load(f"imagefolder:{tmp_path / 'set'}", dataset_size=3)
    assert np.array_equal(dataset.x_train, np.stack([pixels[name] for name in names[:3]]))
    assert dataset.y_train.tolist() == [2, 2, 2]
    assert dataset.notes == ["source digest is the sha256 over the folder's image paths and contents",
                             f"training items in the order of {tmp_path / 'order.csv'}",
                             "first 3 of 20 training items"]
    assert dataset.sources["order.csv"].startswith("sha256:")


def test_explicit_order_in_the_spec(tmp_path: Path) -> None:
    pixels = make_folder(tmp_path / "set")
    names = sorted(name for name in pixels if name.startswith("train"))
    names = names[1::2] + names[::2]
    write_order(tmp_path / "mine.csv", names)
    dataset = load(f"imagefolder:{tmp_path / 'set'}?order={tmp_path / 'mine.csv'}")
    assert dataset.name == f"imagefolder:{tmp_path / 'set'}?order={tmp_path / 'mine.csv'}"
    assert np.array_equal(dataset.x_train[0], pixels[names[0]])


def test_bad_order_files(tmp_path: Path) -> None:
    pixels = make_folder(tmp_path / "set")
    names = sorted(name for name in pixels if name.startswith("train"))
    spec = f"imagefolder:{tmp_path / 'set'}?order={tmp_path / 'o.csv'}"
    (tmp_path / "o.csv").write_text("index,label,path\n0,2,train/cat/000.png\n")
    with pytest.raises(PoisonlabError, match=r"line 2 gives label 2 for train/cat/000.png, but its folder is class 0"):
        load(spec)
    write_order(tmp_path / "o.csv", names[:-1])
    with pytest.raises(PoisonlabError, match="does not list each of the 20 training images exactly once"):
        load(spec)
    write_order(tmp_path / "o.csv", [*names[:-1], "train/cat/999.png"])
    with pytest.raises(PoisonlabError, match="line 21 names train/cat/999.png, which is not a training image"):
        load(spec)


def test_mixed_sizes_are_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "set")
    Image.new("RGB", (7, 5)).save(tmp_path / "set" / "test" / "emu" / "big.png")
    with pytest.raises(PoisonlabError) as excinfo:
        load(f"imagefolder:{tmp_path / 'set'}")
    assert str(excinfo.value) == (f"image folder {tmp_path / 'set'}: test/emu/big.png is 7x5 pixels but "
                                  "train/cat/000.png is 6x5; resize all images to one size")


def test_grey_images_give_one_channel_and_mixed_give_rgb(tmp_path: Path) -> None:
    pixels = make_folder(tmp_path / "grey", grey=True)
    dataset = load(f"imagefolder:{tmp_path / 'grey'}")
    assert dataset.x_train.shape == (20, 5, 6, 1) and np.array_equal(dataset.x_test, stacked(pixels, "test"))
    Image.new("RGB", (6, 5), (10, 20, 30)).save(tmp_path / "grey" / "test" / "emu" / "rgb.png")
    mixed = load(f"imagefolder:{tmp_path / 'grey'}")
    assert mixed.x_train.shape == (20, 5, 6, 3)
    assert np.array_equal(mixed.x_train[0], np.repeat(pixels["train/cat/000.png"], 3, axis=2))
    assert mixed.x_test[-1, 0, 0].tolist() == [10, 20, 30]


def test_archive_with_a_top_folder_matches_the_directory(tmp_path: Path) -> None:
    make_folder(tmp_path / "set")
    write_order(tmp_path / "order.csv", [f"train/emu/{n:03d}.png" for n in range(10)]
                + [f"train/{c}/{n:03d}.png" for c in ("cat", "dog") for n in range(TRAIN_COUNTS[c])])
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "set", arcname="wrapped")
    from_dir, from_tar = (load(f"imagefolder:{tmp_path / name}") for name in ("set", "set.tar.gz"))
    assert np.array_equal(from_dir.x_train, from_tar.x_train) and np.array_equal(from_dir.y_test, from_tar.y_test)
    assert from_tar.y_train[:10].tolist() == [2] * 10
    assert from_tar.sources["set.tar.gz"] == file_digest(tmp_path / "set.tar.gz", "sha256")  # every byte, hashed once


def test_second_load_uses_the_decoded_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            private_cache: Path) -> None:
    make_folder(tmp_path / "set")
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "set", arcname=".")
    first = load(f"imagefolder:{tmp_path / 'set.tar.gz'}")
    assert len(list((private_cache / "decoded").glob("v*"))) == 1

    def no_decoding(root: Path) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(imagefolder, "decode_folder", no_decoding)
    second = load(f"imagefolder:{tmp_path / 'set.tar.gz'}")
    assert np.array_equal(first.x_train, second.x_train) and first.sources == second.sources
    assert first.classes == second.classes


def test_unwritable_cache_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "set")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path / "file"))
    assert load(f"imagefolder:{tmp_path / 'set'}").x_train.shape == (20, 5, 6, 3)


def test_broken_folders(tmp_path: Path) -> None:
    make_folder(tmp_path / "set")
    (tmp_path / "set" / "train" / "dog" / "005.png").write_bytes(b"not a png")
    with pytest.raises(PoisonlabError, match=r"^cannot read image train/dog/005.png in .*; remove or replace"):
        load(f"imagefolder:{tmp_path / 'set'}")
    (tmp_path / "only").mkdir()
    with pytest.raises(PoisonlabError, match="has no images under train/; expected train/<class>/<image>"):
        load(f"imagefolder:{tmp_path / 'only'}")
    with pytest.raises(PoisonlabError, match="does not exist"):
        load(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "cut.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(PoisonlabError, match="is truncated or corrupted"):
        load(f"imagefolder:{tmp_path / 'cut.tar.gz'}")


def test_16_bit_grey_is_scaled_to_8_bits_and_float_pixels_are_refused(tmp_path):
    """16-bit PNGs once decoded to all-255 RGB (clipped); they are grey, scaled by 255/65535. Float TIFFs have no
    fixed range: one line."""
    from poisonlab.datasets.imagefiles import decode_image

    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    png = io.BytesIO()
    Image.fromarray(wide).save(png, "PNG")
    decoded = decode_image(png.getvalue(), "wide.png")
    assert decoded.dtype == np.uint8 and decoded.shape == (8, 8)
    assert np.array_equal(decoded, np.round(wide / 65535 * 255).astype(np.uint8))
    tiff = io.BytesIO()
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tiff, "TIFF")
    with pytest.raises(PoisonlabError, match=r"^image float.tif holds float pixels \(mode F\)"):
        decode_image(tiff.getvalue(), "float.tif")
