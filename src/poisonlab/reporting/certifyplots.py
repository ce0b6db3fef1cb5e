"""The figure of `certify`: the aggregate's certified accuracy against the number of poisoned training items."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from poisonlab.reporting.flipplots import save  # noqa: E402


def certified_plot(doc: dict, path: Path) -> Path:
    """Certified accuracy (a lower bound of the accuracy under any B poisoned items) vs budget B, with the clean
    accuracy of the aggregate and of the average base model for reference."""
    budgets = [row["budget"] for row in doc["certified_accuracy"]]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.step(budgets, [row["accuracy"] for row in doc["certified_accuracy"]], where="post",
            label=f"certified accuracy ({doc['method'].upper()}, k={doc['partitions']})")
    ax.axhline(doc["clean_accuracy"], color="grey", linestyle="--", label="aggregate, no attack")
    ax.axhline(doc["base_accuracy_mean"], color="grey", linestyle=":", label="one base model (mean), no attack")
    ax.set_xlabel("poisoned training items (insertions, removals or label flips)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{doc['dataset']}: {doc['n_train']} training items, {doc['model']} base models", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)
