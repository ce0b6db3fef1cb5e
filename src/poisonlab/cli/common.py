"""What every command shares: the console, list parsing, and the option types used by several commands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from poisonlab.checks import MAX_SEED, check_choice, check_seed
from poisonlab.errors import PoisonlabError

console = Console(stderr=True, soft_wrap=True, highlight=False)  # progress, notes and errors
results_console = Console(soft_wrap=True, highlight=False)  # verdicts and tables of manifest, monitor, validate

DATASET_HELP = "mnist, fashion_mnist, cifar10, cifar100[:coarse], digits, embedded, imagefolder:PATH"
OutOpt = Annotated[Path, typer.Option("--out", help="Results folder (runs, results.sqlite, results.csv, plots).")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", "--data_dir", envvar="POISONLAB_DATA",
                                                 help="Dataset cache folder.", show_default="~/.cache/poisonlab")]
DownloadOpt = Annotated[bool, typer.Option("--download/--no-download", help="Fetch missing dataset files.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Retrain runs that already exist.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the machine-readable result to this file.")]
JOBS_DEFAULT_TEXT = "one per 4 cores, so 1 on a 2-core machine"  # training.parallel.default_jobs, without importing it
RunOpt = Annotated[Path | None, typer.Option("--run", help="A run folder (or its run.json): its dataset with the run's poisoned training labels.")]


def parse_list(text: str, what: str, convert=float) -> list:
    """Comma-separated values, or one clear error naming the bad item."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    values = []
    example = "0,10,50" if convert is float else "0,1,2"
    for item in items:
        try:
            value = convert(item)
        except ValueError:
            raise PoisonlabError(f"{what} '{item}' is not a number; give a comma-separated list such as {example}") from None
        if convert is float and not math.isfinite(value):
            raise PoisonlabError(f"{what} '{item}' is not a finite number; give a comma-separated list such as {example}")
        values.append(value + 0 if convert is float else value)  # -0 is 0 (one run, one folder)
    if not values:
        raise PoisonlabError(f"no {what} given; give a comma-separated list")
    return values


def parse_names(text: str | None, what: str) -> list[str]:
    """Comma-separated names without blanks or repeats, or one error when none is given."""
    names = list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))
    if not names:
        raise PoisonlabError(f"no {what} given; give a comma-separated list")
    return names


def parse_defences(text: str, *, backdoor: bool = False) -> list[str]:
    """Comma-separated defence names (see studies.defence; the trusted-set ones for a `backdoor` study), each checked."""
    from poisonlab.studies.defence import check_defence

    return [check_defence(name, backdoor=backdoor) for name in parse_names(text, "defences")]


def parse_percents(text: str) -> list[float]:
    """Poison percents in 0..100, each once; a one-line warning when every one but 0 is below 1 (fractions meant?)."""
    from poisonlab.attacks.flips import check_percent

    values = list(dict.fromkeys(parse_list(text, "percent")))
    for v in values:
        check_percent(v)
    small = [v for v in values if v != 0]
    if small and max(small) < 1:
        shown = ", ".join(f"{v:g}" for v in small)
        console.print(f"warning: {shown} {'means' if len(small) == 1 else 'mean'} {shown} % (percents, not "
                      f"fractions); for {small[0]:g} of the data write {100 * small[0]:g}")
    return values


SeedOpt = Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the poisoning, folds, subsets and models.")]
JobsOpt = Annotated[int | None, typer.Option(help="Runs trained at once in worker processes, sharing the cores.",
                                             show_default=JOBS_DEFAULT_TEXT)]


def parse_seeds(text: str) -> list[int]:
    """Seeds in 0..MAX_SEED, each once."""
    return [check_seed(seed) for seed in dict.fromkeys(parse_list(text, "seed", int))]


def check_outputs(*paths: Path | None) -> None:
    """Refuse, before the work starts, output files (--json, --file, ...) that are folders or cannot be written."""
    from poisonlab.store import ensure_writable_file

    for path in paths:
        if path is not None:
            ensure_writable_file(path)


def parse_counts(text: str, what: str) -> list[int]:
    """Non-negative whole numbers (sizes, counts), each once."""
    values = list(dict.fromkeys(parse_list(text, what, int)))
    for v in values:
        if v < 0:
            raise PoisonlabError(f"{what} {v} is negative; give 0 or a positive whole number")
    return values


def jobs_or_default(jobs: int | None) -> int:
    """The worker processes of a --jobs option: as given (checked), else `default_jobs()`."""
    from poisonlab.training.parallel import check_jobs, default_jobs

    return default_jobs() if jobs is None else check_jobs(jobs)


def current_data(default: dict, dataset: str | None, run: Path | None, data_dir: Path | None, size: int | None,
                 download: bool):
    """The data to check and its description: a run's poisoned data, or a dataset (defaults from `default`)."""
    from poisonlab import datasets, store
    from poisonlab.studies.run import run_dataset

    if run is not None:
        if dataset is not None or size is not None:
            raise PoisonlabError("--run sets the dataset and its size; leave out --dataset and --dataset-size")
        return run_dataset(store.read_run(run, required=True, weights=False), data_dir, download), f"run {run}"
    spec = dataset or default.get("dataset")
    if spec is None:
        raise PoisonlabError("no dataset to check; pass --dataset NAME or --run RUN")
    size = default.get("dataset_size", 0) if size is None else size
    return datasets.load(spec, data_dir, size, download), spec + (f" (first {size} training items)" if size else "")


def label_name(label: int, classes: list[str]) -> str:
    """A label with its class name when the name is not just the number."""
    return f"{label} ({classes[label]})" if 0 <= label < len(classes) and classes[label] != str(label) else str(label)


def check_ray_flags(executor: str, jobs: int | None, **flags: object) -> None:
    """Refuse the Ray-only flags (named by their keyword, e.g. cpus_per_run for --cpus-per-run) without
    --executor ray, and --jobs with it."""
    check_choice(executor, ("local", "ray"), "executor")  # studies.sweep.EXECUTORS, kept here so --help loads less
    given = ["--" + name.replace("_", "-") for name, value in flags.items() if value is not None]
    if given and executor != "ray":
        raise PoisonlabError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} only read with --executor "
                             f"ray; add --executor ray or leave {'it' if len(given) == 1 else 'them'} out")
    if jobs is not None and executor == "ray":
        raise PoisonlabError("--jobs sets the local executor's worker processes; with --executor ray each run is a "
                             "Ray task and the cluster runs as many at once as it has room for (see --cpus-per-run)")
