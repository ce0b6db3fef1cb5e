"""The `flip` experiment: checked settings, every (N, seed) run, then the JSON, Markdown report and figures."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from poisonlab import flipplots, flipreport, store
from poisonlab.datasets import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import slug
from poisonlab.flipruns import Runner
from poisonlab.models import MODELS
from poisonlab.targeted import FlipSpec, check_request, load_data, resolve_class

SELECTIONS = ("first", "random")


def prepare(dataset: str, source: str, target: str, counts: list[int], model: str = "simplecnn", select: str = "first",
            train_size: int = 0, test_size: int = 0, epochs: int = 5, batch_size: int = 128,
            data_dir: str | Path | None = None, download: bool = True) -> tuple[FlipSpec, Dataset]:
    """Check the settings, load the data and resolve the classes; returns the clean run's spec and the data."""
    if model not in MODELS:
        raise PoisonlabError(f"unknown model '{model}'; choose one of {', '.join(MODELS)}")
    if select not in SELECTIONS:
        raise PoisonlabError(f"unknown selection '{select}'; choose first or random")
    data = load_data(dataset, data_dir, train_size, test_size, download)
    src, tgt = resolve_class(source, data.classes), resolve_class(target, data.classes)
    check_request(data.y_train, data.classes, src, tgt, counts)
    base = FlipSpec(dataset=dataset, source=src, target=tgt, n=0, select=select, model=model, train_size=train_size,
                    test_size=test_size, epochs=epochs, batch_size=batch_size)
    return base, data


def default_out(kind: str, base: FlipSpec, data: Dataset) -> Path:
    """runs/{kind}-{dataset}-{source}-{target}."""
    return Path("runs") / slug(f"{kind}-{base.dataset}-{data.classes[base.source]}-{data.classes[base.target]}")


def run_flip(base: FlipSpec, data: Dataset, counts: list[int], seeds: list[int], out: Path, console: Console,
             overwrite: bool = False, json_path: Path | None = None) -> dict:
    """Train the clean model and each N for every seed (resuming), then write flip.json, report.md and figures/."""
    ns = sorted({0, *counts})
    with Runner(base, data, out, console, overwrite) as runner:
        runner.expect(len(ns) * len(seeds))
        records = [runner.get(n, seed) for n in ns for seed in seeds]
    doc = flipreport.document(records, base.source, base.target)
    for path in (out / "flip.json", json_path):
        if path is not None:
            store.write_json(path, doc)
    store.atomic_write(out / "report.md", flipreport.markdown(doc))
    figures = flipplots.write_all(doc, data, out / "figures")
    return {"doc": doc, "figures": figures, "trained": runner.trained, "reused": runner.reused,
            "files": [out / "flip.json", out / "report.md", *([json_path] if json_path else [])]}
