"""`poisonlab detect`: poison labels (or take CIFAR-10N human labels), run the detectors, score them, clean and retrain."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from poisonlab import datasets, models, poison, store  # noqa: E402
from poisonlab.datasets import Dataset  # noqa: E402
from poisonlab.defend import detect as detectors  # noqa: E402
from poisonlab.defend.evaluate import score  # noqa: E402
from poisonlab.defend.features import DETECTOR_MODELS, DetectorConfig  # noqa: E402
from poisonlab.errors import PoisonlabError, check_choice  # noqa: E402
from poisonlab.experiment import slug, split_indices  # noqa: E402
from poisonlab.flipplots import save  # noqa: E402
from poisonlab.models import MODELS  # noqa: E402
from poisonlab.targeted import resolve_class  # noqa: E402
from poisonlab.train import TrainConfig, fit_sklearn, fit_torch, flatten01, predict, seed_everything, to_tensor  # noqa: E402

POISONS = ("random", "biased", "targeted")
THEN = ("none", "clean", "relabel")
CIFAR10N = {"aggre": "aggre_label", "worse": "worse_label", "random1": "random_label1", "random2": "random_label2",
            "random3": "random_label3"}
CSV_COLUMNS = ("kind", "setting", "percent", "rate", "n_poisoned", "method", "precision", "recall", "f1", "roc_auc",
               "flagged", "true_poisoned", "seconds", "clean_accuracy", "poisoned_accuracy", "accuracy_after", "recovered")
RETRAIN_BATCH = 64


@dataclass(frozen=True)
class LabelSet:
    """One set of training labels to check: its kind, setting (20%, n=100, worse), the labels and the true mask."""

    kind: str
    setting: str
    percent: float | None
    labels: np.ndarray
    mask: np.ndarray


def poisoned_sets(data: Dataset, kinds: list[str], percents: list[float], source: str | None, target: str | None,
                  counts: list[int], seed: int) -> list[LabelSet]:
    """Poisoned copies of the training labels: one per (random or biased, percent) and per targeted count."""
    sets = []
    for kind in kinds:
        if kind != "targeted":
            sets += [LabelSet(kind, f"{p:g}%", p, *poison.apply(kind, data.y_train, data.num_classes, p, seed)) for p in percents]
            continue
        if source is None or target is None:
            raise PoisonlabError("targeted poisoning needs a class pair; pass --source and --target (names or numbers)")
        src, tgt = resolve_class(source, data.classes), resolve_class(target, data.classes)
        name = f"targeted {data.classes[src]}->{data.classes[tgt]}"
        sets += [LabelSet(name, f"n={n}", None, *poison.targeted_flip(data.y_train, src, tgt, n, "first", seed)) for n in counts]
    return sets


def check_request(kinds: list[str], then: str, model: str) -> None:
    """Reject unknown poisoning kinds, --then modes and retraining models, one line each."""
    for kind in kinds:
        check_choice(kind, POISONS, "poisoning kind")
    check_choice(then, THEN, "--then")
    check_choice(model, MODELS, "model")


def cifar10n_keys(spec: str, dataset: str, poison_kind: str | None) -> list[str]:
    """The CIFAR-10N label sets named by `spec` ("cifar10n:aggre,worse"), after checking it fits the request."""
    name, _, rest = spec.partition(":")
    keys = [k.strip() for k in rest.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CIFAR10N]
    if name != "cifar10n" or unknown or not keys:
        raise PoisonlabError(f"unknown label set '{unknown[0] if unknown else spec}'; write cifar10n:KEY[,KEY] with KEY "
                             f"from {', '.join(CIFAR10N)}")
    if dataset.strip() != "cifar10":
        raise PoisonlabError(f"CIFAR-10N labels belong to CIFAR-10, not {dataset}; pass --dataset cifar10")
    if poison_kind is not None:
        raise PoisonlabError("--labels uses real human label noise instead of poisoning; leave out --poison")
    return keys


def human_sets(data: Dataset, keys: list[str], path: Path) -> list[LabelSet]:
    """CIFAR-10N label sets (first N, as the loaded training items), after checking the clean labels match."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[name].astype(np.int64)[: len(data.y_train)] for k, name in
                      [("clean", "clean_label"), *((k, CIFAR10N[k]) for k in keys)]}
    except (OSError, KeyError, ValueError) as exc:
        raise PoisonlabError(f"cannot read CIFAR-10N labels from {path} ({exc}); "
                             "pass --cifar-n PATH to cifar10n_labels.npz") from None
    if not np.array_equal(arrays["clean"], data.y_train):
        raise PoisonlabError(f"the clean labels in {path} differ from the loaded CIFAR-10 training labels; load CIFAR-10 "
                             "in the official training order (binary release, or the JPEG copy with its order file)")
    return [LabelSet("cifar10n", k, None, arrays[k], arrays[k] != data.y_train) for k in keys]


def retrained_accuracy(data: Dataset, labels: np.ndarray, keep: np.ndarray, model_name: str, epochs: int, seed: int) -> float:
    """Train `model_name` on the kept items (10% of them held out for validation); accuracy on the untouched test set."""
    idx = np.flatnonzero(keep)
    fit_pos, val_pos = split_indices(len(idx), 0.1, seed)
    fit_idx, val_idx = idx[fit_pos], idx[val_pos]
    seed_everything(seed)
    model = models.build(model_name, data.x_train.shape[1:], data.num_classes, seed)
    if isinstance(model, torch.nn.Module):
        model.to(memory_format=torch.channels_last)
        x = to_tensor(data.x_train)
        fit_torch(model, x[fit_idx], torch.from_numpy(labels[fit_idx]), x[val_idx], labels[val_idx],
                  TrainConfig(max_epochs=epochs, batch_size=RETRAIN_BATCH), seed)
        predicted = predict(model, to_tensor(data.x_test))
    else:
        if len(np.unique(labels[fit_idx])) < 2:
            raise PoisonlabError(f"{model_name} cannot train on a single class after cleaning; use a torch --model")
        fit_sklearn(model, data.x_train[fit_idx], labels[fit_idx], data.x_train[val_idx], labels[val_idx])
        predicted = model.predict(flatten01(data.x_test))
    return float((predicted == data.y_test).mean())


def check_one(data: Dataset, item: LabelSet, names: list[str], config: DetectorConfig, seed: int, then: str,
              retrain: tuple[str, int], clean_accuracy: float | None) -> dict:
    """Detect on one label set, score each method, and (with `then`) retrain on the cleaned labels."""
    row = {"kind": item.kind, "setting": item.setting, "percent": item.percent, "n_poisoned": int(item.mask.sum()),
           "rate": float(100 * item.mask.mean()), "poisoned_accuracy": None, "methods": []}
    if then != "none":
        row["poisoned_accuracy"] = retrained_accuracy(data, item.labels, np.ones(len(item.labels), bool), *retrain, seed)
    for detection in detectors.run(names, data.x_train, item.labels, data.num_classes, seed, config):
        result = {"method": detection.method, **score(detection, item.mask), "accuracy_after": None, "recovered": None}
        if then != "none":
            keep = ~detection.flagged if then == "clean" else np.ones(len(item.labels), bool)
            labels = np.where(detection.flagged, detection.suggested, item.labels) if then == "relabel" else item.labels
            result["accuracy_after"] = after = retrained_accuracy(data, labels, keep, *retrain, seed)
            lost = clean_accuracy - row["poisoned_accuracy"]
            result["recovered"] = (after - row["poisoned_accuracy"]) / lost if lost > 0 else None
        row["methods"].append(result)
    return row


def _num(value: float | None, fmt: str = ".3f") -> str:
    """A table cell: the formatted value, or '-' for None."""
    return "-" if value is None else format(value, fmt)


def print_row(row: dict, n_train: int, clean_accuracy: float | None, then: str, console: Console) -> None:
    """One rich table: the methods' precision, recall, F1, ROC AUC, flags and seconds (and accuracy after `then`)."""
    caption = None if then == "none" else (f"test accuracy: clean {clean_accuracy:.4f}, poisoned {row['poisoned_accuracy']:.4f}; "
                                           f"after: {then} flagged, retrain; gain: after - poisoned, points")
    table = Table(title=f"{row['kind']} {row['setting']}: {row['n_poisoned']} of {n_train} labels wrong "
                        f"({row['rate']:.1f}%)", caption=caption, box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for column in ("method", "prec", "recall", "F1", "AUC", "flagged", "sec",
                   *(("after", "gain") if then != "none" else ())):
        table.add_column(column, justify="left" if column == "method" else "right")
    for m in row["methods"]:
        table.add_row(m["method"], _num(m["precision"]), _num(m["recall"]), _num(m["f1"]), _num(m["roc_auc"]),
                      str(m["flagged"]), f"{m['seconds']:.1f}",
                      *((f"{m['accuracy_after']:.4f}", f"{100 * (m['accuracy_after'] - row['poisoned_accuracy']):+.1f}")
                        if then != "none" else ()))
    console.print(table)


def csv_text(doc: dict) -> str:
    """One CSV line per (label set, method)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in doc["rows"]:
        for m in row["methods"]:
            writer.writerow({**row, **m, "clean_accuracy": doc["clean_accuracy"]})
    return buf.getvalue()


def _series(doc: dict) -> dict[tuple[str, str], list[tuple[float, dict, dict]]]:
    """(kind, method) -> [(rate, row, method result)] sorted by rate."""
    series: dict[tuple[str, str], list] = {}
    for row in doc["rows"]:
        for m in row["methods"]:
            series.setdefault((row["kind"], m["method"]), []).append((row["rate"], row, m))
    return {key: sorted(points, key=lambda p: p[0]) for key, points in series.items()}


def quality_plot(doc: dict, path: Path) -> Path:
    """Precision, recall, F1 and ROC AUC vs poison rate: a colour per method, a line style per kind."""
    series, methods = _series(doc), list(doc["methods"])
    kinds = list(dict.fromkeys(k for k, _ in series))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")
    for ax, metric in zip(axes, ("precision", "recall", "f1", "roc_auc")):
        for (kind, method), points in series.items():
            ax.plot([p[0] for p in points], [np.nan if p[2][metric] is None else p[2][metric] for p in points],
                    marker="o", color=f"C{methods.index(method)}", ls=("-", "--", ":", "-.")[kinds.index(kind) % 4],
                    label=f"{method} ({kind})" if len(kinds) > 1 else method)
        ax.set(title=metric.replace("roc_auc", "ROC AUC").replace("f1", "F1"), xlabel="wrong labels (%)", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    fig.suptitle(f"Detection quality vs poison rate: {doc['dataset']} ({doc['n_train']} items), "
                 f"{doc['detector']['model']} folds")
    return save(fig, path)


def recovery_plot(doc: dict, path: Path) -> Path:
    """Test accuracy vs poison rate, a panel per kind: clean model, poisoned model, and each method's cleaned model."""
    series, methods = _series(doc), list(doc["methods"])
    kinds = list(dict.fromkeys(k for k, _ in series))
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.2), layout="constrained", squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        ax.axhline(doc["clean_accuracy"], color="black", ls="--", label="clean labels")
        first = series[(kind, methods[0])]
        ax.plot([p[0] for p in first], [p[1]["poisoned_accuracy"] for p in first], "ko-", label="poisoned labels")
        for method in methods:
            points = series[(kind, method)]
            ax.plot([p[0] for p in points], [p[2]["accuracy_after"] for p in points], marker="o",
                    color=f"C{methods.index(method)}", label=f"{method} + {doc['then']}")
        ax.set(title=kind, xlabel="wrong labels (%)", ylabel="test accuracy")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    fig.suptitle(f"Recovery: {doc['dataset']} ({doc['n_train']} items), {doc['retrain']['model']} retrained")
    return save(fig, path)


def write_outputs(doc: dict, out: Path, json_path: Path | None) -> list[Path]:
    """detect.json, detect.csv, detect.png (and recovery.png after --then); the JSON also to `json_path`."""
    files = [out / "detect.json", *([json_path] if json_path else [])]
    for path in files:
        store.write_json(path, doc)
    store.atomic_write(out / "detect.csv", csv_text(doc))
    figures = [quality_plot(doc, out / "detect.png")]
    if doc["then"] != "none":
        figures.append(recovery_plot(doc, out / "recovery.png"))
    return [*files, out / "detect.csv", *figures]


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
    keys = cifar10n_keys(labels, dataset, poison_kind) if labels is not None else []
    percents, counts = parse_percents(percent), parse_counts(n, "number of flips")
    data = datasets.load(dataset, data_dir, dataset_size, download)
    if labels is None:
        sets = poisoned_sets(data, kinds, percents, source, target, counts, seed)
    else:
        sets = human_sets(data, keys, cifar_n or datasets.resolve_data_dir(data_dir) / "cifar_n" / "cifar10n_labels.npz")
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
