"""What a run does against its poisoned labels: nothing, a training remedy, or a detector's cleaning before training.

Names: ``none``; the training remedies of `training.remedies` (``gce``, ``sce``, ``elr``, ``coteach[:P]``); and
``clean:METHOD`` (drop the items detector METHOD flags) or ``relabel:METHOD`` (give them its suggested label), with
METHOD one of the label-flip detectors (``cl``, ``knn``, ``knn-pixels``, ``loss``, ``ensemble``), the gradient ones
(``influence``, ``grad``, ``gradclust``) or the backdoor ones (``spectral``, ``ac``, ``correlation``)."""

from __future__ import annotations

import time

import numpy as np

from poisonlab.defences import BACKDOOR_METHODS, DETECTION_METHODS, GRADIENT_METHODS, detectors
from poisonlab.defences.cleaning import ACTIONS, cleaned
from poisonlab.defences.evaluate import score
from poisonlab.errors import PoisonlabError
from poisonlab.training import remedies

CLEANERS = DETECTION_METHODS + GRADIENT_METHODS + BACKDOOR_METHODS  # the detectors a cleaning defence may use
DEFENCES = (*remedies.REMEDIES, *(f"{a}:{m}" for a in ACTIONS for m in CLEANERS))


def check_defence(name: object) -> str:
    """`name` when it names a defence (see the module's list), else a one-line error naming the choices."""
    if isinstance(name, str) and name.partition(":")[0] in ACTIONS:
        if name not in DEFENCES:
            raise PoisonlabError(f"unknown defence {name!r}; a cleaning defence is clean:METHOD or relabel:METHOD "
                                 f"with METHOD one of {', '.join(CLEANERS)}")
        return name
    if isinstance(name, str) and name.startswith("coteach:"):
        return remedies.check_remedy(name)  # its own line about the forget rate
    try:
        return remedies.check_remedy(name)
    except PoisonlabError:
        raise PoisonlabError(f"unknown defence {name!r}; choose one of {', '.join(DEFENCES)} (or coteach:P, P the "
                             "forget rate in percent)") from None


def cleans(name: str) -> bool:
    """Whether defence `name` cleans the labels before training (then its runs cannot share a stack)."""
    return name.partition(":")[0] in ACTIONS


def remedy(name: str) -> str:
    """The training remedy of defence `name` ("none" for a cleaning defence)."""
    return "none" if cleans(name) else name


def settings(name: str) -> dict:
    """The defence's settings as run.json records them (a cleaning defence adds its detection's figures)."""
    if cleans(name):
        action, _, method = name.partition(":")
        return {"name": name, "action": action, "method": method}
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
