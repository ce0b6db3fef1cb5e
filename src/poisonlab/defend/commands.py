"""`poisonlab manifest ...` and `poisonlab monitor ...`: Typer sub-apps over the integrity, audit and monitor modules."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from poisonlab import datasets
from poisonlab.datasets import Dataset
from poisonlab.defend import audit, integrity, monitor
from poisonlab.errors import PoisonlabError
from poisonlab.store import RUN_FILE, atomic_write, write_json
from poisonlab.targeted import load_data, resolve_class

manifest_app = typer.Typer(no_args_is_help=True, help="Integrity manifests of datasets: build, verify, sign, audit log.")
monitor_app = typer.Typer(no_args_is_help=True, help="Statistical alerts: label counts and test accuracy.")
console = Console(soft_wrap=True, highlight=False)

DatasetOpt = Annotated[str | None, typer.Option(help="Dataset spec (mnist, cifar10, imagefolder:PATH, ...) [default: the manifest's].")]
RunOpt = Annotated[Path | None, typer.Option("--run", help="A run folder (or its run.json): its dataset with the run's poisoned training labels.")]
SizeOpt = Annotated[int | None, typer.Option("--dataset-size", "--dataset_size", min=0, help="First N training items (0 = all) [default: the manifest's].")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", "--data_dir", envvar="POISONLAB_DATA", help="Dataset cache folder [default: ~/.cache/poisonlab].")]
DownloadOpt = Annotated[bool, typer.Option("--download/--no-download", help="Fetch missing dataset files.")]
LogOpt = Annotated[Path | None, typer.Option("--log", help="Audit log [default: <manifest>.log.jsonl].")]
AlphaOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Significance level.")]


def read_run(path: Path) -> dict:
    """The run.json of a finished run (folder or file), or a one-line error."""
    file = path / RUN_FILE if path.is_dir() else path
    try:
        run = json.loads(file.read_text())
    except (OSError, ValueError):
        raise PoisonlabError(f"no readable {RUN_FILE} at {path}; pass a finished run folder such as runs/models/<name>/<percent>/seed0") from None
    if not isinstance(run, dict) or run.get("status") != "complete" or "config" not in run or "metrics" not in run:
        raise PoisonlabError(f"{file} is not a finished poisonlab run; pass the folder of a run that completed")
    return run


def run_data(run: dict, data_dir: Path | None, download: bool) -> Dataset:
    """The dataset a run trained on, with the run's poisoned training labels applied."""
    cfg = run["config"]
    if "poison" in run:
        data = datasets.load(cfg["dataset"], data_dir, cfg.get("dataset_size", 0), download)
        indices, new = run["poison"]["indices"], run["poison"]["new_labels"]
    elif "flip" in run:
        data = load_data(cfg["dataset"], data_dir, cfg["train_size"], cfg["test_size"], download)
        indices = run["flip"]["changed_indices"]
        new = [cfg["target"]] * len(indices)
    else:
        raise PoisonlabError("the run records no poisoned labels (neither 'poison' nor 'flip'); pass a run made by poisonlab")
    if len(data.y_train) != run["dataset"]["n_train"]:
        raise PoisonlabError(f"{cfg['dataset']} here has {len(data.y_train)} training items but the run used "
                             f"{run['dataset']['n_train']}; use the same dataset files as the run")
    labels = data.y_train.copy()
    labels[np.asarray(indices, np.int64)] = new
    return replace(data, y_train=labels)


def current_data(default: dict, dataset: str | None, run: Path | None, data_dir: Path | None, size: int | None,
                 download: bool) -> tuple[Dataset, str]:
    """The data to check and its description: a run's poisoned data, or a dataset (defaults from `default`)."""
    if run is not None:
        if dataset is not None or size is not None:
            raise PoisonlabError("--run sets the dataset and its size; leave out --dataset and --dataset-size")
        return run_data(read_run(run), data_dir, download), f"run {run}"
    spec = dataset or default.get("dataset")
    if spec is None:
        raise PoisonlabError("no dataset to check; pass --dataset NAME or --run RUN")
    size = default.get("dataset_size", 0) if size is None else size
    return datasets.load(spec, data_dir, size, download), spec + (f" (first {size} training items)" if size else "")


@manifest_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="Manifest file to write, e.g. mnist.manifest.json.")],
    dataset: Annotated[str, typer.Option(help="Dataset spec: mnist, fashion_mnist, cifar10, cifar100[:coarse], digits, embedded, imagefolder:PATH.")] = "mnist",
    dataset_size: Annotated[int, typer.Option("--dataset-size", "--dataset_size", min=0, help="First N training items (0 = all).")] = 0,
    sign_key: Annotated[Path | None, typer.Option("--sign-key", help="Ed25519 private key (PEM) to sign the root with.")] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
    log: LogOpt = None,
) -> None:
    """Hash every item (pixels and label), compute the Merkle root, optionally sign it; write the manifest."""
    key = integrity.load_key(sign_key, private=True) if sign_key else None
    data = datasets.load(dataset, data_dir, dataset_size, download)
    started = time.perf_counter()
    manifest = integrity.build(data, dataset, dataset_size)
    seconds = time.perf_counter() - started
    if key is not None:
        manifest = integrity.sign(manifest, key)
    integrity.write(out, manifest)
    log = log or audit.default_log(out)
    sizes = {s: manifest["splits"][s]["count"] for s in integrity.SPLITS}
    audit.append(log, "build", dataset, manifest["root"], {**sizes, "signed": key is not None})
    total = sum(sizes.values())
    console.print(f"{dataset}: {sizes['train']} train + {sizes['test']} test items hashed in {seconds:.2f}s "
                  f"({total / max(seconds, 1e-9):,.0f} items/s); root {manifest['root']}"
                  f"{' (signed)' if key is not None else ''}")
    console.print(f"manifest: {out}; audit log: {log}")


@manifest_app.command("verify")
def verify(
    manifest_path: Annotated[Path, typer.Argument(metavar="MANIFEST", help="Manifest built by `manifest build`.")],
    dataset: DatasetOpt = None,
    run: RunOpt = None,
    dataset_size: SizeOpt = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="Ed25519 public key (PEM) the signature must match.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="List at most this many changed items (0 = all).")] = 100,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the full report to this file.")] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
    log: LogOpt = None,
) -> None:
    """Exit 0 when the data match the manifest; else list every changed label, pixel, added and removed item, exit 1."""
    manifest = integrity.read(manifest_path)
    key = integrity.load_key(public_key, private=False) if public_key else None
    data, described = current_data(manifest, dataset, run, data_dir, dataset_size, download)
    problems = integrity.self_check(manifest)
    signed_ok, signature = integrity.check_signature(manifest, key)
    if problems:  # stored items cannot be trusted: report only the data's root
        result = {"root": integrity.root_of(integrity.dataset_items(data)), "header": [],
                  "changes": {kind: [] for kind in integrity.CHANGE_KINDS}}
    else:
        result = integrity.diff(manifest, data)
    unchanged = not problems and signed_ok and not result["header"] and result["root"] == manifest["root"]
    log = log or audit.default_log(manifest_path)
    audit.append(log, "verify", described, result["root"],
                 {**integrity.summary(result), "header": result["header"], "signature": signature.split(" ")[0], "manifest": problems})
    if json_path:
        write_json(json_path, {"manifest": str(manifest_path), "data": described, "unchanged": unchanged,
                               "expected_root": manifest["root"], "signature": signature, "manifest_problems": problems,
                               **result})
    _print_verify(manifest, manifest_path, described, result, problems, signature, limit)
    console.print(f"{'VERIFIED' if unchanged else 'FAILED'}; audit log: {log}")
    if not unchanged:
        raise typer.Exit(1)


def _print_verify(manifest: dict, path: Path, described: str, result: dict, problems: list[str], signature: str,
                  limit: int) -> None:
    """The verdict, then each difference as one line (at most `limit`)."""
    console.print(f"manifest {path}: {manifest['dataset']}, root {manifest['root']}")
    console.print(f"data {described}: root {result['root']}")
    console.print(f"signature: {signature}")
    for problem in problems:
        console.print(f"MANIFEST ALTERED: {problem}")
    for note in result["header"]:
        console.print(f"changed: {note}")
    tally = integrity.summary(result)
    if not any(tally.values()):
        console.print("items not compared: the manifest is not trustworthy" if problems else "items: every item matches")
        return
    words = {"labels": "labels changed", "pixels": "pixels changed", "added": "added", "removed": "removed"}
    console.print("CHANGED: " + ", ".join(f"{n} {words[kind]}" for kind, n in tally.items() if n))
    changes, classes = result["changes"], manifest["classes"]
    lines = ([f"label   {c['split']}[{c['index']}]: {label_name(c['old'], classes)} -> {label_name(c['new'], classes)}"
              for c in changes["labels"]]
             + [f"pixels  {c['split']}[{c['index']}]" for c in changes["pixels"]]
             + [f"added   {c['split']}[{c['index']}]: label {label_name(c['label'], classes)}" for c in changes["added"]]
             + [f"removed {c['split']}[{c['index']}]: label {label_name(c['label'], classes)}" for c in changes["removed"]])
    for line in lines[: limit or None]:
        console.print(line)
    if limit and len(lines) > limit:
        console.print(f"... and {len(lines) - limit} more; pass --limit 0 to list all, or --json FILE")


def label_name(label: int, classes: list[str]) -> str:
    """A label with its class name when the name is not just the number."""
    return f"{label} ({classes[label]})" if 0 <= label < len(classes) and classes[label] != str(label) else str(label)


@manifest_app.command("log")
def show_log(
    manifest_path: Annotated[Path | None, typer.Argument(metavar="[MANIFEST]", help="Manifest whose log to read.")] = None,
    log: LogOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Prove the hash chain unbroken (exit 1 at the first broken entry).")] = False,
) -> None:
    """List the audit log, or with --check verify that every entry holds its predecessor's digest."""
    if log is None and manifest_path is None:
        raise PoisonlabError("no audit log given; pass the MANIFEST or --log FILE")
    log = log or audit.default_log(manifest_path)
    lines = audit.read(log)
    entries, broken, why = audit.check(lines)
    if check:
        if broken is not None:
            console.print(f"BROKEN: entry {broken} of {len(lines)} in {log} {why}; the {broken - 1} entries before it are intact")
            raise typer.Exit(1)
        head = entries[-1]["digest"] if entries else audit.GENESIS
        console.print(f"chain intact: {len(entries)} entries in {log}; head digest {head} (keep a copy elsewhere "
                      "to detect truncation)")
        return
    for e in entries:
        changes = ", ".join(f"{k} {v}" for k, v in e["changes"].items() if v not in (0, [], False))
        console.print(f"{e['seq']:>4} {e['time']} {e['user']} {e['action']:<6} {e['dataset']} root {e['root'][:16]} "
                      f"{changes}")
    if broken is not None:
        console.print(f"entry {broken} is broken ({why}); run with --check")


@manifest_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Key name: writes NAME.pem (private, mode 600) and NAME.pub.pem.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing key files.")] = False,
) -> None:
    """Write a new Ed25519 key pair for signing manifests."""
    base = out.with_suffix("") if out.suffix == ".pem" else out
    private_path, public_path = base.with_name(base.name + ".pem"), base.with_name(base.name + ".pub.pem")
    existing = [str(p) for p in (private_path, public_path) if p.exists()]
    if existing and not overwrite:
        raise PoisonlabError(f"{', '.join(existing)} already exist; pass --overwrite or choose another --out")
    private, public = integrity.new_key_pair()
    atomic_write(private_path, private, mode=0o600)
    atomic_write(public_path, public)
    console.print(f"private key: {private_path} (keep it secret; sign with --sign-key)")
    console.print(f"public key: {public_path} (share it; check with --public-key)")


def baseline_counts(path: Path) -> tuple[list[int], list[str] | None, dict]:
    """Training class counts, class names and the document: from a manifest or a {"counts": [...]} JSON file."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        raise PoisonlabError(f"cannot read baseline {path} as JSON; pass a manifest or a file like "
                             '{"classes": [...], "counts": [...]}') from None
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
    source: Annotated[str | None, typer.Option(help="Class of the flip to size, by name or number [default: the largest class].")] = None,
    target: Annotated[str | None, typer.Option(help="Class it is flipped to [default: the second largest].")] = None,
    alpha: AlphaOpt = 0.05,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Chi-square test of the training label counts against a baseline; exit 1 when the shift is significant."""
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
    pair = f"{classes[src]}->{classes[tgt]}"
    n = monitor.minimal_flip(expected, src, tgt, alpha)
    one = monitor.flip_p_value(expected, src, tgt, 1)
    if n is None:
        console.print(f"no {pair} flip is flagged at this size (1 flip: p = {one:.4g})")
        return
    console.print(f"smallest {pair} flip flagged: {n} items ({n / expected[src]:.1%} of {classes[src]}), p = "
                  f"{monitor.flip_p_value(expected, src, tgt, n):.4g}; {n - 1} items: p = "
                  f"{monitor.flip_p_value(expected, src, tgt, n - 1):.4g}; 1 item: p = {one:.4g}")


@monitor_app.command("accuracy")
def accuracy(
    baseline: Annotated[Path, typer.Option(help="The trusted run (folder or run.json).")],
    candidate: Annotated[Path, typer.Option(help="The run to check.")],
    alpha: AlphaOpt = 0.05,
) -> None:
    """Two-proportion z-tests of overall and per-class test accuracy (Holm-corrected); exit 1 naming the classes that dropped."""
    runs = read_run(baseline), read_run(candidate)
    classes = runs[0]["dataset"]["classes"]
    if runs[1]["dataset"]["classes"] != classes:
        raise PoisonlabError("the two runs have different classes; compare runs on the same dataset")
    result = monitor.compare_accuracy(*(np.asarray(r["metrics"]["confusion"]) for r in runs), alpha)
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
