"""The training label sets `detect` checks: poisoned copies of the labels, or CIFAR-10N human labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poisonlab.attacks import flips as poison
from poisonlab.attacks import humanlabels, informed
from poisonlab.attacks.backdoor import Trigger, backdoor
from poisonlab.datasets import Dataset, resolve_class
from poisonlab.errors import PoisonlabError
from poisonlab.studies import surrogate



@dataclass(frozen=True)
class LabelSet:
    """One set of training labels to check: its kind, setting (20%, n=100, worse), the labels and the true mask;
    a backdoor set also carries its stamped training images (N, H, W, C), target class and trigger."""

    kind: str
    setting: str
    percent: float | None
    labels: np.ndarray
    mask: np.ndarray
    x: np.ndarray | None = None
    target: int | None = None
    trigger: Trigger | None = None


def poisoned_sets(data: Dataset, kinds: list[str], percents: list[float], source: str | None, target: str | None,
                  counts: list[int], seed: int, selects: tuple[str, ...] = ("random",)) -> list[LabelSet]:
    """Poisoned copies of the training labels: one per (random or biased, percent), per targeted count, and per
    backdoor percent (a 3x3 corner patch, BadNets, to `target`); random and biased once per item selection in
    `selects` (margin and confident on the clean-label surrogate's out-of-fold probabilities)."""
    sets = []
    for kind in kinds:
        if kind == "backdoor":
            sets += backdoor_sets(data, percents, target, seed)
            continue
        if kind != "targeted":
            for select in selects:
                probs = surrogate.probabilities(data, seed) if select in informed.INFORMED else None
                name = kind if select == "random" else f"{kind} {select}"
                sets += [LabelSet(name, f"{p:g}%", p, *poison.apply(kind, data.y_train, data.num_classes, p, seed,
                                                                    select=select, pred_probs=probs)) for p in percents]
            continue
        if source is None or target is None:
            raise PoisonlabError("targeted poisoning needs a class pair; give a source and a target class (names or numbers)")
        src, tgt = resolve_class(source, data.classes), resolve_class(target, data.classes)
        name = f"targeted {data.classes[src]}->{data.classes[tgt]}"
        sets += [LabelSet(name, f"n={n}", None, *poison.targeted_flip(data.y_train, src, tgt, n, "first", seed)) for n in counts]
    return sets


def backdoor_sets(data: Dataset, percents: list[float], target: str | None, seed: int,
                  trigger: Trigger = Trigger()) -> list[LabelSet]:
    """One BadNets set per percent: `trigger` stamped on that share of items of other classes, relabelled `target`."""
    if target is None:
        raise PoisonlabError("backdoor poisoning needs a target class; give the class the trigger steers to (name or number)")
    tgt = resolve_class(target, data.classes)
    sets = []
    for p in percents:
        x, labels, idx = backdoor(data.x_train, data.y_train, trigger=trigger, target=tgt, percent=p, seed=seed)
        mask = np.zeros(len(labels), bool)
        mask[idx] = True
        sets.append(LabelSet(f"backdoor {trigger.kind}->{data.classes[tgt]}", f"{p:g}%", p, labels, mask, x, tgt, trigger))
    return sets


def human_sets(data: Dataset, keys: list[str], path: Path) -> list[LabelSet]:
    """CIFAR-10N label sets (first N, as the loaded training items), after checking the clean labels match."""
    return [LabelSet("cifar10n", h.key, None, *h.apply(data.y_train)) for h in humanlabels.read(path, keys)]
