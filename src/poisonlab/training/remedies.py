"""Training remedies for noisy or poisoned labels: robust losses, co-teaching and a semi-supervised step, as per-item
losses of a stack of models.

Every remedy is one small callable that the training loops (`loop.fit_torch`, `stacked.fit_torch_stacked`) call on
each batch in place of cross-entropy: given the outputs of M models (M, B, K), their labels (M, B), the batch's item
indices (B,) and the epoch, it returns per-item losses (M, B) whose mean over the batch is each model's objective.

- ``gce``: generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018), (1 - p_y^q) / q, between cross-entropy (q -> 0)
  and the noise-tolerant mean absolute error (q = 1).
- ``sce``: symmetric cross-entropy (Wang et al., ICCV 2019), alpha * CE + beta * reverse CE, the reverse term
  -sum_k p_k log y_k with log 0 taken as log 1e-4.
- ``elr``: early-learning regularisation (Liu et al., NeurIPS 2020): CE + lambda * log(1 - <p, t>), t a per-item
  running average of the model's own predictions, which keeps the model near what it learned before memorising
  the wrong labels.
- ``coteach``: co-teaching (Han et al., NeurIPS 2018): two networks, each trained on the share of the batch its peer
  finds easiest (smallest loss), the share dropped growing from 0 to the forget rate over the first epochs.
  ``coteach:P`` sets the forget rate to P percent (default 20).
- ``semi``: a semi-supervised step in the manner of DivideMix and FixMatch: after a warm-up, a two-component Gaussian
  mixture on each item's loss of the previous epoch splits the items into clean and suspected; clean items keep their
  label, suspected ones keep only their image, trained towards the model's own confident prediction (at least
  SEMI_THRESHOLD) on a randomly shifted copy of it; unconfident suspected items are left out of the step.
- ``abl``: anti-backdoor learning (Li et al., NeurIPS 2021): for the first ABL_ISOLATE epochs the batch loss is held
  near ABL_GAMMA (local gradient ascent: its sign flips below the floor), so the items a trigger makes easy stand out
  with the lowest losses; then the lowest-loss share of the items (``abl:P``: P percent, default ABL_SHARE) is isolated
  and unlearned (its loss is ABL_UNLEARN * -log(1 - p_label), a bounded gradient ascent on the label) while the rest
  trains as usual.

A remedy that needs a second view of the batch asks the trainer for it through `view()`: the models' outputs on
randomly shifted copies of the batch's images (feature rows unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from poisonlab.checks import check_choice, suffix_share
from poisonlab.errors import PoisonlabError
from poisonlab.mixture import low_share

REMEDIES = ("none", "gce", "sce", "elr", "coteach", "semi", "abl")
SHARED = ("coteach", "abl")  # remedies that take NAME:P, P a percent
GCE_Q = 0.7  # GCE's exponent (the paper's choice for CIFAR)
SCE_ALPHA, SCE_BETA, SCE_LOG_ZERO = 0.1, 1.0, math.log(1e-4)  # SCE's weights (the paper's CIFAR-10 ones), log 0
ELR_BETA, ELR_LAMBDA = 0.7, 3.0  # ELR's target momentum and regularisation weight (the paper's CIFAR-10 ones)
COTEACH_FORGET, COTEACH_WARMUP = 0.2, 10  # co-teaching's default forget rate and the epochs it takes to reach it
SEMI_WARMUP, SEMI_THRESHOLD = 5, 0.95  # plain epochs before the first split; confidence a pseudo-label needs
ABL_ISOLATE, ABL_GAMMA, ABL_SHARE = 3, 1.5, 0.1  # isolation epochs, loss floor, default share isolated (on MNIST)
ABL_UNLEARN = 1.0  # weight of the unlearning loss (5 removes more of a patch on MNIST-3000, and ruins MNIST-10k)


def check_remedy(name: str) -> str:
    """`name` if it names a remedy (``coteach:P`` and ``abl:P`` with 0 <= P < 100 included), else a one-line error
    naming the choices."""
    if not isinstance(name, str):
        raise PoisonlabError(f"defence must be a string, got {name!r}")
    base, _, rate = name.partition(":")
    if base in SHARED and rate:
        if not 0 <= suffix_share(name, 0.0) < 1:
            what = "co-teaching's forget rate" if base == "coteach" else "ABL's isolated share"
            raise PoisonlabError(f"{what} must be a percent in [0, 100), got {rate!r}; write e.g. {base}:10")
        return name
    check_choice(name, REMEDIES, "defence")
    return name


def peers(name: str) -> int:
    """Networks one run of remedy `name` trains: 2 for co-teaching, else 1."""
    return 2 if name.partition(":")[0] == "coteach" else 1


def settings(name: str) -> dict:
    """The remedy's settings as run.json records them."""
    base = name.partition(":")[0]
    if base == "gce":
        return {"name": base, "q": GCE_Q}
    if base == "sce":
        return {"name": base, "alpha": SCE_ALPHA, "beta": SCE_BETA, "log_zero": SCE_LOG_ZERO}
    if base == "elr":
        return {"name": base, "beta": ELR_BETA, "lambda": ELR_LAMBDA}
    if base == "coteach":
        return {"name": base, "forget_rate": suffix_share(name, COTEACH_FORGET),
                "warmup_epochs": COTEACH_WARMUP}
    if base == "semi":
        return {"name": base, "warmup_epochs": SEMI_WARMUP, "threshold": SEMI_THRESHOLD, "split": "gmm on losses",
                "augment": "shift"}
    if base == "abl":
        return {"name": base, "isolated_share": suffix_share(name, ABL_SHARE),
                "isolation_epochs": ABL_ISOLATE, "gamma": ABL_GAMMA, "unlearning": "-log(1 - p_label)",
                "unlearning_weight": ABL_UNLEARN}
    return {"name": base}


View = Callable[[], torch.Tensor]  # () -> the models' outputs (M, B, K) on shifted copies of the batch


class Remedy:
    """Per-item losses of a stack of models; this base class is plain cross-entropy."""

    def __call__(self, out: torch.Tensor, labels: torch.Tensor, items: torch.Tensor, epoch: int,
                 view: View | None = None) -> torch.Tensor:
        """Per-item losses (M, B) of outputs `out` (M, B, K) against `labels` (M, B) for items `items` (B,) at
        `epoch` (1, 2, ...); `view` gives the outputs on shifted copies of the batch when a remedy needs them."""
        return nn.functional.cross_entropy(out.flatten(0, 1).float(), labels.flatten(), reduction="none").view(labels.shape)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the state of the models at `rows` (models that stopped leave the stack)."""


class _GCE(Remedy):
    def __call__(self, out, labels, items, epoch, view=None):
        p = out.float().softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return (1 - p.clamp_min(1e-7) ** GCE_Q) / GCE_Q


class _SCE(Remedy):
    def __call__(self, out, labels, items, epoch, view=None):
        p = out.float().softmax(-1).clamp(1e-7, 1.0).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return SCE_ALPHA * super().__call__(out, labels, items, epoch) - SCE_BETA * SCE_LOG_ZERO * (1 - p)


class _ELR(Remedy):
    def __init__(self, n_models: int, n_items: int) -> None:
        self.shape, self.targets = (n_models, n_items), None

    def __call__(self, out, labels, items, epoch, view=None):
        p = out.float().softmax(-1).clamp(1e-4, 1 - 1e-4)
        if self.targets is None:
            self.targets = torch.zeros(*self.shape, p.shape[-1], device=p.device)
        with torch.no_grad():
            seen = p / p.sum(-1, keepdim=True)
            self.targets[:, items] = ELR_BETA * self.targets[:, items] + (1 - ELR_BETA) * seen
        regulariser = (1 - (self.targets[:, items] * p).sum(-1)).log()
        return super().__call__(out, labels, items, epoch) + ELR_LAMBDA * regulariser

    def keep(self, rows):
        if self.targets is not None:
            self.targets = self.targets[rows]


class _CoTeach(Remedy):
    """Models 2j and 2j+1 of the stack are peers; a model left alone picks its own small-loss items."""

    def __init__(self, forget: float) -> None:
        self.forget = forget

    def __call__(self, out, labels, items, epoch, view=None):
        losses = super().__call__(out, labels, items, epoch)
        n_models, batch = losses.shape
        kept = max(1, round(batch * (1 - self.forget * min(epoch / COTEACH_WARMUP, 1.0))))
        with torch.no_grad():
            easiest = losses.argsort(dim=1, stable=True)[:, :kept]
            chosen = torch.zeros_like(losses).scatter_(1, easiest, batch / kept)
            if n_models % 2 == 0:  # each model learns from the items its peer finds easiest
                chosen = chosen.view(-1, 2, batch).flip(1).reshape(n_models, batch)
        return losses * chosen


class _Semi(Remedy):
    def __init__(self, n_models: int, n_items: int) -> None:
        self.losses = torch.zeros(n_models, n_items)
        self.clean: torch.Tensor | None = None
        self.split_at = 0

    def __call__(self, out, labels, items, epoch, view=None):
        losses = super().__call__(out, labels, items, epoch)
        self.losses = self.losses.to(losses.device)
        self.losses[:, items] = losses.detach()
        if epoch <= SEMI_WARMUP or view is None:
            return losses
        if self.split_at != epoch:  # the split of this epoch, from the losses of the last one
            share = low_share(self.losses.float().cpu().numpy())
            self.clean, self.split_at = torch.from_numpy(share > 0.5).to(self.losses.device), epoch
        clean = self.clean[:, items]
        with torch.no_grad():
            confidence, guess = out.float().softmax(-1).max(-1)
            taught = ~clean & (confidence >= SEMI_THRESHOLD)
        if not bool(taught.any()):
            return losses * clean
        guessed = super().__call__(view(), guess, items, epoch)
        return torch.where(clean, losses, guessed * taught)

    def keep(self, rows):
        self.losses = self.losses[rows.to(self.losses.device)]
        if self.clean is not None:
            self.clean = self.clean[rows.to(self.clean.device)]


class _ABL(Remedy):
    def __init__(self, n_models: int, n_items: int, share: float) -> None:
        self.losses = torch.zeros(n_models, n_items)
        self.share, self.isolated = share, None

    def __call__(self, out, labels, items, epoch, view=None):
        losses = super().__call__(out, labels, items, epoch)
        if epoch <= ABL_ISOLATE:
            self.losses = self.losses.to(losses.device)
            self.losses[:, items] = losses.detach()
            with torch.no_grad():  # below the floor the batch climbs back to it
                sign = (losses.mean(1, keepdim=True) - ABL_GAMMA).sign()
            return losses * sign
        if self.isolated is None:  # the lowest-loss share of the last isolation epoch's items, per model
            n = self.losses.shape[1]
            lowest = self.losses.argsort(dim=1, stable=True)[:, : round(n * self.share)]
            self.isolated = torch.zeros_like(self.losses, dtype=torch.bool).scatter_(1, lowest, True)
        isolated = self.isolated[:, items]
        p = out.float().softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return torch.where(isolated, -ABL_UNLEARN * torch.log1p(-p.clamp(max=1 - 1e-4)), losses)

    def keep(self, rows):
        self.losses = self.losses[rows.to(self.losses.device)]
        if self.isolated is not None:
            self.isolated = self.isolated[rows.to(self.isolated.device)]


def make(name: str, n_models: int = 1, n_items: int = 0) -> Remedy:
    """The remedy `name` for a stack of `n_models` models training on `n_items` items (their indices 0..n_items-1)."""
    base, _, rate = check_remedy(name).partition(":")
    if base == "gce":
        return _GCE()
    if base == "sce":
        return _SCE()
    if base == "elr":
        return _ELR(n_models, n_items)
    if base == "coteach":
        return _CoTeach(settings(name)["forget_rate"])
    if base == "semi":
        return _Semi(n_models, n_items)
    if base == "abl":
        return _ABL(n_models, n_items, settings(name)["isolated_share"])
    return Remedy()
