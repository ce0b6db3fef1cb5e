"""What `detect` shows and leaves behind: a rich table per label set, detect.json, detect.csv and the figures."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from poisonlab import store
from poisonlab.reporting.detectplots import changed_percent, quality_plot, recovery_plot

CSV_COLUMNS = ("kind", "setting", "percent", "rate", "changed_percent", "n_poisoned", "method", "precision", "recall", "f1", "roc_auc",
               "flagged", "true_poisoned", "seconds", "clean_accuracy", "poisoned_accuracy", "accuracy_after", "recovered",
               "poisoned_asr", "asr_after", "precision_at_n")


def _num(value: float | None, fmt: str = ".3f") -> str:
    """A table cell: the formatted value, or '-' for None."""
    return "-" if value is None else format(value, fmt)


def print_row(row: dict, n_train: int, clean_accuracy: float | None, then: str, console: Console) -> None:
    """One rich table: the methods' precision, recall, F1, ROC AUC, flags and seconds (and accuracy after `then`)."""
    backdoor = row.get("poisoned_asr") is not None
    caption = None if then == "none" else (f"test accuracy: clean {clean_accuracy:.4f}, poisoned {row['poisoned_accuracy']:.4f}; "
                                           + (f"attack success rate poisoned {row['poisoned_asr']:.3f}; " if backdoor else "")
                                           + f"after: {then} flagged, retrain; gain: after - poisoned, points")
    table = Table(title=f"{row['kind']} {row['setting']}: {row['n_poisoned']} of {n_train} {'items stamped' if row['kind'].startswith('backdoor') else 'labels wrong'} "
                        f"({changed_percent(row):.1f}%)", caption=caption, box=box.SIMPLE_HEAD,
                  show_edge=False, pad_edge=False)
    for column in ("method", "prec", "recall", "F1", "AUC", "P@n", "flagged", "sec",
                   *(("after", "gain") if then != "none" else ()), *(("ASR after",) if then != "none" and backdoor else ())):
        table.add_column(column, justify="left" if column == "method" else "right")
    for m in row["methods"]:
        table.add_row(m["method"], _num(m["precision"]), _num(m["recall"]), _num(m["f1"]), _num(m["roc_auc"]),
                      _num(m.get("precision_at_n")), str(m["flagged"]), f"{m['seconds']:.1f}",
                      *((f"{m['accuracy_after']:.4f}", f"{100 * (m['accuracy_after'] - row['poisoned_accuracy']):+.1f}")
                        if then != "none" else ()),
                      *((f"{m['asr_after']:.3f}",) if then != "none" and backdoor else ()))
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
