"""Argument checks, one routine per kind of value, in scikit-learn's manner: each returns the value in its canonical
form or raises `PoisonlabError` naming the argument, the value received and what to give instead.

Library entry points check each argument once, here, at their boundary; nothing deeper re-checks it."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Sequence

import numpy as np

from poisonlab.errors import PoisonlabError

MAX_SEED = 2**32 - 1  # the largest seed every library behind poisonlab accepts (scikit-learn's random_state)
MAX_CLASSES = 100_000  # class numbers above this would make (K, K) confusion matrices of tens of gigabytes
MAX_ITEM_VALUES = 1 << 24  # values of one item (a 4096 x 4096 image): a declared shape beyond is never allocated
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def check_choice(value: str, choices: Iterable[str], what: str) -> None:
    """Reject a `value` outside `choices` with the one-line error "unknown <what> '<value>'; choose one of ..."."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise PoisonlabError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def suffix_share(name: str, default: float) -> float:
    """The share a ``NAME:P`` name gives (P a percent) as a fraction: `default` without a suffix, NaN when P is not a
    number."""
    rate = name.partition(":")[2]
    if not rate:
        return default
    try:
        return float(rate) / 100
    except ValueError:
        return math.nan


def _whole(value: object) -> int | None:
    """`value` as an int when it is a Python or NumPy whole number (not bool, float or str), else None."""
    try:
        return None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        return None


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int (Python or NumPy whole numbers; not bool, float or str) in [`low`, `high`]."""
    number = _whole(value)
    span = (f"from {low} to {high}" if high is not None else f"of {low} or more") if low is not None else \
        (f"of at most {high}" if high is not None else "")
    if number is None:
        raise PoisonlabError(f"{name} must be a whole number {span}, got {value!r}".rstrip())
    if (low is not None and number < low) or (high is not None and number > high):
        raise PoisonlabError(f"{name} must be a whole number {span}, got {number}")
    return number


def check_seed(seed: object) -> int:
    """`seed` as an int in 0..MAX_SEED (Python or NumPy whole numbers), else a one-line error naming it."""
    value = _whole(seed)
    if value is None:
        raise PoisonlabError(f"seed {seed!r} is not a whole number; give seeds from 0 to {MAX_SEED}")
    if not 0 <= value <= MAX_SEED:
        raise PoisonlabError(f"seed {value} is {'negative' if value < 0 else 'too large'}; give seeds from 0 to {MAX_SEED}")
    return value


def check_fraction(value: object, name: str = "rate") -> float:
    """A real number in [0, 1] (a share such as 0.2), with a hint when it looks like a percent."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PoisonlabError(f"{name} must be a number in [0, 1] such as 0.2, got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        hint = f"; rates are fractions: did you mean {number / 100:g}?" if 1.0 < number <= 100.0 else ""
        raise PoisonlabError(f"{name} {number:g} is outside [0, 1]{hint}")
    return number


def check_positive(value: object, name: str) -> float:
    """A finite real number above 0 (a learning rate, a scale)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise PoisonlabError(f"{name} must be a number above 0 such as 0.001, got {value!r}")
    return float(value)


def check_nonempty(values: object, name: str) -> list:
    """`values` (a sequence, or one string/number) as a non-empty list, duplicates dropped in order."""
    if isinstance(values, (str, bytes, int, float, np.generic)):
        values = [values]
    if values is None or not isinstance(values, (Sequence, np.ndarray, range, set, frozenset, tuple, list)):
        raise PoisonlabError(f"{name} must be a list of values, got {values!r}")
    listed = list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in values))
    if not listed:
        raise PoisonlabError(f"{name} is empty; give at least one value")
    return listed


def check_name(value: object, what: str) -> str:
    """A name that is safe as one folder name: letters, digits, '.', '_', '+', '-' (not starting with a dot)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise PoisonlabError(f"{what} {value!r} is not a plain name; use 1-100 letters, digits, '.', '_', '+' or '-', "
                             "starting with a letter or digit")
    return value


def check_class_names(classes: object, k: int, name: str = "classes") -> list[str]:
    """`classes` as K distinct, non-empty strings (at least `k`: the labels' reach)."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        raise PoisonlabError(f"{name} must be a list of class names, got {classes!r}")
    names = [str(c) for c in classes]
    if any(not n.strip() for n in names):
        raise PoisonlabError(f"{name} holds an empty class name; give every class a name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PoisonlabError(f"{name} names {repeated[0]!r} twice; give each class its own name")
    if len(names) < k:
        raise PoisonlabError(f"labels reach {k - 1} but only {len(names)} class names were given; name all {k} classes")
    return names


def check_labels(y: object, n: int | None, name: str) -> np.ndarray:
    """Whole class numbers in 0..MAX_CLASSES-1 as int64, shape (`n`,) (any length when `n` is None)."""
    y = np.asarray(y)
    if y.ndim != 1 or (n is not None and len(y) != n):
        want = f"one label per item ({n})" if n is not None else "a 1-d array of labels"
        raise PoisonlabError(f"{name} must hold {want}, got shape {y.shape}")
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.isfinite(y).all()):
        raise PoisonlabError(f"{name} must be whole class numbers, got {y.dtype}")
    if len(y) and y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise PoisonlabError(f"{name} must be whole class numbers, got fractions such as {y[y != np.round(y)][0]:g}")
    if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
        bad = (y.min() if y.min() < 0 else y.max()).item()
        raise PoisonlabError(f"{name} holds class {f'{bad:.20g}' if isinstance(bad, float) else bad}; labels must be class numbers 0..K-1 with K at most "
                             f"{MAX_CLASSES} (renumber them: np.unique(y, return_inverse=True)[1])")
    return y.astype(np.int64)


def check_num_classes(value: object, labels: np.ndarray, name: str = "num_classes") -> int:
    """K as an int of at least 2 that covers every label."""
    k = check_int(value, name, low=2, high=MAX_CLASSES)
    if len(labels) and labels.max() >= k:
        raise PoisonlabError(f"labels reach {labels.max()} but {name} is {k}; pass {name} > {labels.max()}")
    return k


def check_item_shape(shape: object, num_classes: object, what: str) -> tuple[tuple[int, ...], int]:
    """An item shape (H, W, C) or (D,) of positive ints with at most MAX_ITEM_VALUES values, and 2..MAX_CLASSES
    classes, as read from a saved record (`what`), before any model is built for them."""
    ok = isinstance(shape, (list, tuple)) and len(shape) in (1, 3) and all(type(v) is int and v > 0 for v in shape) \
        and math.prod(shape) <= MAX_ITEM_VALUES and type(num_classes) is int and 2 <= num_classes <= MAX_CLASSES
    if not ok:
        raise PoisonlabError(f"{what} declares items of shape {shape!r} with {num_classes!r} classes; a model needs "
                             f"(H, W, C) or (D,) of at most {MAX_ITEM_VALUES} values and 2..{MAX_CLASSES} classes")
    return tuple(shape), num_classes


def check_probabilities(pred_probs: object, n: int, name: str = "pred_probs") -> np.ndarray:
    """Class probabilities (N, K) as float64: finite, in [0, 1], K >= 2."""
    try:
        probs = np.asarray(pred_probs, dtype=np.float64)
    except (TypeError, ValueError):
        raise PoisonlabError(f"{name} must be an array of class probabilities (N, K), "
                             f"got {type(pred_probs).__name__}") from None
    if probs.ndim != 2 or probs.shape[0] != n or probs.shape[1] < 2:
        raise PoisonlabError(f"{name} must have shape ({n}, K) with K >= 2 (one row of class probabilities per item), "
                             f"got shape {probs.shape}")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise PoisonlabError(f"{name} must hold probabilities in [0, 1] (softmax outputs), not scores or NaN")
    return probs


def check_mask(mask: object, n: int, name: str = "mask") -> np.ndarray:
    """A boolean mask (N,) (bools, or 0/1 numbers)."""
    array = np.asarray(mask)
    if array.ndim != 1 or len(array) != n:
        raise PoisonlabError(f"{name} must be a boolean array with one entry per item ({n}), got shape {array.shape}")
    if array.dtype.kind not in "biu" or (array.dtype.kind != "b" and len(array) and not np.isin(array, (0, 1)).all()):
        raise PoisonlabError(f"{name} must be booleans (True where an item is poisoned), got {array.dtype}")
    return array.astype(bool)
