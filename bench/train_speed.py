"""Training speed: a plain tutorial loop against poisonlab's trainer in fp32 and bf16, in one process, interleaved.

Run: PYTHONPATH=src .venv/bin/python bench/train_speed.py [--data-dir /work/shared/data] [--epochs 2] [--repeats 3] [--quick]

Per (model, dataset): SimpleCNN on the first 10 000 CIFAR-10 images, smallcnn on the first 10 000 MNIST images.
Each repetition trains every loop from the same seed for `--epochs` epochs, one loop after the other; the figures
are medians over repetitions. The plain loop is what a tutorial writes: a torch Dataset converting each item to a
normalised tensor, a DataLoader (batch 128, shuffle, 2 workers), Adam 1e-3, fp32. poisonlab's trainer is
poisonlab.training.fitting.fit (batch 256, no validation set so it trains exactly the same epochs). Share of
peak = training FLOPs per image (forward + backward, counted by torch.utils.flop_counter) x images/s / the FLOP/s
of a dense 2048 x 2048 matmul measured in this process, in the loop's precision, with the same threads.

With --to-accuracy the loops race to EQUAL accuracy instead: the plain loop trains --epochs epochs and its test
accuracy after the last one is the target; each poisonlab loop trains (up to 3 x --epochs) until its test accuracy
first reaches the target. Repetition r runs every loop from seed r. Reported: epochs per seed and the median training
seconds to the target (test evaluations not timed), ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

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


def plain_loop(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
               on_epoch: Callable[[dict], None] | None = None) -> None:
    """Train `epochs` epochs the tutorial way, calling `on_epoch` after each."""
    loader = DataLoader(ItemDataset(x, y), batch_size=128, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for epoch in range(1, epochs + 1):
        model.train()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch:
            on_epoch({"epoch": epoch})


def loop_label(loop: str) -> str:
    """A loop's name in the tables."""
    return "plain tutorial loop, fp32" if loop == "plain" else "poisonlab " + loop


def evaluation_set(data, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """The test images and labels: all of them, or every 10th for a smoke run."""
    return (data.x_test[::10], data.y_test[::10]) if quick else (data.x_test, data.y_test)


class TargetReached(Exception):
    """Ends a poisonlab loop from its epoch callback once the target accuracy is reached."""


class Race:
    """Epoch callback: test accuracy after every epoch and the training seconds so far (evaluations not timed);
    raises TargetReached at the first epoch whose accuracy reaches `target`."""

    def __init__(self, model: nn.Module, x_test: np.ndarray, y_test: np.ndarray, target: float = float("inf")) -> None:
        self.model, self.x_test, self.y_test, self.target = model, x_test, y_test, target
        self.accuracy: list[float] = []
        self.seconds: list[float] = []
        self.paused = 0.0
        self.start = time.perf_counter()

    def __call__(self, row: dict) -> None:
        stopped = time.perf_counter()
        self.seconds.append(stopped - self.start - self.paused)
        self.accuracy.append(float((fitting.predict(self.model, self.x_test) == self.y_test).mean()))
        self.paused += time.perf_counter() - stopped
        if self.accuracy[-1] >= self.target:
            raise TargetReached

    def to(self, target: float) -> tuple[int, float] | None:
        """(epochs, training seconds) until the accuracy first reached `target`; None if it never did."""
        reached = [i for i, acc in enumerate(self.accuracy) if acc >= target]
        return (reached[0] + 1, self.seconds[reached[0]]) if reached else None


def race(name: str, data, x_test: np.ndarray, y_test: np.ndarray, epochs: int, repeats: int, batch_size: int) -> None:
    """Print the equal-accuracy table of one (model, dataset): epochs and seconds to the plain loop's final accuracy.

    Repetition r uses seed r for every loop (initial weights and batch order), so the medians span seeds as well."""
    shape, reached = data.x_train.shape[1:], {"plain": [], "fp32": [], "bf16": []}
    targets = []
    for seed in range(repeats):
        model = fitting.build(name, shape, data.num_classes, seed)
        plain = Race(model, x_test, y_test)
        plain_loop(model, data.x_train, data.y_train, epochs, seed, on_epoch=plain)
        targets.append(target := plain.accuracy[-1])
        reached["plain"].append(plain.to(target))
        for loop in ("fp32", "bf16"):
            model = fitting.build(name, shape, data.num_classes, seed)
            ours = Race(model, x_test, y_test, target)
            try:
                fitting.fit(model, data.x_train, data.y_train, on_epoch=ours, seed=seed, device=torch.device("cpu"),
                            config=TrainConfig(max_epochs=3 * epochs, batch_size=batch_size, precision=loop))
            except TargetReached:
                pass
            reached[loop].append(ours.to(target))
    base = statistics.median(seconds for _, seconds in reached["plain"])
    for loop, runs in reached.items():
        label = loop_label(loop)
        done = [r for r in runs if r is not None]
        if len(done) < len(runs):
            print(f"| {name} | {data.name} {len(data.y_train)} | {label} | not reached in {3 * epochs} epochs "
                  f"({len(runs) - len(done)} of {len(runs)}) | | |")
            continue
        seconds = statistics.median(s for _, s in done)
        print(f"| {name} | {data.name} {len(data.y_train)} | {label} | {', '.join(str(e) for e, _ in done)} "
              f"| {seconds:.1f} s | {base / seconds:.2f}x |", flush=True)
    print(f"(target: the plain loop's test accuracy after {epochs} epochs, {', '.join(f'{t:.4f}' for t in targets)}; "
          f"seeds 0-{repeats - 1}; epochs per seed, median time)")


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
    parser.add_argument("--to-accuracy", action="store_true", help="race to the plain loop's accuracy after --epochs epochs")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="poisonlab's batch in the race (256: the protocol's; 128: the plain loop's)")
    args = parser.parse_args()
    if args.quick:
        args.size, args.epochs, args.repeats = 512, 1, 1
    if args.to_accuracy:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; poisonlab batch {args.batch_size}")
        print("| model | dataset | loop | epochs to the target | training time to the target | ratio |")
        print("|---|---|---|---|---|---|")
        for name, dataset in CASES:
            data = poisonlab.load_dataset(dataset, data_dir=args.data_dir, size=args.size)
            race(name, data, *evaluation_set(data, args.quick), args.epochs, args.repeats, args.batch_size)
        return
    loops = ("plain", "fp32", "bf16")
    peaks = {p: statistics.median(matmul_peak(p) for _ in range(3)) for p in ("fp32", "bf16")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} "
          f"GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print("| model | dataset | loop | images/s | ratio | test accuracy | share of peak |")
    print("|---|---|---|---|---|---|---|")
    for name, dataset in CASES:
        data = poisonlab.load_dataset(dataset, data_dir=args.data_dir, size=args.size)
        x_test, y_test = evaluation_set(data, args.quick)
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
            print(f"| {name} | {dataset} {len(data.y_train)} | {loop_label(loop)} "
                  f"| {rate:,.0f} | {rate / base:.2f}x | {statistics.median(accuracy[loop]):.4f} | {100 * share:.1f} % |", flush=True)
    print(f"({args.epochs} epochs per loop, median of {args.repeats} repetitions; training FLOPs per image from torch's flop counter)")


if __name__ == "__main__":
    main()
