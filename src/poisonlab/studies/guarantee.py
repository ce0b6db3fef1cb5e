"""The guarantee beside the attacks: the certified accuracy of a partition aggregate (a lower bound under ANY B
poisoned training items) next to the accuracy that the aggregate and one ordinary model actually keep when B labels
are flipped at random, toward classes 0/1 (biased) or where a surrogate is most confident (informed).

A flip changes one item, so only the base models trained on a flipped item are trained again: the others keep their
saved rankings from the clean study (`<out>/partitions`). Each attack's models and its ordinary model are saved under
`<out>/attacks/<kind>-<B>/` as they finish, so an interrupted study resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from poisonlab import store
from poisonlab.attacks import flips
from poisonlab.checks import check_choice, check_int
from poisonlab.datasets import Dataset
from poisonlab.defences.certify import certified_accuracy
from poisonlab.errors import PoisonlabError
from poisonlab.files import MAX_RECORD_BYTES, read_json
from poisonlab.reporting.certifyplots import guarantee_plot
from poisonlab.studies import certify
from poisonlab.training import fitting
from poisonlab.training.loop import TrainConfig
from poisonlab.training.models import ModelSpec

ATTACKS = ("random", "biased", "confident")


def attacked(labels: np.ndarray, num_classes: int, kind: str, budget: int, seed: int,
             surrogate: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The labels after `budget` flips of `kind` (confident: the items whose label the surrogate's probabilities
    (N, K) are surest of, each given its least probable class) and the mask of flipped items."""
    percent = 100.0 * budget / len(labels)
    if kind == "confident":
        return flips.random_flip(labels, num_classes, percent, seed, select="confident", pred_probs=surrogate)
    return flips.apply(kind, labels, num_classes, percent, seed)


def study(data: Dataset, spec: certify.CertifySpec, out: Path, certified: dict, budgets: list[int], *,
          kinds: tuple[str, ...] = ATTACKS, model: ModelSpec | None = None, ordinary_epochs: int | None = None,
          jobs: int = 1, console: Console | None = None) -> dict:
    """Attack the clean certify study in `out` (its certify.json content `certified`, see `certify.study`): for each
    kind and budget B, flip B labels, train again the base models those items reach and one ordinary model on all
    items, and measure both on the test set.

    Returns attacks.json's content: one row per (kind, B) with each certificate's certified accuracy at B (the lower
    bound under ANY B poisoned items), the aggregate's accuracy under the attack, the ordinary model's accuracy and
    the number of base models trained again."""
    if spec.kind != "none":
        raise PoisonlabError(f"the attacks need a certify study of clean labels, got poisoning {spec.kind!r}; "
                             "leave the poisoning out")
    for kind in kinds:
        check_choice(kind, ATTACKS, "attack")
    budgets = sorted({check_int(b, "attack budget", low=1, high=len(data.y_train)) for b in budgets})
    console = console or Console(stderr=True)
    buckets, parts, members = certify.layout(data, spec)
    owners = buckets[parts]  # (N, d): the models of each item
    clean = certify.saved_rankings(out / "partitions", range(len(members)), data)
    bounds = {name: dict(zip(budgets, certified_accuracy(p, r, data.y_test, np.array(budgets)).tolist()))
              for name, (p, r, _) in certify.aggregate(clean, buckets, data.num_classes, spec.methods).items()}
    base = model if model is not None else spec.model
    epochs = spec.train.max_epochs if ordinary_epochs is None else check_int(ordinary_epochs, "ordinary_epochs", low=1)
    config = TrainConfig(max_epochs=epochs, batch_size=spec.train.batch_size,
                         lr=spec.train.lr)
    surrogate = _ordinary(data, data.y_train, base, config, spec.seed, out / "attacks" / "clean", need_probs=True)
    rows = []
    for kind in kinds:
        for budget in budgets:
            folder = out / "attacks" / f"{kind}-{budget}"
            labels, mask = attacked(data.y_train, data.num_classes, kind, budget, spec.seed, surrogate["probs"])
            changed = np.unique(owners[mask])
            rankings = list(clean)
            done = certify.saved_rankings(folder / "partitions", changed, data)
            todo = [(int(i), members[i]) for i, r in zip(changed, done) if r is None]
            certify.train_models(data, labels, spec, model, todo, folder / "partitions", jobs=jobs, console=console,
                                 what=f"{kind} {budget}: base models")
            for i, r in zip(changed, certify.saved_rankings(folder / "partitions", changed, data)):
                rankings[i] = r
            aggregate = certify.aggregate(rankings, buckets, data.num_classes, spec.methods)
            ordinary = _ordinary(data, labels, base, config, spec.seed, folder)
            rows.append({"attack": kind, "budget": budget, "flipped": int(mask.sum()),
                         "models_retrained": int(len(changed)),
                         "certified_accuracy": {name: bound[budget] for name, bound in bounds.items()},
                         "aggregate_accuracy": {name: float((p == data.y_test).mean())
                                                for name, (p, _, _) in aggregate.items()},
                         "ordinary_accuracy": ordinary["accuracy"]})
            console.print(f"{kind} flips of {budget} items: aggregate " + ", ".join(
                f"{name.upper()} {acc:.4f}" for name, acc in rows[-1]["aggregate_accuracy"].items())
                + f", one ordinary model {ordinary['accuracy']:.4f} ({len(changed)} base models trained again)")
    doc = {"dataset": certified["dataset"], "partitions": spec.partitions, "spread": spec.spread,
           "model": spec.model, "n_train": len(data.y_train), "n_test": len(data.y_test), "budgets": budgets,
           "attacks": list(kinds), "ordinary_epochs": config.max_epochs,
           "ordinary_clean_accuracy": surrogate["accuracy"],
           "certified": {name: {"clean_accuracy": f["clean_accuracy"],
                                "certified_accuracy": f["certified_accuracy"]}
                         for name, f in certified["methods"].items()},
           "rows": rows}
    store.write_json(out / "attacks.json", doc)
    guarantee_plot(doc, out / "guarantee.png")
    return doc


def _ordinary(data: Dataset, labels: np.ndarray, model: ModelSpec, config: TrainConfig, seed: int, folder: Path, *,
              need_probs: bool = False) -> dict:
    """One ordinary model on all training items with `labels`: its test accuracy (and, with need_probs, its class
    probabilities of the training items, the informed attacker's surrogate), saved in `folder` and reused."""
    record, probs_path = folder / "ordinary.json", folder / "surrogate.npy"
    saved = read_json(record, f"ordinary model record {record}", MAX_RECORD_BYTES, "delete it to train it again") \
        if record.exists() else None
    wanted = {"epochs": config.max_epochs, "batch_size": config.batch_size, "lr": config.lr, "seed": seed}
    if isinstance(saved, dict) and saved.get("settings") == wanted and (not need_probs or probs_path.exists()):
        try:
            probs = np.load(probs_path, allow_pickle=False) if need_probs else None
        except (OSError, ValueError):
            probs = None
        if not need_probs or (probs is not None and probs.shape == (len(labels), data.num_classes)):
            return {"accuracy": saved["accuracy"], "probs": probs}
    fitted = fitting.build(model, data.x_train.shape[1:], data.num_classes, seed)
    fitting.fit(fitted, data.x_train, labels, config=config, seed=seed)
    accuracy = float((fitting.predict(fitted, data.x_test) == data.y_test).mean())
    probs = fitting.predict_proba(fitted, data.x_train, data.num_classes) if need_probs else None
    if need_probs:
        store.save_array(probs_path, probs.astype(np.float32))
    store.write_json(record, {"settings": wanted, "accuracy": accuracy})
    return {"accuracy": accuracy, "probs": probs}
