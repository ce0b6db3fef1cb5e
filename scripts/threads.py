"""Determinism across torch thread counts: same config and seed, 1 thread vs 2 threads (and 1 thread twice).

Run: .venv/bin/python scripts/threads.py [--dataset digits] [--size 0] [--seeds 0,1,2,3,4] [--epochs 15] [--data-dir DIR]
Prints, per seed, the test accuracy and weights SHA-256 at each thread count, then the mean absolute accuracy
difference between thread counts against the spread (std) of accuracy over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from poisonlab import datasets
from poisonlab.studies.run import RunSpec, run
from poisonlab.training.loop import TrainConfig
from poisonlab.training.saving import save_model


def one(spec: RunSpec, data, threads: int, folder) -> tuple[float, str]:
    """Test accuracy and weights digest of `spec` trained with `threads` torch threads."""
    torch.set_num_threads(threads)
    record, model = run(spec, data)
    return record["metrics"]["accuracy"], save_model(folder, model, {"name": spec.model, "shape": [1], "num_classes": 1})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--work", default="/tmp/poisonlab-threads")
    args = parser.parse_args()
    data = datasets.load(args.dataset, args.data_dir, dataset_size=args.size, download=False)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        spec = RunSpec(dataset=args.dataset, dataset_size=args.size, seed=seed, train=TrainConfig(max_epochs=args.epochs))
        results = {f"{n}x{t}": one(spec, data, t, Path(args.work)) for n, t in (("a", 1), ("b", 1), ("c", 2))}
        rows.append({"seed": seed, **{k: {"accuracy": a, "weights": w} for k, (a, w) in results.items()}})
        print(json.dumps(rows[-1]), flush=True)
    one_thread = np.array([r["ax1"]["accuracy"] for r in rows])
    two_threads = np.array([r["cx2"]["accuracy"] for r in rows])
    print(json.dumps({
        "same_thread_count_identical_weights": all(r["ax1"]["weights"] == r["bx1"]["weights"] for r in rows),
        "across_thread_counts_identical_weights": sum(r["ax1"]["weights"] == r["cx2"]["weights"] for r in rows),
        "mean_abs_accuracy_difference_1_vs_2_threads": float(np.abs(one_thread - two_threads).mean()),
        "max_abs_accuracy_difference_1_vs_2_threads": float(np.abs(one_thread - two_threads).max()),
        "accuracy_std_over_seeds_1_thread": float(one_thread.std(ddof=1)),
        "accuracy_std_over_seeds_2_threads": float(two_threads.std(ddof=1)),
    }))


if __name__ == "__main__":
    main()
