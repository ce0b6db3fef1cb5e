"""The figure of `certify`: the aggregate's certified accuracy against the number of poisoned training items."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from poisonlab.reporting.flipplots import save  # noqa: E402


def methods(doc: dict) -> dict:
    """{method: its clean accuracy, median radius and certified accuracy} of a certify.json (studies made before
    FA and ROE hold one method, at the top level)."""
    return doc.get("methods") or {doc["method"]: doc}


def certified_plot(doc: dict, path: Path) -> Path:
    """Certified accuracy (a lower bound of the accuracy under any B poisoned items) vs budget B, with the clean
    accuracy of the aggregate and of the average base model for reference."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    spread = f", d={doc['spread']}" if doc.get("spread", 1) > 1 else ""
    for name, figures in methods(doc).items():
        ax.step([row["budget"] for row in figures["certified_accuracy"]],
                [row["accuracy"] for row in figures["certified_accuracy"]], where="post",
                label=f"certified accuracy ({name.upper()}, k={doc['partitions']}{spread})")
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
