"""Model zoo: two torch CNNs and scikit-learn classifiers, built from a name."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from torch import nn

from poisonlab.errors import PoisonlabError

TORCH_MODELS = ("smallcnn", "simplecnn")
SKLEARN_MODELS = ("svc", "logreg")
MODELS = TORCH_MODELS + SKLEARN_MODELS


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


def build(name: str, shape: tuple[int, int, int], num_classes: int, seed: int = 0):
    """Build model `name` for images of `shape` (H, W, C) and `num_classes` classes."""
    height, width, channels = shape
    if name == "smallcnn":
        return small_cnn(channels, num_classes)
    if name == "simplecnn":
        if height < 8 or width < 8:
            raise PoisonlabError(f"simplecnn needs images of at least 8x8, got {height}x{width}; use --model smallcnn")
        return simple_cnn(channels, num_classes, height, width)
    if name == "svc":
        return SVC(random_state=42)
    if name == "logreg":
        return LogisticRegression(max_iter=1000, random_state=seed)
    raise PoisonlabError(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
