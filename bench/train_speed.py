"""Training speed: a plain tutorial loop against poisonlab's trainer in fp32 and bf16, in one process, interleaved.

Run: PYTHONPATH=src .venv/bin/python bench/train_speed.py [--data-dir /work/shared/data] [--epochs 2] [--repeats 3] [--quick]

Per (model, dataset): SimpleCNN on the first 10 000 CIFAR-10 images, smallcnn on the first 10 000 MNIST images.
Each repetition trains every loop from the same seed for `--epochs` epochs, one loop after the other; the figures
are medians over repetitions. The plain loop is what a tutorial writes: a torch Dataset converting each item to a
normalised tensor, a DataLoader (batch 128, shuffle, 2 workers), Adam 1e-3, fp32. poisonlab's trainer is
poisonlab.training.fitting.fit (batch 256, no validation set so it trains exactly the same epochs). Share of
peak = training FLOPs per image (forward + backward, counted by torch.utils.flop_counter) x images/s / the FLOP/s
of a dense 2048 x 2048 matmul measured in this process, in the loop's precision, with the same threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

import poisonlab
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig, autocast

CASES = (("simplecnn", "cifar10"), ("smallcnn", "mnist"))


class ItemDataset(Dataset):
    """The tutorial way: each item converted to a CHW float tensor in [-1, 1] when it is read."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        image = torch.from_numpy(self.x[i]).permute(2, 0, 1).float().div(255)
        return (image - 0.5) / 0.5, int(self.y[i])


def plain_loop(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    """Train `epochs` epochs the tutorial way."""
    loader = DataLoader(ItemDataset(x, y), batch_size=128, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def train_flops(model: nn.Module, shape: tuple[int, ...], batch: int = 64) -> float:
    """Forward + backward FLOPs of one training image."""
    x = torch.randn(batch, shape[2], shape[0], shape[1])
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def matmul_peak(precision: str, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n matmul in `precision` (bf16: under autocast, as the trainer runs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    with autocast(precision, torch.device("cpu")):
        torch.mm(a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data")
    parser.add_argument("--size", type=int, default=10000, help="first N training images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 512 images, 1 epoch, 1 repetition, every 10th test image")
    args = parser.parse_args()
    if args.quick:
        args.size, args.epochs, args.repeats = 512, 1, 1
    loops = ("plain", "fp32", "bf16")
    peaks = {p: statistics.median(matmul_peak(p) for _ in range(3)) for p in ("fp32", "bf16")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} "
          f"GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print("| model | dataset | loop | images/s | ratio | test accuracy | share of peak |")
    print("|---|---|---|---|---|---|---|")
    for name, dataset in CASES:
        data = poisonlab.load_dataset(dataset, data_dir=args.data_dir, size=args.size)
        x_test, y_test = (data.x_test[::10], data.y_test[::10]) if args.quick else (data.x_test, data.y_test)
        shape = data.x_train.shape[1:]
        flops = train_flops(fitting.build(name, shape, data.num_classes, 0), shape)
        speed, accuracy = {loop: [] for loop in loops}, {loop: [] for loop in loops}
        for _ in range(args.repeats):
            for loop in loops:
                model = fitting.build(name, shape, data.num_classes, 0)
                t0 = time.perf_counter()
                if loop == "plain":
                    plain_loop(model, data.x_train, data.y_train, args.epochs, 0)
                else:
                    fitting.fit(model, data.x_train, data.y_train, config=TrainConfig(max_epochs=args.epochs, precision=loop),
                                seed=0, device=torch.device("cpu"))
                speed[loop].append(args.epochs * len(data.y_train) / (time.perf_counter() - t0))
                accuracy[loop].append(float((fitting.predict(model, x_test) == y_test).mean()))
        base = statistics.median(speed["plain"])
        for loop in loops:
            rate = statistics.median(speed[loop])
            share = flops * rate / peaks["fp32" if loop == "plain" else loop]
            print(f"| {name} | {dataset} {len(data.y_train)} | {'plain tutorial loop, fp32' if loop == 'plain' else 'poisonlab ' + loop} "
                  f"| {rate:,.0f} | {rate / base:.2f}x | {statistics.median(accuracy[loop]):.4f} | {100 * share:.1f} % |", flush=True)
    print(f"({args.epochs} epochs per loop, median of {args.repeats} repetitions; training FLOPs per image from torch's flop counter)")


if __name__ == "__main__":
    main()
