"""Flip results gathered into one JSON document, with seed means and spreads, a Markdown report and terminal tables."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

RUN_FIELDS = ("overall_accuracy", "per_class_accuracy", "correct_by_predicted", "incorrect_by_predicted", "confusion",
              "classification_report")
SPREAD_NOTE = ("Values are mean ± sample std over seeds (mean only for one seed); "
               "Δ is against the clean model of the same seed.")
FLIP_FIELDS = ("changed_indices", "n_changed", "corruption_rate", "source_share", "counts_before", "counts_after")


def spread(values: list[float]) -> dict | None:
    """Mean, sample standard deviation (None for one value), min and max of the non-NaN values (None if none)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return None
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else None,
            "min": float(arr.min()), "max": float(arr.max()), "count": len(arr)}


def _class_acc(run: dict, cls: int) -> float:
    value = run["per_class_accuracy"][cls]
    return float("nan") if value is None else value


def summarise(runs: list[dict], source: int, target: int) -> list[dict]:
    """Per N: every number's spread over seeds, plus differences to the clean run of the same seed."""
    clean = {r["seed"]: r for r in runs if r["n"] == 0}
    rows = []
    for n in sorted({r["n"] for r in runs}):
        group = [r for r in runs if r["n"] == n]
        paired = [(r, clean[r["seed"]]) for r in group if r["seed"] in clean]
        rows.append({
            "n": n, "seeds": [r["seed"] for r in group],
            "n_changed": group[0]["n_changed"], "corruption_rate": group[0]["corruption_rate"],
            "source_share": group[0]["source_share"],
            "overall_accuracy": spread([r["overall_accuracy"] for r in group]),
            "source_accuracy": spread([_class_acc(r, source) for r in group]),
            "target_accuracy": spread([_class_acc(r, target) for r in group]),
            "source_predicted_as_target": spread([r["confusion"][source][target] for r in group]),
            "delta_overall_accuracy": spread([r["overall_accuracy"] - c["overall_accuracy"] for r, c in paired]),
            "delta_source_accuracy": spread([_class_acc(r, source) - _class_acc(c, source) for r, c in paired]),
            "delta_target_accuracy": spread([_class_acc(r, target) - _class_acc(c, target) for r, c in paired]),
            "correct_by_predicted": np.mean([r["correct_by_predicted"] for r in group], axis=0).tolist(),
            "incorrect_by_predicted": np.mean([r["incorrect_by_predicted"] for r in group], axis=0).tolist(),
            "confusion": np.mean([r["confusion"] for r in group], axis=0).tolist(),
        })
    return rows


def document(records: list[dict], source: int, target: int) -> dict:
    """The machine-readable result of a flip experiment: settings, one entry per (N, seed), and the summary."""
    first = records[0]
    cfg, data = first["config"], first["dataset"]
    train = cfg["train"]
    runs = [{"n": r["config"]["n"], "seed": r["config"]["seed"], **{k: r["flip"][k] for k in FLIP_FIELDS},
             **{k: r["metrics"][k] for k in RUN_FIELDS}, "train_seconds": r["train_seconds"]} for r in records]
    runs.sort(key=lambda r: (r["n"], r["seed"]))
    return {
        "dataset": data["name"], "classes": data["classes"], "notes": data["notes"],
        "source": {"index": source, "name": data["classes"][source]},
        "target": {"index": target, "name": data["classes"][target]},
        "model": cfg["model"], "select": cfg["select"], "n_train": data["n_train"], "n_test": data["n_test"],
        "epochs": train["max_epochs"], "batch_size": train["batch_size"], "lr": train["lr"],
        "n": sorted({r["n"] for r in runs}), "seeds": sorted({r["seed"] for r in runs}),
        "runs": runs, "summary": summarise(runs, source, target),
        "classification_report_text": {f"n{r['config']['n']}_seed{r['config']['seed']}":
                                       r["metrics"]["classification_report_text"] for r in records},
    }


def fmt(value: dict | None, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    """'mean ± std' of a spread (just the mean for one seed)."""
    if value is None:
        return "-"
    text = f"{value['mean'] * scale:{'+' if sign else ''}.{digits}f}"
    return text + (f" ± {value['std'] * scale:.{digits}f}" if value["std"] is not None else "")


def _count(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def main_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-N table: corruption, accuracy (%), change vs clean, source and target accuracy."""
    src, tgt = doc["source"]["name"], doc["target"]["name"]
    count_digits = 1 if len(doc["seeds"]) > 1 else 0
    header = ["N", "corruption", f"share of {src}", "test acc %", "Δ vs clean (pp)", f"{src} acc %", f"Δ {src} (pp)",
              f"{tgt} acc %", f"Δ {tgt} (pp)", f"{src}→{tgt} preds"]
    rows = [[str(s["n"]), f"{s['corruption_rate']:.4%}", f"{s['source_share']:.2%}", fmt(s["overall_accuracy"], 100),
             fmt(s["delta_overall_accuracy"], 100, sign=True), fmt(s["source_accuracy"], 100),
             fmt(s["delta_source_accuracy"], 100, sign=True), fmt(s["target_accuracy"], 100),
             fmt(s["delta_target_accuracy"], 100, sign=True), fmt(s["source_predicted_as_target"], digits=count_digits)]
            for s in doc["summary"]]
    return header, rows


def predicted_rows(doc: dict, ns: list[int]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of correct/incorrect predictions per predicted class for the models with `ns` flips."""
    by_n = {s["n"]: s for s in doc["summary"]}
    header = ["predicted class"] + [f"N={n} {kind}" for n in ns for kind in ("correct", "incorrect")]
    rows = [[name] + [_count(by_n[n][f"{kind}_by_predicted"][c]) for n in ns for kind in ("correct", "incorrect")]
            for c, name in enumerate(doc["classes"])]
    return header, rows


def count_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the training class counts before and after the largest flip."""
    largest = max(doc["runs"], key=lambda r: r["n"])
    header = ["class", "before", f"after N={largest['n']}", "change"]
    rows = [[name, str(b), str(a), f"{a - b:+d}" if a != b else ""]
            for name, b, a in zip(doc["classes"], largest["counts_before"], largest["counts_after"])]
    return header, rows


def markdown(doc: dict) -> str:
    """The whole report as Markdown tables plus the classification reports."""
    def table(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"

    seeds = ", ".join(map(str, doc["seeds"]))
    parts = [f"# {doc['source']['name']} → {doc['target']['name']}: {doc['dataset']}, {doc['model']}, "
             f"{doc['n_train']} train / {doc['n_test']} test, select {doc['select']}, seeds {seeds}\n\n",
             "".join(f"Data: {n}.\n\n" for n in doc.get("notes", [])),
             SPREAD_NOTE + "\n\n",
             table(*main_rows(doc)), "\n## Training class counts\n\n", table(*count_rows(doc)),
             "\n## Predictions per predicted class (seed mean)\n\n", table(*predicted_rows(doc, doc["n"])),
             "\n## Classification reports\n"]
    parts += [f"\n### {key}\n```\n{text}```\n" for key, text in doc["classification_report_text"].items()]
    return "".join(parts)


TERMINAL_COLUMNS = (0, 1, 3, 4, 5, 7, 9)


def print_summary(doc: dict, console: Console) -> None:
    """Two short terminal tables: the main per-N numbers, and predictions per predicted class (clean vs largest N)."""
    header, rows = main_rows(doc)
    short = ([header[i] for i in TERMINAL_COLUMNS], [[row[i] for i in TERMINAL_COLUMNS] for row in rows])
    for title, (header, rows) in (
        (f"{doc['source']['name']} → {doc['target']['name']} ({doc['model']}, {len(doc['seeds'])} seed(s))", short),
        ("predictions per predicted class", predicted_rows(doc, sorted({0, max(doc["n"])}))),
    ):
        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 and name != "N" else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for key, role in (("source_accuracy", "source"), ("target_accuracy", "target")):
        if doc["summary"][0][key] is None:
            console.print(f"note: the {doc['n_test']} test items hold no '{doc[role]['name']}' item, so its accuracy is "
                          "undefined (a class-ordered test set?); use the whole test set (test size 0)")
