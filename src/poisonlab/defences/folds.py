"""The shared out-of-fold pass of the detectors: held-out probabilities and features from K seeded folds."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold

from poisonlab.defences import DETECTOR_MODELS
from poisonlab.errors import PoisonlabError
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig
from poisonlab.training.parallel import check_jobs, pmap

PCA_COMPONENTS = 50
BATCH_SIZE = 64


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the detectors: fold model, folds, torch epochs, kNN neighbours, ensemble members, and the fold or
    member models trained at once in worker processes (`jobs`; 1 trains them in this process)."""

    model: str = "auto"
    folds: int = 5
    epochs: int = 5
    k: int = 10
    members: int = 5
    jobs: int = 1

    def __post_init__(self) -> None:
        check_jobs(self.jobs)
        if self.model not in DETECTOR_MODELS:
            raise PoisonlabError(f"unknown detector model '{self.model}'; choose one of {', '.join(DETECTOR_MODELS)}")
        low = [f"{name} {value}" for name, value, least in (("folds", self.folds, 2), ("members", self.members, 2),
                                                            ("epochs", self.epochs, 1), ("k", self.k, 1)) if value < least]
        if low:
            raise PoisonlabError(f"detector setting too small: {', '.join(low)}; use folds >= 2, members >= 2, epochs >= 1, k >= 1")

    def check_items(self, n: int) -> None:
        """Refuse a training set too small to split into the folds and ensemble subsets."""
        if n < max(self.folds, self.members):
            raise PoisonlabError(f"fewer training items ({n}) than folds ({self.folds}) or ensemble members "
                                 f"({self.members}); use more training items or fewer folds and members")

    def for_items(self, x: np.ndarray) -> DetectorConfig:
        """This config with model "auto" made concrete for items `x`: smallcnn for images (N, H, W, C), logreg on
        PCA-50 for feature rows (N, D)."""
        if self.model != "auto":
            return self
        return replace(self, model="smallcnn" if np.ndim(x) == 4 else "logreg")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OutOfFold:
    """Held-out class probabilities (N, K), mean training loss of the K-1 models that fitted each item,
    features (N, d) comparable within a group, and the pass's seconds."""

    pred_probs: np.ndarray
    train_loss: np.ndarray
    features: np.ndarray
    groups: np.ndarray
    seconds: float


def model_inputs(x: np.ndarray, config: DetectorConfig, seed: int) -> np.ndarray:
    """What the detector model sees: the items themselves for torch, PCA(50) of their features for logreg."""
    if config.model != "logreg":
        return x
    features = fitting.as_features(x)
    return PCA(min(PCA_COMPONENTS, *features.shape), random_state=seed).fit_transform(features)


def train_model(name: str, inputs: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, epochs: int):
    """Fit model `name` on `model_inputs`: a torch model for a fixed number of epochs, or scikit-learn."""
    model = fitting.build(name, inputs.shape[1:], num_classes, seed)
    fitting.fit(model, inputs, labels, config=TrainConfig(max_epochs=epochs, batch_size=BATCH_SIZE), seed=seed)
    return model


def out_of_fold(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, config: DetectorConfig) -> OutOfFold:
    """Train `config.model` on K-1 of K stratified seeded folds, predict the held-out fold; gather losses and features.
    The K fold models train `config.jobs` at a time (see `training.parallel.pmap`).

    Torch models: penultimate activations of each item's held-out model, so items compare only within their fold.
    logreg: its own inputs, PCA(50) of the pixels, stand in for learned features (one group)."""
    config.check_items(len(labels))
    started, config = time.perf_counter(), config.for_items(x)
    inputs = model_inputs(x, config, seed)
    probs, train_loss = np.zeros((len(labels), num_classes)), np.zeros(len(labels))
    features, groups = inputs, np.zeros(len(labels), np.int64)
    splits = list(StratifiedKFold(config.folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    fitted = pmap(fit_fold, splits, config.jobs, context=(inputs, labels, num_classes, seed, config),
                  label=lambda split: f"fold model holding out {len(split[1])} items")
    for fold, ((fit_idx, held_idx), (held_probs, fit_loss, held)) in enumerate(zip(splits, fitted)):
        probs[held_idx] = held_probs
        train_loss[fit_idx] += fit_loss
        if held is not None:
            if fold == 0:
                features = np.zeros((len(labels), held.shape[1]), np.float32)
            features[held_idx], groups[held_idx] = held, fold
    return OutOfFold(probs, train_loss / (config.folds - 1), features, groups, time.perf_counter() - started)


def fit_fold(shared: tuple, split: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One fold model of `out_of_fold`, `shared` being (inputs, labels, num_classes, seed, config) and `split` its
    (fit, held-out) indices: the held-out probabilities, the fitted items' losses, the held-out penultimate
    features (None for logreg)."""
    inputs, labels, num_classes, seed, config = shared
    fit_idx, held_idx = split
    model = train_model(config.model, inputs[fit_idx], labels[fit_idx], num_classes, seed, config.epochs)
    fit_loss = cross_entropy(fitting.predict_proba(model, inputs[fit_idx], num_classes), labels[fit_idx])
    held = fitting.penultimate(model, inputs[held_idx]) if config.model != "logreg" else None
    return fitting.predict_proba(model, inputs[held_idx], num_classes), fit_loss, held


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-item cross-entropy of the given label (probabilities clipped at 1e-12)."""
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
