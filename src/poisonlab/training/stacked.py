"""Many copies of one torch model trained in one pass (vmap over stacked weights), each on its own labels.

The runs of a sweep that share a dataset, a seed and training settings see the same images, initial weights and batch
order; only their labels differ. Stacked, they train as one wide model: every step is one batched forward and
backward for all of them, with per-model Adam state, learning rate (plateau cuts), early stopping and best weights.
Models that stop early leave the stack, so the remaining ones train faster."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from poisonlab.training.loop import (BETAS, Plateau, Stopper, TrainConfig, adam_denominator, autocast, eval_batch,
                                    resolve_precision)
from poisonlab.training import remedies
from poisonlab.training.augment import moved, moves, shifted
from poisonlab.training.models import UnitRange

EVAL_ITEMS = 8192  # model-items per batched evaluation pass on a GPU (bounds the activations' memory)
CHANNELWISE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, UnitRange)
Forward = Callable[..., torch.Tensor]  # (params, buffers, x[, noise]) -> (models, batch, classes)


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The layers of a (nested) Sequential in execution order, or None when `model` is not one."""
    if not all(isinstance(m, nn.Sequential) for m in model.modules() if list(m.children())):
        return None
    return [(name, m) for name, m in model.named_modules() if not list(m.children())]


def _widens(layers: list[tuple[str, nn.Module]]) -> bool:
    """Whether `wide` can run these layers: convolutions, batch norms and channel-wise layers, then one Flatten and
    linear layers (with dropout and ReLU)."""
    flat = False
    for _, layer in layers:
        if isinstance(layer, nn.Flatten):
            ok, flat = not flat and layer.start_dim == 1 and layer.end_dim == -1, True
        elif isinstance(layer, nn.Conv2d):
            ok = not flat and layer.padding_mode == "zeros"
        elif isinstance(layer, nn.BatchNorm2d):
            ok = not flat and layer.affine and layer.track_running_stats and layer.momentum is not None
        elif isinstance(layer, nn.Linear):
            ok = flat
        else:
            ok = isinstance(layer, (nn.Dropout, nn.ReLU)) or (not flat and isinstance(layer, CHANNELWISE))
        if not ok:
            return False
    return flat


def wide(skeleton: nn.Module) -> Forward | None:
    """The stack's forward pass as ONE wide network, for Sequential CNNs of common layers (else None): model m's
    channels are block m of every activation, convolutions are grouped by model (the first one shares the input),
    batch norms run over all models' channels at once and linear layers are one batched matrix product. The input
    is (batch, C, H, W), one batch every model sees, or (models, batch, C, H, W), each model its own. Returns
    outputs (models, batch, classes). With `noise`, one torch.Generator per model, model m's dropout masks come from
    noise[m] alone (else from torch's global generator, shared by the stack)."""
    layers = _leaves(skeleton)
    if layers is None or not _widens(layers):
        return None

    def forward(params: dict, buffers: dict, x: torch.Tensor,
                noise: list[torch.Generator] | None = None) -> torch.Tensor:
        n_models = next(iter(params.values())).shape[0]
        h, shared = x, True  # shared: still the one input all models see, (B, C, H, W); then (B, models*C, H, W)
        if x.dim() == 5:  # each model its own batch: model m's channels are block m from the start
            h, shared = x.transpose(0, 1).flatten(1, 2), False
        for name, layer in layers:
            if shared and (isinstance(layer, (nn.BatchNorm2d, nn.Flatten))
                           or (isinstance(layer, nn.Conv2d) and layer.groups > 1)
                           or (isinstance(layer, nn.Dropout) and noise is not None)):
                h, shared = h.repeat(1, n_models, 1, 1), False
            if isinstance(layer, nn.Conv2d):
                bias = params.get(f"{name}.bias")
                h = nn.functional.conv2d(h, params[f"{name}.weight"].flatten(0, 1), None if bias is None else bias.flatten(),
                                         layer.stride, layer.padding, layer.dilation, layer.groups * (1 if shared else n_models))
                shared = False
            elif isinstance(layer, nn.BatchNorm2d):
                if skeleton.training:
                    buffers[f"{name}.num_batches_tracked"].add_(1)
                h = nn.functional.batch_norm(h, buffers[f"{name}.running_mean"].view(-1), buffers[f"{name}.running_var"].view(-1),
                                             params[f"{name}.weight"].flatten(), params[f"{name}.bias"].flatten(),
                                             skeleton.training, layer.momentum, layer.eps)
            elif isinstance(layer, nn.Flatten):
                h = h.reshape(len(h), n_models, -1).transpose(0, 1)  # (models, B, features)
            elif isinstance(layer, nn.Linear):
                h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), h, params[f"{name}.weight"].transpose(1, 2))
            elif isinstance(layer, nn.Dropout) and noise is not None and skeleton.training and layer.p > 0:
                h = _own_dropout(h, layer.p, noise)
            elif isinstance(layer, nn.Dropout):
                h = nn.functional.dropout(h, layer.p, skeleton.training)
            else:
                h = layer(h)
        return h

    return forward


def _own_dropout(h: torch.Tensor, p: float, noise: list[torch.Generator]) -> torch.Tensor:
    """Dropout of wide activations h, (models, B, F) or (B, models*C, H, W), model m's mask drawn from noise[m]."""
    if h.dim() == 3:
        draws = [torch.rand(h.shape[1:], generator=g, device=h.device) for g in noise]
        keep = torch.stack(draws) >= p
    else:
        shape = (h.shape[0], h.shape[1] // len(noise), *h.shape[2:])
        keep = torch.stack([torch.rand(shape, generator=g, device=h.device) for g in noise], 1).flatten(1, 2) >= p
    return h * keep / (1 - p)


def vmapped(skeleton: nn.Module) -> Forward:
    """The stack's forward pass for any module: vmap over the stacked weights; outputs (models, batch, classes)."""
    return vmap(lambda p, b, xb: functional_call(skeleton, (p, b), (xb,)), in_dims=(0, 0, None), randomness="different")


class _Stack:
    """The stacked weights (leading axis: model), buffers and Adam moments of the models still training."""

    def __init__(self, models: list[nn.Module], adam: str = "torch") -> None:
        self.adam_rule = adam
        self.names = [name for name, _ in models[0].named_parameters()]
        self.buffer_names = [name for name, _ in models[0].named_buffers()]
        self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
                       for n in self.names}
        self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n in self.buffer_names}
        self.moments = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in self.params.items()}
        self.steps = 0

    @torch.no_grad()
    def adam(self, lr: torch.Tensor, active: torch.Tensor | None = None, taken: torch.Tensor | None = None) -> None:
        """One Adam step (torch.optim.Adam's update, or Keras' by `adam_rule`) of every model, each at its own
        learning rate `lr` (models,); with `active` (models,) bool, only of those models, each at its own step count
        `taken` (models,), the others keeping their weights and moments."""
        self.steps += 1
        if active is not None and not bool(active.all()):
            self._masked_adam(lr, active, taken)
            return
        (b1, b2), t = BETAS, self.steps if taken is None else int(taken[0])  # all active: one common step count
        bias2 = math.sqrt(1 - b2**t)
        for n, p in self.params.items():
            m, v = self.moments[n]
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            step = (lr / (1 - b1**t)).view(-1, *[1] * (p.dim() - 1))
            p.sub_(step * m / adam_denominator(v, bias2, self.adam_rule))
            p.grad = None

    def _masked_adam(self, lr: torch.Tensor, active: torch.Tensor, taken: torch.Tensor) -> None:
        """`adam` for the `active` models alone, each at its own step count `taken`."""
        b1, b2 = BETAS
        t = taken.clamp(min=1).double()
        for n, p in self.params.items():
            m, v = self.moments[n]
            shape = (-1, *[1] * (p.dim() - 1))
            on = active.view(shape)
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            m.copy_(torch.where(on, m.lerp(grad, 1 - b1), m))
            v.copy_(torch.where(on, v * b2 + (1 - b2) * grad * grad, v))
            step = (lr / (1 - b1**t)).float().view(shape)
            bias2 = torch.sqrt(1 - b2**t).float().view(shape)
            p.sub_(torch.where(on, step * m / adam_denominator(v, bias2, self.adam_rule), torch.zeros_like(p)))
            p.grad = None

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the models at `rows` of the stack."""
        self.params = {n: p.detach()[rows].requires_grad_() for n, p in self.params.items()}
        self.buffers = {n: b[rows] for n, b in self.buffers.items()}
        self.moments = {n: (m[rows], v[rows]) for n, (m, v) in self.moments.items()}

    def state(self) -> dict[str, torch.Tensor]:
        """Every stacked weight and buffer, detached."""
        return {**{n: p.detach() for n, p in self.params.items()}, **self.buffers}


def fit_torch_stacked(
    models: list[nn.Module],
    x: torch.Tensor,
    ys: torch.Tensor,
    x_val: torch.Tensor,
    y_vals: np.ndarray,
    config: TrainConfig,
    seed: int,
    on_epoch: Callable[[int, dict], None] | None = None,
    forward: str = "auto",
    remedy: str = "none",
) -> list[dict]:
    """Train `models` (same architecture, on x's device) at once, model i on labels ys[i]; load each one's best weights.

    Parameters
    ----------
    models : M torch modules of one architecture; equal initial weights give the results of one-by-one training.
    x : (N, C, H, W) float tensor, the training images every model sees (in one seeded order per epoch).
    ys : (M, N) int64 tensor on x's device, each model's training labels.
    x_val : (V, C, H, W) float tensor, validation images (V may be 0: then exactly `config.max_epochs` epochs).
    y_vals : (M, V) int array, each model's validation labels.
    config, seed : as for `fit_torch`: Adam, plateau cuts, early stopping, precision; the seed fixes the batch order.
    on_epoch : called with (model index, epoch row) after each epoch of each model still training.
    forward : "wide" (one wide network; common Sequential CNNs only), "vmap" (any module) or "auto" (wide if it can).
    remedy : a `remedies` name replacing cross-entropy; co-teaching pairs models 2j and 2j+1, and a pair stops
        training when its first model's early stopping says so.

    Returns
    -------
    list of M training records, as `fit_torch` returns, with path "stacked", the stack's size and its forward pass."""
    device, n_models = x.device, len(models)
    precision = resolve_precision(config.precision, device)
    skeleton = copy.deepcopy(models[0]).to("meta")
    batched, how = (wide(skeleton) if forward != "vmap" else None), "wide"
    if batched is None:
        if forward == "wide":
            raise ValueError(f"{type(models[0]).__name__} is not a Sequential CNN of common layers; use forward 'vmap'")
        batched, how = vmapped(skeleton), "vmap"
        precision = "fp32"  # vmap's batch-norm rule rejects bf16 activations beside fp32 running stats on CUDA
    stack = _Stack(models, config.adam)
    best = {n: t.clone() for n, t in stack.state().items()}
    plateau, stopper = Plateau(n_models, config), Stopper(n_models, config.patience)
    generator = torch.Generator().manual_seed(seed)
    active = np.arange(n_models)
    histories: list[list[dict]] = [[] for _ in models]
    loss_fn, paired = remedies.make(remedy, n_models, len(x)), remedies.peers(remedy) > 1
    shifts = np.random.default_rng([seed, 11])  # the shifts of a remedy's second view of a batch
    if paired and n_models % 2:
        raise ValueError(f"remedy {remedy!r} trains models in pairs; give an even number of models, not {n_models}")

    @torch.no_grad()
    def predict(items: torch.Tensor) -> np.ndarray:
        """Predicted classes (models, V) of the models still training, in eval mode and fp32."""
        skeleton.eval()
        chunk = eval_chunk(len(active), device)
        return torch.cat([batched(stack.params, stack.buffers, items[i : i + chunk]).argmax(-1)
                          for i in range(0, len(items), chunk)], dim=1).cpu().numpy()

    for epoch in range(1, config.max_epochs + 1):
        skeleton.train()
        labels = ys[torch.from_numpy(active).to(device)]
        lr = torch.tensor(plateau.lr[active], dtype=torch.float32, device=device)
        order = torch.randperm(len(x), generator=generator).to(device)
        total = torch.zeros(len(active), device=device)
        correct = torch.zeros(len(active), device=device, dtype=torch.long)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            with autocast(precision, device):
                out = batched(stack.params, stack.buffers, x[idx])

            def view(idx: torch.Tensor = idx) -> torch.Tensor:
                with autocast(precision, device):
                    return batched(stack.params, stack.buffers, shifted(x[idx], shifts))

            losses = loss_fn(out, labels[:, idx], idx, epoch, view)
            losses.mean(1).sum().backward()  # each model's gradient is that of its own mean loss
            stack.adam(lr)
            total += losses.detach().sum(1)
            correct += (out.detach().argmax(-1) == labels[:, idx]).sum(1)
        rows = [{"epoch": epoch, "train_loss": float(t) / len(x), "train_accuracy": c / len(x), "lr": float(plateau.lr[i])}
                for i, t, c in zip(active, total.tolist(), correct.tolist())]
        for i, row in zip(active, rows):
            histories[i].append(row)
        if not len(x_val):
            for i, row in zip(active, rows):
                if on_epoch:
                    on_epoch(int(i), row)
            continue
        acc = (predict(x_val) == y_vals[active]).mean(1)
        plateau.step(acc, active)
        improved, stop = stopper.step(epoch, acc, active)
        if paired:  # a pair stops with its first model
            stop = np.repeat(stop[::2], 2)
        if improved.any():
            rows_better = torch.from_numpy(np.flatnonzero(improved)).to(device)
            into = torch.from_numpy(active[improved]).to(device)
            for n, t in stack.state().items():
                best[n][into] = t[rows_better]
        for i, row, a in zip(active, rows, acc):
            row["val_accuracy"] = float(a)
            if on_epoch:
                on_epoch(int(i), row)
        if stop.all():
            break
        if stop.any():
            rows = torch.from_numpy(np.flatnonzero(~stop)).to(device)
            stack.keep(rows)
            loss_fn.keep(rows)
            active = active[~stop]
    final = best if len(x_val) else stack.state()
    for i, model in enumerate(models):
        model.load_state_dict({n: t[i] for n, t in final.items()})
    return [stopper.result(i, histories[i], precision, path="stacked", stack_size=n_models, stack_forward=how)
            for i in range(n_models)]


def fit_on_own_items(models: list[nn.Module], x: torch.Tensor, members: list[np.ndarray], labels: torch.Tensor,
                     config: TrainConfig, seeds: list[int], *, augment: str = "none") -> str:
    """Train `models` (one Sequential CNN architecture, on x's device) at once, model i only on items members[i].

    Model i takes `config.max_epochs` * ceil(n_i / batch) Adam steps at a fixed learning rate, each on `batch`
    items drawn in turn from a stream of seeded permutations of its own items (seed seeds[i]; a partition smaller
    than a batch repeats items), with dropout masks from a generator of its own seed: its training depends on its own
    items and seed alone, whichever models share the stack, as a certificate over partitions needs. Returns the
    precision used.

    Parameters
    ----------
    models : list of M torch modules (their weights are trained in place)
    x : float tensor (N, C, H, W), all items, held once
    members : M int arrays, each model's item indices into x
    labels : int64 tensor (N,) on x's device
    config : max_epochs, batch_size, lr and precision are used (no validation, no plateau cuts)
    seeds : M ints
    augment : {"none", "shift", "shift+flip"}
        Each drawn item moved by up to augment.SHIFT pixels each way (edges reflected) and, with flip, mirrored left-right
        half the time, from the model's own seeded stream.
    """
    device, batch = x.device, config.batch_size
    precision = resolve_precision(config.precision, device)
    skeleton = copy.deepcopy(models[0]).to("meta")
    batched = wide(skeleton)
    if batched is None:
        raise ValueError(f"{type(models[0]).__name__} is not a Sequential CNN of common layers")
    stack = _Stack(models, config.adam)
    steps = torch.tensor([config.max_epochs * math.ceil(len(m) / batch) for m in members], device=device)
    streams = [_Stream(m, seed) for m, seed in zip(members, seeds)]
    noise = [torch.Generator(device=device).manual_seed(int(np.random.SeedSequence([seed, 5]).generate_state(1)[0]))
             for seed in seeds]  # each model's dropout masks from its own seed, whichever models share the stack
    taken = torch.zeros(len(models), dtype=torch.long, device=device)
    lr = torch.full((len(models),), config.lr, device=device)
    skeleton.train()
    for step in range(int(steps.max())):
        active = step < steps
        idx = torch.from_numpy(np.stack([s.next(batch) for s in streams])).to(device)  # (M, batch)
        done = None if bool(active.all()) else {n: b.clone() for n, b in stack.buffers.items()}
        items = x[idx] if augment == "none" else moved(x[idx], [s.moves(batch, augment) for s in streams])
        with autocast(precision, device):
            out = batched(stack.params, stack.buffers, items, noise=noise)
        losses = nn.functional.cross_entropy(out.flatten(0, 1).float(), labels[idx].flatten(),
                                             reduction="none").view(len(models), batch)
        (losses.mean(1) * active).sum().backward()
        if done is not None:  # models past their last step: their batch-norm statistics stay as they were
            with torch.no_grad():
                for n, b in stack.buffers.items():
                    b.copy_(torch.where(active.view(-1, *[1] * (b.dim() - 1)), b, done[n]))
        taken += active
        stack.adam(lr, active, taken)
    final = stack.state()
    for i, model in enumerate(models):
        model.load_state_dict({n: t[i] for n, t in final.items()})
    return precision


class _Stream:
    """A model's batches: its items in one seeded permutation after another, `batch` at a time."""

    def __init__(self, items: np.ndarray, seed: int) -> None:
        self.items, self.rng, self.queue = np.asarray(items), np.random.default_rng([seed, 3]), np.empty(0, np.int64)

    def moves(self, batch: int, augment: str) -> np.ndarray:
        """The next batch's moves (see `augment.moves`)."""
        return moves(self.rng, batch, augment)

    def next(self, batch: int) -> np.ndarray:
        while len(self.queue) < batch:
            self.queue = np.concatenate([self.queue, self.rng.permutation(self.items)])
        taken, self.queue = self.queue[:batch], self.queue[batch:]
        return taken


def eval_chunk(n_models: int, device: torch.device) -> int:
    """Items per wide evaluation pass of `n_models` models: EVAL_ITEMS model-items on a GPU, a CPU's cache-sized
    evaluation batch on a CPU (one simplecnn over MNIST's 10 000 test images: 2.5 s in chunks of 8192, 0.6 s in
    chunks of 256)."""
    return max(1, (EVAL_ITEMS if device.type == "cuda" else eval_batch(device)) // n_models)


@torch.no_grad()
def rank_each(models: list[nn.Module], x: torch.Tensor) -> np.ndarray:
    """Every model's classes of every item from most to least preferred (ties to the smaller class), (M, N, K)
    int8 (int16 past 127 classes), in one wide eval pass per chunk (Sequential CNNs); [..., 0] is the prediction."""
    skeleton = copy.deepcopy(models[0]).to("meta").eval()
    batched = wide(skeleton)
    if batched is None:
        raise ValueError(f"{type(models[0]).__name__} is not a Sequential CNN of common layers")
    stack = _Stack(models)
    chunk = eval_chunk(len(models), x.device)
    scores = [batched(stack.params, stack.buffers, x[i : i + chunk]).float() for i in range(0, len(x), chunk)]
    order = torch.argsort(torch.cat(scores, dim=1), dim=-1, descending=True, stable=True)
    return order.to(torch.int8 if order.shape[-1] <= 127 else torch.int16).cpu().numpy()
