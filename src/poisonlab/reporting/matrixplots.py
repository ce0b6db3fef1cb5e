"""The attack x defence matrix's files: a CSV and JSON of its cells, and a heatmap of the damage recovered."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from poisonlab import store  # noqa: E402
from poisonlab.reporting.flipplots import save  # noqa: E402

CSV_COLUMNS = ("attack", "percent", "defence", "seeds", "accuracy", "accuracy_std", "attack_success_rate", "recovered",
               "recovered_std", "epoch_time_ratio", "time_ratio")


def csv_text(rows: list[dict]) -> str:
    """The matrix's cells as CSV text, one row per (attack, percent, defence)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def heatmap(doc: dict, path: Path) -> Path:
    """Share of the damage recovered (accuracy for label flips, attack success rate for backdoors), mean over seeds:
    a row per poisoned (attack, percent), a column per defence (no defence left out), the mean and std written in
    each cell; accuracy where nothing was lost."""
    rows = [r for r in doc["cells"] if r["attack"] != "clean" and r["percent"] > 0]
    lines = list(dict.fromkeys((r["attack"], r["percent"]) for r in rows))
    names = [d for d in doc["defences"] if d != "none"]
    grid = np.full((len(lines), len(names)), np.nan)
    text = [["" for _ in names] for _ in lines]
    for r in rows:
        if r["defence"] not in names:
            continue
        i, j = lines.index((r["attack"], r["percent"])), names.index(r["defence"])
        if r["recovered"] is not None:
            grid[i, j] = r["recovered"]
            text[i][j] = f"{r['recovered']:.2f}" + (f"\n±{r['recovered_std']:.2f}" if r["seeds"] > 1 else "")
        else:
            text[i][j] = f"acc {r['accuracy']:.3f}"
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 3, 0.55 * len(lines) + 2), layout="constrained")
    image = ax.imshow(np.clip(grid, -1, 1), cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(lines)):
        for j in range(len(names)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(lines)), [f"{a} {p:g}%" for a, p in lines])
    fig.colorbar(image, ax=ax, label="share of the damage recovered\n(flips: accuracy; backdoors: attack success)")
    fig.suptitle(f"Attack x defence: {doc['dataset']}"
                 f"{' first ' + str(doc['dataset_size']) if doc['dataset_size'] else ''}, {doc['model']}, "
                 f"{len(doc['seeds'])} seed{'s' if len(doc['seeds']) > 1 else ''}")
    return save(fig, path)


def write_outputs(doc: dict, out: Path) -> list[Path]:
    """matrix.json, matrix.csv and matrix.png under `out`; returns their paths."""
    store.write_json(out / "matrix.json", doc)
    store.atomic_write(out / "matrix.csv", csv_text(doc["cells"]))
    paths = [out / "matrix.json", out / "matrix.csv"]
    if any(r["attack"] != "clean" and r["percent"] > 0 for r in doc["cells"]):
        paths.append(heatmap(doc, out / "matrix.png"))
    return paths
