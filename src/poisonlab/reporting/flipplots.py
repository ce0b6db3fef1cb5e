"""Figures of a flip experiment (PNG, written atomically): counts, flipped images, accuracies, confusion matrices."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from poisonlab import store  # noqa: E402
from poisonlab.datasets import Dataset  # noqa: E402

GRID_MAX = 32
CLEAN, POISONED, SOURCE, TARGET = "#4c72b0", "#dd8452", "#c44e52", "#55a868"


def save(fig: plt.Figure, path: Path) -> Path:
    """Write `fig` as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    store.atomic_write(path, buf.getvalue())
    return path


def _title(doc: dict) -> str:
    seeds = len(doc["seeds"])
    return (f"{doc['dataset']} {doc['model']}: {doc['source']['name']} → {doc['target']['name']} "
            f"({doc['n_train']} train, {doc['n_test']} test, {seeds} seed{'s' if seeds > 1 else ''})")


def _largest(doc: dict) -> dict:
    """The summary row with the most flips."""
    return max(doc["summary"], key=lambda s: s["n"])


def _err(values: list[dict | None], scale: float = 100.0) -> np.ndarray | None:
    """Error-bar half-widths (std, in the bars' units) when there are several seeds."""
    stds = [v["std"] * scale if v and v["std"] is not None else 0.0 for v in values]
    return np.asarray(stds) if any(stds) else None


def _signed(value: dict | None) -> str:
    """A change in percentage points, with '± std' on a second line for several seeds."""
    if value is None:
        return ""
    return f"{100 * value['mean']:+.2f}" + (f"\n± {100 * value['std']:.2f}" if value["std"] is not None else "")


def _means(values: list[dict | None], scale: float = 100.0) -> np.ndarray:
    return np.asarray([v["mean"] * scale if v else np.nan for v in values])


def class_counts(doc: dict, path: Path) -> Path:
    """Training class counts before and after the largest flip, the -N and +N marked."""
    run = max(doc["runs"], key=lambda r: r["n"])
    before, after = np.asarray(run["counts_before"]), np.asarray(run["counts_after"])
    x, diff = np.arange(len(before)), after - before
    rotation = 30 if len(x) > 10 or max(map(len, doc["classes"])) > 5 else 0
    fig, (ax, change) = plt.subplots(1, 2, figsize=(max(10.0, 1.2 * len(x)), 4), width_ratios=[2, 1], layout="constrained")
    ax.bar(x - 0.2, before, 0.4, label="before", color=CLEAN)
    ax.bar(x + 0.2, after, 0.4, label=f"after N={run['n']}", color=POISONED)
    change.bar(x, diff, color=[SOURCE if d < 0 else TARGET for d in diff])
    for i in np.flatnonzero(diff):
        ax.annotate(f"{diff[i]:+d}", (x[i] + 0.2, max(after[i], before[i])), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontweight="bold", color=SOURCE if diff[i] < 0 else TARGET)
        change.annotate(f"{diff[i]:+d}", (x[i], diff[i]), xytext=(0, 3 if diff[i] > 0 else -12), textcoords="offset points",
                        ha="center", fontweight="bold", color=SOURCE if diff[i] < 0 else TARGET)
    ax.set_ylim(0, max(before.max(), after.max()) * 1.25)
    ax.set_ylabel("training items")
    ax.set_title("Training class counts")
    ax.legend(loc="upper center", ncol=2)
    change.axhline(0, color="black", lw=0.8)
    change.set_ylim(-abs(diff).max() * 1.3 - 1, abs(diff).max() * 1.3 + 1)
    change.set_ylabel("after − before")
    change.set_title("Zoom: the change")
    ax.set_xticks(x, doc["classes"], rotation=rotation)
    change.set_xticks(x, doc["classes"], rotation=3 * rotation)
    fig.suptitle(f"Flipping {run['n']} {doc['source']['name']} → {doc['target']['name']} "
                 f"({doc['dataset']}, {doc['n_train']} training items)")
    return save(fig, path)


def flipped_grid(doc: dict, data: Dataset, path: Path) -> Path:
    """The first flipped images of the largest N in one mosaic: original label above, new label below."""
    run = max(doc["runs"], key=lambda r: (r["n"], -r["seed"]))
    idx = run["changed_indices"][:GRID_MAX]
    cols = min(8, max(len(idx), 1))
    rows = max(1, -(-len(idx) // cols))
    h, w, channels = data.x_train.shape[1:]
    gap_x, gap_y = w // 4, max(2, round(0.15 * h)) + 1  # room for one line of text above and below each image
    mosaic = np.full((rows * (h + 2 * gap_y), cols * (w + gap_x), channels), 255, dtype=np.uint8)
    width = 1.3 * cols
    fig, ax = plt.subplots(figsize=(width, width * mosaic.shape[0] / mosaic.shape[1] + 0.5), layout="constrained")
    for k, i in enumerate(idx):
        top, left = (k // cols) * (h + 2 * gap_y) + gap_y, (k % cols) * (w + gap_x) + gap_x // 2
        mosaic[top : top + h, left : left + w] = data.x_train[i]
        ax.text(left + w / 2, top - 1, f"#{i} {data.classes[data.y_train[i]]}", ha="center", va="bottom",
                fontsize=7, color=SOURCE)
        ax.text(left + w / 2, top + h + 1, f"→ {doc['target']['name']}", ha="center", va="top", fontsize=7, color=TARGET)
    ax.imshow(mosaic[..., 0] if channels == 1 else mosaic, cmap="gray" if channels == 1 else None, vmin=0, vmax=255,
              interpolation="nearest")
    ax.axis("off")
    shown = f"first {len(idx)} of {run['n']}" if run["n"] > len(idx) else f"all {len(idx)}"
    fig.suptitle(f"Poisoned training images ({shown}, seed {run['seed']}):\noriginal label above, new label below",
                 fontsize=9)
    return save(fig, path)


def accuracy_figure(doc: dict) -> plt.Figure:
    """Overall test accuracy per N (a bar each, the clean model first), and a zoomed view of its change against the
    clean model (seed spread as error bars)."""
    rows = doc["summary"]
    labels = ["clean" if s["n"] == 0 else f"N={s['n']}" for s in rows]
    x = np.arange(len(rows))
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(max(9.0, 1.6 * len(rows) + 3), 4), layout="constrained")
    acc = [s["overall_accuracy"] for s in rows]
    ax.bar(x, _means(acc), yerr=_err(acc), capsize=4, color=[CLEAN if s["n"] == 0 else POISONED for s in rows])
    for i, v in enumerate(_means(acc)):
        ax.text(i, 2, f"{v:.2f}", ha="center", va="bottom", fontsize=8, color="white", fontweight="bold")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 105)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Overall test accuracy")
    delta = [s["delta_overall_accuracy"] for s in rows]
    zoom.bar(x, _means(delta), yerr=_err(delta), capsize=4, color=[CLEAN if s["n"] == 0 else POISONED for s in rows])
    if len(doc["seeds"]) > 1:
        clean = {r["seed"]: r["overall_accuracy"] for r in doc["runs"] if r["n"] == 0}
        for i, s in enumerate(rows):
            points = [100 * (r["overall_accuracy"] - clean[r["seed"]]) for r in doc["runs"]
                      if r["n"] == s["n"] and r["seed"] in clean]
            zoom.scatter([i] * len(points), points, color="black", s=12, zorder=3, label="one seed" if i == 0 else None)
        zoom.legend(fontsize=8)
    zoom.axhline(0, color="black", lw=0.8)
    zoom.set_xticks(x, [f"{label}\n{_signed(d)}" for label, d in zip(labels, delta)])
    zoom.set_ylabel("change in test accuracy (percentage points)")
    zoom.set_title("Zoom: poisoned − clean, same seed")
    low, high = zoom.get_ylim()
    zoom.set_ylim(min(low * 1.1, -0.5), max(high * 1.1, 0.5))
    fig.suptitle(_title(doc), fontsize=10)
    return fig


def accuracy(doc: dict, path: Path) -> Path:
    """The `accuracy_figure` written to `path`."""
    return save(accuracy_figure(doc), path)


def _submatrix(ax: plt.Axes, matrix: np.ndarray, names: list[str], top: float, title: str) -> None:
    """A 2x2 confusion sub-matrix with its counts written in, coloured on a 0..top scale."""
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(top, 1))
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, _number(v), ha="center", va="center", fontsize=11, color="white" if v > top * 0.6 else "black")
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)


def _number(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def source_target(doc: dict, path: Path) -> Path:
    """Source and target per-class accuracy per N, and the two-class confusion sub-matrix, clean vs largest N."""
    rows, src, tgt = doc["summary"], doc["source"], doc["target"]
    pair, names = [src["index"], tgt["index"]], [src["name"], tgt["name"]]
    x = np.arange(len(rows))
    fig = plt.figure(figsize=(max(12.0, 1.3 * len(rows) + 8), 4), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[max(2.0, 0.5 * len(rows)), 1, 1])
    ax = fig.add_subplot(grid[0])
    bars = ((-0.2, "source_accuracy", SOURCE, src["name"]), (0.2, "target_accuracy", TARGET, tgt["name"]))
    for offset, key, colour, name in bars:
        values = [s[key] for s in rows]
        ax.bar(x + offset, _means(values), 0.4, yerr=_err(values), capsize=3, color=colour, label=f"{name} accuracy")
        for i, v in enumerate(_means(values)):
            ax.text(i + offset, 2, f"{v:.1f}", ha="center", va="bottom", fontsize=7, color="white", fontweight="bold")
    ax.set_xticks(x, ["clean" if s["n"] == 0 else f"N={s['n']}" for s in rows])
    ax.set_ylim(0, 122)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("per-class test accuracy (%)")
    ax.set_title("Source and target class accuracy")
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    largest = _largest(doc)
    clean = next((s for s in rows if s["n"] == 0), rows[0])
    matrices = [np.asarray(row["confusion"])[np.ix_(pair, pair)] for row in (clean, largest)]
    top = max(m.max() for m in matrices)
    for cell, row, matrix in zip((grid[1], grid[2]), (clean, largest), matrices):
        title = "clean" if row["n"] == 0 else f"poisoned N={row['n']}"
        _submatrix(fig.add_subplot(cell), matrix, names, top, title + (" (seed mean)" if len(doc["seeds"]) > 1 else ""))
    fig.suptitle(_title(doc), fontsize=10)
    return save(fig, path)


def confusion(doc: dict, path: Path) -> Path:
    """Full confusion matrices of the clean and the largest-N model, and their difference."""
    rows = {s["n"]: s for s in doc["summary"]}
    largest = _largest(doc)
    clean = np.asarray(rows.get(0, largest)["confusion"])
    poisoned = np.asarray(largest["confusion"])
    k = len(doc["classes"])
    size = max(4.5, 0.45 * k + 1.5)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size), layout="constrained")
    diff = poisoned - clean
    limit = max(np.abs(diff).max(), 1)
    top = max(clean.max(), poisoned.max(), 1)
    panels = ((clean, "clean", "Blues", 0, top), (poisoned, f"poisoned N={largest['n']}", "Blues", 0, top),
              (diff, "poisoned − clean", "RdBu_r", -limit, limit))
    for ax, (matrix, title, cmap, low, high) in zip(axes, panels):
        ax.imshow(matrix, cmap=cmap, vmin=low, vmax=high)
        for (i, j), v in np.ndenumerate(matrix if k <= 20 else []):
            if v or low == 0:
                ax.text(j, i, _number(v), ha="center", va="center", fontsize=7,
                        color="white" if abs(v) > 0.6 * high else "black")
        ax.set_xticks(range(k), doc["classes"], rotation=90 if k > 10 or max(map(len, doc["classes"])) > 2 else 0,
                      fontsize=8)
        ax.set_yticks(range(k), doc["classes"], fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title + (" (seed mean)" if len(doc["seeds"]) > 1 else ""), fontsize=10)
    fig.suptitle(_title(doc), fontsize=10)
    return save(fig, path)


PLAIN_TEXT = {"text.parse_math": False}  # class names such as "$x^2$" are labels, never mathtext


@matplotlib.rc_context(PLAIN_TEXT)
def write_all(doc: dict, data: Dataset, folder: Path) -> list[Path]:
    """Every flip figure into `folder` (the grid of flipped images only when the items are images)."""
    grid = [flipped_grid(doc, data, folder / "flipped_images.png")] if data.x_train.ndim == 4 else []
    return [class_counts(doc, folder / "class_counts.png"), *grid, accuracy(doc, folder / "accuracy.png"),
            source_target(doc, folder / "source_target.png"), confusion(doc, folder / "confusion.png")]


def _probe_panel(ax: plt.Axes, result: dict, probes: list[dict]) -> None:
    """Probes as points (green: below the threshold) on the curve, numbered in probe order."""
    probes = sorted(probes, key=lambda p: p["n"])
    ns, values = [p["n"] for p in probes], [p["value"] * 100 for p in probes]
    ax.plot(ns, values, "-", color=CLEAN, lw=1, zorder=1)
    ax.scatter(ns, values, c=[TARGET if p["below"] else SOURCE for p in probes], zorder=2)
    for p in probes:
        ax.annotate(str(p["order"]), (p["n"], p["value"] * 100), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.axhline(result["below"] * 100, color="gray", ls="--", label=f"threshold {result['below']:.0%}")
    if result["found"] is not None:
        ax.axvline(result["found"], color=TARGET, ls=":", label=f"smallest N = {result['found']}")
    ax.set_ylabel(f"{result['metric']} (%)")


@matplotlib.rc_context(PLAIN_TEXT)
def budget_curve(result: dict, path: Path) -> Path:
    """The metric against N over every probe, the threshold, the smallest N found, and a zoom on the bisection."""
    probes = result["probes"]
    bisection = [p for p in probes if p["phase"] == "bisection"]
    fig, axes = plt.subplots(1, 2 if bisection else 1, figsize=(12 if bisection else 8, 4.5), squeeze=False,
                             layout="constrained")
    overview = axes[0, 0]
    _probe_panel(overview, result, probes)
    overview.set_xscale("symlog", linthresh=1)
    overview.set_xlim(left=-0.2)
    overview.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    overview.set_xlabel(f"N {result['source']} labels flipped to {result['target']} (symlog scale)")
    overview.set_title("All probes (numbers: probe order)", fontsize=10)
    overview.legend(fontsize=8)
    if bisection:
        exponential = [p["n"] for p in probes if p["phase"] != "bisection"]
        high = min(p["n"] for p in probes if p["phase"] != "bisection" and p["below"])
        low = max(n for n in exponential if n < high)
        zoom = axes[0, 1]
        _probe_panel(zoom, result, [p for p in probes if low <= p["n"] <= high])
        zoom.set_xlabel(f"N (linear scale, bisection between {low} and {high})")
        zoom.set_title("Zoom: bisection", fontsize=10)
    fig.suptitle(f"Attack budget search: {result['dataset']} {result['model']}, {result['source']} → "
                 f"{result['target']}, {result['metric']} below {result['below']:.0%}", fontsize=11)
    return save(fig, path)
