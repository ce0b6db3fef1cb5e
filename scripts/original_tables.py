"""Print the Markdown tables of docs/tutorials/original.md from the preset study's results (docs/original/results.csv)
and the smallcnn sweep beside it (docs/sweep_mnist_fashion_1000.csv).

    python scripts/original_tables.py > /tmp/tables.md
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
PERCENTS = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def preset_runs() -> dict[tuple[str, str, float], list[float]]:
    """(dataset, kind, percent) -> test accuracies, one per seed."""
    runs: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    with open(DOCS / "original" / "results.csv") as f:
        for row in csv.DictReader(f):
            runs[(row["dataset"], row["kind"], float(row["percent"]))].append(float(row["test_accuracy"]))
    return runs


def smallcnn_means() -> dict[tuple[str, str, float], float]:
    """(dataset, kind, percent) -> mean test accuracy of the smallcnn sweep (poisoned 10 % hold-out)."""
    with open(DOCS / "sweep_mnist_fashion_1000.csv") as f:
        return {(r["dataset"], r["kind"], float(r["percent"])): float(r["mean_accuracy"]) for r in csv.DictReader(f)}


def main() -> None:
    runs, small = preset_runs(), smallcnn_means()
    print("| dataset | poisoning | " + " | ".join(f"{p} %" for p in PERCENTS) + " |")
    print("|---|---|" + "---|" * len(PERCENTS))
    for dataset in NAMES:
        for kind in ("random", "biased"):
            cells = []
            for p in PERCENTS:
                accs = runs.get((dataset, kind, float(p)), [])
                cell = f"{100 * sum(accs) / len(accs):.1f}" if accs else "–"
                if len(accs) > 1 and max(accs) - min(accs) >= 0.1:
                    cell += f" ({100 * min(accs):.0f}–{100 * max(accs):.0f})"
                cells.append(cell + (f" [{len(accs)}]" if accs and len(accs) < 3 else ""))
            print(f"| {NAMES[dataset]} | {kind}, preset | " + " | ".join(cells) + " |")
            cells = [f"{100 * small[(dataset, kind, float(p))]:.1f}" if (dataset, kind, float(p)) in small else "–"
                     for p in PERCENTS]
            print(f"| {NAMES[dataset]} | {kind}, smallcnn | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
