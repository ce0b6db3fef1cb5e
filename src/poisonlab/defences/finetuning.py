"""Post-training backdoor defences on a small trusted clean set: fine-tuning, and fine-pruning (Liu et al., RAID 2018).

Fine-tuning trains the finished model a few more epochs on the trusted items at a learning rate high enough to move
it off the trigger's shortcut. Fine-pruning first removes the units of the last hidden representation (the inputs of
the final linear layer; channels, for a network that averages them) that stay the least active on the trusted
items, where a trigger's units hide, then fine-tunes with the pruned units held at zero."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from poisonlab.errors import PoisonlabError
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig

FINETUNE_LR, FINETUNE_EPOCHS, FINETUNE_BATCH = 5e-3, 10, 32  # Adam on the trusted items
PRUNE_SHARE, PRUNE_LR = 0.2, 3e-3  # share of the last hidden units pruned; fine-tuning rate after pruning


def finetune(model: nn.Module, x: np.ndarray, y: np.ndarray, *, lr: float = FINETUNE_LR,
             epochs: int = FINETUNE_EPOCHS, seed: int = 0) -> dict:
    """Fine-tune torch `model` in place on trusted items `x` (N, ...) with labels `y` (N,).

    Returns the settings used: learning rate, epochs, batch size and the number of trusted items."""
    if not isinstance(model, nn.Module):
        raise PoisonlabError(f"fine-tuning needs a torch model, not {type(model).__name__}")
    config = TrainConfig(max_epochs=epochs, batch_size=FINETUNE_BATCH, lr=lr)
    fitting.fit(model, x, y, config=config, seed=seed, device=next(model.parameters()).device)
    return {"lr": lr, "epochs": epochs, "batch_size": FINETUNE_BATCH, "n_trusted": len(y)}


def last_linear(model: nn.Module) -> nn.Linear:
    """The final linear layer of a Sequential torch model, or a one-line error."""
    if not isinstance(model, nn.Sequential) or not isinstance(model[-1], nn.Linear):
        raise PoisonlabError(f"fine-pruning needs a torch Sequential model ending in a Linear layer, not "
                             f"{type(model).__name__}; use finetune")
    return model[-1]


def dormant(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The inputs of `model`'s final linear layer from least to most active on items `x`: their mean activation,
    ascending (ties to the smaller unit), shape (D,)."""
    last_linear(model)
    return np.argsort(fitting.penultimate(model, x).mean(0), kind="stable")


def fineprune(model: nn.Module, x: np.ndarray, y: np.ndarray, *, share: float = PRUNE_SHARE, lr: float = PRUNE_LR,
              epochs: int = FINETUNE_EPOCHS, seed: int = 0) -> dict:
    """Prune the `share` of the last hidden units least active on trusted items `x` (N, ...), then fine-tune torch
    `model` in place on (x, `y`) with those units held at zero; the final layer's weights from them end at zero.

    Returns the settings used and the pruned units."""
    if not 0 <= share < 1:
        raise PoisonlabError(f"pruned share must be in [0, 1), got {share!r}")
    layer = last_linear(model)
    pruned = dormant(model, x)[: round(share * layer.in_features)]
    keep = torch.ones(layer.in_features, device=layer.weight.device)
    keep[torch.from_numpy(pruned).to(keep.device)] = 0
    hook = layer.register_forward_pre_hook(lambda _, inputs: (inputs[0] * keep.to(inputs[0].dtype),))
    try:
        tuned = finetune(model, x, y, lr=lr, epochs=epochs, seed=seed)
    finally:
        hook.remove()
    with torch.no_grad():
        layer.weight.mul_(keep)
    return {**tuned, "share": share, "pruned": pruned.tolist(), "units": layer.in_features}
