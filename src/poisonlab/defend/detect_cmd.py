"""`poisonlab detect`: poison labels (or take CIFAR-10N human labels), run the detectors, score them, clean and retrain."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from poisonlab import datasets, humanlabels, store
from poisonlab.defend import detect as detectors
from poisonlab.defend.detectout import print_row, write_outputs
from poisonlab.defend.features import DETECTOR_MODELS, DetectorConfig
from poisonlab.defend.labelsets import POISONS, human_sets, poisoned_sets
from poisonlab.defend.retrain import check_one, retrained_accuracy
from poisonlab.errors import check_choice
from poisonlab.experiment import slug
from poisonlab.models import MODELS

THEN = ("none", "clean", "relabel")


def check_request(kinds: list[str], then: str, model: str) -> None:
    """Reject unknown poisoning kinds, --then modes and retraining models, one line each."""
    for kind in kinds:
        check_choice(kind, POISONS, "poisoning kind")
    check_choice(then, THEN, "--then")
    check_choice(model, MODELS, "model")


def detect(
    dataset: Annotated[str, typer.Option(help="Dataset: mnist, fashion_mnist, cifar10, digits, embedded, imagefolder:PATH.")] = "mnist",
    poison_kind: Annotated[str | None, typer.Option("--poison", help="Poisoning kinds, comma-separated: random, biased, targeted (default: random).")] = None,
    percent: Annotated[str, typer.Option(help="Poison percents (random, biased), comma-separated: one row each.")] = "20",
    source: Annotated[str | None, typer.Option(help="Targeted: class whose labels are flipped (name or number).")] = None,
    target: Annotated[str | None, typer.Option(help="Targeted: class they are flipped to (name or number).")] = None,
    n: Annotated[str, typer.Option("--n", help="Targeted: numbers of flipped labels (the first of the class), comma-separated.")] = "100",
    labels: Annotated[str | None, typer.Option(help="Real human noise instead of poisoning: cifar10n:KEY[,KEY] with KEY aggre, worse, random1, random2, random3 (needs --dataset cifar10).")] = None,
    cifar_n: Annotated[Path | None, typer.Option("--cifar-n", help="CIFAR-10N labels (default: <data-dir>/cifar_n/cifar10n_labels.npz).")] = None,
    method: Annotated[str, typer.Option(help=f"Detection methods, comma-separated: {', '.join(detectors.METHODS)}.")] = ",".join(detectors.METHODS),
    dataset_size: Annotated[int, typer.Option("--dataset-size", "--dataset_size", min=0, help="Use the first N training items (0 = all); 2000 by default to keep runs short.")] = 2000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the poisoning, folds, subsets and models.")] = 0,
    detector_model: Annotated[str, typer.Option("--detector-model", help=f"Model of the out-of-fold pass and the ensemble: {', '.join(DETECTOR_MODELS)} (logreg on PCA-50 of the pixels).")] = "logreg",
    folds: Annotated[int, typer.Option(min=2, help="Folds of the out-of-fold pass.")] = 5,
    detector_epochs: Annotated[int, typer.Option("--detector-epochs", min=1, help="Epochs of a torch detector model.")] = 5,
    neighbours: Annotated[int, typer.Option(min=1, help="k of the kNN methods.")] = 10,
    members: Annotated[int, typer.Option(min=2, help="Ensemble models, on disjoint subsets.")] = 5,
    then: Annotated[str, typer.Option(help="none; clean: drop the flagged items and retrain; relabel: give them the method's suggested label and retrain.")] = "none",
    model: Annotated[str, typer.Option(help=f"Model retrained after --then: {', '.join(MODELS)}.")] = "smallcnn",
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs of a retrained torch model (best of a 10% validation split).")] = 10,
    out: Annotated[Path | None, typer.Option("--out", help="Results folder (default: runs/detect-<dataset>).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the JSON result to this file.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "--data_dir", envvar="POISONLAB_DATA", help="Dataset cache folder (default: ~/.cache/poisonlab).")] = None,
    download: Annotated[bool, typer.Option("--download/--no-download", help="Fetch missing dataset files.")] = True,
) -> None:
    """Poison labels, detect them (confident learning, kNN, loss, ensemble) and score against the truth; optionally clean and retrain."""
    from poisonlab.cli import console, parse_counts, parse_percents  # here, not at the top: cli imports this module

    started = time.perf_counter()
    names = [m.strip() for m in method.split(",") if m.strip()]
    detectors.check_methods(names)
    config = DetectorConfig(detector_model, folds, detector_epochs, neighbours, members)
    kinds = [k.strip() for k in (poison_kind or "random").split(",") if k.strip()]
    check_request(kinds, then, model)
    conflicts = ["--poison"] if poison_kind is not None else []
    keys = humanlabels.request(labels, [dataset], conflicts) if labels is not None else []
    percents, counts = parse_percents(percent), parse_counts(n, "number of flips")
    data = datasets.load(dataset, data_dir, dataset_size, download)
    if labels is None:
        sets = poisoned_sets(data, kinds, percents, source, target, counts, seed)
    else:
        sets = human_sets(data, keys, humanlabels.labels_file(cifar_n, data_dir))
    out = store.ensure_writable(out or Path("runs") / slug(f"detect-{dataset}"))
    retrain = (model, epochs)
    everything = np.ones(len(data.y_train), bool)
    clean_accuracy = None if then == "none" else retrained_accuracy(data, data.y_train, everything, *retrain, seed)
    rows = []
    for item in sets:
        rows.append(check_one(data, item, names, config, seed, then, retrain, clean_accuracy))
        print_row(rows[-1], len(data.y_train), clean_accuracy, then, console)
    doc = {"dataset": dataset, "dataset_size": dataset_size, "n_train": len(data.y_train), "n_test": len(data.y_test),
           "seed": seed, "methods": names, "detector": config.to_dict(), "then": then,
           "retrain": {"model": model, "epochs": epochs, "val": "held-out 10% of the (cleaned) training data"},
           "clean_accuracy": clean_accuracy, "rows": rows, "seconds": time.perf_counter() - started}
    paths = write_outputs(doc, out, json_path)
    console.print(f"{len(rows)} label sets checked with {len(names)} methods in {doc['seconds']:.0f}s; results and figures:")
    for path in paths:
        print(path)
