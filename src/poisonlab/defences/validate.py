"""`poisonlab validate` maths: each known dataset's expected schema, the schema checks, and the outlier scan."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from poisonlab.datasets import Dataset
from poisonlab.datasets.cifar_names import CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES
from poisonlab.datasets.mnist import SOURCES
from poisonlab.defences import outliers
from poisonlab.errors import PoisonlabError

SCHEMA_EXAMPLE = '{"shape": [28, 28, 1], "dtype": "uint8", "value_range": [0, 255], "classes": ["0", "1", ...]}'


@dataclass(frozen=True)
class Schema:
    """What a dataset must look like: image shape (H, W, C), pixel dtype and value range, class names in label order."""

    shape: tuple[int, ...]
    dtype: str
    value_range: tuple[float, float]
    classes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype, "value_range": list(self.value_range),
                "classes": list(self.classes)}


DIGITS = tuple(str(d) for d in range(10))
KNOWN = {
    "mnist": Schema((28, 28, 1), "uint8", (0, 255), SOURCES["mnist"].classes),
    "fashion_mnist": Schema((28, 28, 1), "uint8", (0, 255), SOURCES["fashion_mnist"].classes),
    "embedded": Schema((28, 28, 1), "uint8", (0, 255), SOURCES["fashion_mnist"].classes),
    "cifar10": Schema((32, 32, 3), "uint8", (0, 255), CIFAR10_CLASSES),
    "cifar100": Schema((32, 32, 3), "uint8", (0, 255), CIFAR100_FINE_CLASSES),
    "cifar100:coarse": Schema((32, 32, 3), "uint8", (0, 255), CIFAR100_COARSE_CLASSES),
    "digits": Schema((8, 8, 1), "uint8", (0, 255), DIGITS),
}


def known_schema(name: str) -> Schema:
    """The built-in schema of a dataset name, or a one-line error naming the fix."""
    if name not in KNOWN:
        raise PoisonlabError(f"no built-in schema for {name}; give an expected schema file, or record the observed one from "
                             "trusted data first")
    return KNOWN[name]


def parse_schema(doc: object, where: str) -> Schema:
    """A Schema from its JSON form, or a one-line error naming the bad field."""
    fields = ("shape", "dtype", "value_range", "classes")
    problem = None
    if not isinstance(doc, dict) or any(f not in doc for f in fields):
        problem = f"needs the fields {', '.join(fields)}"
    elif not isinstance(doc["shape"], list) or not doc["shape"] or not all(type(v) is int and v > 0 for v in doc["shape"]):
        problem = "'shape' must be a list of positive whole numbers (height, width, channels)"
    elif not isinstance(doc["dtype"], str) or doc["dtype"] not in np.sctypeDict:
        problem = f"'dtype' {doc['dtype']!r} is not a NumPy dtype name"
    elif (not isinstance(doc["value_range"], list) or len(doc["value_range"]) != 2
          or not all(type(v) in (int, float) for v in doc["value_range"]) or doc["value_range"][0] > doc["value_range"][1]):
        problem = "'value_range' must be [low, high] with low <= high"
    elif not isinstance(doc["classes"], list) or not doc["classes"] or not all(isinstance(c, str) for c in doc["classes"]):
        problem = "'classes' must be a non-empty list of class names in label order"
    if problem:
        raise PoisonlabError(f"schema {where} {problem}; write it like {SCHEMA_EXAMPLE}")
    return Schema(tuple(doc["shape"]), str(doc["dtype"]), tuple(doc["value_range"]), tuple(doc["classes"]))


def observed_schema(data: Dataset) -> Schema:
    """The schema the data actually has (train images' shape and dtype, the pixel range over both splits)."""
    low = min(int(data.x_train.min(initial=255)), int(data.x_test.min(initial=255)))
    high = max(int(data.x_train.max(initial=0)), int(data.x_test.max(initial=0)))
    return Schema(tuple(data.x_train.shape[1:]), str(data.x_train.dtype), (low, high), tuple(data.classes))


def _check(name: str, ok: bool, detail: str, fatal: bool = True) -> dict:
    """One check's verdict; a failed non-fatal check is a warning."""
    return {"check": name, "ok": bool(ok), "fatal": fatal, "detail": detail}


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _split_checks(split: str, x: np.ndarray, y: np.ndarray, schema: Schema) -> list[dict]:
    """Shape, dtype, value range and labels of one split."""
    if len(x) == 0:
        return [_check(f"{split} items", False, f"the {split} split is empty")]
    k, (lo, hi) = len(schema.classes), schema.value_range
    low, high = x.min(), x.max()
    checks = [
        _check(f"{split} image shape", x.shape[1:] == schema.shape,
               f"{len(x)} images of {_dims(x.shape[1:])}" + ("" if x.shape[1:] == schema.shape else f", expected {_dims(schema.shape)}")),
        _check(f"{split} dtype", str(x.dtype) == schema.dtype,
               str(x.dtype) + ("" if str(x.dtype) == schema.dtype else f", expected {schema.dtype}")),
        _check(f"{split} value range", lo <= low and high <= hi,
               f"pixels {low:g}..{high:g}" + (f" within {lo:g}..{hi:g}" if lo <= low and high <= hi else f", outside {lo:g}..{hi:g}")),
    ]
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        return [*checks, _check(f"{split} labels", False, f"labels are {y.dtype} {y.shape}; expected {len(x)} whole numbers")]
    bad = np.flatnonzero((y < 0) | (y >= k))
    detail = (f"{y.dtype}, all in 0..{k - 1}" if not len(bad) else
              f"{len(bad)} label{'s' if len(bad) > 1 else ''} outside 0..{k - 1} (first: index {bad[0]}, label {y[bad[0]]})")
    return [*checks, _check(f"{split} labels", not len(bad), detail)]


def check_schema(schema: Schema, data: Dataset) -> list[dict]:
    """Every schema check of the data: classes, each split's shape, dtype, value range and labels, and train/test
    consistency (fatal), then class coverage (a warning)."""
    same = list(data.classes) == list(schema.classes)
    names = f"{len(data.classes)} classes: {', '.join(data.classes[:12])}{', ...' if len(data.classes) > 12 else ''}"
    if not same:
        wrong = next((i for i, (a, b) in enumerate(zip(data.classes, schema.classes)) if a != b), None)
        names += (f"; expected {len(schema.classes)}" if wrong is None else
                  f"; class {wrong} is {data.classes[wrong]!r}, expected {schema.classes[wrong]!r}")
    checks = [_check("class names", same, names)]
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        checks += _split_checks(split, x, y, schema)
    consistent = data.x_train.shape[1:] == data.x_test.shape[1:] and data.x_train.dtype == data.x_test.dtype
    checks.append(_check("train/test consistency", consistent,
                         f"train {_dims(data.x_train.shape[1:])} {data.x_train.dtype}, test "
                         f"{_dims(data.x_test.shape[1:])} {data.x_test.dtype}"))
    k = len(schema.classes)
    missing = {split: sorted(set(range(k)) - set(np.unique(y).tolist())) for split, y in (("train", data.y_train),
                                                                                          ("test", data.y_test))}
    counts = np.bincount(data.y_train[(data.y_train >= 0) & (data.y_train < k)], minlength=k)
    coverage = "; ".join(f"no {split} items of class {', '.join(map(str, m))}" for split, m in missing.items() if m)
    checks.append(_check("class coverage", not coverage,
                         coverage or f"every class in both splits; {counts.min()}..{counts.max()} training items per class",
                         fatal=False))
    return checks


def validate(data: Dataset, schema: Schema, threshold: float, seed: int) -> dict:
    """The schema checks and the training-image outliers (robust z and isolation forest above `threshold`)."""
    started = time.perf_counter()
    checks = check_schema(schema, data)
    checked = time.perf_counter()
    statistics = outliers.image_statistics(data.x_train, schema.value_range)
    computed = time.perf_counter()
    isolation = outliers.isolation_scores(data.x_train, statistics, seed)
    isolated = time.perf_counter()
    found = outliers.outliers(statistics, isolation, data.y_train, threshold)
    return {"schema_ok": all(c["ok"] for c in checks if c["fatal"]), "checks": checks, "threshold": threshold,
            "seed": seed, "n_train": len(data.y_train), "n_test": len(data.y_test), "statistics": list(outliers.STATISTICS),
            "n_flagged": len(found), "outliers": found,
            "seconds": {"schema": checked - started, "statistics": computed - checked, "isolation_forest": isolated - computed,
                        "total": time.perf_counter() - started}}
