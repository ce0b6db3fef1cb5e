"""Dataset loading: `load(spec)` returns a verified in-memory `Dataset` for any supported spec."""

from dataclasses import replace
from pathlib import Path

from poisonlab.datasets.cifar import load_cifar10, load_cifar100
from poisonlab.datasets.dataset import Dataset
from poisonlab.datasets.digits import load_digits
from poisonlab.datasets.embedded import load_embedded
from poisonlab.datasets.imagefolder import load_imagefolder
from poisonlab.datasets.mnist import SOURCES, load_idx_dataset
from poisonlab.datasets.order import find_order_file
from poisonlab.datasets.paths import resolve_cache_dir, resolve_data_dir
from poisonlab.datasets.sampling import check_size, shrink
from poisonlab.errors import PoisonlabError

__all__ = ["DATASETS", "Dataset", "load", "resolve_cache_dir", "resolve_data_dir"]

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "embedded")


def load(spec: str, data_dir: str | Path | None = None, dataset_size: int = 0, download: bool = True,
         seed: int = 0) -> Dataset:
    """Load `spec` (a name from DATASETS, "cifar100:coarse" or "imagefolder:PATH[?order=CSV]")."""
    check_size(dataset_size)
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


def _load_imagefolder(variant: str) -> tuple[Dataset, bool]:
    """Parse "PATH[?order=CSV]", find an order file beside PATH if none is given, and load the folder."""
    path, _, order = variant.partition("?order=")
    if not path:
        raise PoisonlabError("imagefolder needs a path; write imagefolder:PATH (a directory or .tar.gz)")
    root = Path(path).expanduser().resolve()
    if not order:
        return load_imagefolder(root, find_order_file(root))
    order_path = Path(order).expanduser().resolve()
    dataset, ordered = load_imagefolder(root, order_path)
    return replace(dataset, name=f"imagefolder:{root}?order={order_path}"), ordered
