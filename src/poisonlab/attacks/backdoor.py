"""Backdoor triggers (BadNets, Gu et al. 2017; blended, Chen et al. 2017) as pure functions over image arrays.

A trigger is stamped on a share of the training images and those items are relabelled as the target class
(or, clean-label, only items already of the target class are stamped); at test time the trigger steers other
classes' images to the target. Nothing here trains."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError

TRIGGERS = ("patch", "blend")
POSITIONS = ("corner", "random")
BLEND_ALPHA = 0.2
MARGIN = 1  # pixels between a corner patch and the image border


@dataclass(frozen=True)
class Trigger:
    """A trigger: a `size` x `size` black-and-white checkerboard patch at the bottom-right corner or a seeded random
    place per image, or a seeded noise image blended over the whole image with weight `alpha`."""

    kind: str = "patch"
    size: int = 3
    position: str = "corner"
    alpha: float = BLEND_ALPHA
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.kind, TRIGGERS, "trigger")
        check_choice(self.position, POSITIONS, "trigger position")
        if self.size < 1:
            raise PoisonlabError(f"trigger size {self.size} is below 1; give a patch side of 1 or more pixels")
        if not 0.0 < self.alpha <= 1.0:
            raise PoisonlabError(f"blend weight {self.alpha:g} is outside (0, 1]; give a value such as 0.2")

    def to_dict(self) -> dict:
        return asdict(self)


def pattern(trigger: Trigger, shape: tuple[int, ...]) -> np.ndarray:
    """The trigger's pixels for images of `shape` (H, W, C), uint8: the size x size patch, or the full noise image."""
    height, width, channels = shape
    if trigger.kind == "blend":
        return np.random.default_rng([trigger.seed, 7]).integers(0, 256, (height, width, channels), dtype=np.uint8)
    if trigger.size + 2 * MARGIN > min(height, width):
        raise PoisonlabError(f"a {trigger.size}x{trigger.size} trigger does not fit {height}x{width} images with a "
                             f"{MARGIN}-pixel margin; give a size up to {min(height, width) - 2 * MARGIN}")
    rows, cols = np.indices((trigger.size, trigger.size))
    board = np.where((rows + cols) % 2 == 0, 255, 0).astype(np.uint8)
    return np.repeat(board[:, :, None], channels, axis=2)


def stamp(x: np.ndarray, trigger: Trigger, *, seed: int = 0) -> np.ndarray:
    """A copy of uint8 images `x` (N, H, W, C) with the trigger applied; random positions come from `seed`.

    Returns
    -------
    ndarray of uint8, shape (N, H, W, C)
    """
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4:
        raise PoisonlabError(f"backdoor triggers are stamped on uint8 images (N, H, W, C), got {x.dtype} {x.shape}; "
                             "use an image dataset")
    marks = pattern(trigger, x.shape[1:])
    if trigger.kind == "blend":
        mixed = (1 - trigger.alpha) * x.astype(np.float32) + trigger.alpha * marks.astype(np.float32)
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    out = x.copy()
    height, width, size = x.shape[1], x.shape[2], trigger.size
    if trigger.position == "corner":
        out[:, height - MARGIN - size: height - MARGIN, width - MARGIN - size: width - MARGIN] = marks
        return out
    rng = np.random.default_rng([seed, 8])
    tops = rng.integers(MARGIN, height - MARGIN - size + 1, len(x))
    lefts = rng.integers(MARGIN, width - MARGIN - size + 1, len(x))
    for i, (top, left) in enumerate(zip(tops, lefts)):
        out[i, top: top + size, left: left + size] = marks
    return out


def poison_indices(labels: np.ndarray, *, target: int, percent: float, clean_label: bool = False,
                   seed: int = 0) -> np.ndarray:
    """The training items to stamp: round(p*N) of all N items, drawn (seeded, nested across percents) from the items
    of other classes, or of the target class itself with `clean_label`.

    Returns
    -------
    ndarray of int64, shape (n,), sorted
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 <= percent <= 100.0:
        raise PoisonlabError(f"backdoor percent {percent:g} is outside 0..100; give values such as 0.5,1,5")
    candidates = np.flatnonzero((labels == target) if clean_label else (labels != target))
    count = int(np.floor(len(labels) * percent / 100.0 + 0.5))
    if count > len(candidates):
        which = "of the target class" if clean_label else "outside the target class"
        raise PoisonlabError(f"{percent:g}% of {len(labels)} items is {count}, but only {len(candidates)} items are {which}; "
                             "give a smaller percent")
    order = np.random.default_rng([seed, 9]).permutation(len(candidates))
    return np.sort(candidates[order[:count]])


def backdoor(x: np.ndarray, labels: np.ndarray, *, trigger: Trigger, target: int, percent: float,
             clean_label: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamp the trigger on a share of the training items and relabel them as `target` (BadNets), or with
    `clean_label` stamp only items of the target class and keep every label.

    Parameters
    ----------
    x : ndarray of uint8, shape (N, H, W, C)
    labels : ndarray of int, shape (N,)
        Clean labels.
    trigger : Trigger
    target : int
        The class the trigger should steer to.
    percent : float in [0, 100]
        Share of ALL N training items that are stamped.
    clean_label : bool
    seed : int
        Seed of the choice of items (and of random trigger positions).

    Returns
    -------
    x_poisoned : ndarray of uint8, shape (N, H, W, C)
    labels_poisoned : ndarray of int64, shape (N,)
    indices : ndarray of int64, shape (n,)
        The stamped items (the backdoor's poison mask).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(x) != len(labels):
        raise PoisonlabError(f"{len(x)} images but {len(labels)} labels; give one label per image")
    idx = poison_indices(labels, target=target, percent=percent, clean_label=clean_label, seed=seed)
    x_new, new = np.array(x, copy=True), labels.copy()
    x_new[idx] = stamp(x_new[idx], trigger, seed=seed)
    new[idx] = target
    return x_new, new, idx


def triggered(x: np.ndarray, labels: np.ndarray, *, trigger: Trigger, target: int,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, H, W, C) whose label is not `target`, with the trigger stamped (random positions from `seed`),
    and their labels: the test items of an attack success rate."""
    others = np.flatnonzero(np.asarray(labels) != target)
    return stamp(np.asarray(x)[others], trigger, seed=seed), np.asarray(labels)[others]


def attack_success_rate(predicted: np.ndarray, true_labels: np.ndarray, target: int) -> float | None:
    """Share of triggered test images whose TRUE class is not the target that are predicted as the target (ASR);
    None when no such image exists."""
    others = np.asarray(true_labels) != target
    return float((np.asarray(predicted)[others] == target).mean()) if others.any() else None
