"""`poisonlab detect`: poison labels (or take CIFAR-10N human labels), run the detectors, score them, clean and retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poisonlab.attacks import POISONS, STRATEGIES
from poisonlab.cli.common import (DATASET_HELP, JOBS_DEFAULT_TEXT, DataDirOpt, DownloadOpt, JsonOpt, SeedOpt,
                                  check_outputs, console, jobs_or_default, parse_counts, parse_names, parse_percents)
from poisonlab.defences import BACKDOOR_METHODS, DETECTION_METHODS, DETECTOR_MODELS, GRADIENT_METHODS
from poisonlab.checks import check_choice
from poisonlab.files import check_output_folder
from poisonlab.training import MODELS

DEFAULT_SIZE = 2000


def detect(
    dataset: Annotated[str, typer.Option(help=f"Dataset: {DATASET_HELP}.")] = "mnist",
    poison_kind: Annotated[str | None, typer.Option("--poison", help="Poisoning kinds, comma-separated: random, biased, targeted, backdoor (a 3x3 corner patch, BadNets).", show_default="random")] = None,
    percent: Annotated[str, typer.Option("--percents", "--percent", help="Poison percents (random, biased, backdoor), comma-separated: one row each.")] = "20",
    select: Annotated[str, typer.Option(help="Random, biased: which items are poisoned, comma-separated (one row each): random, first, last, margin, confident (see train --select).")] = "random",
    source: Annotated[str | None, typer.Option(help="Targeted: class whose labels are flipped (name or number).")] = None,
    target: Annotated[str | None, typer.Option(help="Targeted: class they are flipped to; backdoor: class the trigger steers to (name or number).")] = None,
    n: Annotated[str, typer.Option("--n", help="Targeted: numbers of flipped labels (the first of the class), comma-separated.")] = "100",
    labels: Annotated[str | None, typer.Option(help="Real human noise instead of poisoning: cifar10n:KEY[,KEY] with KEY aggre, worse, random1, random2, random3 (needs --dataset cifar10).")] = None,
    cifar_n: Annotated[Path | None, typer.Option("--cifar-n", help="CIFAR-10N labels.", show_default="<data-dir>/cifar_n/cifar10n_labels.npz")] = None,
    method: Annotated[str | None, typer.Option(help=f"Detection methods, comma-separated: {', '.join(DETECTION_METHODS + GRADIENT_METHODS + BACKDOOR_METHODS)} (influence: TracIn self-influence, grad: gradient magnitude, gradclust: gradient clustering, on the last layer of a smallcnn trained on every item; spectral signatures and activation clustering read a smallcnn's activations).", show_default=f"{','.join(DETECTION_METHODS)}, and {','.join(BACKDOOR_METHODS)} with --poison backdoor")] = None,
    dataset_size: Annotated[int | None, typer.Option("--dataset-size", "--dataset_size", min=0, help="Use the first N training items (0 = all).", show_default=f"{DEFAULT_SIZE}, or all of a smaller set")] = None,
    seed: SeedOpt = 0,
    detector_model: Annotated[str, typer.Option("--detector-model", help=f"Model of the out-of-fold pass and the ensemble: {', '.join(DETECTOR_MODELS)} (auto: smallcnn on images, logreg on PCA-50 of feature rows).")] = "auto",
    folds: Annotated[int, typer.Option(min=2, help="Folds of the out-of-fold pass.")] = 5,
    detector_epochs: Annotated[int, typer.Option("--detector-epochs", min=1, help="Epochs of a torch detector model.")] = 5,
    neighbours: Annotated[int, typer.Option(min=1, help="k of the kNN methods.")] = 10,
    members: Annotated[int, typer.Option(min=2, help="Ensemble models, on disjoint subsets.")] = 5,
    trusted: Annotated[int, typer.Option(min=0, help="The correlation screen's clean reference: the first N test items, data the attacker did not touch (0: compare every pixel-class correlation with all of them instead).")] = 0,
    jobs: Annotated[int | None, typer.Option(help="Fold and ensemble models trained at once in worker processes, sharing the cores.", show_default=JOBS_DEFAULT_TEXT)] = None,
    then: Annotated[str, typer.Option(help="none; clean: drop the flagged items and retrain; relabel: give them the method's suggested label and retrain; clean+REMEDY, relabel+REMEDY: retrain with a training remedy (gce, sce, elr, coteach[:P], semi; see train --defence).")] = "none",
    model: Annotated[str, typer.Option(help=f"Model retrained after --then: {', '.join(MODELS)}.")] = "smallcnn",
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs of a retrained torch model (best of a 10% validation split).")] = 10,
    out: Annotated[Path | None, typer.Option("--out", help="Results folder.", show_default="runs/detect-<dataset>")] = None,
    json_path: JsonOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Poison labels, detect them (confident learning, kNN, loss, ensemble) and score against the truth; optionally clean and retrain."""
    from poisonlab import datasets, store
    from poisonlab.attacks import humanlabels
    from poisonlab.defences import detectors
    from poisonlab.defences.folds import DetectorConfig
    from poisonlab.reporting.detections import print_row, write_outputs
    from poisonlab.studies import detection
    from poisonlab.studies.labelsets import human_sets, poisoned_sets

    kinds = parse_names("random" if poison_kind is None else poison_kind, "poisoning kinds")
    defaults = DETECTION_METHODS + (BACKDOOR_METHODS if "backdoor" in kinds else ())
    names = parse_names(",".join(defaults) if method is None else method, "detection methods")
    detectors.check_methods(names)
    config = DetectorConfig(detector_model, folds, detector_epochs, neighbours, members, jobs_or_default(jobs))
    for kind in kinds:
        check_choice(kind, POISONS, "poisoning kind")
    check_choice(then.partition("+")[0], detection.THEN, "--then")
    detection.check_then(then)
    check_choice(model, MODELS, "model")
    selects = parse_names(select, "item selections")
    for name in selects:
        check_choice(name, STRATEGIES, "item selection")
    conflicts = [flag for flag, given in (("--poison", poison_kind is not None), ("--select", selects != ["random"])) if given]
    keys = humanlabels.request(labels, [dataset], conflicts) if labels is not None else []
    percents, counts = parse_percents(percent), parse_counts(n, "number of flips")
    out = check_output_folder(out or Path("runs") / store.slug(f"detect-{dataset}"))  # created once work starts
    check_outputs(json_path)
    data = datasets.load(dataset, data_dir, dataset_size or 0, download)
    if dataset_size is None and len(data.y_train) > DEFAULT_SIZE:
        dataset_size, data = DEFAULT_SIZE, datasets.load(dataset, data_dir, DEFAULT_SIZE, download)
    if labels is None:
        sets = poisoned_sets(data, kinds, percents, source, target, counts, seed, tuple(selects))
    else:
        sets = human_sets(data, keys, humanlabels.labels_file(cifar_n, data_dir))
    doc = detection.study(data, sets, names, config=config, seed=seed, then=then, model=model, epochs=epochs,
                          trusted=trusted,
                          on_row=lambda row, clean: print_row(row, len(data.y_train), clean, then, console))
    doc = {"dataset": dataset, "dataset_size": dataset_size or 0, **doc}
    paths = write_outputs(doc, out, json_path)
    console.print(f"{len(doc['rows'])} label sets checked with {len(names)} methods in {doc['seconds']:.0f}s; results and figures:")
    for path in paths:
        print(path)
