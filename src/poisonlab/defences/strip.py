"""STRIP (Gao et al., ACSAC 2019): test-time detection of triggered inputs by superimposition.

Each input is overlaid with clean images; a clean input's prediction then scatters (high entropy), while a triggered
input keeps the trigger's class (low entropy). Inputs below an entropy threshold are rejected; the threshold is set
on clean inputs at a chosen false-rejection rate."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from poisonlab.training import fitting
from poisonlab.training.loop import autocast, resolve_precision

OVERLAYS = 20  # clean images overlaid on each input (the paper finds 20 enough)
FRR = 0.01  # the false-rejection rate the threshold is set at
CURVE_FRRS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def superimpose(x: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """uint8 images `x` plus `overlay` (same shape), pixel by pixel, saturating at 255 (as the paper adds images)."""
    return np.minimum(x.astype(np.uint16) + overlay, 255).astype(np.uint8)


def entropy(model, x: np.ndarray, clean: np.ndarray, num_classes: int, *, overlays: int = OVERLAYS,
            seed: int = 0) -> np.ndarray:
    """Mean prediction entropy (nats) of `model` on each input of `x` (N, H, W, C) uint8 overlaid with `overlays`
    images drawn from `clean` (M, H, W, C); shape (N,), torch models predicting in bf16 where the hardware has it.
    Low entropy marks a trigger."""
    rng = np.random.default_rng([seed, 13])
    device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    total = np.zeros(len(x))
    for _ in range(overlays):
        with autocast(resolve_precision("auto", device), device):
            probs = fitting.predict_proba(model, superimpose(x, clean[rng.integers(0, len(clean), len(x))]), num_classes)
        total -= (probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(1)
    return total / overlays


def threshold(clean_entropy: np.ndarray, *, frr: float = FRR) -> float:
    """The entropy below which inputs are rejected so that a share `frr` of the clean inputs is."""
    return float(np.quantile(clean_entropy, frr))


def scores(clean_entropy: np.ndarray, triggered_entropy: np.ndarray, *, frr: float = FRR) -> dict:
    """STRIP's figures from the entropies of clean (N,) and triggered (M,) test inputs: AUC, the false-acceptance
    rate (triggered inputs accepted) at false-rejection rate `frr` with its threshold, and that curve at CURVE_FRRS."""
    curve = [{"frr": f, "far": float((triggered_entropy >= threshold(clean_entropy, frr=f)).mean())}
             for f in sorted({*CURVE_FRRS, frr})]
    truth = np.r_[np.zeros(len(clean_entropy)), np.ones(len(triggered_entropy))]
    return {"auc": float(roc_auc_score(truth, -np.r_[clean_entropy, triggered_entropy])), "frr": frr,
            "threshold": threshold(clean_entropy, frr=frr),
            "far": next(row["far"] for row in curve if row["frr"] == frr), "curve": curve}
