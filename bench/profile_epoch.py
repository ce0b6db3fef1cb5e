"""Profile training epochs of poisonlab's trainer: the top operators by self CPU time (torch.profiler).

Run: PYTHONPATH=src .venv/bin/python bench/profile_epoch.py [--model smallcnn --dataset mnist] [--size 10000] [--epochs 2]
Trains `--epochs` epochs through poisonlab.training.fitting.fit (validation on the 10 % hold-out included) and
prints the operator table and the wall time per epoch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from poisonlab import datasets
from poisonlab.studies.run import split_indices
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default="/work/shared/data")
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    data = datasets.load(args.dataset, args.data_dir, args.size)
    fit_idx, val_idx = split_indices(len(data.y_train), 0.1, 0)
    kwargs = {"precision": args.precision} if "precision" in TrainConfig.__dataclass_fields__ else {}  # older trees: fp32 only
    config = TrainConfig(max_epochs=args.epochs, **kwargs)
    model = fitting.build(args.model, data.x_train.shape[1:], data.num_classes, 0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        fitting.fit(model, data.x_train[fit_idx], data.y_train[fit_idx], data.x_train[val_idx],
                    np.asarray(data.y_train[val_idx]), config=config, seed=0, device=torch.device("cpu"))
        wall = time.perf_counter() - t0
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=40))
    print(f"{args.model} on {args.dataset} {args.size}, {args.precision}: {wall / args.epochs:.2f} s/epoch "
          f"(profiled, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
