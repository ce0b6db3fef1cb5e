"""The torch training loop: Adam, early stopping on validation accuracy, LR on plateau, best weights kept."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from poisonlab.checks import check_choice
from poisonlab.training import remedies
from poisonlab.training.augment import shifted

PRECISIONS = ("auto", "bf16", "fp32")
PLATEAUS = ("torch", "keras")  # learning-rate cut rules (see Plateau)
ADAMS = ("torch", "keras")  # where Adam's epsilon sits (see adam_denominator)
BETAS, TORCH_EPS, KERAS_EPS = (0.9, 0.999), 1e-8, 1e-7  # torch.optim.Adam's and Keras' defaults


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and stopping settings of a torch run."""

    max_epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    patience: int = 10
    lr_patience: int = 5
    lr_factor: float = 0.1
    precision: str = "auto"
    plateau: str = "torch"
    adam: str = "torch"

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.plateau, PLATEAUS, "plateau")
        check_choice(self.adam, ADAMS, "adam")

    def to_dict(self) -> dict:
        """The settings recorded in run.json; `plateau` and `adam` only when not torch's, so older runs stay reusable."""
        config = asdict(self)
        for key in ("plateau", "adam"):
            if config[key] == "torch":
                del config[key]
        return config


def keras_epsilon(step: int) -> float:
    """The epsilon that makes torch's Adam take Keras' step `step` (1, 2, ...): 1e-7 / sqrt(1 - beta2^step)."""
    return KERAS_EPS / math.sqrt(1 - BETAS[1] ** step)


def settings(spec) -> dict:
    """A study spec dataclass with a `train` TrainConfig as the dict its run.json records (see TrainConfig.to_dict)."""
    return {**asdict(spec), "train": spec.train.to_dict()}


def adam_denominator(v: torch.Tensor, bias2, adam: str) -> torch.Tensor:
    """The denominator of Adam's step for second moment `v` and bias correction `bias2` = sqrt(1 - beta2^t):
    torch adds 1e-8 to the corrected root, sqrt(v) / bias2 + 1e-8; Keras adds 1e-7 before the correction,
    (sqrt(v) + 1e-7) / bias2."""
    return (v.sqrt() + KERAS_EPS) / bias2 if adam == "keras" else (v.sqrt() / bias2).add_(TORCH_EPS)


def pick_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run trains in: `precision` itself, or for "auto" bf16 where `device` supports it, else fp32."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    """bfloat16 autocast on `device` for "bf16" (weights stay float32), no change for "fp32"."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def to_tensor(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (N,H,W,C) -> float32 (N,C,H,W) in [-1, 1], channels-last in memory (faster convolutions)."""
    t = torch.from_numpy(np.array(x, dtype=np.uint8, copy=True)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)


def eval_batch(device: torch.device) -> int:
    """Items per evaluation forward pass: 256 on a CPU, whose caches hold that batch's activations (3x faster than
    1024 for the original network on MNIST), 1024 on a GPU."""
    return 256 if device.type == "cpu" else 1024


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Predicted class of every item, in eval mode."""
    model.eval()
    step = eval_batch(x.device)
    return torch.cat([model(x[i : i + step]).argmax(1) for i in range(0, len(x), step)]).cpu().numpy()


class Plateau:
    """Learning rates of one or more models cut by `factor` when validation accuracy stops improving, for a stack of
    models at once. Rule "torch" (torch's ReduceLROnPlateau, "max" mode): an improvement is a relative gain above 1e-4,
    the cut comes after more than `patience` epochs without one (at the 6th for patience 5), never below a change
    of 1e-8. Rule "keras" (Keras' ReduceLROnPlateau): an absolute gain above 1e-4, the cut at the `patience`-th
    epoch without one (the 5th)."""

    THRESHOLD, EPS = 1e-4, 1e-8

    def __init__(self, n: int, config: TrainConfig) -> None:
        self.lr = np.full(n, config.lr)
        self.best = np.full(n, -np.inf)
        self.bad = np.zeros(n, dtype=np.int64)
        self.factor, self.patience, self.keras = config.lr_factor, config.lr_patience, config.plateau == "keras"

    def step(self, acc: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Record the validation accuracies `acc` of models `which`; returns their learning rates for the next epoch."""
        best = self.best[which]
        better = acc > (best + self.THRESHOLD if self.keras else best * (1 + self.THRESHOLD))
        self.best[which] = np.where(better, acc, best)
        bad = np.where(better, 0, self.bad[which] + 1)
        cut = bad >= self.patience if self.keras else bad > self.patience
        lower = self.lr[which] * self.factor
        room = self.lr[which] > 0 if self.keras else self.lr[which] - lower > self.EPS
        self.lr[which] = np.where(cut & room, lower, self.lr[which])
        self.bad[which] = np.where(cut, 0, bad)
        return self.lr[which]


class Stopper:
    """Early stopping on validation accuracy for one or more models: the best epoch and accuracy of each."""

    def __init__(self, n: int, patience: int) -> None:
        self.acc = np.full(n, -1.0)
        self.epoch = np.zeros(n, dtype=np.int64)
        self.patience = patience

    def step(self, epoch: int, acc: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record models `which`'s accuracies at `epoch`; returns (improved, stop) masks over `which`."""
        improved = acc > self.acc[which]
        self.acc[which] = np.where(improved, acc, self.acc[which])
        self.epoch[which] = np.where(improved, epoch, self.epoch[which])
        return improved, epoch - self.epoch[which] >= self.patience

    def result(self, i: int, history: list[dict], precision: str, **path) -> dict:
        """Model `i`'s training record (no best epoch when it never validated); `still_improving` when its best
        validation accuracy came at the last epoch run (it never stopped early: more epochs may help)."""
        validated = self.epoch[i] > 0
        return {"history": history, "best_epoch": int(self.epoch[i]) if validated else None,
                "best_val_accuracy": float(self.acc[i]) if validated else None, "epochs_run": len(history),
                "still_improving": bool(validated and self.epoch[i] == len(history)), "precision": precision, **path}


def fit_torch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: np.ndarray,
    config: TrainConfig,
    seed: int,
    on_epoch: Callable[[dict], None] | None = None,
    remedy: str = "none",
) -> dict:
    """Train with Adam; stop after `patience` epochs without a better validation accuracy; keep the best weights.

    With an empty validation set it trains exactly `max_epochs` epochs at a fixed rate and keeps the last weights.
    Forward passes run in `config.precision` (bf16 autocast or fp32); validation and the kept weights are fp32.
    History rows: epoch, train_loss and train_accuracy (means over the epoch's batches, as they were seen), lr and,
    when validating, val_accuracy. `remedy` (see `remedies`; one network only) replaces cross-entropy."""
    if remedies.peers(remedy) > 1:
        raise ValueError(f"remedy {remedy!r} trains two networks; train it with fit_torch_stacked")
    generator = torch.Generator().manual_seed(seed)
    precision = resolve_precision(config.precision, x.device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=BETAS, eps=TORCH_EPS, foreach=True)
    steps = 0
    plateau, stopper, one = Plateau(1, config), Stopper(1, config.patience), np.zeros(1, dtype=np.int64)
    loss_fn, shifts = remedies.make(remedy, 1, len(x)), np.random.default_rng([seed, 11])  # shifts: of `view`
    best_state, history = None, []
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            with autocast(precision, x.device):
                out = model(x[idx])

            def view(idx: torch.Tensor = idx) -> torch.Tensor:
                with autocast(precision, x.device):
                    return model(shifted(x[idx], shifts)).unsqueeze(0)

            loss = loss_fn(out.unsqueeze(0), y[idx].unsqueeze(0), idx, epoch, view).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            steps += 1
            if config.adam == "keras":
                opt.param_groups[0]["eps"] = keras_epsilon(steps)
            opt.step()
            total += loss.detach() * len(idx)
            correct += (out.detach().argmax(1) == y[idx]).sum()
        row = {"epoch": epoch, "train_loss": float(total) / len(x), "train_accuracy": int(correct) / len(x),
               "lr": opt.param_groups[0]["lr"]}
        history.append(row)
        if not len(x_val):
            if on_epoch:
                on_epoch(row)
            continue
        acc = np.array([(predict(model, x_val) == y_val).mean()])
        row["val_accuracy"] = float(acc[0])
        opt.param_groups[0]["lr"] = float(plateau.step(acc, one)[0])
        improved, stop = stopper.step(epoch, acc, one)
        if improved[0]:
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if on_epoch:
            on_epoch(row)
        if stop[0]:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return stopper.result(0, history, precision, path="single")


def seed_everything(seed: int) -> None:
    """Seed torch and request deterministic kernels, so a run is fixed by its config and seed.

    New tensors are not NaN-filled (the deterministic mode's default): that fill was a fifth of an epoch's CPU time."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
