"""Acting on a detection: drop the flagged items, or give them the detector's suggested label."""

from __future__ import annotations

import numpy as np

from poisonlab.defences.detectors import Detection
from poisonlab.checks import check_choice

ACTIONS = ("clean", "relabel")


def cleaned(labels: np.ndarray, detection: Detection, action: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels to retrain on and the mask of items to keep: `clean` drops flagged items, `relabel` keeps all of
    them with the suggested label in place of each flagged one."""
    check_choice(action, ACTIONS, "cleaning action")
    if action == "clean":
        return labels, ~detection.flagged
    return np.where(detection.flagged, detection.suggested, labels), np.ones(len(labels), bool)
