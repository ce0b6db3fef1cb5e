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


def certified_figure(doc: dict) -> plt.Figure:
    """Certified accuracy (a lower bound of the accuracy under any B poisoned items) vs budget B, a step line per
    certificate, with the clean accuracy of the aggregate and of the average base model for reference."""
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
    return fig


def certified_plot(doc: dict, path: Path) -> Path:
    """The `certified_figure` written to `path`."""
    return save(certified_figure(doc), path)


def guarantee_plot(doc: dict, path: Path) -> Path:
    """The guarantee beside the attacks (attacks.json): each certificate's certified accuracy vs budget B (a lower
    bound under ANY B poisoned items), and the accuracy the aggregate (filled markers) and one ordinary model (open
    markers, dashed) actually keep under each attack's B label flips."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    top = max(doc["budgets"])
    for name, figures in doc["certified"].items():
        rows = [r for r in figures["certified_accuracy"] if r["budget"] <= top]
        rows.append({"budget": top, "accuracy": rows[-1]["accuracy"]})  # it stays at its last value (0 past the radii)
        ax.step([r["budget"] for r in rows], [r["accuracy"] for r in rows], where="post", linewidth=2,
                label=f"certified lower bound ({name.upper()})")
    headline = next(iter(doc["certified"]))
    markers = {"random": "o", "biased": "s", "confident": "^"}
    for n, kind in enumerate(doc["attacks"]):
        rows = [r for r in doc["rows"] if r["attack"] == kind]
        budgets = [0] + [r["budget"] for r in rows]
        color = f"C{n + 2}"
        ax.plot(budgets, [doc["certified"][headline]["clean_accuracy"]]
                + [r["aggregate_accuracy"][headline] for r in rows], marker=markers.get(kind, "o"), color=color,
                label=f"aggregate ({headline.upper()}) under {kind} flips")
        ax.plot(budgets, [doc["ordinary_clean_accuracy"]] + [r["ordinary_accuracy"] for r in rows],
                marker=markers.get(kind, "o"), markerfacecolor="none", linestyle="--", color=color,
                label=f"one ordinary model under {kind} flips")
    ax.set_xlabel("poisoned training items B")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{doc['dataset']}: {doc['n_train']} training items, k={doc['partitions']} {doc['model']} base "
                 "models: the guarantee beside the attacks", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)
