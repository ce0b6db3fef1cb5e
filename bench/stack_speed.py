"""Stacked against one-by-one training of a sweep's runs: same images, seed and settings, only the labels differ.

Run: PYTHONPATH=src python bench/stack_speed.py [--data-dir /work/shared/data] [--size 10000] [--epochs 2] [--singles 2]

Every (kind, percent) run of the default grid (20 percents x random, biased = 40 runs) trains for exactly `--epochs`
epochs (no early stopping, so both paths do the same work): all of them as one stack, and the first `--singles` of them
one by one, in this process, on CUDA when present. Prints model-images per second of each path, the ratio, and the
compared runs' test accuracies on both paths.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from poisonlab import datasets
from poisonlab.studies import DEFAULT_PERCENTS
from poisonlab.studies.run import RunSpec, prepare
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig, pick_device


def timed(fn) -> tuple[object, float]:
    """fn()'s result and its wall time, the device synchronised."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--size", type=int, default=10000, help="first N training items (0 = all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--singles", type=int, default=2, help="runs also trained one by one")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--forward", default="auto,vmap", help="stacked forward passes to time: wide, vmap")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    data = datasets.load(args.dataset, args.data_dir, dataset_size=args.size, download=False)
    config = TrainConfig(max_epochs=args.epochs, patience=args.epochs + 1, precision=args.precision)
    specs = [RunSpec(args.dataset, kind=k, percent=float(p), dataset_size=args.size, train=config)
             for k in ("random", "biased") for p in DEFAULT_PERCENTS]
    preps = [prepare(s, data) for s in specs]
    x_fit, x_val = data.x_train[preps[0].fit_idx], preps[0].x_val
    device = pick_device()

    def build() -> torch.nn.Module:
        return fitting.build("smallcnn", data.x_train.shape[1:], data.num_classes, 0)

    def accuracy(model: torch.nn.Module) -> float:
        return float((fitting.predict(model, data.x_test) == data.y_test).mean())

    fitting.fit(build(), x_fit[:2048], preps[0].labels[:2048], config=TrainConfig(max_epochs=1, precision=args.precision),
                device=device)  # warm-up: kernels, allocator
    singles = []
    for p in preps[: args.singles]:
        model = build()
        _, seconds = timed(lambda: fitting.fit(model, x_fit, p.labels[p.fit_idx], x_val, p.y_val, config=config, device=device))
        singles.append((model, seconds))
    single_s = float(np.mean([s for _, s in singles]))
    items = len(x_fit) * args.epochs
    figures = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "dataset": args.dataset, "n_fit": len(x_fit), "epochs": args.epochs, "runs": len(specs),
               "single_s_per_run": round(single_s, 2), "single_model_images_per_s": round(items / single_s), "stacked": []}
    for forward in args.forward.split(","):
        stack = [build() for _ in specs]
        records, stacked_s = timed(lambda: fitting.fit_stacked(stack, x_fit, [p.labels[p.fit_idx] for p in preps], x_val,
                                                               [p.y_val for p in preps], config=config, device=device,
                                                               forward=forward))
        figures["stacked"].append({
            "forward": records[0]["stack_forward"], "precision": records[0]["precision"], "stacked_s": round(stacked_s, 2),
            "stacked_model_images_per_s": round(items * len(specs) / stacked_s),
            "ratio": round(single_s * len(specs) / stacked_s, 2),
            "compared": [{"run": f"{s.kind} {s.percent:g}%", "single_accuracy": accuracy(m), "stacked_accuracy": accuracy(st)}
                         for s, (m, _), st in zip(specs, singles, stack)]})
        print(json.dumps(figures["stacked"][-1]), flush=True)
    print(json.dumps(figures, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
