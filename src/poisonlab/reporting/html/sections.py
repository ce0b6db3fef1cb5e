"""The report's sweep sections (overview, curves, per-class accuracy, halving points, provenance) as HTML fragments."""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape

import numpy as np

from poisonlab.attacks import humanlabels
from poisonlab.reporting.curves import curves, interpolate, series_name
from poisonlab.reporting.html import charts
from poisonlab.reporting.html.collect import Study, dataset_order
from poisonlab.reporting.html.page import minutes, note, size_text, table


def overview(study: Study) -> str:
    """What the folder holds: one line per run group, flips and detections counted."""
    groups = sorted(study.groups, key=lambda g: dataset_order(g["dataset"]))
    rows = [[g["dataset"], size_text(g["dataset_size"]), g["kind"], g["model"], g["runs"], len(g["percents"]),
             ", ".join(map(str, g["seeds"])), minutes(g["total_seconds"])] for g in groups]
    parts = [table(["dataset", "training set", "poisoning", "model", "runs", "percents", "seeds", "compute"], rows, 4)]
    parts.append(note(f"{len(study.rows)} runs, {len(study.flips)} targeted-flip studies, "
                      f"{len(study.detections)} detection studies and {len(study.backdoors)} backdoor studies in {study.out}."))
    if study.skipped:
        parts.append(note("Left out (re-run the command that wrote them): " + "; ".join(study.skipped)))
    return "".join(parts)


def human_points(study: Study) -> dict[str, list[dict]]:
    """CIFAR-10N runs per dataset, aggregated over seeds, at their measured noise rate, with their random-curve twin."""
    points: dict[str, list[dict]] = defaultdict(list)
    for dataset, series in curves(study.human).items():
        for name, c in sorted(series.items()):
            rest = name[len(c["kind"]):]  # ", first 10000[, model]": the same run settings as the random curve
            points[dataset].append({"name": f"CIFAR-10N {c['kind'].partition(':')[2]}{rest}",
                                    "label": c["kind"].partition(":")[2], "random_series": "random" + rest,
                                    "percent": c["percents"][0], "mean": c["mean"][0], "lo": c["lo"][0],
                                    "hi": c["hi"][0], "seeds": c["seeds"][0]})
    return points


def _accuracy_table(series: dict[str, dict]) -> str:
    """Accuracy at each percent (mean ± std over seeds) with one column per series."""
    names = sorted(series)
    percents = sorted({p for c in series.values() for p in c["percents"]})
    rows = []
    for p in percents:
        cells = []
        for name in names:
            c = series[name]
            if p not in c["percents"]:
                cells.append(None)
                continue
            i = c["percents"].index(p)
            spread = f" ± {c['std'][i]:.3f}" if c["seeds"][i] > 1 else ""
            cells.append(f"{c['mean'][i]:.3f}{spread} (n={c['seeds'][i]})")
        rows.append([f"{p:g}%", *cells])
    return table(["poisoned", *names], rows)


def curves_section(study: Study, data: dict[str, dict[str, dict]]) -> str:
    """Per dataset: the interactive chart and the accuracy table; CIFAR-10N points beside the random curve."""
    humans = human_points(study)
    parts = [note("Lines: mean test accuracy over seeds; bands: min to max over seeds. Dotted lines mark the "
                  "theoretical break points: random poisoning leaves the true label the most common one until "
                  "(K-1)/K of the labels are poisoned; biased poisoning by the README's rule (class 0, or 1 for a "
                  "true 0) until 1/2; by the original code's rule (class 0 or 1 with equal odds) until 1/2 for "
                  "classes 0 and 1 and 2/3 for the others. Click legend entries to toggle series; hover for values.")]
    if len(data) > 1:
        parts.append("<h3>All datasets on one axes (the original experiment's figure)</h3>")
        parts += [f'<div class="chart">{chart}</div>' for chart in charts.combined_charts(data, "chart-combined")]
    for i, dataset in enumerate(sorted(set(data) | set(humans), key=dataset_order)):
        series = data.get(dataset, {})
        parts.append(f"<h3>{escape(dataset)}</h3>")
        parts.append(f'<div class="chart">{charts.sweep_chart(dataset, series, humans.get(dataset, []), f"chart-sweep-{i}")}</div>')
        if series:
            parts.append(_accuracy_table(series))
        if dataset in humans:
            parts.append(_human_table(humans[dataset], series))
        parts.append(_per_class(study, dataset, i))
    return "".join(parts)


def _per_class(study: Study, dataset: str, index: int) -> str:
    """Heatmaps of per-class test accuracy vs poison percent, one per random/biased series of `dataset`."""
    groups = [g for g in study.groups if g["dataset"] == dataset and not humanlabels.is_kind(g["kind"])
              and len(g["per_class"]) > 1]
    if not groups:
        return ""
    cells = [charts.per_class_chart(series_name(g), g["classes"], g["per_class"], f"chart-class-{index}-{j}")
             for j, g in enumerate(groups)]
    return ("<h4>Per-class test accuracy (seed means)</h4>"
            + note("What to look for: biased poisoning moves labels to the first class (the second for first-class "
                   "items), so those two classes should hold up while the others fall; random poisoning spreads the "
                   "damage over all classes.")
            + '<div class="cols">' + "".join(f'<div class="chart half">{c}</div>' for c in cells) + "</div>")


def _human_table(points: list[dict], series: dict[str, dict]) -> str:
    """CIFAR-10N accuracy next to the random-poisoning curve's accuracy at the same noise rate."""
    rows = []
    for p in points:
        curve = series.get(p["random_series"])
        expected = interpolate(curve["percents"], curve["mean"], p["percent"]) if curve else None
        rows.append([p["label"], f"{p['percent']:.1f}%", f"{p['mean']:.3f}", p["seeds"],
                     None if expected is None else f"{expected:.3f}",
                     None if expected is None else f"{p['mean'] - expected:+.3f}"])
    return ("<h4>Human label noise (CIFAR-10N) beside random poisoning</h4>"
            + table(["labels", "measured noise", "test accuracy", "seeds", "random curve at same rate", "difference"], rows))


def halving_section(data: dict[str, dict[str, dict]]) -> str:
    """The 'how much poison until accuracy halves' chart and table."""
    rows = charts.halving_rows(data)
    if not rows:
        return note("No sweep runs.")
    table_rows = [[r["dataset"], r["series"], None if r["clean"] is None else f"{r['clean']:.3f}",
                   f"{r['halving']:.1f}%" if r["halving"] is not None else f"not reached up to {r['max_percent']:g}%"]
                  for r in rows]
    reached = any(r["halving"] is not None for r in rows)
    return (note("Poison share at which mean test accuracy first falls to half of the unpoisoned accuracy, "
                 "interpolated linearly between measured percents.")
            + (f'<div class="chart">{charts.halving_chart(rows, "chart-halving")}</div>' if reached else "")
            + table(["dataset", "series", "accuracy at 0%", "halves at"], rows=table_rows, left=2))


def provenance_section(study: Study) -> str:
    """Exact configuration, versions, data checksums, seeds and run times behind every number."""
    parts = []
    for g in study.groups:
        versions = "; ".join(", ".join(f"{k} {v}" for k, v in env.items()) for env in g["environments"])
        sums = ", ".join(f"{name} {digest}" for name, digest in sorted(g["sources"].items())) or "not recorded"
        train = ", ".join(f"{k}={v}" for k, v in g["train"].items())
        epochs = [e for e in g["epochs_run"] if e is not None]  # scikit-learn models record none
        rows = [["training", train], ["validation", f"{g['val']} (fraction {g['val_fraction']})"],
                ["data", f"{g['n_train']} training / {g['n_test']} test items, shape {g['shape']}, "
                         f"{g['num_classes']} classes; {'; '.join(g['notes'])}"],
                ["data checksums", sums], ["percents", ", ".join(f"{p:g}" for p in g["percents"])],
                ["seeds", ", ".join(map(str, g["seeds"]))],
                ["epochs run", f"{min(epochs)}–{max(epochs)} (mean {np.mean(epochs):.1f})" if epochs else "none (not an epoch-trained model)"],
                ["run time", f"{minutes(g['total_seconds'])} in all, {g['mean_seconds']:.1f} s per run"],
                ["created", f"{g['first_created']} to {g['last_created']}"], ["versions", versions]]
        if g.get("labels"):
            rows.insert(3, ["labels", json.dumps(g["labels"])])
        parts.append(f"<h3>{escape(g['dataset'])}, {size_text(g['dataset_size'])}, {escape(g['kind'])}, "
                     f"{escape(g['model'])}: {g['runs']} runs</h3>")
        parts.append(table(["", "value"], rows, 2))
    return "".join(parts) or note("No sweep runs.")
