"""The training label sets `detect` checks: poisoned copies of the labels, or CIFAR-10N human labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poisonlab.attacks import flips as poison
from poisonlab.attacks import humanlabels
from poisonlab.datasets import Dataset, resolve_class
from poisonlab.errors import PoisonlabError



@dataclass(frozen=True)
class LabelSet:
    """One set of training labels to check: its kind, setting (20%, n=100, worse), the labels and the true mask."""

    kind: str
    setting: str
    percent: float | None
    labels: np.ndarray
    mask: np.ndarray


def poisoned_sets(data: Dataset, kinds: list[str], percents: list[float], source: str | None, target: str | None,
                  counts: list[int], seed: int) -> list[LabelSet]:
    """Poisoned copies of the training labels: one per (random or biased, percent) and per targeted count."""
    sets = []
    for kind in kinds:
        if kind != "targeted":
            sets += [LabelSet(kind, f"{p:g}%", p, *poison.apply(kind, data.y_train, data.num_classes, p, seed)) for p in percents]
            continue
        if source is None or target is None:
            raise PoisonlabError("targeted poisoning needs a class pair; give a source and a target class (names or numbers)")
        src, tgt = resolve_class(source, data.classes), resolve_class(target, data.classes)
        name = f"targeted {data.classes[src]}->{data.classes[tgt]}"
        sets += [LabelSet(name, f"n={n}", None, *poison.targeted_flip(data.y_train, src, tgt, n, "first", seed)) for n in counts]
    return sets


def human_sets(data: Dataset, keys: list[str], path: Path) -> list[LabelSet]:
    """CIFAR-10N label sets (first N, as the loaded training items), after checking the clean labels match."""
    return [LabelSet("cifar10n", h.key, None, *h.apply(data.y_train)) for h in humanlabels.read(path, keys)]
