"""Datasets from an image folder `train/<class>/<file>` + `test/<class>/<file>` (directory or tar.gz)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poisonlab.datasets.checksums import file_digest
from poisonlab.datasets.dataset import Dataset
from poisonlab.datasets.decoded_cache import load_cached, save_cached
from poisonlab.datasets.imagefiles import (MAX_DATASET_VALUES, SPLITS, declared_values, decode_image, iter_images,
                                          source_digest)
from poisonlab.datasets.order import read_order
from poisonlab.errors import PoisonlabError

_LAYOUT = "expected train/<class>/<image> and test/<class>/<image>"


@dataclass(frozen=True)
class DecodedFolder:
    """All images of a folder in folder order (class, then file name), with their paths."""

    classes: list[str]
    train_paths: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    digest: str


def load_imagefolder(root: Path, order: Path | None) -> tuple[Dataset, bool]:
    """The folder as a Dataset, training items in `order` if given; also says whether an order was applied."""
    if not root.exists():
        raise PoisonlabError(f"image folder {root} does not exist; pass imagefolder:PATH with PATH a directory "
                             "or .tar.gz holding train/ and test/")
    folder = decode_cached(root)
    sources = {root.name if root.is_file() else f"{root.name}/": folder.digest}
    x_train, y_train, notes = folder.x_train, folder.y_train, []
    if root.is_dir():
        notes.append("source digest is the sha256 over the folder's image paths and contents")
    if order is not None:
        chosen = read_order(order, folder.train_paths, folder.y_train)
        x_train, y_train = x_train[chosen], y_train[chosen]
        sources[order.name] = file_digest(order, "sha256")
        notes.append(f"training items in the order of {order}")
    dataset = Dataset(f"imagefolder:{root}", x_train, y_train, folder.x_test, folder.y_test, folder.classes,
                      sources, notes)
    return dataset, order is not None


def decode_cached(root: Path) -> DecodedFolder:
    """The decoded folder, from the .npy cache when the SHA-256 of its content is the cached one, else decoded and cached.

    Every byte is hashed on each call, so content changed in place (same size and mtime) is never served stale."""
    digest = source_digest(root)
    hit = load_cached(digest)
    if hit is not None:
        arrays, meta = hit
        return DecodedFolder(meta["classes"], arrays["train_paths"].tolist(), arrays["x_train"], arrays["y_train"],
                             arrays["x_test"], arrays["y_test"], digest)
    folder = decode_folder(root)
    arrays = {"train_paths": np.array(folder.train_paths), "x_train": folder.x_train, "y_train": folder.y_train,
              "x_test": folder.x_test, "y_test": folder.y_test}
    save_cached(folder.digest, arrays, {"classes": folder.classes})
    return folder


def decode_folder(root: Path) -> DecodedFolder:
    """Read and decode every image once, checking the layout and that all images share one size.

    Its digest is the SHA-256 of exactly the bytes decoded (see `source_digest`)."""
    digest: list[str] = []
    found: dict[str, list[tuple[str, np.ndarray]]] = {split: [] for split in SPLITS}
    files = list(iter_images(root, digest))
    values = sum(declared_values(data, f"{name} in {root}") for name, data in files)  # headers only
    if values > MAX_DATASET_VALUES:
        raise PoisonlabError(f"image folder {root} would decode to {values} pixel values, more than the "
                             f"{MAX_DATASET_VALUES} allowed (a decompression bomb?); use fewer or smaller images")
    for name, data in files:
        found[name.split("/")[0]].append((name, decode_image(data, f"{name} in {root}")))
    for split in SPLITS:
        if not found[split]:
            raise PoisonlabError(f"image folder {root} has no images under {split}/; {_LAYOUT}")
        found[split].sort(key=lambda item: item[0])
    classes = sorted({name.split("/")[1] for name, _ in found["train"]})
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({name.split("/")[1] for name, _ in found["test"]} - index.keys())
    if unknown:
        raise PoisonlabError(f"image folder {root} has test classes {', '.join(unknown)} with no training images; "
                             "add training images for them or remove them from test/")
    x_train, x_test = _stack(root, found)
    y_train, y_test = (np.array([index[name.split("/")[1]] for name, _ in found[split]], dtype=np.int64)
                       for split in SPLITS)
    return DecodedFolder(classes, [name for name, _ in found["train"]], x_train, y_train, x_test, y_test, digest[0])


def _stack(root: Path, found: dict[str, list[tuple[str, np.ndarray]]]) -> list[np.ndarray]:
    """Both splits as (N, H, W, C) arrays: C=1 when every image is grey, else RGB with grey ones expanded."""
    first_name, first = found["train"][0]
    grey = all(image.ndim == 2 for split in SPLITS for _, image in found[split])
    stacked = []
    for split in SPLITS:
        images = []
        for name, image in found[split]:
            if image.shape[:2] != first.shape[:2]:
                raise PoisonlabError(f"image folder {root}: {name} is {image.shape[1]}x{image.shape[0]} pixels but "
                                     f"{first_name} is {first.shape[1]}x{first.shape[0]}; "
                                     "resize all images to one size")
            images.append(image if grey or image.ndim == 3 else np.repeat(image[..., None], 3, axis=2))
        array = np.stack(images)
        stacked.append(array[..., None] if grey else array)
    return stacked
