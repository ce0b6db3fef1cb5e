"""The training label sets `detect` checks: poisoned copies of the labels, or CIFAR-10N human labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poisonlab import poison
from poisonlab.datasets import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.targeted import resolve_class

POISONS = ("random", "biased", "targeted")
CIFAR10N = {"aggre": "aggre_label", "worse": "worse_label", "random1": "random_label1", "random2": "random_label2",
            "random3": "random_label3"}


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
            raise PoisonlabError("targeted poisoning needs a class pair; pass --source and --target (names or numbers)")
        src, tgt = resolve_class(source, data.classes), resolve_class(target, data.classes)
        name = f"targeted {data.classes[src]}->{data.classes[tgt]}"
        sets += [LabelSet(name, f"n={n}", None, *poison.targeted_flip(data.y_train, src, tgt, n, "first", seed)) for n in counts]
    return sets


def cifar10n_keys(spec: str, dataset: str, poison_kind: str | None) -> list[str]:
    """The CIFAR-10N label sets named by `spec` ("cifar10n:aggre,worse"), after checking it fits the request."""
    name, _, rest = spec.partition(":")
    keys = [k.strip() for k in rest.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CIFAR10N]
    if name != "cifar10n" or unknown or not keys:
        raise PoisonlabError(f"unknown label set '{unknown[0] if unknown else spec}'; write cifar10n:KEY[,KEY] with KEY "
                             f"from {', '.join(CIFAR10N)}")
    if dataset.strip() != "cifar10":
        raise PoisonlabError(f"CIFAR-10N labels belong to CIFAR-10, not {dataset}; pass --dataset cifar10")
    if poison_kind is not None:
        raise PoisonlabError("--labels uses real human label noise instead of poisoning; leave out --poison")
    return keys


def human_sets(data: Dataset, keys: list[str], path: Path) -> list[LabelSet]:
    """CIFAR-10N label sets (first N, as the loaded training items), after checking the clean labels match."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[name].astype(np.int64)[: len(data.y_train)] for k, name in
                      [("clean", "clean_label"), *((k, CIFAR10N[k]) for k in keys)]}
    except (OSError, KeyError, ValueError) as exc:
        raise PoisonlabError(f"cannot read CIFAR-10N labels from {path} ({exc}); "
                             "pass --cifar-n PATH to cifar10n_labels.npz") from None
    if not np.array_equal(arrays["clean"], data.y_train):
        raise PoisonlabError(f"the clean labels in {path} differ from the loaded CIFAR-10 training labels; load CIFAR-10 "
                             "in the official training order (binary release, or the JPEG copy with its order file)")
    return [LabelSet("cifar10n", k, None, arrays[k], arrays[k] != data.y_train) for k in keys]
