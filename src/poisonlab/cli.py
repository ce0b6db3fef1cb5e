"""The `poisonlab` command line: train (sweep), analyse (plot), demo, flip (targeted flips), budget (attack budget)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from poisonlab import analyse as analysis
from poisonlab import budget as budget_search
from poisonlab import flipexperiment, flipreport, humanlabels, sweep
from poisonlab import report as reporting
from poisonlab.defend.commands import manifest_app, monitor_app
from poisonlab.defend.detect_cmd import detect
from poisonlab.defend.validate_cmd import validate
from poisonlab.errors import PoisonlabError, check_choice
from poisonlab.experiment import VAL_MODES, RunSpec
from poisonlab.humanlabels import HumanLabels
from poisonlab.models import MODELS
from poisonlab.report.command import report
from poisonlab.poison import KINDS, check_percent
from poisonlab.train import TrainConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="How much does poisoned (mislabelled) training data hurt a model?")
console = Console(stderr=True, soft_wrap=True)

DEFAULT_PERCENTS_TEXT = ",".join(map(str, sweep.DEFAULT_PERCENTS))
OutOpt = Annotated[Path, typer.Option("--out", help="Results folder (runs, results.sqlite, results.csv, plots).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", "--data_dir", envvar="POISONLAB_DATA",
                                                 help="Dataset cache folder [default: ~/.cache/poisonlab].")]


def parse_list(text: str, what: str, convert=float) -> list:
    """Comma-separated values, or one clear error naming the bad item."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [convert(t) for t in items]
    except ValueError:
        bad = next(t for t in items if not _convertible(t, convert))
        raise PoisonlabError(f"{what} '{bad}' is not a number; give a comma-separated list such as {'0,10,50' if convert is float else '0,1,2'}") from None
    if not values:
        raise PoisonlabError(f"no {what} given; give a comma-separated list")
    return values


def _convertible(text: str, convert) -> bool:
    try:
        convert(text)
        return True
    except ValueError:
        return False


def parse_percents(text: str) -> list[float]:
    """Poison percents in 0..100."""
    values = parse_list(text, "percent")
    for v in values:
        check_percent(v)
    return values


def parse_counts(text: str, what: str) -> list[int]:
    """Non-negative integers (sizes, seeds)."""
    values = parse_list(text, what, int)
    for v in values:
        if v < 0:
            raise PoisonlabError(f"{what} {v} is negative; give 0 or a positive whole number")
    return values


def run_sweep(specs: list[RunSpec], out: Path, data_dir: Path | None, download: bool, overwrite: bool,
              human: Sequence[HumanLabels] = ()) -> None:
    """Execute a sweep (human-label runs on `human`) and print where its results are."""
    started = time.perf_counter()
    counts = sweep.execute(specs, out, data_dir, download, overwrite, console, human=human)
    console.print(f"{counts['trained']} runs trained, {counts['skipped']} already done, in {time.perf_counter() - started:.0f}s; "
                  f"results: {out / 'results.csv'} and {out / 'results.sqlite'}, runs under {out / 'models'}")


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="Dataset(s), comma-separated: mnist, fashion_mnist, cifar10, cifar100[:coarse], digits, embedded, imagefolder:PATH.")] = "embedded",
    percents: Annotated[str, typer.Option(help="Poison percents, comma-separated.")] = DEFAULT_PERCENTS_TEXT,
    biased: Annotated[bool, typer.Option("--biased", help="Biased poisoning (class 0, or 1 for true 0) instead of random.")] = False,
    kinds: Annotated[str | None, typer.Option(help="Poisoning kinds, comma-separated (random,biased); overrides --biased.")] = None,
    dataset_size: Annotated[str, typer.Option("--dataset-size", "--dataset_size", help="Use the first N training items (0 = all); comma-separated for several.")] = "0",
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", min=1)] = 256,
    model: Annotated[str, typer.Option(help=f"One of {', '.join(MODELS)}.")] = "smallcnn",
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    epochs: Annotated[int, typer.Option("--epochs", "--max-epochs", min=1, help="Most epochs (early stopping may end sooner).")] = 50,
    val: Annotated[str, typer.Option(help="split: hold out 10% of the poisoned training data; test: validate on the clean test set (original protocol).")] = "split",
    labels: Annotated[str | None, typer.Option(help="Real human label noise instead of poisoning: cifar10n:KEY[,KEY] with KEY aggre, worse, random1, random2, random3 (needs --dataset cifar10).")] = None,
    cifar_n: Annotated[Path | None, typer.Option("--cifar-n", help="CIFAR-10N labels file for --labels (default: <data-dir>/cifar_n/cifar10n_labels.npz).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Retrain runs that already exist.")] = False,
    out: OutOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    download: Annotated[bool, typer.Option("--download/--no-download", help="Fetch missing dataset files.")] = True,
) -> None:
    """Train one model per (dataset, size, kind, percent, seed) with poisoned (or CIFAR-10N human) labels; resumes where it stopped."""
    kind_list = [k.strip() for k in kinds.split(",")] if kinds else ["biased" if biased else "random"]
    for k in kind_list:
        check_choice(k, KINDS, "poisoning kind")
    check_choice(model, MODELS, "model")
    check_choice(val, VAL_MODES, "validation mode")
    base = RunSpec(dataset="", model=model, val=val, train=TrainConfig(max_epochs=epochs, batch_size=batch_size))
    dataset_list, sizes = [d.strip() for d in dataset.split(",") if d.strip()], parse_counts(dataset_size, "dataset size")
    seed_list = parse_counts(seeds, "seed")
    if labels is None:
        if cifar_n is not None:
            raise PoisonlabError("--cifar-n is only read with --labels; add --labels cifar10n:KEY or leave out --cifar-n")
        sets, specs = [], sweep.plan(base, dataset_list, sizes, kind_list, parse_percents(percents), seed_list)
    else:
        poisoning = [name for name, given in (("--kinds", kinds is not None), ("--biased", biased),
                                              ("--percents", percents != DEFAULT_PERCENTS_TEXT)) if given]
        sets = humanlabels.read(humanlabels.labels_file(cifar_n, data_dir), humanlabels.request(labels, dataset_list, poisoning))
        specs = sweep.plan_human(base, sizes, sets, seed_list)
    run_sweep(specs, out, data_dir, download, overwrite, sets)


@app.command()
def analyse(
    datasets: Annotated[str | None, typer.Option(help="Datasets to draw, comma-separated [default: all in the store].")] = None,
    biased: Annotated[bool, typer.Option("--biased", help="Draw biased runs only.")] = False,
    all_kinds: Annotated[bool, typer.Option("--all", help="Draw random and biased runs.")] = False,
    out: OutOpt = Path("runs"),
) -> None:
    """Plot test accuracy vs percent poisoned, one panel per dataset (PNG, SVG and a CSV of the curves)."""
    kinds = tuple(KINDS) if all_kinds else ("biased",) if biased else ("random",)
    wanted = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    result = analysis.analyse(out, wanted, kinds)
    for name in result["missing"]:
        console.print(f"note: no {'/'.join(kinds)} runs for {name} in {out}; run `poisonlab train --dataset {name}` to add it")
    for path in result["paths"]:
        print(path)


@app.command()
def demo(
    out: OutOpt = Path("runs/demo"),
    percents: Annotated[str, typer.Option(help="Poison percents, comma-separated.")] = "0,20,40,60,80,100",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 6,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """A short real sweep on the embedded Fashion-MNIST subset (no download), random and biased, then the plot and report."""
    base = RunSpec(dataset="embedded", train=TrainConfig(max_epochs=epochs))
    specs = sweep.plan(base, ["embedded"], [0], list(KINDS), parse_percents(percents), [0])
    run_sweep(specs, out, None, False, overwrite)
    result = analysis.analyse(out, ["embedded"], tuple(KINDS))
    page = reporting.build(out, out / "report.html")["path"]
    console.print("plot, tables and the report to open in a browser:")
    for path in [*result["paths"], page]:
        print(path)


FlipDatasetOpt = Annotated[str, typer.Option(help="Dataset: mnist, fashion_mnist, cifar10, cifar100[:coarse], digits, embedded, imagefolder:PATH.")]
SourceOpt = Annotated[str, typer.Option(help="Class whose labels are flipped, by name or number.")]
TargetOpt = Annotated[str, typer.Option(help="Class they are flipped to, by name or number.")]
SelectOpt = Annotated[str, typer.Option(help="first: the lowest-index source items; random: a seeded choice per seed.")]
FlipModelOpt = Annotated[str, typer.Option(help=f"One of {', '.join(MODELS)}.")]
TrainSizeOpt = Annotated[int, typer.Option("--train-size", min=0, help="Use the first N training items (0 = all).")]
TestSizeOpt = Annotated[int, typer.Option("--test-size", min=0, help="Use the first N test items (0 = all).")]
FlipEpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Epochs of a torch model (fixed, no early stopping).")]
FlipBatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]
FlipOutOpt = Annotated[Path | None, typer.Option("--out", help="Results folder [default: runs/<command>-<dataset>-<source>-<target>].")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the machine-readable result to this file.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Retrain runs that already exist.")]
DownloadOpt = Annotated[bool, typer.Option("--download/--no-download", help="Fetch missing dataset files.")]


@app.command()
def flip(
    dataset: FlipDatasetOpt = "cifar10",
    source: SourceOpt = "cat",
    target: TargetOpt = "dog",
    n: Annotated[str, typer.Option("--n", help="Numbers of flipped labels, comma-separated; the clean model (0) "
                                                "is always added.")] = "1,5,10,50,100",
    select: SelectOpt = "first",
    model: FlipModelOpt = "simplecnn",
    train_size: TrainSizeOpt = 0,
    test_size: TestSizeOpt = 0,
    epochs: FlipEpochsOpt = 5,
    batch_size: FlipBatchOpt = 128,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated: several give mean and spread.")] = "0",
    out: FlipOutOpt = None,
    json_path: JsonOpt = None,
    overwrite: OverwriteOpt = False,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Flip N training labels of one class to another; compare clean and poisoned models trained with the same seed."""
    started = time.perf_counter()
    counts, seed_list = parse_counts(n, "number of flips"), parse_counts(seeds, "seed")
    base, data = flipexperiment.prepare(dataset, source, target, counts, model, select, train_size, test_size, epochs,
                                        batch_size, data_dir, download)
    out = out or flipexperiment.default_out("flip", base, data)
    result = flipexperiment.run_flip(base, data, counts, seed_list, out, console, overwrite, json_path)
    flipreport.print_summary(result["doc"], console)
    console.print(f"{result['trained']} runs trained, {result['reused']} already done, in "
                  f"{time.perf_counter() - started:.0f}s; report, JSON and figures:")
    for path in [*result["files"], *result["figures"]]:
        print(path)


@app.command()
def budget(
    dataset: FlipDatasetOpt = "cifar10",
    source: SourceOpt = "cat",
    target: TargetOpt = "dog",
    below: Annotated[float, typer.Option(help="Find the smallest N that makes the metric drop below this fraction.")] = 0.30,
    metric: Annotated[str, typer.Option(help=f"One of {', '.join(budget_search.METRICS)}.")] = "source-accuracy",
    precision: Annotated[int, typer.Option(min=1, help="Stop bisecting when the bracket is this narrow (1 = exact N).")] = 1,
    select: SelectOpt = "first",
    model: FlipModelOpt = "simplecnn",
    train_size: TrainSizeOpt = 0,
    test_size: TestSizeOpt = 0,
    epochs: FlipEpochsOpt = 5,
    batch_size: FlipBatchOpt = 128,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated: each probe uses the seed mean.")] = "0",
    out: FlipOutOpt = None,
    json_path: JsonOpt = None,
    overwrite: OverwriteOpt = False,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Search (exponential, then bisection, retraining each probe) for the fewest flips that push a metric below a threshold."""
    started = time.perf_counter()
    check_choice(metric, budget_search.METRICS, "metric")
    base, data = flipexperiment.prepare(dataset, source, target, [], model, select, train_size, test_size, epochs,
                                        batch_size, data_dir, download)
    out = out or flipexperiment.default_out("budget", base, data)
    result = budget_search.run_budget(base, data, metric, below, parse_counts(seeds, "seed"), out, console, overwrite,
                                      precision, json_path)
    for p in result["probes"]:
        console.print(f"probe {p['order']:2d} ({p['phase']}): N={p['n']:<6d} {metric} {p['value']:.4f}"
                      f"{'  below' if p['below'] else ''}", highlight=False)
    if result["found"] is None:
        console.print(f"not reached: even all {result['source_class_size']} {result['source']} labels flipped leave "
                      f"{metric} at {result['probes'][-1]['value']:.4f}, not below {below:g}")
    elif result["found"] == 0:
        console.print(f"the clean model already has {metric} below {below:g}: no flips needed")
    else:
        console.print(f"smallest N found: {result['found']} (N={result['last_not_below']} does not reach "
                      f"{metric} < {below:g}) in {time.perf_counter() - started:.0f}s")
    for path in [out / "budget.json", *([json_path] if json_path else []), result["figure"]]:
        print(path)


app.command()(detect)
app.command("validate")(validate)
app.add_typer(manifest_app, name="manifest")
app.add_typer(monitor_app, name="monitor")
app.command("report")(report)


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2; Ctrl-C keeps finished runs."""
    try:
        code = app(argv, standalone_mode=False)  # Typer returns the exit code (130 after Ctrl-C) in this mode
    except PoisonlabError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except typer.TyperException as exc:  # usage errors: Typer's own message
        exc.show() if hasattr(exc, "show") else console.print(f"error: {exc.format_message()}")
        sys.exit(exc.exit_code)
    if code == 130:
        console.print("interrupted: finished runs are saved; run the same command again to resume")
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
