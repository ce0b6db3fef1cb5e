"""`poisonlab flip` and `budget`: targeted source->target flips, and the fewest flips that break a metric."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from poisonlab.attacks.flips import SELECTIONS
from poisonlab.cli.common import (DATASET_HELP, JOBS_DEFAULT_TEXT, DataDirOpt, DownloadOpt, JobsOpt, JsonOpt,
                                  OverwriteOpt, check_outputs, console, jobs_or_default, parse_counts, parse_seeds)
from poisonlab.checks import check_choice
from poisonlab.studies import BUDGET_METRICS
from poisonlab.training import MODELS

FlipDatasetOpt = Annotated[str, typer.Option(help=f"Dataset: {DATASET_HELP}.")]
SourceOpt = Annotated[str, typer.Option(help="Class whose labels are flipped, by name or number.")]
TargetOpt = Annotated[str, typer.Option(help="Class they are flipped to, by name or number.")]
SelectOpt = Annotated[str, typer.Option(help="first: the lowest-index source items; last: the highest-index ones (as the original experiment chose); random: a seeded choice per seed.")]
FlipModelOpt = Annotated[str, typer.Option(help=f"One of {', '.join(MODELS)}.")]
TrainSizeOpt = Annotated[int, typer.Option("--dataset-size", "--train-size", "--dataset_size", min=0,
                                           help="Use the first N training items (0 = all).")]
TestSizeOpt = Annotated[int, typer.Option("--test-size", min=0, help="Use the first N test items (0 = all).")]
FlipEpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Epochs of a torch model (fixed, no early stopping).")]
FlipBatchOpt = Annotated[int, typer.Option("--batch-size", min=1, max=65536, help="Items per training step.")]
FlipOutOpt = Annotated[Path | None, typer.Option("--out", help="Results folder.", show_default="runs/<command>-<dataset>-<source>-<target>")]


def _check_out(out: Path | None, json_path: Path | None) -> None:
    """Refuse an unwritable --out folder or --json file before any data is loaded or model trained (creating
    neither: the folder is made once the work starts)."""
    from poisonlab.files import check_output_folder

    if out is not None:
        check_output_folder(out)
    check_outputs(json_path)


def _prepare(dataset, source, target, counts, model, select, train_size, test_size, epochs, batch_size, data_dir, download):
    """The checked base spec and the data of a flip or budget command."""
    from dataclasses import replace

    from poisonlab.studies import flipstudy
    from poisonlab.studies.flip import FLIP_TRAINING

    check_choice(select, SELECTIONS, "selection")
    return flipstudy.prepare(dataset, source, target, counts, model=model, select=select, train_size=train_size,
                             test_size=test_size, train=replace(FLIP_TRAINING, max_epochs=epochs, batch_size=batch_size),
                             data_dir=data_dir, download=download)


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
    jobs: JobsOpt = None,
    out: FlipOutOpt = None,
    json_path: JsonOpt = None,
    overwrite: OverwriteOpt = False,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Flip N training labels of one class to another; compare clean and poisoned models trained with the same seed."""
    from poisonlab.reporting import flips as flipreport
    from poisonlab.studies import flipstudy

    started = time.perf_counter()
    counts, seed_list, jobs = parse_counts(n, "number of flips"), parse_seeds(seeds), jobs_or_default(jobs)
    _check_out(out, json_path)
    base, data = _prepare(dataset, source, target, counts, model, select, train_size, test_size, epochs, batch_size,
                          data_dir, download)
    out = out or flipstudy.default_out("flip", base, data)
    result = flipstudy.run_flip(base, data, counts, seed_list, out, console, overwrite=overwrite, json_path=json_path,
                                 jobs=jobs)
    flipreport.print_summary(result["doc"], console)
    console.print(f"{result['trained']} runs trained, {result['reused']} already done, in "
                  f"{time.perf_counter() - started:.0f}s; report, JSON and figures:")
    for path in [*result["files"], *result["figures"]]:
        print(path)


def budget(
    dataset: FlipDatasetOpt = "cifar10",
    source: SourceOpt = "cat",
    target: TargetOpt = "dog",
    below: Annotated[float, typer.Option(help="Find the smallest N that makes the metric drop below this fraction.")] = 0.30,
    metric: Annotated[str, typer.Option(help=f"One of {', '.join(BUDGET_METRICS)}.")] = "source-accuracy",
    precision: Annotated[int, typer.Option(min=1, help="Stop bisecting when the bracket is this narrow (1 = exact N).")] = 1,
    select: SelectOpt = "first",
    model: FlipModelOpt = "simplecnn",
    train_size: TrainSizeOpt = 0,
    test_size: TestSizeOpt = 0,
    epochs: FlipEpochsOpt = 5,
    batch_size: FlipBatchOpt = 128,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated: each probe uses the seed mean.")] = "0",
    jobs: Annotated[int | None, typer.Option(help="Seeds of one probe trained at once in worker processes, sharing the cores; the probes themselves run one after another, as each bisection step depends on the last.", show_default=JOBS_DEFAULT_TEXT)] = None,
    out: FlipOutOpt = None,
    json_path: JsonOpt = None,
    overwrite: OverwriteOpt = False,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Search (exponential, then bisection, retraining each probe) for the fewest flips that push a metric below a threshold."""
    from poisonlab.studies import budget as budget_search
    from poisonlab.studies import flipstudy

    started = time.perf_counter()
    check_choice(metric, BUDGET_METRICS, "metric")
    seed_list, jobs = parse_seeds(seeds), jobs_or_default(jobs)
    _check_out(out, json_path)
    base, data = _prepare(dataset, source, target, [], model, select, train_size, test_size, epochs, batch_size,
                          data_dir, download)
    out = out or flipstudy.default_out("budget", base, data)
    result = budget_search.run_budget(base, data, metric, below, seed_list, out, console,
                                      overwrite=overwrite, precision=precision, json_path=json_path, jobs=jobs)
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
