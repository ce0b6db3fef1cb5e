"""Model zoo: three torch CNNs and scikit-learn classifiers built from a name, or the user's own factory or estimator."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from poisonlab.errors import PoisonlabError
from poisonlab.training import MODELS

ModelSpec = str | Callable[[tuple[int, ...], int], object] | object
"""A built-in model name, a factory ``f(shape, num_classes) -> nn.Module``, or an unfitted scikit-learn estimator."""


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv, 2x2 max-pool, batch norm, ReLU (pooling before the norm costs a quarter of the work)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU())


def small_cnn(channels: int, num_classes: int) -> nn.Module:
    """Three conv blocks (24/48/96) and global average pooling: under 100k parameters for any K <= 100."""
    return nn.Sequential(
        _block(channels, 24), _block(24, 48), _block(48, 96),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, num_classes),
    )


def simple_cnn(channels: int, num_classes: int, height: int, width: int) -> nn.Module:
    """The classic SimpleCNN: conv 32/64/128 (3x3, pad 1, max-pool), FC 512, dropout 0.5, FC K."""
    layers: list[nn.Module] = []
    for c_in, c_out in ((channels, 32), (32, 64), (64, 128)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    flat = 128 * (height // 8) * (width // 8)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, num_classes))


class UnitRange(nn.Module):
    """Map poisonlab's [-1, 1] inputs to [0, 1] (pixel / 255), the inputs of the original Keras experiment."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.add(1.0).mul(0.5)


def original_cnn(channels: int, num_classes: int, height: int, width: int) -> nn.Module:
    """The original experiment's Keras network, inputs /255: conv 32 3x3 (valid) x2, max-pool, conv x2, max-pool,
    conv (valid), conv (same), all ReLU, then dense 128, 128 (ReLU) and K; 80 874 parameters on MNIST. Kernels
    Glorot-uniform and biases zero, as Keras initialises them."""
    conv = lambda c_in, pad=0: [nn.Conv2d(c_in, 32, 3, padding=pad), nn.ReLU()]  # noqa: E731
    side = lambda n: ((n - 4) // 2 - 4) // 2 - 2  # noqa: E731 - the last feature map's side
    model = nn.Sequential(
        UnitRange(), *conv(channels), *conv(32), nn.MaxPool2d(2), *conv(32), *conv(32), nn.MaxPool2d(2),
        *conv(32), *conv(32, 1), nn.Flatten(), nn.Linear(32 * side(height) * side(width), 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, num_classes),
    )
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def build_named(name: str, shape: tuple[int, ...], num_classes: int, seed: int = 0):
    """Build built-in model `name` for inputs of `shape` ((H, W, C) images) and `num_classes` classes."""
    if name in ("smallcnn", "simplecnn", "original") and len(shape) != 3:
        raise PoisonlabError(f"model '{name}' needs images (N, H, W, C), got items of shape {tuple(shape)}; "
                             "choose logreg or svc, or pass your own model")
    if name == "smallcnn":
        return small_cnn(shape[2], num_classes)
    if name == "simplecnn":
        height, width, channels = shape
        if height < 8 or width < 8:
            raise PoisonlabError(f"simplecnn needs images of at least 8x8, got {height}x{width}; choose smallcnn")
        return simple_cnn(channels, num_classes, height, width)
    if name == "original":
        height, width, channels = shape
        if height < 24 or width < 24:
            raise PoisonlabError(f"the original network needs images of at least 24x24, got {height}x{width}; "
                                 "choose smallcnn")
        return original_cnn(channels, num_classes, height, width)
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if name == "svc":
        return SVC(random_state=42)
    if name == "logreg":
        return LogisticRegression(max_iter=1000, random_state=seed)
    raise PoisonlabError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")


def build(model: ModelSpec, shape: tuple[int, ...], num_classes: int, seed: int = 0):
    """A fresh model: built-in by name, from a factory ``f(shape, num_classes)``, or a clone of an sklearn estimator."""
    if isinstance(model, str):
        return build_named(model, shape, num_classes, seed)
    if hasattr(model, "fit") and hasattr(model, "predict"):
        from sklearn.base import clone

        return clone(model)
    if isinstance(model, nn.Module):
        raise PoisonlabError("model is a built torch module; pass a factory instead, e.g. model=lambda shape, k: MyNet(k), "
                             "so that every run starts from fresh seeded weights")
    if callable(model):
        built = model(tuple(shape), num_classes)
        if not isinstance(built, nn.Module) and not (hasattr(built, "fit") and hasattr(built, "predict")):
            raise PoisonlabError(f"the model factory returned {type(built).__name__}, not a torch.nn.Module or estimator")
        if isinstance(built, nn.Module):
            _check_outputs(built, tuple(shape), num_classes)
        return built
    raise PoisonlabError(f"model {model!r} is not a model name ({', '.join(MODELS)}), a factory or an estimator")


def _check_outputs(model: nn.Module, shape: tuple[int, ...], num_classes: int) -> None:
    """Refuse a factory's module unless one item of `shape` (H, W, C) or (D,) gives `num_classes` scores."""
    probe = torch.zeros((2, shape[2], shape[0], shape[1]) if len(shape) == 3 else (2, *shape))
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(probe)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module on well-formed input
        raise PoisonlabError(f"the model factory's module fails on a batch of shape {tuple(probe.shape)} "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); make it take items of "
                             f"shape {shape} as (N, C, H, W) images or (N, D) rows") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        scores = f"{got[1]} class scores per item" if isinstance(got, tuple) and len(got) == 2 else f"output {got}"
        raise PoisonlabError(f"the model factory's output has {scores}, but the data has {num_classes} classes; "
                             "build the last layer with the num_classes the factory is given")


def model_name(model: ModelSpec) -> str:
    """The name recorded for a model spec: the built-in name, or the factory's or estimator's class name."""
    if isinstance(model, str):
        return model
    return getattr(model, "__name__", None) or type(model).__name__


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
