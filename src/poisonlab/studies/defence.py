"""What a run does against its poisoned labels: nothing, a training remedy, or a detector's cleaning before training.

Names: ``none``; the training remedies of `training.remedies` (``gce``, ``sce``, ``elr``, ``coteach[:P]``, ``semi``,
``abl[:P]``); and
``clean:METHOD`` (drop the items detector METHOD flags) or ``relabel:METHOD`` (give them its suggested label), with
METHOD one of the label-flip detectors (``cl``, ``knn``, ``knn-pixels``, ``loss``, ``ensemble``), the gradient ones
(``influence``, ``grad``, ``gradclust``) or the backdoor ones (``spectral``, ``ac``, ``ac-exclusionary``,
``correlation``).

Backdoor studies also take the defences that use a trusted clean share of the training items (``NAME:P``: P percent
of the training size, default TRUSTED_SHARE), a seeded sample of the items the attacker did not touch: ``finetune``
and ``fineprune`` repair the trained model (see `defences.finetuning`), ``strip`` rejects triggered inputs at test
time (see `defences.strip`)."""

from __future__ import annotations

import time

import numpy as np

from poisonlab.defences import BACKDOOR_METHODS, DETECTION_METHODS, GRADIENT_METHODS, detectors, finetuning
from poisonlab.defences.cleaning import ACTIONS, cleaned
from poisonlab.defences.evaluate import score
from poisonlab.checks import suffix_share
from poisonlab.errors import PoisonlabError
from poisonlab.training import remedies

CLEANERS = DETECTION_METHODS + GRADIENT_METHODS + BACKDOOR_METHODS  # the detectors a cleaning defence may use
DEFENCES = (*remedies.REMEDIES, *(f"{a}:{m}" for a in ACTIONS for m in CLEANERS))
TRUSTED = ("finetune", "fineprune", "strip")  # backdoor defences with a trusted clean share of the training items
TRUSTED_SHARE = 0.05


def check_defence(name: object, *, backdoor: bool = False) -> str:
    """`name` when it names a defence (see the module's list; the trusted-set ones in a `backdoor` study only), else
    a one-line error naming the choices."""
    if isinstance(name, str) and name.partition(":")[0] in TRUSTED:
        if not backdoor:
            raise PoisonlabError(f"defence {name!r} repairs a backdoored model with a trusted clean set; use it in a "
                                 "backdoor study, or choose a label-flip defence")
        share = trusted_share(name)
        if not 0 < share <= 1:
            raise PoisonlabError(f"the trusted share of defence {name!r} must be a percent in (0, 100]; write e.g. "
                                 f"{name.partition(':')[0]}:5")
        return name
    if isinstance(name, str) and name.partition(":")[0] in ACTIONS:
        if name not in DEFENCES:
            raise PoisonlabError(f"unknown defence {name!r}; a cleaning defence is clean:METHOD or relabel:METHOD "
                                 f"with METHOD one of {', '.join(CLEANERS)}")
        return name
    if isinstance(name, str) and name.partition(":")[0] in remedies.SHARED and ":" in name:
        return remedies.check_remedy(name)  # its own line about the forget rate
    try:
        return remedies.check_remedy(name)
    except PoisonlabError:
        extra = f"; in a backdoor study also {', '.join(TRUSTED)} (NAME:P: P % of the training items trusted)"
        raise PoisonlabError(f"unknown defence {name!r}; choose one of {', '.join(DEFENCES)} (or coteach:P / abl:P, "
                             f"P the forget or isolated share in percent){extra if backdoor else ''}") from None


def trusted_share(name: str) -> float:
    """The share of the training items a trusted-set defence `name` trusts (NaN when its percent is not a number)."""
    return suffix_share(name, TRUSTED_SHARE)


def uses_trusted(name: str) -> bool:
    """Whether defence `name` works after training with a trusted clean set (finetune, fineprune, strip)."""
    return name.partition(":")[0] in TRUSTED


def trusted_items(mask: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A seeded sample of round(share * N) training items outside the poison `mask` (N,), sorted: the defender's
    trusted clean set (items the attacker did not touch)."""
    untouched = np.flatnonzero(~mask)
    n = min(len(untouched), max(1, round(share * len(mask))))
    return np.sort(np.random.default_rng([seed, 17]).choice(untouched, n, replace=False))


def cleans(name: str) -> bool:
    """Whether defence `name` cleans the labels before training (then its runs cannot share a stack)."""
    return name.partition(":")[0] in ACTIONS


def remedy(name: str) -> str:
    """The training remedy of defence `name` ("none" for a cleaning or trusted-set defence)."""
    return "none" if cleans(name) or uses_trusted(name) else name


def settings(name: str) -> dict:
    """The defence's settings as run.json records them (a cleaning defence adds its detection's figures)."""
    if cleans(name):
        action, _, method = name.partition(":")
        return {"name": name, "action": action, "method": method}
    if uses_trusted(name):
        return {"name": name, "method": name.partition(":")[0], "trusted_share": trusted_share(name),
                "trusted_source": "a seeded sample of the training items the attacker did not touch"}
    return remedies.settings(name)


def clean(name: str, x: np.ndarray, labels: np.ndarray, mask: np.ndarray, num_classes: int,
          seed: int) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """Apply defence `name`'s cleaning to training items `x` (N, ...) with `labels` (N,) (none when it does not clean).

    Returns the labels to train on (N,), the mask of items kept (N,) and the record (None without cleaning): the
    defence's settings, the items kept, the detection's scores against the true poison `mask` (N,) and its seconds."""
    if not cleans(name):
        return labels, np.ones(len(labels), bool), None
    action, _, method = name.partition(":")
    started = time.perf_counter()
    detection = detectors.run([method], x, labels, num_classes, seed)[0]
    new_labels, keep = cleaned(labels, detection, action)
    return new_labels, keep, {**settings(name), "n_kept": int(keep.sum()), "detection": score(detection, mask),
                              "seconds": round(time.perf_counter() - started, 3)}


def repair(name: str, model, x: np.ndarray, labels: np.ndarray, mask: np.ndarray, seed: int) -> dict:
    """Fine-tune (``finetune``) or fine-prune (``fineprune``) trained `model` in place on the trusted share of the
    training items `x` (N, ...) with `labels` (N,), drawn outside the poison `mask` (N,); returns the record: the
    defence's settings, what it did and its seconds."""
    started = time.perf_counter()
    items = trusted_items(mask, trusted_share(name), seed)
    method = name.partition(":")[0]
    done = (finetuning.fineprune if method == "fineprune" else finetuning.finetune)(model, x[items], labels[items],
                                                                                     seed=seed)
    return {**settings(name), **done, "seconds": round(time.perf_counter() - started, 3)}
