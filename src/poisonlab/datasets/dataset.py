"""The in-memory dataset every loader returns, and class lookup by name or number."""

from dataclasses import dataclass

import numpy as np

from poisonlab import display
from poisonlab.errors import PoisonlabError


@dataclass(frozen=True)
class Dataset:
    """Training and test items with int64 labels, class names and provenance.

    Items are uint8 images (N, H, W, C) (every built-in dataset), float images (N, H, W, C) or float feature
    rows (N, D); float values are used as given."""

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
            images = x.ndim == 4 and x.dtype in (np.uint8, np.float32)
            rows = x.ndim == 2 and x.dtype == np.float32
            if not (images or rows) or y.dtype != np.int64 or y.shape != (len(x),):
                raise PoisonlabError(f"{self.name} {split}: need uint8 or float32 (N,H,W,C) images or float32 (N,D) rows "
                                     f"and int64 (N,) labels, got {x.dtype} {x.shape} and {y.dtype} {y.shape}")

    @property
    def num_classes(self) -> int:
        """Number of classes (length of `classes`)."""
        return len(self.classes)

    def _items(self) -> str:
        """What one item is: "28x28x1 uint8 images" or "13 float32 features"."""
        shape = self.x_train.shape[1:]
        if len(shape) == 1:
            return f"{shape[0]} {self.x_train.dtype} features"
        return f"{'x'.join(map(str, shape))} {self.x_train.dtype} images"

    def __repr__(self) -> str:
        """One line: name, train and test sizes, what an item is and the classes (names abbreviated); no arrays."""
        return display.summary("Dataset", [("name", self.name), ("train", len(self.y_train)),
                                           ("test", len(self.y_test)), ("items", self._items()),
                                           ("classes", f"{self.num_classes}: {display.names(self.classes)}")])

    def _repr_html_(self) -> str:
        """A small table (sizes, items, classes, notes) and, for uint8 images, the first training images as
        thumbnails captioned with their class; every name escaped."""
        facts = [("name", self.name), ("training items", len(self.y_train)), ("test items", len(self.y_test)),
                 ("items", self._items()), ("classes", self.num_classes),
                 ("class names", display.names(self.classes, shown=10))]
        facts += [("note", note) for note in self.notes[:2]]
        strip = display.thumbnails(self.x_train, self.y_train, self.classes)
        return display.block(f"Dataset {self.name}", facts, extra=strip)


def dataset_record(data: Dataset) -> dict:
    """The run.json record of the data a run trained on."""
    return {"name": data.name, "classes": data.classes, "num_classes": data.num_classes, "n_train": len(data.y_train),
            "n_test": len(data.y_test), "shape": list(data.x_train.shape[1:]), "sources": data.sources,
            "notes": data.notes}


def resolve_class(text: str | int, classes: list[str]) -> int:
    """A class index from its name (case-insensitive) or its number."""
    text = str(text).strip()
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    raise PoisonlabError(f"unknown class '{text}'; choose a name or number 0..{len(classes) - 1}: {', '.join(classes)}")
