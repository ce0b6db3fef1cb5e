"""Time each training remedy's epoch against plain cross-entropy's, in one process, on the same data and model.

    .venv/bin/python bench/remedies.py [N_ITEMS] [EPOCHS] [ROUNDS]

smallcnn on the first N_ITEMS (default 10 000) MNIST training items with 20 % random flips, EPOCHS (default 6, past
semi's 5 warm-up epochs) epochs without validation (so every remedy runs every epoch); the remedies run in turn,
ROUNDS (default 2) times, and each one's best round counts. Prints seconds per epoch and the ratio to plain."""

import sys
import time
from pathlib import Path

import numpy as np

from poisonlab import datasets
from poisonlab.attacks import flips
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REMEDIES = ("none", "gce", "sce", "elr", "coteach", "semi")


def main() -> None:
    n, epochs, rounds = (int(a) for a in (sys.argv[1:] + ["10000", "6", "2"][len(sys.argv) - 1:])[:3])
    data = datasets.load("mnist", DATA, n, False)
    labels = flips.apply("random", data.y_train, 10, 20, 0)[0]
    config = TrainConfig(max_epochs=epochs)
    best = dict.fromkeys(REMEDIES, np.inf)
    for _ in range(rounds):
        for remedy in REMEDIES:
            model = fitting.build("smallcnn", data.x_train.shape[1:], 10, 0)
            started = time.perf_counter()
            fitting.fit(model, data.x_train, labels, config=config, seed=0, remedy=remedy)
            best[remedy] = min(best[remedy], (time.perf_counter() - started) / epochs)
    for remedy in REMEDIES:
        print(f"{remedy:8s} {best[remedy]:.3f} s/epoch  {best[remedy] / best['none']:.2f}x plain", flush=True)


if __name__ == "__main__":
    main()
