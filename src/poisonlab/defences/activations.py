"""Backdoor detectors on a model's penultimate activations: spectral signatures (Tran et al., NeurIPS 2018) and
activation clustering (Chen et al., 2018), with its size rule or with exclusionary reclassification. Each scores
items WITHIN their labelled class; higher = more suspicious."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from poisonlab.defences.folds import DetectorConfig, train_model
from poisonlab.training import TORCH_MODELS, fitting

FLAG_SHARE = 0.15  # spectral signatures remove 1.5 x an assumed poison share of 10 % of each class
CLUSTER_COMPONENTS = 10  # activation clustering reduces each class to 10 dimensions before 2-means
SMALL_CLUSTER = 0.35  # a cluster holding at most this share of its class is flagged
EXCLUDED_CLASSES = 2  # exclusionary reclassification tests the classes whose two clusters separate best
KEPT_LABEL = 0.5  # an excluded cluster whose items keep their label less often than this is poison


@dataclass(frozen=True)
class Activations:
    """Penultimate activations (N, d) of one model trained on all the given labels, its name and the pass's seconds."""

    features: np.ndarray
    model: str
    seconds: float


def activation_model(config: DetectorConfig) -> str:
    """The torch model whose activations are read: the detector model, or smallcnn when that is logreg."""
    return config.model if config.model in TORCH_MODELS else "smallcnn"


def penultimate_pass(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, config: DetectorConfig) -> Activations:
    """Train the activation model on ALL items and labels (as the defender would: the poisoned training set) for
    `config.epochs` epochs, then read every item's penultimate activations."""
    started = time.perf_counter()
    name = activation_model(config)
    model = train_model(name, x, labels, num_classes, seed, config.epochs)
    return Activations(fitting.penultimate(model, x), name, time.perf_counter() - started)


def classes(labels: np.ndarray, least: int) -> list[np.ndarray]:
    """The item indices of each class with at least `least` items."""
    return [idx for idx in (np.flatnonzero(labels == label) for label in np.unique(labels)) if len(idx) >= least]


def spectral_scores(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: squared projection of the centred activations on their top right singular vector, divided by the
    class's mean (so classes compare); flag the top FLAG_SHARE of each class.

    Returns scores (N,) and flags (N,) bool."""
    scores, flagged = np.zeros(len(labels)), np.zeros(len(labels), bool)
    for idx in classes(labels, least=2):
        centred = features[idx] - features[idx].mean(0)
        top = np.linalg.svd(centred, full_matrices=False)[2][0]
        projected = (centred @ top) ** 2
        scores[idx] = projected / max(projected.mean(), 1e-12)
        flagged[idx[np.argsort(-projected, kind="stable")[: int(np.ceil(FLAG_SHARE * len(idx)))]]] = True
    return scores, flagged


def _clusters(features: np.ndarray, idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class items `idx` reduced by PCA to CLUSTER_COMPONENTS dimensions and their 2-means cluster (0 or 1)."""
    reduced = PCA(min(CLUSTER_COMPONENTS, len(idx) - 1, features.shape[1]), random_state=seed).fit_transform(features[idx])
    return reduced, KMeans(2, n_init=10, random_state=seed).fit_predict(reduced)


def cluster_scores(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: PCA to CLUSTER_COMPONENTS dimensions, 2-means; each item scores 1 - the share of its class in its
    cluster (smaller cluster = higher), and a cluster of at most SMALL_CLUSTER of the class is flagged.

    Returns scores (N,) and flags (N,) bool."""
    scores, flagged = np.zeros(len(labels)), np.zeros(len(labels), bool)
    for idx in classes(labels, least=3):
        assigned = _clusters(features, idx, seed)[1]
        share = np.bincount(assigned, minlength=2)[assigned] / len(idx)
        scores[idx] = 1.0 - share
        flagged[idx] = share <= SMALL_CLUSTER
    return scores, flagged


def exclusion_scores(x: np.ndarray, features: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                     config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activation clustering with exclusionary reclassification (Chen et al. 2018, section 4): in each of the
    EXCLUDED_CLASSES classes whose 2-means clusters separate best (silhouette), retrain the activation model without
    each cluster in turn and classify the excluded items. A cluster whose items mostly (over 1 - KEPT_LABEL) lose
    their label is suspect; of two suspects, the poison is the one given its new labels more confidently (triggered
    items return to the classes they look like; a class's own items, once excluded, are guessed at). Unlike the size
    rule, the poison may be the class's majority.

    Returns scores (N,) (1 - the retrained model's probability of the item's label; 0 outside the tested classes),
    flags (N,) and the retrained model's label for each tested item (the given label elsewhere), shape (N,)."""
    scores, flagged, suggested = np.zeros(len(labels)), np.zeros(len(labels), bool), labels.copy()
    split = []
    for idx in classes(labels, least=3):
        reduced, assigned = _clusters(features, idx, seed)
        if 0 < assigned.sum() < len(idx):
            separation = silhouette_score(reduced, assigned, sample_size=min(len(idx), 1000), random_state=seed)
            split.append((separation, idx, assigned))
    name = activation_model(config)
    for _, idx, assigned in sorted(split, key=lambda item: -item[0])[:EXCLUDED_CLASSES]:
        suspicion = []
        for cluster in (0, 1):
            members = idx[assigned == cluster]
            rest = np.ones(len(labels), bool)
            rest[members] = False
            model = train_model(name, x[rest], labels[rest], num_classes, seed, config.epochs)
            probs = fitting.predict_proba(model, x[members], num_classes)
            suggested[members] = probs.argmax(1)
            scores[members] = 1.0 - probs[np.arange(len(members)), labels[members]]
            lost = (suggested[members] != labels[members]).mean() > 1 - KEPT_LABEL
            suspicion.append(probs.max(1).mean() if lost else -1.0)
        if max(suspicion) >= 0:
            flagged[idx[assigned == int(np.argmax(suspicion))]] = True
    return scores, flagged, suggested
