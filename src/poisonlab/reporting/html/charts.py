"""Interactive Plotly charts of a study (hover for values, click the legend to toggle series); plotly.js is inlined once."""

from __future__ import annotations

from collections import defaultdict

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from poisonlab.reporting.curves import break_points, combined_lines, halving_percent, kinds_of
from poisonlab.reporting.html.collect import dataset_order

COLORS = {"random": ("#1f77b4", "#7fb2dc", "#0b3d66"), "biased": ("#d62728", "#ee8a8b", "#7a1213")}
HUMAN_COLOR = "#2ca02c"
CONFIG = {"displaylogo": False, "responsive": True}


def plotly_js() -> str:
    """The plotly.js bundle that ships with the plotly package, for inlining."""
    return get_plotlyjs()


def _div(fig: go.Figure, div_id: str) -> str:
    """A chart as an HTML fragment that uses the inlined plotly.js."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=CONFIG)


def _style(kind: str, shade: int, full: bool) -> dict:
    """Line colour and dash of a series: colour per kind; the full set solid in the main shade, subsets dashed and lighter."""
    palette = COLORS.get(kind, ("#7f7f7f", "#bbbbbb", "#444444"))
    return {"color": palette[0 if full else 1 + shade % (len(palette) - 1)], "dash": "solid" if full else "dash"}


def sweep_chart(dataset: str, series: dict[str, dict], human: list[dict], div_id: str) -> str:
    """Accuracy vs poison percent of one dataset: mean line and min-max band per series, break points, CIFAR-10N points."""
    fig = go.Figure()
    subsets: dict[str, int] = defaultdict(int)
    for name, c in sorted(series.items()):
        full = "full" in name
        style = _style(c["kind"], subsets[c["kind"]], full)
        subsets[c["kind"]] += not full
        hover = [f"{name}<br>{p:g}% poisoned<br>accuracy {m:.3f} (min {lo:.3f}, max {hi:.3f}, {n} seeds)"
                 for p, m, lo, hi, n in zip(c["percents"], c["mean"], c["lo"], c["hi"], c["seeds"])]
        fig.add_trace(go.Scatter(x=c["percents"] + c["percents"][::-1], y=c["hi"] + c["lo"][::-1], fill="toself",
                                 fillcolor=style["color"], opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                 legendgroup=name, showlegend=False, name=name + " band"))
        fig.add_trace(go.Scatter(x=c["percents"], y=c["mean"], mode="lines+markers", name=name, legendgroup=name,
                                 line=style, marker={"size": 5}, hovertext=hover, hoverinfo="text"))
    for point in human:
        fig.add_trace(go.Scatter(
            x=[point["percent"]], y=[point["mean"]], mode="markers+text", name=point["name"],
            marker={"size": 11, "symbol": "star", "color": HUMAN_COLOR},
            error_y={"type": "data", "symmetric": False, "array": [point["hi"] - point["mean"]],
                     "arrayminus": [point["mean"] - point["lo"]]},
            text=[point["label"]], textposition="top right",
            hovertext=[f"{point['name']}<br>measured noise {point['percent']:.1f}%<br>accuracy {point['mean']:.3f}"
                       f" ({point['seeds']} seeds)"], hoverinfo="text"))
    k = next(iter(series.values()))["num_classes"] if series else None
    for percent, kind, label in break_points(kinds_of(series), k) if k else ():
        fig.add_vline(x=percent, line={"dash": "dot", "color": COLORS[kind][0], "width": 1},
                      annotation_text=label.replace(" point", ""),
                      annotation_position="top left" if kind == "random" else "bottom right")
    if k:
        fig.add_hline(y=1 / k, line={"dash": "dashdot", "color": "gray", "width": 1},
                      annotation_text=f"chance 1/K = {1 / k:.2f}", annotation_position="bottom left")
    fig.update_layout(title=f"{dataset}: test accuracy vs poisoned training labels", template="plotly_white",
                      xaxis={"title": "training labels poisoned (%)", "range": [0, 101]},
                      yaxis={"title": "test accuracy", "range": [0, 1.02]}, height=460,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, legend={"font": {"size": 11}})
    return _div(fig, div_id)


def combined_charts(data: dict[str, dict[str, dict]], div_id: str) -> list[str]:
    """The original experiment's one-axes figure per training-set size: every dataset (a colour each), random solid
    and biased dashed, accuracy in % (see curves.combined_lines)."""
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
    order = {d: i for i, d in enumerate(sorted(data))}
    symbols = ("circle", "square", "triangle-up", "diamond", "triangle-down", "x", "star", "cross")
    charts = []
    for n, (title, lines) in enumerate(combined_lines(data).values()):
        fig = go.Figure()
        for dataset, label, variant, c in lines:
            hover = [f"{label}<br>{p:g}% poisoned<br>accuracy {100 * m:.1f}% ({k} seeds)"
                     for p, m, k in zip(c["percents"], c["mean"], c["seeds"])]
            fig.add_trace(go.Scatter(x=c["percents"], y=[100 * m for m in c["mean"]], mode="lines+markers", name=label,
                                     line={"color": palette[order[dataset] % len(palette)],
                                           "dash": "dash" if c["kind"] == "biased" else "solid"},
                                     marker={"size": 5, "symbol": symbols[variant % len(symbols)]},
                                     hovertext=hover, hoverinfo="text"))
        fig.update_layout(title=title, template="plotly_white", height=460, legend={"font": {"size": 11}},
                          xaxis={"title": "Percent poisoned", "range": [0, 101]},
                          yaxis={"title": "Accuracy (%)", "range": [0, 101]}, margin={"l": 60, "r": 20, "t": 60, "b": 50})
        charts.append(_div(fig, f"{div_id}-{n}"))
    return charts


def halving_rows(curves: dict[str, dict[str, dict]]) -> list[dict]:
    """Per dataset and series: clean accuracy and the poison percent that halves it (None: not reached)."""
    rows = []
    for dataset, series in sorted(curves.items(), key=lambda item: dataset_order(item[0])):
        for name, c in sorted(series.items()):
            rows.append({"dataset": dataset, "series": name, "kind": c["kind"],
                         "clean": c["mean"][0] if c["percents"] and c["percents"][0] == 0 else None,
                         "halving": halving_percent(c["percents"], c["mean"]), "max_percent": max(c["percents"])})
    return rows


def halving_chart(rows: list[dict], div_id: str) -> str:
    """Bars: how much poison until accuracy halves, per dataset and series."""
    fig = go.Figure()
    for name in sorted({r["series"] for r in rows}):
        chosen = [r for r in rows if r["series"] == name and r["halving"] is not None]
        kind = chosen[0]["kind"] if chosen else "random"
        fig.add_trace(go.Bar(x=[r["dataset"] for r in chosen], y=[r["halving"] for r in chosen], name=name,
                             marker_color=_style(kind, 0, "full" in name)["color"],
                             marker_pattern_shape="" if "full" in name else "/",
                             text=[f"{r['halving']:.0f}%" for r in chosen], textposition="outside",
                             hovertext=[f"{r['dataset']}, {name}: accuracy {r['clean']:.3f} halves at "
                                        f"{r['halving']:.1f}% poisoned" for r in chosen], hoverinfo="text"))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig.update_layout(title="How much poison until test accuracy halves", barmode="group", template="plotly_white",
                      xaxis={"categoryorder": "array", "categoryarray": datasets},
                      yaxis={"title": "training labels poisoned (%)", "range": [0, 105]}, height=380,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50})
    return _div(fig, div_id)


def per_class_chart(title: str, classes: list[str], per_class: dict[float, list[float]], div_id: str) -> str:
    """Heatmap of test accuracy per class (rows) and poison percent (columns), seed means."""
    percents = list(per_class)
    z = [[per_class[p][i] for p in percents] for i in range(len(classes))]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{p:g}%" for p in percents], y=classes, zmin=0, zmax=1, colorscale="Blues",
        colorbar={"title": "accuracy", "thickness": 12},
        hovertemplate="class %{y}<br>%{x} poisoned<br>accuracy %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, template="plotly_white", height=max(300, 22 * len(classes) + 120),
                      xaxis={"title": "training labels poisoned", "type": "category"},
                      yaxis={"autorange": "reversed", "type": "category"}, margin={"l": 90, "r": 20, "t": 50, "b": 50})
    return _div(fig, div_id)
