"""Dataset loading: `load(spec)` returns a verified in-memory `Dataset` for any supported spec."""

from dataclasses import replace
from pathlib import Path

import numpy as np

from poisonlab.datasets.cifar import load_cifar10, load_cifar100
from poisonlab.datasets.adapters import from_arrays, from_torch
from poisonlab.datasets.dataset import Dataset, resolve_class
from poisonlab.datasets.dataset import dataset_record as dataset_record  # re-exported
from poisonlab.datasets.digits import load_digits
from poisonlab.datasets.embedded import load_embedded
from poisonlab.datasets.imagefolder import load_imagefolder
from poisonlab.datasets.mnist import SOURCES, load_idx_dataset
from poisonlab.datasets.order import find_order_file
from poisonlab.datasets.paths import resolve_cache_dir, resolve_data_dir
from poisonlab.datasets.sampling import check_size, shrink
from poisonlab.errors import PoisonlabError

__all__ = ["DATASETS", "Dataset", "from_arrays", "from_torch", "load", "resolve_cache_dir", "resolve_class",
           "resolve_data_dir"]

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "embedded")


def load(spec: str, data_dir: str | Path | None = None, dataset_size: int = 0, download: bool = True,
         seed: int = 0, test_size: int = 0) -> Dataset:
    """Load `spec` (a name from DATASETS, "cifar100:coarse" or "imagefolder:PATH[?order=CSV]").

    `dataset_size` keeps the first N training items, `test_size` the first N test items (0 = all)."""
    check_size(dataset_size)
    if test_size < 0:
        raise PoisonlabError(f"test_size must be 0 (all items) or positive, got {test_size}")
    dataset = _load(spec, data_dir, dataset_size, download, seed)
    if test_size > len(dataset.y_test):
        raise PoisonlabError(f"test_size {test_size} is larger than the {len(dataset.y_test)} test items of "
                             f"{dataset.name}; pass at most {len(dataset.y_test)}, or 0 for all")
    if test_size and test_size < len(dataset.y_test):
        dataset = _test_subset(dataset, test_size)
    return dataset


def _load(spec: str, data_dir: str | Path | None, dataset_size: int, download: bool, seed: int) -> Dataset:
    """The loader behind `load`, before the test set is shortened."""
    name, _, variant = spec.strip().partition(":")
    if name == "imagefolder":
        dataset, ordered = _load_imagefolder(variant)
        return shrink(dataset, dataset_size, ordered, seed)
    if name == "cifar100" and variant not in ("", "fine", "coarse"):
        raise PoisonlabError(f"unknown CIFAR-100 label set {variant!r} in {spec!r}; use cifar100 (fine labels) "
                             "or cifar100:coarse")
    if name not in DATASETS or (variant and name != "cifar100"):
        raise PoisonlabError(f"unknown dataset {spec!r}; choose one of {', '.join(DATASETS)} or imagefolder:PATH")
    folder = resolve_data_dir(data_dir) / name
    if name in SOURCES:
        dataset = load_idx_dataset(SOURCES[name], folder, download)
    elif name == "cifar10":
        dataset = load_cifar10(folder, download)
    elif name == "cifar100":
        dataset = load_cifar100(folder, download, coarse=variant == "coarse")
    elif name == "digits":
        dataset = load_digits()
    else:
        dataset = load_embedded()
    return shrink(dataset, dataset_size, True, seed)


def _test_subset(dataset: Dataset, n: int) -> Dataset:
    """The first `n` test items; where the test split is ordered by class (all of one class, then the next, as in
    the CIFAR-10 JPEG copy), `n` items taken round-robin over the classes instead, so that every class is tested."""
    y = dataset.y_test
    if len(np.unique(y)) > 1 and (np.diff(y) >= 0).all():
        rank = np.arange(len(y)) - np.searchsorted(y, y)  # position of each item within its class
        keep = np.sort(np.argsort(rank, kind="stable")[:n])
        note = f"{n} test items taken round-robin over the classes (the test split is ordered by class)"
    else:
        keep, note = np.arange(n), f"first {n} test items"
    return replace(dataset, x_test=dataset.x_test[keep], y_test=y[keep], notes=[*dataset.notes, note])


def _load_imagefolder(variant: str) -> tuple[Dataset, bool]:
    """Parse "PATH[?order=CSV]", find an order file beside PATH if none is given, and load the folder."""
    path, marker, order = variant.partition("?order=")
    if marker and not order.strip():
        raise PoisonlabError("imagefolder:PATH?order= names no order file; write ?order=CSV or leave out ?order=")
    if not path:
        raise PoisonlabError("imagefolder needs a path; write imagefolder:PATH (a directory or .tar.gz)")
    root = Path(path).expanduser().resolve()
    if not order:
        return load_imagefolder(root, find_order_file(root))
    order_path = Path(order).expanduser().resolve()
    dataset, ordered = load_imagefolder(root, order_path)
    return replace(dataset, name=f"imagefolder:{root}?order={order_path}"), ordered
