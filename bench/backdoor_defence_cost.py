"""Each backdoor defence's cost against plain training, in one process, on the same data and model.

    .venv/bin/python bench/backdoor_defence_cost.py [N_ITEMS] [EPOCHS]

smallcnn on the first N_ITEMS (default 10 000) MNIST training items with a 10 % corner patch to class 0, EPOCHS
(default 12) epochs at batch 64 without validation (so every run trains every epoch). Plain training is timed, then
what each defence adds: ABL trains in its place; finetune and fineprune run on the trained model; STRIP screens the
10 000 test images and their triggered copies; clean:METHOD runs its detector (and the model then trains on fewer
items, not counted). Prints seconds and the total against plain training."""

import copy
import sys
import time
from pathlib import Path

import numpy as np

from poisonlab import datasets
from poisonlab.attacks.backdoor import Trigger, backdoor, triggered
from poisonlab.defences import detectors, strip
from poisonlab.studies import defence
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    n, epochs = (int(a) for a in (sys.argv[1:] + ["10000", "12"][len(sys.argv) - 1:])[:2])
    data = datasets.load("mnist", DATA, n, False)
    x, labels, idx = backdoor(data.x_train, data.y_train, trigger=Trigger(), target=0, percent=10, seed=0)
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    config = TrainConfig(max_epochs=epochs, batch_size=64)

    def trained(remedy: str = "none"):
        model = fitting.build("smallcnn", x.shape[1:], 10, 0)
        started = time.perf_counter()
        fitting.fit(model, x, labels, config=config, seed=0, remedy=remedy)
        return model, time.perf_counter() - started

    model, plain = trained()
    costs = {"abl": trained("abl")[1] - plain}
    for name in ("finetune", "fineprune"):
        started = time.perf_counter()
        defence.repair(name, copy.deepcopy(model), x, labels, mask, 0)
        costs[name] = time.perf_counter() - started
    x_trig = triggered(data.x_test, data.y_test, trigger=Trigger(), target=0, seed=1)[0]
    trusted = x[defence.trusted_items(mask, defence.TRUSTED_SHARE, 0)]
    started = time.perf_counter()
    strip.entropy(model, data.x_test, trusted, 10)
    strip.entropy(model, x_trig, trusted, 10)
    costs["strip"] = time.perf_counter() - started
    for method in ("correlation", "ac-exclusionary", "ac"):
        costs[f"clean:{method}"] = detectors.run([method], x, labels, 10, 0)[0].seconds
    print(f"plain training: {plain:.1f} s ({epochs} epochs, {n} items)")
    print("| defence | seconds added | total x plain |\n|---|---|---|")
    for name, seconds in costs.items():
        print(f"| {name} | {seconds:.1f} | {(plain + seconds) / plain:.2f} |", flush=True)


if __name__ == "__main__":
    main()
