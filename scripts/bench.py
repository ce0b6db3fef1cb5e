"""Training-throughput benchmark: poisonlab's loop against a plain PyTorch baseline, in one process.

Run: .venv/bin/python scripts/bench.py [--epochs 3] [--repeats 3]
The baseline is what a tutorial writes: a DataLoader over a TensorDataset of NCHW float tensors and
conv -> batch-norm -> ReLU -> pool blocks of the same widths. poisonlab keeps the images as one
channels-last tensor, draws batches by indexing a permutation, and pools before the norm.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from poisonlab import datasets
from poisonlab.training import models
from poisonlab.training.loop import to_tensor


def plain_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


def plain_model(channels: int, k: int) -> nn.Module:
    return nn.Sequential(plain_block(channels, 24), plain_block(24, 48), plain_block(48, 96),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, k))


def epoch_plain(model, x: np.ndarray, y: np.ndarray, batch: int) -> None:
    """One epoch the tutorial way."""
    xt = torch.from_numpy(x.copy()).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()
    loader = DataLoader(TensorDataset(xt, torch.from_numpy(y)), batch_size=batch, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for xb, yb in loader:
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()


def epoch_poisonlab(model, x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
    """One epoch as poisonlab.train.fit_torch runs it."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    order = torch.randperm(len(x))
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="embedded")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    data = datasets.load(args.dataset, args.data_dir)
    load_s = time.perf_counter() - t0
    x, y, (h, w, c), k = data.x_train, data.y_train, data.x_train.shape[1:], data.num_classes
    ours_x, ours_y = to_tensor(x), torch.from_numpy(y)
    ours = models.build("smallcnn", (h, w, c), k).to(memory_format=torch.channels_last)
    plain = plain_model(c, k)
    results = {
        "baseline (DataLoader, NCHW, conv-BN-ReLU-pool)": timed(lambda: epoch_plain(plain, x, y, args.batch_size), args.repeats),
        "poisonlab (tensor indexing, channels-last, pool-first)": timed(
            lambda: epoch_poisonlab(ours, ours_x, ours_y, args.batch_size), args.repeats),
    }
    base = next(iter(results.values()))
    print(f"dataset {data.name}: {len(y)} training images {h}x{w}x{c}, loaded in {load_s:.2f}s, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, seconds in results.items():
        print(f"{name:58s} {seconds:6.2f} s/epoch  {len(y) / seconds:7.0f} img/s  x{base / seconds:.2f}")
    print(json.dumps({name: round(s, 3) for name, s in results.items()}))


if __name__ == "__main__":
    main()
