"""Detectors of poisoned labels: each scores every training item (higher = more suspicious) and flags a set."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cleanlab.count import num_label_issues
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.neighbors import NearestNeighbors

from poisonlab.defences.activations import (Activations, cluster_scores, exclusion_scores, penultimate_pass,
                                           spectral_scores)
from poisonlab.defences import correlation, gradients
from poisonlab.defences.gradients import Gradients, gradient_pass, mixture_flags
from poisonlab.defences.folds import DetectorConfig, OutOfFold, cross_entropy, model_inputs, out_of_fold, train_model
from poisonlab import display
from poisonlab.checks import check_probabilities
from poisonlab.errors import PoisonlabError
from poisonlab.training import fitting
from poisonlab.training.parallel import pmap


@dataclass(frozen=True)
class Detection:
    """One method's verdict: suspicion score and flag per item, the label it would give instead, and its seconds."""

    method: str
    scores: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    seconds: float

    def __repr__(self) -> str:
        """One line: method, items scored, items flagged and seconds; no arrays."""
        return display.summary("Detection", [("method", self.method), ("items", len(self.scores)),
                                             ("flagged", int(np.count_nonzero(self.flagged))),
                                             ("seconds", display.number(self.seconds, 2))])


def confident_learning(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                       config: DetectorConfig = DetectorConfig(), oof: OutOfFold | None = None) -> Detection:
    """cleanlab's find_label_issues on out-of-fold probabilities; score = 1 - self-confidence."""
    oof = oof or out_of_fold(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    flagged = find_label_issues(labels, oof.pred_probs, n_jobs=1)
    scores = 1.0 - get_label_quality_scores(labels, oof.pred_probs, method="self_confidence")
    return Detection("cl", scores, flagged, oof.pred_probs.argmax(1), _seconds(started, oof))


def loss_ranking(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                 config: DetectorConfig = DetectorConfig(), oof: OutOfFold | None = None) -> Detection:
    """Score = training loss of the given label (mean over the K-1 fold models that fitted the item);
    flag the n highest, n = cleanlab's estimated count of label issues."""
    oof = oof or out_of_fold(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    scores = oof.train_loss
    flagged = np.zeros(len(labels), bool)
    flagged[np.argsort(-scores, kind="stable")[: num_label_issues(labels, oof.pred_probs)]] = True
    return Detection("loss", scores, flagged, oof.pred_probs.argmax(1), _seconds(started, oof))


def knn_features(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                 config: DetectorConfig = DetectorConfig(), oof: OutOfFold | None = None) -> Detection:
    """Neighbour label disagreement on the out-of-fold features (learned, or PCA of pixels for logreg)."""
    oof = oof or out_of_fold(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    scores, suggested = neighbour_votes(oof.features, labels, oof.groups, config.k, num_classes)
    return Detection("knn", scores, scores > 0.5, suggested, _seconds(started, oof))


def knn_pixels(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
               config: DetectorConfig = DetectorConfig()) -> Detection:
    """Neighbour label disagreement on the raw items (pixels in [0, 1], or the given features; Euclidean)."""
    started = time.perf_counter()
    scores, suggested = neighbour_votes(fitting.as_features(x), labels, np.zeros(len(labels), np.int64), config.k, num_classes)
    return Detection("knn-pixels", scores, scores > 0.5, suggested, time.perf_counter() - started)


def ensemble_disagreement(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                          config: DetectorConfig = DetectorConfig()) -> Detection:
    """M models on disjoint seeded subsets (trained `config.jobs` at a time); score = share of the M-1 models that
    never saw an item and disagree."""
    started, config = time.perf_counter(), config.for_items(x)
    inputs, votes = model_inputs(x, config, seed), np.zeros((len(labels), num_classes))
    parts = np.array_split(np.random.default_rng([seed, 4]).permutation(len(labels)), config.members)
    for unseen, predicted in pmap(fit_member, parts, config.jobs, context=(inputs, labels, num_classes, seed, config),
                                  label=lambda part: f"ensemble model on {len(part)} items"):
        votes[unseen, predicted] += 1
    scores = 1.0 - votes[np.arange(len(labels)), labels] / (config.members - 1)
    return Detection("ensemble", scores, scores > 0.5, votes.argmax(1), time.perf_counter() - started)


def fit_member(shared: tuple, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ensemble model on the items `part`, `shared` being (inputs, labels, num_classes, seed, config): the mask
    of the items it never saw and its predicted class for each of them."""
    inputs, labels, num_classes, seed, config = shared
    model = train_model(config.model, inputs[part], labels[part], num_classes, seed, config.epochs)
    unseen = np.ones(len(labels), bool)
    unseen[part] = False
    return unseen, fitting.predict_proba(model, inputs[unseen], num_classes).argmax(1)


def spectral_signatures(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                        config: DetectorConfig = DetectorConfig(), acts: Activations | None = None) -> Detection:
    """Spectral signatures (Tran et al. 2018) on the penultimate activations of a model trained on the given labels."""
    acts = acts or penultimate_pass(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    scores, flagged = spectral_scores(acts.features, labels)
    return Detection("spectral", scores, flagged, labels.copy(), time.perf_counter() - started + acts.seconds)


def activation_clustering(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                          config: DetectorConfig = DetectorConfig(), acts: Activations | None = None) -> Detection:
    """Activation clustering (Chen et al. 2018): per class 2-means on reduced penultimate activations."""
    acts = acts or penultimate_pass(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    scores, flagged = cluster_scores(acts.features, labels, seed)
    return Detection("ac", scores, flagged, labels.copy(), time.perf_counter() - started + acts.seconds)


def exclusionary_clustering(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                            config: DetectorConfig = DetectorConfig(), acts: Activations | None = None) -> Detection:
    """Activation clustering judged by exclusionary reclassification: a cluster is poison when a model trained
    without it gives its items another label (see `activations.exclusion_scores`)."""
    acts = acts or penultimate_pass(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    scores, flagged, suggested = exclusion_scores(x, acts.features, labels, num_classes, seed, config)
    return Detection("ac-exclusionary", scores, flagged, suggested, time.perf_counter() - started + acts.seconds)


def self_influence(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                   config: DetectorConfig = DetectorConfig(), grads: Gradients | None = None) -> Detection:
    """TracIn self-influence: each item's squared last-layer gradient summed over the epochs of a model trained on
    every item; flag the high component of a two-component mixture of the scores."""
    return _on_gradients("influence", x, labels, num_classes, seed, config, grads,
                         lambda g: (g.self_influence, mixture_flags(g.self_influence)))


def gradient_magnitude(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                       config: DetectorConfig = DetectorConfig(), grads: Gradients | None = None) -> Detection:
    """Each item's last-layer gradient norm at the last epoch; flag the high component of a mixture of them."""
    return _on_gradients("grad", x, labels, num_classes, seed, config, grads, lambda g: (g.norms, mixture_flags(g.norms)))


def gradient_clustering(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                        config: DetectorConfig = DetectorConfig(), grads: Gradients | None = None) -> Detection:
    """Per class, 2-means on the last epoch's last-layer gradients; flag the cluster of larger gradients."""
    return _on_gradients("gradclust", x, labels, num_classes, seed, config, grads,
                         lambda g: gradients.cluster_scores(g.last, g.norms, labels, seed))


def _on_gradients(method: str, x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, config: DetectorConfig,
                  grads: Gradients | None, verdict: Callable[[Gradients], tuple[np.ndarray, np.ndarray]]) -> Detection:
    """A gradient detector's Detection: `verdict` (scores, flags) of the gradient pass `grads` (made here when None),
    the pass's seconds included."""
    grads = grads or gradient_pass(x, labels, num_classes, seed, config)
    started = time.perf_counter()
    scores, flagged = verdict(grads)
    return Detection(method, scores, flagged, grads.predicted, time.perf_counter() - started + grads.seconds)


def correlation_screen(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
                       config: DetectorConfig = DetectorConfig(),
                       trusted: tuple[np.ndarray, np.ndarray] | None = None) -> Detection:
    """Pixels whose correlation with a class is unexpected (against all pairs, or a `trusted` clean subset's
    correlations), and the items of that class that light them up (see `correlation`)."""
    started = time.perf_counter()
    scores, flagged = correlation.correlation_scores(x, labels, num_classes, trusted=trusted)
    return Detection("correlation", scores, flagged, labels.copy(), time.perf_counter() - started)


def neighbour_votes(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int,
                    num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Share of each item's k nearest neighbours (same group, itself excluded) whose label differs, and their majority label."""
    scores, suggested = np.zeros(len(labels)), labels.copy()
    for group in np.unique(groups):
        idx = np.flatnonzero(groups == group)
        neighbours = labels[idx][NearestNeighbors(n_neighbors=min(k, len(idx) - 1)).fit(features[idx]).kneighbors(
            return_distance=False)]
        scores[idx] = (neighbours != labels[idx, None]).mean(1)
        counts = np.zeros((len(idx), num_classes))
        np.add.at(counts, (np.arange(len(idx))[:, None], neighbours), 1)
        suggested[idx] = counts.argmax(1)
    return scores, suggested


def _seconds(started: float, oof: OutOfFold) -> float:
    """The method's own time plus the out-of-fold pass it relies on (counted in full for each method)."""
    return time.perf_counter() - started + oof.seconds


METHODS: dict[str, Callable[..., Detection]] = {
    "cl": confident_learning, "knn": knn_features, "knn-pixels": knn_pixels, "loss": loss_ranking,
    "ensemble": ensemble_disagreement, "spectral": spectral_signatures, "ac": activation_clustering,
    "ac-exclusionary": exclusionary_clustering,
    "influence": self_influence, "grad": gradient_magnitude, "gradclust": gradient_clustering,
    "correlation": correlation_screen,
}
SHARED = ("cl", "knn", "loss")
ON_ACTIVATIONS = ("spectral", "ac", "ac-exclusionary")
ON_GRADIENTS = ("influence", "grad", "gradclust")


def check_methods(names: list[str]) -> None:
    """Reject unknown or missing method names with one line."""
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise PoisonlabError(f"unknown detection method '{unknown[0] if unknown else ''}'; choose from {', '.join(METHODS)}")


def given_probabilities(x: np.ndarray, labels: np.ndarray, pred_probs: np.ndarray) -> OutOfFold:
    """The shared pass from the caller's own out-of-fold probabilities (N, K): the loss is that of the held-out
    probabilities, and the items themselves (pixels in [0, 1] or given features) stand in for learned features."""
    pred_probs = check_probabilities(pred_probs, len(labels))
    if pred_probs.shape[1] <= labels.max() or not np.allclose(pred_probs.sum(1), 1, atol=1e-3) or (pred_probs < 0).any():
        raise PoisonlabError("pred_probs rows must be probabilities over all K classes (non-negative, summing to 1)")
    return OutOfFold(pred_probs, cross_entropy(pred_probs, labels), fitting.as_features(x), np.zeros(len(labels), np.int64), 0.0)


def run(names: list[str], x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
        config: DetectorConfig = DetectorConfig(), pred_probs: np.ndarray | None = None,
        trusted: tuple[np.ndarray, np.ndarray] | None = None) -> list[Detection]:
    """Run the named methods, computing the shared out-of-fold pass once for those that use it (or taking `pred_probs`),
    the penultimate-activation pass once for spectral, ac and ac-exclusionary, and the gradient pass once for influence, grad and
    gradclust; `trusted` (x, labels) clean items are the correlation screen's reference."""
    check_methods(names)
    config = config.for_items(x)
    if len(labels) < max(config.folds, config.members, 2 * config.k):
        raise PoisonlabError(f"{len(labels)} items are too few for {config.folds} folds, {config.members} ensemble members "
                             f"and k={config.k} neighbours; use more items or fewer folds")
    oof = acts = grads = None
    if set(names) & set(SHARED):
        oof = out_of_fold(x, labels, num_classes, seed, config) if pred_probs is None else given_probabilities(x, labels, pred_probs)
    if set(names) & set(ON_ACTIVATIONS):
        acts = penultimate_pass(x, labels, num_classes, seed, config)
    if set(names) & set(ON_GRADIENTS):
        grads = gradient_pass(x, labels, num_classes, seed, config)
    shared = {**dict.fromkeys(SHARED, oof), **dict.fromkeys(ON_ACTIVATIONS, acts), **dict.fromkeys(ON_GRADIENTS, grads)}
    extra = {**shared, "correlation": trusted}
    return [METHODS[n](x, labels, num_classes, seed, config, *([extra[n]] if n in extra else [])) for n in names]
