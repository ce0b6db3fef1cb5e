"""Random shifts and mirrors of image batches, drawn from a seeded stream, applied by indexing (no per-item loop)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

AUGMENTS = ("none", "shift", "shift+flip")  # random translations by up to SHIFT pixels, and left-right mirroring
SHIFT = 2


def moves(rng: np.random.Generator, batch: int, augment: str) -> np.ndarray:
    """(batch, 3) offsets in 0..2*SHIFT (rows, columns) and a mirror flag (always 0 unless `augment` is
    "shift+flip") for a batch's items, drawn from `rng`."""
    offsets = rng.integers(0, 2 * SHIFT + 1, size=(batch, 2))
    mirror = rng.integers(0, 2, size=(batch, 1)) if augment == "shift+flip" else np.zeros((batch, 1), int)
    return np.concatenate([offsets, mirror], 1)


def moved(items: torch.Tensor, moves: list[np.ndarray]) -> torch.Tensor:
    """Items (M, B, C, H, W) each shifted (edges reflected) and mirrored as `moves` (M arrays (B, 3)) say."""
    m, b, c, h, w = items.shape
    flat = nn.functional.pad(items.reshape(m * b, c, h, w), (SHIFT,) * 4, mode="reflect")
    move = torch.from_numpy(np.concatenate(moves)).to(items.device)  # (M*B, 3)
    rows = move[:, :1] + torch.arange(h, device=items.device)
    cols = torch.arange(w, device=items.device).expand(m * b, w)
    cols = move[:, 1:2] + torch.where(move[:, 2:3].bool(), w - 1 - cols, cols)
    n = torch.arange(m * b, device=items.device)[:, None, None, None]
    out = flat[n, torch.arange(c, device=items.device)[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return out.reshape(m, b, c, h, w)


def shifted(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A batch of images (B, C, H, W) each shifted by up to SHIFT pixels (edges reflected); other inputs as given."""
    if x.dim() != 4 or min(x.shape[2:]) <= SHIFT:
        return x
    return moved(x.unsqueeze(0), [moves(rng, len(x), "shift")])[0].contiguous(memory_format=torch.channels_last)
