"""The figures of `detect`: detection quality vs poison rate, and test accuracy recovered by cleaning."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from poisonlab.reporting.flipplots import save  # noqa: E402


def changed_percent(row: dict) -> float:
    """The measured share of changed labels of a detect.json row, in percent (files before `changed_percent` existed
    stored that percent as `rate`; rows now hold `rate` as a fraction)."""
    return row["changed_percent"] if "changed_percent" in row else row["rate"]


def _series(doc: dict) -> dict[tuple[str, str], list[tuple[float, dict, dict]]]:
    """(kind, method) -> [(rate, row, method result)] sorted by rate."""
    series: dict[tuple[str, str], list] = {}
    for row in doc["rows"]:
        for m in row["methods"]:
            series.setdefault((row["kind"], m["method"]), []).append((changed_percent(row), row, m))
    return {key: sorted(points, key=lambda p: p[0]) for key, points in series.items()}


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINES = ("-", "--", ":", "-.")


def _rates(series: dict) -> tuple[float, float]:
    """The x range spanning every measured poison rate, with a margin."""
    rates = [p[0] for points in series.values() for p in points]
    low, high = min(rates), max(rates)
    pad = max(0.5, 0.05 * (high - low))
    return low - pad, high + pad


def quality_plot(doc: dict, path: Path) -> Path:
    """Precision, recall, F1 and ROC AUC vs poison rate: a colour per method, a marker and line style per kind."""
    series, methods = _series(doc), list(doc["methods"])
    kinds = list(dict.fromkeys(k for k, _ in series))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), layout="constrained")
    for ax, metric in zip(axes, ("precision", "recall", "f1", "roc_auc")):
        for (kind, method), points in series.items():
            k = kinds.index(kind)
            ax.plot([p[0] for p in points], [np.nan if p[2][metric] is None else p[2][metric] for p in points],
                    marker=MARKERS[k % len(MARKERS)], color=f"C{methods.index(method)}", ls=LINES[k % len(LINES)],
                    label=f"{method} ({kind})" if len(kinds) > 1 else method)
        ax.set(title=metric.replace("roc_auc", "ROC AUC").replace("f1", "F1"), xlabel="wrong labels (%)", ylim=(0, 1.02),
               xlim=_rates(series))
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
        ax.set(title=kind, xlabel="wrong labels (%)", ylabel="test accuracy",
               xlim=_rates({key: points for key, points in series.items() if key[0] == kind}))
        ax.grid(alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    fig.suptitle(f"Recovery: {doc['dataset']} ({doc['n_train']} items), {doc['retrain']['model']} retrained")
    return save(fig, path)
