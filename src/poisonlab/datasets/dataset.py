"""The in-memory dataset every loader returns."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (N, H, W, C) with int64 labels, plus class names and provenance."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    sources: dict[str, str]
    notes: list[str]

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.dtype != np.uint8 or x.ndim != 4 or y.dtype != np.int64 or y.shape != (len(x),):
                raise ValueError(f"{self.name} {split}: need uint8 (N,H,W,C) images and int64 (N,) labels, "
                                 f"got {x.dtype} {x.shape} and {y.dtype} {y.shape}")

    @property
    def num_classes(self) -> int:
        """Number of classes (length of `classes`)."""
        return len(self.classes)
