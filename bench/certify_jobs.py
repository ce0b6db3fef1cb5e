"""Time certify's base-model training on a CPU: one process of 2 threads (--jobs 1) against groups of models in 2
worker processes of one thread each (--jobs 2), in one process, one after the other on the same models.

    .venv/bin/python bench/certify_jobs.py [N_MODELS]

The models are the first N of MNIST k=1200 simplecnn (40 epochs, batch 16, shift augmentation); it also prints the
share of test predictions on which the two agree (torch's results depend on the thread count)."""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from poisonlab import datasets
from poisonlab.studies.certify import CertifySpec, layout, poisoned, saved_rankings, train_models
from poisonlab.training.loop import TrainConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 48
    data = datasets.load("mnist", DATA, 0, False)
    spec = CertifySpec(partitions=1200, model="simplecnn", augment="shift",
                       train=TrainConfig(max_epochs=40, batch_size=16, lr=1e-3))
    _, labels, _ = poisoned(data, spec)
    members = layout(data, spec)[2]
    todo = [(i, members[i]) for i in range(n)]
    seconds, rankings = {}, {}
    for jobs in (1, 2):
        folder = Path(tempfile.mkdtemp())
        started = time.perf_counter()
        train_models(data, labels, spec, None, todo, folder, jobs=jobs, console=Console(stderr=True))
        seconds[jobs], rankings[jobs] = time.perf_counter() - started, saved_rankings(folder, range(n), data)
        print(f"jobs {jobs}: {seconds[jobs]:.1f} s for {n} models", flush=True)
    agree = np.mean([np.mean(a[:, 0] == b[:, 0]) for a, b in zip(rankings[1], rankings[2])])
    print(f"jobs 2 against jobs 1: {seconds[1] / seconds[2]:.2f}x; top-1 agreement of the two: {agree:.4f}")


if __name__ == "__main__":
    main()
