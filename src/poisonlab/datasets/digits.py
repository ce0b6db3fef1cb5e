"""scikit-learn's bundled 8x8 handwritten digits, split deterministically."""

from importlib.resources import files

import numpy as np
import sklearn
from sklearn.datasets import load_digits as sklearn_digits

from poisonlab.datasets.checksums import digest
from poisonlab.datasets.dataset import Dataset

TRAIN_SIZE = 1437


def load_digits() -> Dataset:
    """1797 digits scaled from 0..16 to uint8 0..255: the first 1437 for training, the last 360 for testing."""
    bunch = sklearn_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    raw = files("sklearn.datasets.data").joinpath("digits.csv.gz").read_bytes()
    note = (f"scikit-learn {sklearn.__version__} bundled UCI 8x8 digits, 0..16 scaled to 0..255; "
            f"deterministic split: first {TRAIN_SIZE} train, last {len(labels) - TRAIN_SIZE} test")
    return Dataset("digits", images[:TRAIN_SIZE], labels[:TRAIN_SIZE], images[TRAIN_SIZE:], labels[TRAIN_SIZE:],
                   [str(d) for d in range(10)], {"digits.csv.gz": digest(raw, "sha256")}, [note])
