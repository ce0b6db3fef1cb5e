"""Everything a report shows, gathered from a results folder: sweep rows, run provenance, flip and detect results."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from poisonlab import store
from poisonlab.attacks import humanlabels
from poisonlab.datasets import DATASETS
from poisonlab.errors import PoisonlabError

FLIP_KEYS = {"dataset", "classes", "source", "target", "model", "select", "n", "seeds", "epochs", "n_train", "n_test",
             "runs", "summary"}
DETECT_KEYS = {"dataset", "n_train", "seed", "detector", "retrain", "rows"}
CERTIFY_KEYS = {"dataset", "method", "partitions", "model", "n_train", "n_test", "poison", "clean_accuracy",
                "median_radius", "base_accuracy_mean", "certified_accuracy", "partition_sizes", "status"}
MATRIX_KEYS = {"dataset", "dataset_size", "model", "attacks", "percents", "defences", "seeds", "runs", "cells"}
BACKDOOR_KEYS = {"dataset", "name", "target_name", "trigger", "clean_label", "model", "n_train", "n_test", "seeds",
                 "asr_goal", "smallest_percent_reaching_goal", "runs", "summary"}


@dataclass
class Study:
    """The contents of one results folder."""

    out: Path
    rows: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    flips: list[tuple[Path, dict]] = field(default_factory=list)
    detections: list[tuple[Path, dict]] = field(default_factory=list)
    backdoors: list[tuple[Path, dict]] = field(default_factory=list)
    certifications: list[tuple[Path, dict]] = field(default_factory=list)
    matrices: list[tuple[Path, dict]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> list[dict]:
        """Rows of random and biased poisoning (label flips; not human labels, not backdoors)."""
        return [r for r in self.rows if not humanlabels.is_kind(r["kind"]) and not r["kind"].startswith("backdoor")]

    @property
    def human(self) -> list[dict]:
        """Rows trained on human-noisy labels (CIFAR-10N), their percent being the measured noise rate."""
        return [r for r in self.rows if humanlabels.is_kind(r["kind"])]


def load_json(path: Path) -> dict | None:
    """A JSON document, or None when it is unreadable (a report skips it rather than failing)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def dataset_order(name: str) -> tuple[int, str]:
    """Known datasets in their usual order (MNIST first), then the others by name."""
    known = list(DATASETS)
    return (known.index(name), name) if name in known else (len(known), name)


def group_key(row: dict) -> tuple:
    """Runs that share everything but percent and seed."""
    return (row["dataset"], row["dataset_size"], row["kind"], row["model"], row["val"], row.get("select", "random"),
            row["num_classes"], row.get("defence", "none"))


def provenance(out: Path, rows: list[dict]) -> list[dict]:
    """Per run group: configuration, versions, data checksums, seeds, percents, run count and times, and per-class
    accuracy, from run.json."""
    by_group: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        by_group[group_key(row)].append(row)
    groups = []
    for key, members in sorted(by_group.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        runs = [r for r in (store.read_run(out / m["run_dir"]) for m in members) if r and store.row_problem(r) is None]
        if not runs:
            continue
        first = runs[0]
        versions = sorted({json.dumps(r.get("environment", {}), sort_keys=True) for r in runs})
        groups.append({
            "dataset": key[0], "dataset_size": key[1], "kind": key[2], "model": key[3], "val": key[4],
            "runs": len(runs), "seeds": sorted({r["config"]["seed"] for r in runs}),
            "percents": sorted({r["config"]["percent"] for r in runs}),
            "train": first["config"]["train"], "val_fraction": first["config"].get("val_fraction"),
            "shape": first["dataset"]["shape"], "num_classes": first["dataset"]["num_classes"],
            "classes": first["dataset"]["classes"], "n_train": first["dataset"]["n_train"],
            "n_test": first["dataset"]["n_test"], "sources": first["dataset"].get("sources", {}),
            "notes": first["dataset"].get("notes", []), "labels": first.get("labels"),
            "environments": [json.loads(v) for v in versions],
            "epochs_run": [r["training"]["epochs_run"] for r in runs],
            "total_seconds": sum(r["timings"]["total_s"] for r in runs),
            "mean_seconds": sum(r["timings"]["total_s"] for r in runs) / len(runs),
            "first_created": min(r["created"] for r in runs), "last_created": max(r["created"] for r in runs),
            "per_class": per_class_means(runs),
        })
    return groups


def per_class_means(runs: list[dict]) -> dict[float, list[float]]:
    """Percent -> test accuracy of each class, averaged over the seeds run at that percent."""
    by_percent: dict[float, list[list[float]]] = defaultdict(list)
    for run in runs:
        by_percent[run["config"]["percent"]].append(run["metrics"]["per_class_accuracy"])
    return {p: np.nanmean(np.array(v, dtype=float), axis=0).tolist() for p, v in sorted(by_percent.items())}


def sweep_rows(out: Path) -> list[dict]:
    """The rows of the results table of `out` (rebuilt from run.json files if missing) and of every results table in
    its subfolders (sweeps written to runs/<study>), each row's run_dir relative to `out`."""
    tables = [out, *sorted({p.parent for p in out.glob(f"*/**/{store.DB_FILE}")})]
    rows = []
    for table in tables:
        prefix = table.relative_to(out)
        rows += [{**row, "run_dir": str(prefix / row["run_dir"])} for row in store.results_rebuilt(table)]
    return rows


def collect(out: Path) -> Study:
    """Read the results tables (see `sweep_rows`) and every flip.json, detect.json, backdoor.json, certify.json and
    matrix.json under `out`."""
    if not out.is_dir():
        raise PoisonlabError(f"results folder {out} does not exist; give the folder that `poisonlab train` wrote")
    rows = sweep_rows(out)
    study = Study(out, rows, provenance(out, rows))
    for name, needed, bucket in (("flip.json", FLIP_KEYS, study.flips), ("detect.json", DETECT_KEYS, study.detections),
                                 ("backdoor.json", BACKDOOR_KEYS, study.backdoors),
                                 ("certify.json", CERTIFY_KEYS, study.certifications),
                                 ("matrix.json", MATRIX_KEYS, study.matrices)):
        for path in sorted(out.glob(f"**/{name}")):
            doc = load_json(path)
            missing = sorted(needed - set(doc)) if doc is not None else ["(not readable JSON)"]
            if missing:
                study.skipped.append(f"{path}: missing {', '.join(missing)}")
            else:
                bucket.append((path.parent, doc))
    if not (study.rows or study.flips or study.detections or study.backdoors or study.certifications or study.matrices):
        raise PoisonlabError(f"nothing to report in {out}: no runs, flip.json, detect.json, backdoor.json or "
                             "certify.json; run `poisonlab train`, `flip`, `detect`, `backdoor` or `certify` into that "
                             "folder first")
    return study
