"""Accuracy-vs-poison curves from the results table: mean over seeds, min-max band, break points marked."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from poisonlab import store  # noqa: E402
from poisonlab.errors import PoisonlabError  # noqa: E402

STYLE = {"random": ("tab:blue", "-"), "biased": ("tab:red", "--")}


def series_name(row: dict) -> str:
    """Legend label of the curve a result row belongs to."""
    parts = [row["kind"], f"first {row['dataset_size']}" if row["dataset_size"] else "full"]
    if row.get("select", "random") != "random":
        parts.insert(1, f"{row['select']} items")
    if row["model"] != "smallcnn":
        parts.append(row["model"])
    if row["val"] == "test":
        parts.append("val=test")
    return ", ".join(parts)


def curves(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """dataset -> series -> {kind, num_classes, percents, mean, lo, hi, seeds, std} aggregated over seeds."""
    grouped: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    meta = {}
    for row in rows:
        key = (row["dataset"], series_name(row))
        grouped[key][row["percent"]].append(row["test_accuracy"])
        meta[key] = (row["kind"], row["num_classes"])
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (dataset, name), by_pct in grouped.items():
        pcts = sorted(by_pct)
        accs = [np.array(by_pct[p]) for p in pcts]
        out[dataset][name] = {
            "kind": meta[(dataset, name)][0], "num_classes": meta[(dataset, name)][1], "percents": pcts,
            "mean": [float(a.mean()) for a in accs], "lo": [float(a.min()) for a in accs],
            "hi": [float(a.max()) for a in accs], "seeds": [len(a) for a in accs],
            "std": [float(a.std(ddof=1)) if len(a) > 1 else 0.0 for a in accs],
        }
    return out


def select(rows: list[dict], datasets: list[str] | None, kinds: tuple[str, ...]) -> list[dict]:
    """Rows of the wanted datasets and poisoning kinds."""
    return [r for r in rows if r["kind"] in kinds and (not datasets or r["dataset"] in datasets)]


def plot(data: dict[str, dict[str, dict]], path_stem: Path) -> list[Path]:
    """One panel per dataset; writes PNG and SVG and returns their paths."""
    n = len(data)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.5 * rows), squeeze=False)
    for ax, (dataset, series) in zip(axes.flat, sorted(data.items())):
        shades = defaultdict(int)
        for name, c in sorted(series.items()):
            color, line = STYLE.get(c["kind"], ("tab:gray", ":"))
            alpha = 1.0 - 0.35 * shades[c["kind"]]
            shades[c["kind"]] += 1
            seeds = f" ({max(c['seeds'])} seeds)" if max(c["seeds"]) > 1 else ""
            ax.plot(c["percents"], c["mean"], line, marker="o", ms=3, color=color, alpha=alpha, label=name + seeds)
            ax.fill_between(c["percents"], c["lo"], c["hi"], color=color, alpha=0.15 * alpha, linewidth=0)
        k = next(iter(series.values()))["num_classes"]
        kinds = {c["kind"] for c in series.values()}
        if "random" in kinds:
            ax.axvline(100 * (k - 1) / k, color=STYLE["random"][0], lw=0.8, ls=":", label=f"random break point (K-1)/K = {100 * (k - 1) / k:.0f}%")
        if "biased" in kinds:
            ax.axvline(50, color=STYLE["biased"][0], lw=0.8, ls=":", label="biased break point 1/2 = 50%")
        ax.axhline(1 / k, color="gray", lw=0.8, ls="-.", label=f"chance 1/K = {1 / k:.2f}")
        ax.set(title=dataset, xlabel="training labels poisoned (%)", ylabel="test accuracy", xlim=(0, 100), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Test accuracy vs share of poisoned training labels\n(mean over seeds, band = min-max)", fontsize=10)
    fig.tight_layout()
    paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".svg")]
    for path in paths:
        buf = io.BytesIO()
        fig.savefig(buf, format=path.suffix[1:], dpi=130)
        store.atomic_write(path, buf.getvalue())
    plt.close(fig)
    return paths


def write_curves_csv(data: dict[str, dict[str, dict]], path: Path) -> None:
    """The aggregated curves as a CSV (dataset, series, percent, mean, min, max, seeds)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "series", "kind", "percent", "mean_accuracy", "min_accuracy", "max_accuracy", "seeds"])
    for dataset, series in sorted(data.items()):
        for name, c in sorted(series.items()):
            for i, p in enumerate(c["percents"]):
                w.writerow([dataset, name, c["kind"], p, f"{c['mean'][i]:.4f}", f"{c['lo'][i]:.4f}", f"{c['hi'][i]:.4f}", c["seeds"][i]])
    store.atomic_write(path, buf.getvalue())


def analyse(out: Path, datasets: list[str] | None, kinds: tuple[str, ...]) -> dict:
    """Draw the curves of the chosen runs under `out`; returns the written paths and the missing datasets."""
    rows = store.results_rebuilt(out)
    chosen = select(rows, datasets, kinds)
    if not chosen:
        raise PoisonlabError(
            f"no {'/'.join(kinds)} runs{' for ' + ', '.join(datasets) if datasets else ''} in {out}; "
            "run `poisonlab train` first or give the folder that holds them"
        )
    data = curves(chosen)
    stem = out / "plots" / ("accuracy_vs_poison" + ("" if len(kinds) > 1 else f"_{kinds[0]}"))
    paths = plot(data, stem)
    write_curves_csv(data, stem.with_suffix(".csv"))
    missing = [d for d in datasets or [] if d not in data]
    return {"paths": paths + [stem.with_suffix(".csv")], "missing": missing, "curves": data}


def halving_percent(percents: list[float], means: list[float]) -> float | None:
    """Poison percent where accuracy first falls to half of its 0% value (linear between measured points); None if never."""
    if not percents or percents[0] != 0:
        return None
    half = means[0] / 2
    for (p0, a0), (p1, a1) in zip(zip(percents, means), zip(percents[1:], means[1:])):
        if a1 <= half:
            return p1 if a0 == a1 else p0 + (a0 - half) * (p1 - p0) / (a0 - a1)
    return None


def interpolate(percents: list[float], means: list[float], at: float) -> float | None:
    """Mean accuracy of a curve at percent `at` (linear between measured points); None outside the measured range."""
    if not percents or not percents[0] <= at <= percents[-1]:
        return None
    return float(np.interp(at, percents, means))
