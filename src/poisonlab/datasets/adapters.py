"""The user's own data as a `Dataset`: numpy arrays, or torch datasets of (image, label) pairs."""

from __future__ import annotations

import hashlib

import numpy as np

from poisonlab.datasets.dataset import Dataset
from poisonlab.checks import check_class_names, check_labels, check_name
from poisonlab.errors import PoisonlabError


def as_items(x, name: str) -> np.ndarray:
    """uint8 images kept as uint8 (N, H, W) gaining a channel; anything else as float32 values, unscaled."""
    x = np.asarray(x)
    if x.ndim not in (2, 3, 4) or not len(x):
        raise PoisonlabError(f"{name} must be a non-empty array of images (N, H, W[, C]) or feature rows (N, D), "
                             f"got shape {x.shape}")
    if x.dtype.kind not in "uif" or x.dtype == np.float16:
        raise PoisonlabError(f"{name} must hold numbers (uint8 images or float values), got {x.dtype}")
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise PoisonlabError(f"{name} holds NaN or infinite values; clean or impute them first")
    return np.ascontiguousarray(x[..., None] if x.ndim == 3 else x)


def from_arrays(x_train, y_train, x_test, y_test, *, classes: list[str] | None = None, name: str = "arrays") -> Dataset:
    """A `Dataset` from numpy arrays.

    Parameters
    ----------
    x_train, x_test : array-like, shape (N, H, W), (N, H, W, C) or (N, D)
        uint8 images (scaled to [-1, 1] for torch models, [0, 1] for scikit-learn ones), or float images or
        feature rows, used exactly as given (no division by 255).
    y_train, y_test : array-like of int, shape (N,)
        Class numbers 0..K-1.
    classes : list of str, optional
        Class names; default "0".."K-1".
    name : str
        Name recorded with results (letters, digits, '.', '_', '+', '-'); a run's identity also includes a
        fingerprint of the arrays, so two datasets of one name never share saved runs.

    Returns
    -------
    Dataset
    """
    name = check_name(name, "dataset name")
    xs = [as_items(x_train, "x_train"), as_items(x_test, "x_test")]
    if xs[0].dtype != xs[1].dtype:
        xs = [x.astype(np.float32) for x in xs]
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise PoisonlabError(f"training items of shape {xs[0].shape[1:]} and test items of shape {xs[1].shape[1:]} "
                             "differ; give both splits the same item shape")
    ys = [check_labels(y_train, len(xs[0]), "y_train"), check_labels(y_test, len(xs[1]), "y_test")]
    k = int(max(ys[0].max(), ys[1].max(initial=0))) + 1
    classes = [str(c) for c in range(k)] if classes is None else check_class_names(classes, k)
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], classes, {"arrays": fingerprint(xs[0], ys[0], xs[1], ys[1])},
                   [f"user arrays ({xs[0].dtype})"])


def fingerprint(*arrays: np.ndarray) -> str:
    """"sha256:<hex>" of the arrays' dtypes, shapes and bytes: the identity of a user's data in its runs."""
    hasher = hashlib.sha256()
    for array in arrays:
        hasher.update(f"{array.dtype.str}{array.shape};".encode())
        hasher.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return f"sha256:{hasher.hexdigest()}"


def _from_torch_items(dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack a torch dataset's (image, label) pairs; CHW tensors become HWC arrays."""
    import torch

    images, labels = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise PoisonlabError(f"{name}[{i}] is not an (image, label) pair")
        image, label = item[0], item[1]
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if isinstance(image, torch.Tensor) and array.ndim == 3:
            array = array.transpose(1, 2, 0)  # torch images are (C, H, W)
        images.append(array)
        labels.append(int(label))
    return np.stack(images), np.asarray(labels)


def from_torch(train, test, *, classes: list[str] | None = None, name: str = "torch") -> Dataset:
    """A `Dataset` from two `torch.utils.data.Dataset` objects yielding (image, label).

    Tensor images are (C, H, W) (uint8 kept as pixels, float used as given); PIL images and arrays (H, W[, C])."""
    x_train, y_train = _from_torch_items(train, "train")
    x_test, y_test = _from_torch_items(test, "test")
    classes = classes if classes is not None else getattr(train, "classes", None)
    return from_arrays(x_train, y_train, x_test, y_test, classes=classes, name=name)
