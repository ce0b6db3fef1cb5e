"""`poisonlab manifest ...`: integrity manifests of datasets (build, verify, sign) and their audit log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from poisonlab.cli.common import (DataDirOpt, DownloadOpt, RunOpt, check_outputs, current_data, label_name,
                                  results_console as console)
from poisonlab.errors import PoisonlabError

manifest_app = typer.Typer(no_args_is_help=True, help="Integrity manifests of datasets: build, verify, sign, audit log.")

DatasetOpt = Annotated[str | None, typer.Option(help="Dataset spec (mnist, cifar10, imagefolder:PATH, ...).", show_default="the manifest's")]
SizeOpt = Annotated[int | None, typer.Option("--dataset-size", "--dataset_size", min=0, help="First N training items (0 = all).", show_default="the manifest's")]
LogOpt = Annotated[Path | None, typer.Option("--log", help="Audit log.", show_default="<manifest>.log.jsonl")]


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
    from poisonlab import datasets
    from poisonlab.defences import audit, integrity

    log = log or audit.default_log(out)
    if log.absolute() == out.absolute():
        raise PoisonlabError(f"--log and --out are both {out}; give the audit log its own file (default: "
                             f"{audit.default_log(out)})")
    check_outputs(out, log)
    key = integrity.load_key(sign_key, private=True) if sign_key else None
    data = datasets.load(dataset, data_dir, dataset_size, download)
    started = time.perf_counter()
    manifest = integrity.build(data, dataset, dataset_size)
    seconds = time.perf_counter() - started
    if key is not None:
        manifest = integrity.sign(manifest, key)
    integrity.write(out, manifest)
    sizes = {s: manifest["splits"][s]["count"] for s in integrity.SPLITS}
    signer = {"signer": manifest["signature"]["public_key"]} if key is not None else {}
    audit.append(log, "build", dataset, manifest["root"],
                 {**sizes, "dataset_size": dataset_size, "signed": key is not None, **signer})
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
    require_signature: Annotated[bool, typer.Option("--require-signature", help="Fail on an unsigned manifest.")] = False,
) -> None:
    """Exit 0 when the data match the manifest and the manifest is the audit log's latest build of its dataset (same
    root, same signer); else list every changed label, pixel, added and removed item, and what the log disagrees
    with, exit 1."""
    from poisonlab import store
    from poisonlab.defences import audit, integrity
    from poisonlab.store import write_json

    log = log or audit.default_log(manifest_path)
    check_outputs(json_path, log)
    manifest = integrity.read(manifest_path)
    key = integrity.load_key(public_key, private=False) if public_key else None
    data, described = current_data(manifest, dataset, run, data_dir, dataset_size, download)
    problems = integrity.self_check(manifest)
    signed_ok, signature = integrity.check_signature(manifest, key)
    entries = audit.check(audit.read(log))[0] if log.exists() else []
    signer = manifest["signature"].get("public_key") if isinstance(manifest.get("signature"), dict) else None
    disagree = audit.manifest_problems(entries, manifest, signer if isinstance(signer, str) else None,
                                       require_signature)
    requested = dataset_size or (store.read_run(run, required=True, weights=False)["config"].get("dataset_size", 0)
                                 if run is not None else 0)
    subset = bool(requested) and len(data.y_train) < manifest["splits"]["train"]["count"]
    if problems:  # stored items cannot be trusted: report only the data's root
        result = {"root": integrity.root_of(integrity.dataset_items(data)), "header": [], "outside": 0,
                  "changes": {kind: [] for kind in integrity.CHANGE_KINDS}}
    else:
        result = integrity.diff(manifest, data, subset=subset)
    unchanged = not problems and not disagree and signed_ok and integrity.matches(manifest, result, subset=subset)
    audit.append(log, "verify", described, result["root"],
                 {**integrity.summary(result), "outside": result["outside"], "header": result["header"],
                  "signature": signature.split(" ")[0], "manifest": problems,
                  "audit_log": disagree})
    if json_path:
        write_json(json_path, {"manifest": str(manifest_path), "data": described, "unchanged": unchanged,
                               "expected_root": manifest["root"], "signature": signature, "manifest_problems": problems,
                               "audit_log_problems": disagree,
                               **result})
    _print_verify(manifest, manifest_path, described, result, problems, signature, limit)
    for problem in disagree:
        console.print(f"AUDIT LOG: {problem}")
    console.print(f"{'VERIFIED' if unchanged else 'FAILED'}; audit log: {log}")
    if not unchanged:
        raise typer.Exit(1)


def _print_verify(manifest: dict, path: Path, described: str, result: dict, problems: list[str], signature: str,
                  limit: int) -> None:
    """The verdict, then each difference as one line (at most `limit`)."""
    from poisonlab.defences import integrity

    console.print(f"manifest {path}: {manifest['dataset']}, root {manifest['root']}")
    console.print(f"data {described}: root {result['root']}")
    console.print(f"signature: {signature}")
    for problem in problems:
        console.print(f"MANIFEST ALTERED: {problem}")
    for note in result["header"]:
        console.print(f"changed: {note}")
    tally = integrity.summary(result)
    if result.get("outside"):
        console.print(f"subset: the first {manifest['splits']['train']['count'] - result['outside']} training items, "
                      f"compared item by item ({result['outside']} later ones outside it)")
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


@manifest_app.command("log")
def show_log(
    manifest_path: Annotated[Path | None, typer.Argument(metavar="[MANIFEST]", help="Manifest whose log to read.")] = None,
    log: LogOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Prove the hash chain unbroken (exit 1 at the first broken entry).")] = False,
) -> None:
    """List the audit log, or with --check verify that every entry holds its predecessor's digest."""
    from poisonlab.defences import audit

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
    from poisonlab.defences import integrity
    from poisonlab.store import atomic_write

    base = out.with_suffix("") if out.suffix == ".pem" else out
    private_path, public_path = base.with_name(base.name + ".pem"), base.with_name(base.name + ".pub.pem")
    check_outputs(private_path, public_path)
    existing = [str(p) for p in (private_path, public_path) if p.exists()]
    if existing and not overwrite:
        raise PoisonlabError(f"{', '.join(existing)} already exist; pass --overwrite or choose another --out")
    private, public = integrity.new_key_pair()
    atomic_write(private_path, private, mode=0o600)
    atomic_write(public_path, public)
    console.print(f"private key: {private_path} (keep it secret; sign with --sign-key)")
    console.print(f"public key: {public_path} (share it; check with --public-key)")


