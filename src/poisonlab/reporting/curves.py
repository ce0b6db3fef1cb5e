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


def size_name(size: int) -> str:
    """"first N" for a subset of N training items, "full" for all of them."""
    return f"first {size}" if size else "full"


def series_parts(row: dict) -> list[str]:
    """What sets a result row's curve apart, in legend order: kind, item selection, size, model, validation, biased
    rule, preset, defence (the settings left at their defaults are not named)."""
    parts = [row["kind"], size_name(row["dataset_size"])]
    if row.get("select", "random") != "random":
        parts.insert(1, f"{row['select']} items")
    if row["model"] != "smallcnn":
        parts.append(row["model"])
    if row["val"] == "test":
        parts.append("val=test")
    if row.get("biased_rule") not in (None, "readme"):
        parts.append(f"{row['biased_rule']} rule")
    if row.get("preset"):
        parts.append(f"{row['preset']} preset")
    if row.get("defence", "none") != "none":
        parts.append(f"{row['defence']} defence")
    return parts


def series_name(row: dict) -> str:
    """Legend label of the curve a result row belongs to."""
    return ", ".join(series_parts(row))


def break_points(kinds: dict[str, set], k: int) -> list[tuple[float, str, str]]:
    """(percent, kind, label) of each theoretical break point, where a class's true label stops being the most common
    label of its items, for the poisoning `kinds` present (kind -> its biased rules) and K = `k` classes: random at
    (K-1)/K; biased by the README's rule at 1/2; biased by the code's rule at 1/2 for classes 0 and 1 (each becomes
    the other) and 2/3 for the others (their poisoned items split evenly between classes 0 and 1)."""
    points = []
    if "random" in kinds:
        points.append((100 * (k - 1) / k, "random", f"random break point (K-1)/K = {100 * (k - 1) / k:.0f}%"))
    rules = kinds.get("biased", set())
    if rules & {None, "readme"}:
        points.append((50.0, "biased", "biased break point 1/2 = 50% (README rule)"))
    if "code" in rules:
        if not rules & {None, "readme"}:
            points.append((50.0, "biased", "biased break point, classes 0 and 1: 1/2 = 50% (code rule)"))
        if k > 2:
            points.append((200 / 3, "biased", "biased break point, classes 2+: 2/3 = 67% (code rule)"))
    return points


def curves(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """dataset -> series -> {kind, biased_rule, num_classes, dataset_size, parts, percents, mean, lo, hi, seeds, std}
    aggregated over seeds."""
    grouped: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    meta = {}
    for row in rows:
        key = (row["dataset"], series_name(row))
        grouped[key][row["percent"]].append(row["test_accuracy"])
        meta[key] = {"kind": row["kind"], "biased_rule": row.get("biased_rule"), "num_classes": row["num_classes"],
                     "dataset_size": row["dataset_size"], "parts": series_parts(row)}
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (dataset, name), by_pct in grouped.items():
        pcts = sorted(by_pct)
        accs = [np.array(by_pct[p]) for p in pcts]
        out[dataset][name] = {
            **meta[(dataset, name)], "percents": pcts,
            "mean": [float(a.mean()) for a in accs], "lo": [float(a.min()) for a in accs],
            "hi": [float(a.max()) for a in accs], "seeds": [len(a) for a in accs],
            "std": [float(a.std(ddof=1)) if len(a) > 1 else 0.0 for a in accs],
        }
    return out


def select(rows: list[dict], datasets: list[str] | None, kinds: tuple[str, ...]) -> list[dict]:
    """Rows of the wanted datasets and poisoning kinds."""
    return [r for r in rows if r["kind"] in kinds and (not datasets or r["dataset"] in datasets)]


def figure(data: dict[str, dict[str, dict]]) -> plt.Figure:
    """The curves of `curves`: one panel per dataset, a line (mean over seeds, min-max band) per series, the break
    points and chance marked."""
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
        for percent, kind, label in break_points(kinds_of(series), k):
            ax.axvline(percent, color=STYLE[kind][0], lw=0.8, ls=":", label=label)
        ax.axhline(1 / k, color="gray", lw=0.8, ls="-.", label=f"chance 1/K = {1 / k:.2f}")
        ax.set(title=dataset, xlabel="training labels poisoned (%)", ylabel="test accuracy", xlim=(0, 100), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Test accuracy vs share of poisoned training labels\n(mean over seeds, band = min-max)", fontsize=10)
    fig.tight_layout()
    return fig


def plot(data: dict[str, dict[str, dict]], path_stem: Path) -> list[Path]:
    """The curves' `figure` written as PNG and SVG; returns their paths."""
    return save(figure(data), path_stem)


def save(fig, path_stem: Path) -> list[Path]:
    """Write `fig` as `<stem>.png` and `<stem>.svg` (atomically), close it, and return the two paths."""
    paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".svg")]
    for path in paths:
        buf = io.BytesIO()
        fig.savefig(buf, format=path.suffix[1:], dpi=130)
        store.atomic_write(path, buf.getvalue())
    plt.close(fig)
    return paths


def kinds_of(series: dict[str, dict]) -> dict[str, set]:
    """The poisoning kinds of some curves, each with the biased rules among them."""
    kinds: dict[str, set] = defaultdict(set)
    for c in series.values():
        kinds[c["kind"]].add(c.get("biased_rule"))
    return kinds


def combined_lines(data: dict[str, dict[str, dict]]) -> dict[int, tuple[str, list[tuple[str, str, int, dict]]]]:
    """The curves of the one-axes figure, per training-set size: (title, [(dataset, legend label, variant, curve)]);
    labels name the dataset and what sets the curve apart from the others of that size (the rest is in the title);
    `variant` numbers the settings other than dataset and kind (a marker each)."""
    sizes = sorted({c["dataset_size"] for series in data.values() for c in series.values()})
    out = {}
    for size in sizes:
        curves_ = [(d, c) for d, series in sorted(data.items()) for _, c in sorted(series.items())
                   if c["dataset_size"] == size]
        parts = [[d, *(part for part in c["parts"] if part != size_name(size))] for d, c in curves_]
        shared = set.intersection(*(set(p) for p in parts)) - set(data)
        variants: dict[tuple, int] = {}
        lines = []
        for (dataset, c), names in zip(curves_, parts):
            rest = tuple(part for part in names[1:] if part not in shared and part != c["kind"])
            lines.append((dataset, " ".join(part for part in names if part not in shared),
                          variants.setdefault(rest, len(variants)), c))
        common = ", ".join(part for part in parts[0] if part in shared)
        out[size] = (f"Effect of poisoning various datasets: {size_name(size)}{', ' + common if common else ''}", lines)
    return out


def plot_combined(data: dict[str, dict[str, dict]], path_stem: Path) -> list[Path]:
    """The original experiment's figure: ONE axes per training-set size with every dataset, a colour per dataset,
    random solid and biased dashed, percent poisoned on x and accuracy (%) on y (means over seeds). Writes
    `<stem>_<full|first_N>.png` and `.svg` per size; returns their paths."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    order = {d: i for i, d in enumerate(sorted(data))}
    paths: list[Path] = []
    for size, (title, lines) in combined_lines(data).items():
        fig, ax = plt.subplots(figsize=(11, 5.5))
        for dataset, label, variant, c in lines:
            ax.plot(c["percents"], [100 * m for m in c["mean"]], "--" if c["kind"] == "biased" else "-",
                    color=colors[order[dataset] % len(colors)], marker="os^Dvx*P"[variant % 8], ms=3, label=label)
        ax.set(title=title + " (mean over seeds)", xlabel="Percent poisoned", ylabel="Accuracy (%)", xlim=(0, 100),
               ylim=(0, 101))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths += save(fig, path_stem.with_name(f"{path_stem.name}_{size_name(size).replace(' ', '_')}"))
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


def analyse(out: Path, datasets: list[str] | None, kinds: tuple[str, ...], combined: bool = False) -> dict:
    """Draw the curves of the chosen runs under `out` (with `combined`, also the original experiment's one-axes
    figure per training-set size); returns the written paths and the missing datasets."""
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
    if combined:
        paths += plot_combined(data, out / "plots" / "combined")
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
