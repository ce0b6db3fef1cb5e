"""Build, fit and predict any model in one place: built-in or own torch modules and scikit-learn estimators."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from poisonlab.errors import PoisonlabError
from poisonlab.training import models, remedies
from poisonlab.training.loop import TrainConfig, eval_batch, fit_torch, pick_device, seed_everything, to_tensor
from poisonlab.training.stacked import fit_torch_stacked


def as_features(x: np.ndarray) -> np.ndarray:
    """Rows for scikit-learn: uint8 images scaled to [0, 1]; float inputs flattened as given (no /255)."""
    flat = np.asarray(x).reshape(len(x), -1)
    return flat.astype(np.float32) / 255.0 if flat.dtype == np.uint8 else flat


def as_tensor(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Torch inputs: uint8 images (N, H, W, C) in [-1, 1] as (N, C, H, W); float images permuted as given; float rows as given."""
    x = np.asarray(x)
    if x.dtype == np.uint8 and x.ndim == 4:
        return to_tensor(x, device)
    t = torch.from_numpy(np.array(x, dtype=np.float32, copy=True)).to(device)
    return t.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


def build(model: models.ModelSpec, shape: tuple[int, ...], num_classes: int, seed: int):
    """Seed torch, then build a fresh model (name, factory or estimator) for items of `shape`."""
    seed_everything(seed)
    return models.build(model, shape, num_classes, seed)


def fit(model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, *,
        config: TrainConfig = TrainConfig(), seed: int = 0, device: torch.device | None = None,
        on_epoch: Callable[[dict], None] | None = None, remedy: str = "none") -> dict:
    """Fit `model` on (x, y); torch: early stopping on (x_val, y_val) when given, else `config.max_epochs` epochs,
    with the training `remedy` (see `remedies`; co-teaching trains a peer network beside `model`).

    Returns the training record: history, best epoch, best validation accuracy, epochs run."""
    y = np.asarray(y, dtype=np.int64)
    if x_val is None:
        x_val, y_val = x[:0], y[:0]
    if isinstance(model, nn.Module) and remedies.peers(remedy) > 1:
        return fit_stacked([model], x, [y], x_val, [y_val], config=config, seed=seed, device=device,
                           on_epoch=on_epoch and (lambda _, row: on_epoch(row)), remedy=remedy)[0]
    if isinstance(model, nn.Module):
        device = device or pick_device()
        model.to(device, memory_format=torch.channels_last)
        return fit_torch(model, as_tensor(x, device), torch.from_numpy(y).to(device), as_tensor(x_val, device),
                         np.asarray(y_val), config, seed, on_epoch, remedy)
    if remedy != "none":
        raise PoisonlabError(f"the {remedy} defence trains torch models only, not {type(model).__name__}; choose a "
                             "torch model or defence none")
    if len(np.unique(y)) < 2:
        raise PoisonlabError(f"{type(model).__name__} cannot train on a single class (all labels equal); use a torch model")
    model.fit(as_features(x), y)
    val_acc = float((model.predict(as_features(x_val)) == y_val).mean()) if len(x_val) else None
    return {"history": [], "best_epoch": None, "best_val_accuracy": val_acc, "epochs_run": None}


def fit_stacked(models: list[nn.Module], x: np.ndarray, ys: list[np.ndarray], x_val: np.ndarray,
                y_vals: list[np.ndarray], *, config: TrainConfig = TrainConfig(), seed: int = 0,
                device: torch.device | None = None, on_epoch: Callable[[int, dict], None] | None = None,
                forward: str = "auto", remedy: str = "none") -> list[dict]:
    """Fit torch `models` (one architecture, equal initial weights) in one stacked pass, model i on labels ys[i] (N,)
    with validation labels y_vals[i] (V,) of the shared x_val (`forward`: see `stacked.fit_torch_stacked`), each with
    the training `remedy` (co-teaching: each model beside a peer network of its own); returns each model's training
    record."""
    device = device or pick_device()
    n = len(models)
    if remedies.peers(remedy) > 1:  # model i and its peer are rows 2i and 2i+1 of the stack
        models = [m for model in models for m in (model, peer(model, seed))]
        ys, y_vals = [y for y in ys for _ in (0, 1)], [y for y in y_vals for _ in (0, 1)]
    step = len(models) // n
    for model in models:
        model.to(device, memory_format=torch.channels_last)
    labels = torch.from_numpy(np.stack(ys).astype(np.int64)).to(device)

    def each(i: int, row: dict) -> None:
        if on_epoch and i % step == 0:  # the peers' epochs are not the runs'
            on_epoch(i // step, row)

    records = fit_torch_stacked(models, as_tensor(x, device), labels, as_tensor(x_val, device),
                                np.stack(y_vals).reshape(len(models), len(x_val)), config, seed, each, forward, remedy)
    return records[::step]


def peer(model: nn.Module, seed: int) -> nn.Module:
    """A copy of torch `model` with fresh initial weights drawn from `seed` (a co-teaching peer)."""
    twin = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.SeedSequence([seed, 7]).generate_state(1)[0]))
        for layer in twin.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    return twin


@torch.no_grad()
def _outputs(model: nn.Module, x: np.ndarray, part: nn.Module | None = None) -> torch.Tensor:
    """Outputs of `part` (default the whole model) in eval mode, in batches, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    t = as_tensor(x, device)
    part = part or model
    step = eval_batch(device)
    return torch.cat([part(t[i : i + step]) for i in range(0, len(t), step)]) if len(t) else part(t)


def predict(model, x: np.ndarray) -> np.ndarray:
    """Predicted class of every item, shape (N,)."""
    if isinstance(model, nn.Module):
        return _outputs(model, x).argmax(1).cpu().numpy()
    return np.asarray(model.predict(as_features(x)))


def predict_proba(model, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities, shape (N, num_classes), float64, rows summing to 1 (classes unseen in fitting get 0)."""
    if isinstance(model, nn.Module):
        probs = _outputs(model, x).double().softmax(1).cpu().numpy()
    else:
        probs = np.zeros((len(x), num_classes))
        probs[:, model.classes_] = model.predict_proba(as_features(x))
    return probs / probs.sum(1, keepdims=True)


def rankings(model, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Every item's classes from most to least preferred by the model's scores (ties to the smaller class), shape
    (N, num_classes), int8 (int16 past 127 classes); column 0 is the predicted class."""
    if isinstance(model, nn.Module):
        scores = _outputs(model, x).float().cpu().numpy()
    elif hasattr(model, "predict_proba"):
        scores = predict_proba(model, x, num_classes)
    else:  # e.g. SVC: one-vs-rest decision values of the classes seen in fitting, the others last
        decision = np.asarray(model.decision_function(as_features(x)), dtype=np.float64)
        scores = np.full((len(x), num_classes), -np.inf)
        scores[:, model.classes_] = np.column_stack([-decision, decision]) if decision.ndim == 1 else decision
    return rank(scores)


def rank(scores: np.ndarray) -> np.ndarray:
    """Classes by descending score per row, ties to the smaller class: (N, K) int8 (int16 past 127 classes)."""
    dtype = np.int8 if scores.shape[1] <= 127 else np.int16
    return np.argsort(-np.asarray(scores), axis=1, kind="stable").astype(dtype)


def penultimate(model: nn.Module, x: np.ndarray) -> np.ndarray | None:
    """Activations before the last layer of a Sequential torch model, shape (N, d); None for other models."""
    if not isinstance(model, nn.Sequential):
        return None
    return _outputs(model, x, model[:-1]).float().cpu().numpy()
