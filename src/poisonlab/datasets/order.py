"""Order files (`index,label,path` CSV) that put an image folder's training items in a canonical order."""

import csv
import io
from pathlib import Path

import numpy as np

from poisonlab.errors import PoisonlabError, decoding
from poisonlab.files import MAX_ORDER_BYTES, read_limited

HEADER = ["index", "label", "path"]
DEFAULT_NAMES = ("train_canonical_order.csv", "order.csv")


def find_order_file(root: Path) -> Path | None:
    """The first of train_canonical_order.csv / order.csv found beside an image folder or archive."""
    return next((root.parent / name for name in DEFAULT_NAMES if (root.parent / name).is_file()), None)


def read_order(path: Path, train_paths: list[str], labels: np.ndarray) -> np.ndarray:
    """Indices into `train_paths` listed in the file's index order, after checking paths and labels agree."""
    fix = f"fix {path} or remove it to use the folder order"
    position = {name: i for i, name in enumerate(train_paths)}
    chosen = np.full(len(train_paths), -1, dtype=np.int64)
    data = read_limited(path, f"order file {path}", MAX_ORDER_BYTES, fix)
    with decoding(f"order file {path}", fix):
        rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        if next(rows, None) != HEADER:
            raise PoisonlabError(f"order file {path} must start with the header index,label,path; {fix}")
        for line, row in enumerate(rows, start=2):
            index, label, name = _parse_row(row, f"order file {path} line {line}", fix)
            where = position.get(name)
            if where is None:
                raise PoisonlabError(f"order file {path} line {line} names {name}, which is not a training "
                                     f"image of the folder; {fix}")
            if label != labels[where]:
                raise PoisonlabError(f"order file {path} line {line} gives label {label} for {name}, but its "
                                     f"folder is class {labels[where]}; {fix}")
            if not 0 <= index < len(chosen) or chosen[index] != -1:
                raise PoisonlabError(f"order file {path} line {line} has index {index}, repeated or outside "
                                     f"0..{len(chosen) - 1}; {fix}")
            chosen[index] = where
    if (chosen == -1).any() or len(np.unique(chosen)) != len(chosen):
        raise PoisonlabError(f"order file {path} does not list each of the {len(chosen)} training images exactly "
                             f"once; {fix}")
    return chosen


def _parse_row(row: list[str], where: str, fix: str) -> tuple[int, int, str]:
    """One CSV row as (index, label, path)."""
    try:
        index, label, name = row
        return int(index), int(label), name
    except ValueError:
        raise PoisonlabError(f"{where} is {','.join(row)!r}, not index,label,path with integer index and "
                             f"label; {fix}") from None
