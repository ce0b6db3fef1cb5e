"""`poisonlab monitor ...`: statistical alerts on training label counts and on test accuracy between two runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from poisonlab.cli.common import DataDirOpt, DownloadOpt, RunOpt, current_data, results_console as console
from poisonlab.cli.manifest import DatasetOpt, SizeOpt
from poisonlab.errors import PoisonlabError

monitor_app = typer.Typer(no_args_is_help=True, help="Statistical alerts: label counts and test accuracy.")
AlphaOpt = Annotated[float, typer.Option(help="Significance level, strictly between 0 and 1.")]


def baseline_counts(path: Path) -> tuple[list[int], list[str] | None, dict]:
    """Training class counts, class names and the document: from a manifest or a {"counts": [...]} JSON file."""
    from poisonlab.defences import integrity
    from poisonlab.files import MAX_MANIFEST_BYTES, read_json

    doc = read_json(path, f"baseline {path} as JSON", MAX_MANIFEST_BYTES,
                    'pass a manifest or a file like {"classes": [...], "counts": [...]}')
    if isinstance(doc, dict) and doc.get("format") == integrity.FORMAT:
        return doc["splits"]["train"]["class_counts"], doc["classes"], doc
    counts = doc.get("counts") if isinstance(doc, dict) else None
    if not isinstance(counts, list) or not all(isinstance(c, int) and c >= 0 for c in counts):
        raise PoisonlabError(f"baseline {path} has no list of non-negative whole 'counts'; pass a manifest or a file like "
                             '{"classes": [...], "counts": [...]}')
    return counts, doc.get("classes"), {}


@monitor_app.command("counts")
def counts(
    baseline: Annotated[Path, typer.Option(help="A manifest, or a JSON file {\"classes\": [...], \"counts\": [...]}.")],
    dataset: DatasetOpt = None,
    run: RunOpt = None,
    dataset_size: SizeOpt = None,
    source: Annotated[str | None, typer.Option(help="Class of the flip to size, by name or number.", show_default="the largest class")] = None,
    target: Annotated[str | None, typer.Option(help="Class it is flipped to.", show_default="the second largest")] = None,
    alpha: AlphaOpt = 0.05,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Chi-square test of the training label counts against a baseline; exit 1 when the shift is significant."""
    from poisonlab.datasets import resolve_class
    from poisonlab.defences import monitor

    base, base_classes, doc = baseline_counts(baseline)
    data, described = current_data(doc, dataset, run, data_dir, dataset_size, download)
    if base_classes is not None and list(base_classes) != data.classes:
        raise PoisonlabError(f"the baseline's classes differ from those of {described}; use a baseline of the same dataset")
    observed = np.bincount(data.y_train, minlength=data.num_classes)
    result = monitor.compare_counts(observed, np.asarray(base), alpha)
    expected = np.asarray(result["expected"])
    order = np.argsort(-expected, kind="stable")
    src = resolve_class(source, data.classes) if source else int(order[0])
    tgt = resolve_class(target, data.classes) if target else next(int(c) for c in order if c != src)
    if src == tgt:
        raise PoisonlabError(f"source and target are both '{data.classes[src]}'; choose two different classes")
    table = Table("class", "baseline", "expected", "observed", "delta", "residual", "")
    for c, name in enumerate(data.classes):
        table.add_row(name, str(base[c]), f"{expected[c]:.1f}", str(result["observed"][c]), f"{result['delta'][c]:+.1f}",
                      f"{result['residual'][c]:+.2f}", "MOVED" if c in result["moved"] else "")
    console.print(table)
    console.print(f"{described}: chi-square {result['statistic']:.3f}, p = {result['p_value']:.4g} over "
                  f"{result['n']} items; {'SHIFTED' if result['flagged'] else 'no significant shift'} at alpha {alpha:g}")
    _print_flip_size(expected, data.classes, src, tgt, alpha)
    if result["flagged"]:
        raise typer.Exit(1)


def _print_flip_size(expected: np.ndarray, classes: list[str], src: int, tgt: int, alpha: float) -> None:
    """The smallest src->tgt flip this test flags at the baseline's proportions and this set's size."""
    from poisonlab.defences import monitor

    pair = f"{classes[src]}->{classes[tgt]}"
    n = monitor.minimal_flip(expected, src, tgt, alpha)
    one = monitor.flip_p_value(expected, src, tgt, 1)
    if n is None:
        console.print(f"no {pair} flip is flagged at this size (1 flip: p = {one:.4g})")
        return
    console.print(f"smallest {pair} flip flagged: {n} items ({n / expected[src]:.1%} of {classes[src]}), p = "
                  f"{monitor.flip_p_value(expected, src, tgt, n):.4g}; {n - 1} items: p = "
                  f"{monitor.flip_p_value(expected, src, tgt, n - 1):.4g}; 1 item: p = {one:.4g}")


def confusion(run: dict, k: int) -> np.ndarray:
    """A run's K x K confusion matrix of non-negative whole counts, or a one-line error."""
    from poisonlab import store

    rows = store.field(run, "metrics.confusion", list, list)
    if len(rows) != k or not all(len(r) == k and all(isinstance(v, int) and v >= 0 for v in r) for r in rows):
        raise PoisonlabError(f"the run record's metrics.confusion is not a {k} x {k} table of counts (a damaged "
                             f"{store.RUN_FILE}); restore it from a copy or train the run again")
    return np.asarray(rows, np.int64)


@monitor_app.command("accuracy")
def accuracy(
    baseline: Annotated[Path, typer.Option(help="The trusted run (folder or run.json).")],
    candidate: Annotated[Path, typer.Option(help="The run to check.")],
    alpha: AlphaOpt = 0.05,
) -> None:
    """Two-proportion z-tests of overall and per-class test accuracy (Holm-corrected); exit 1 naming the classes that dropped."""
    from poisonlab import store
    from poisonlab.defences import monitor

    runs = store.read_run(baseline, required=True, weights=False), store.read_run(candidate, required=True, weights=False)
    names = [r["dataset"].get("name") if isinstance(r.get("dataset"), dict) else None for r in runs]
    if None not in names and names[0] != names[1]:
        raise PoisonlabError(f"the baseline ran on {names[0]} and the candidate on {names[1]}; compare two runs of the "
                             "same dataset")
    classes = store.field(runs[0], "dataset.classes", list, str)
    if store.field(runs[1], "dataset.classes", list, str) != classes:
        raise PoisonlabError("the two runs have different classes; compare runs on the same dataset")
    result = monitor.compare_accuracy(*(confusion(r, len(classes)) for r in runs), alpha)
    table = Table("class", "baseline", "candidate", "change", "p", "p (Holm)", "")
    for name, c in zip(classes, result["classes"]):
        if c["baseline"] is None or c["candidate"] is None:
            table.add_row(name, "-", "-", "", "", "", "no test items")
            continue
        flag = "DROPPED" if c["p_holm"] < alpha and c["candidate"] < c["baseline"] else "rose" if c["p_holm"] < alpha else ""
        table.add_row(name, f"{c['baseline']:.4f}", f"{c['candidate']:.4f}", f"{c['candidate'] - c['baseline']:+.4f}",
                      f"{c['p_value']:.3g}", f"{c['p_holm']:.3g}", flag)
    console.print(table)
    overall = result["overall"]
    dropped = overall["p_value"] < alpha and overall["candidate"] < overall["baseline"]
    console.print(f"overall: {overall['baseline']:.4f} -> {overall['candidate']:.4f}, p = {overall['p_value']:.3g}"
                  f"{' DROPPED' if dropped else ''}")
    if not result["same_test_set"]:
        console.print("note: the runs were tested on different numbers of items per class")
    if result["dropped"] or dropped:
        names = ", ".join(classes[i] for i in result["dropped"]) or "no single class"
        console.print(f"ALERT: accuracy dropped significantly (alpha {alpha:g}, Holm) for: {names}")
        raise typer.Exit(1)
    console.print("no significant accuracy drop")
