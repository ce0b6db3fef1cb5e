"""The shared out-of-fold pass of the detectors: held-out probabilities and features from K seeded folds."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold
from torch import nn

from poisonlab import models
from poisonlab.errors import PoisonlabError
from poisonlab.train import TrainConfig, fit_torch, flatten01, seed_everything, to_tensor

DETECTOR_MODELS = ("logreg", "smallcnn", "simplecnn")
PCA_COMPONENTS = 50
BATCH_SIZE = 64


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the detectors: fold model, folds, torch epochs, kNN neighbours, ensemble members."""

    model: str = "logreg"
    folds: int = 5
    epochs: int = 5
    k: int = 10
    members: int = 5

    def __post_init__(self) -> None:
        if self.model not in DETECTOR_MODELS:
            raise PoisonlabError(f"unknown detector model '{self.model}'; choose one of {', '.join(DETECTOR_MODELS)}")
        if min(self.folds, self.members) < 2 or min(self.epochs, self.k) < 1:
            raise PoisonlabError("detector needs folds >= 2, members >= 2, epochs >= 1 and k >= 1; raise the one below")

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
    """What the detector model sees: the uint8 images for torch, PCA(50) of the [0, 1] pixels for logreg."""
    if config.model != "logreg":
        return x
    pixels = flatten01(x)
    return PCA(min(PCA_COMPONENTS, *pixels.shape), random_state=seed).fit_transform(pixels)


def train_model(name: str, inputs: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, epochs: int):
    """Fit model `name` on `model_inputs`: a torch model for a fixed number of epochs, or scikit-learn."""
    seed_everything(seed)
    shape = inputs.shape[1:] if inputs.ndim == 4 else (1, 1, inputs.shape[1])  # scikit-learn models ignore the shape
    model = models.build(name, shape, num_classes, seed)
    if isinstance(model, nn.Module):
        model.to(memory_format=torch.channels_last)
        config = TrainConfig(max_epochs=epochs, batch_size=BATCH_SIZE)
        fit_torch(model, to_tensor(inputs), torch.from_numpy(labels), to_tensor(inputs[:0]), labels[:0], config, seed)
    else:
        model.fit(inputs, labels)
    return model


@torch.no_grad()
def _torch_outputs(model: nn.Module, x: np.ndarray, layers: slice) -> np.ndarray:
    """Outputs of `model[layers]` (a Sequential) in eval mode, in batches."""
    model.eval()
    t = to_tensor(x)
    part = model[layers]
    return torch.cat([part(t[i : i + 1024]) for i in range(0, len(t), 1024)]).numpy()


def probabilities(model, inputs: np.ndarray, num_classes: int) -> np.ndarray:
    """Predicted class probabilities (N, num_classes), float64, rows summing to 1 (classes unseen in fitting get 0)."""
    if isinstance(model, nn.Module):
        probs = torch.from_numpy(_torch_outputs(model, inputs, slice(None))).double().softmax(1).numpy()
    else:
        probs = np.zeros((len(inputs), num_classes))
        probs[:, model.classes_] = model.predict_proba(inputs)
    return probs / probs.sum(1, keepdims=True)


def out_of_fold(x: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, config: DetectorConfig) -> OutOfFold:
    """Train `config.model` on K-1 of K stratified seeded folds, predict the held-out fold; gather losses and features.

    Torch models: penultimate activations of each item's held-out model, so items compare only within their fold.
    logreg: its own inputs, PCA(50) of the pixels, stand in for learned features (one group)."""
    started = time.perf_counter()
    inputs = model_inputs(x, config, seed)
    probs, train_loss = np.zeros((len(labels), num_classes)), np.zeros(len(labels))
    features, groups = inputs, np.zeros(len(labels), np.int64)
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    for fold, (fit_idx, held_idx) in enumerate(folds):
        model = train_model(config.model, inputs[fit_idx], labels[fit_idx], num_classes, seed, config.epochs)
        probs[held_idx] = probabilities(model, inputs[held_idx], num_classes)
        train_loss[fit_idx] += _cross_entropy(probabilities(model, inputs[fit_idx], num_classes), labels[fit_idx])
        if isinstance(model, nn.Module):
            held = _torch_outputs(model, inputs[held_idx], slice(None, -1))
            if fold == 0:
                features = np.zeros((len(labels), held.shape[1]), np.float32)
            features[held_idx], groups[held_idx] = held, fold
    return OutOfFold(probs, train_loss / (config.folds - 1), features, groups, time.perf_counter() - started)


def _cross_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-item cross-entropy of the given label (probabilities clipped at 1e-12)."""
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
