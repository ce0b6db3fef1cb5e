"""`poisonlab validate`: check a dataset (or a run's poisoned labels) against its schema and list outlier images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from poisonlab.cli.common import (DataDirOpt, DownloadOpt, RunOpt, check_outputs, current_data, label_name,
                                  results_console as console)
from poisonlab.checks import MAX_SEED

if TYPE_CHECKING:
    from poisonlab.defences.validate import Schema


def expected_schema(schema_path: Path | None, name: str, observed: Schema, recording: bool) -> tuple[Schema, str]:
    """The schema to check against and where it came from: --schema, else the built-in one, else (with
    --write-schema) the observed one."""
    from poisonlab.defences.validate import KNOWN, known_schema, parse_schema

    if schema_path is not None:
        from poisonlab.files import MAX_SCHEMA_BYTES, read_json

        doc = read_json(schema_path, f"schema {schema_path} as JSON", MAX_SCHEMA_BYTES,
                        "pass a file written by --write-schema")
        return parse_schema(doc, str(schema_path)), str(schema_path)
    if recording and name not in KNOWN:
        return observed, "observed"
    return known_schema(name), f"built-in {name}"


def _why(reason: dict) -> str:
    """One reason as text: statistic, value, median and z."""
    where = "median" if reason["statistic"] == "isolation" else "class median"
    return f"{reason['statistic']} {reason['value']:.3f} ({where} {reason['median']:.3f}, z {reason['z']:+.1f})"


def print_result(result: dict, classes: list[str], top: int) -> None:
    """The checks table, then the first `top` outliers with their reasons."""
    table = Table("check", "result", "detail")
    for c in result["checks"]:
        table.add_row(c["check"], "OK" if c["ok"] else "FAIL" if c["fatal"] else "WARN", c["detail"])
    console.print(table)
    found = result["outliers"]
    if found:
        listing = Table("index", "label", "why (robust z vs. the class; isolation forest vs. the whole set)")
        for item in found[: top or None]:
            listing.add_row(str(item["index"]), label_name(item["label"], classes), "; ".join(map(_why, item["reasons"])))
        console.print(listing)
    if top and len(found) > top:
        console.print(f"... and {len(found) - top} more; pass --top 0 to list all, or --json FILE")


def validate(
    dataset: Annotated[str | None, typer.Option(help="Dataset: mnist, fashion_mnist, cifar10, cifar100[:coarse], digits, embedded, imagefolder:PATH.")] = None,
    run: RunOpt = None,
    dataset_size: Annotated[int | None, typer.Option("--dataset-size", "--dataset_size", min=0, help="First N training items (0 = all).")] = None,
    schema: Annotated[Path | None, typer.Option("--schema", help="Expected schema (JSON: shape, dtype, value_range, classes; default: the built-in one of the dataset).")] = None,
    write_schema: Annotated[Path | None, typer.Option("--write-schema", help="Write the observed schema to this JSON file (for --schema later).")] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1e6, help="Flag an image whose robust z-score exceeds this.")] = 6.0,
    top: Annotated[int, typer.Option("--top", min=0, help="List at most this many outliers (0 = all).")] = 20,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the isolation forest and its PCA.")] = 0,
    leaks: Annotated[bool, typer.Option("--leaks", help="Also check train/test segregation: test items that are byte-for-byte training items (exit 1) or near copies of one (warnings; see --near).")] = False,
    near: Annotated[float, typer.Option(min=0.0, max=1.0, help="With --leaks: a near copy lies closer to its nearest training item than this share of that item's distance to its own nearest neighbour (PCA-50 of the pixels).")] = 0.5,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the full result to this file.")] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Check shape, dtype, value range, labels and class names against the expected schema (exit 1 if wrong) and
    list statistical outliers among the training images (warnings)."""
    from poisonlab.defences.validate import observed_schema
    from poisonlab.defences.validate import validate as run_checks
    from poisonlab.store import write_json

    check_outputs(json_path, write_schema)
    data, described = current_data({}, dataset, run, data_dir, dataset_size, download)
    observed = observed_schema(data)
    expected, source = expected_schema(schema, data.name, observed, write_schema is not None)
    if write_schema is not None:
        write_json(write_schema, observed.to_dict())
    result = run_checks(data, expected, threshold, seed)
    if leaks:
        from poisonlab.defences.leaks import leaks as find_leaks

        result["leaks"] = find_leaks(data.x_train, data.x_test, near=near, seed=seed)
    if json_path is not None:
        write_json(json_path, {"data": described, "schema_source": source, "schema": expected.to_dict(),
                               "observed": observed.to_dict(), **result})
    console.print(f"{described}: checked against the {source} schema")
    print_result(result, data.classes, top)
    failed = [c["check"] for c in result["checks"] if c["fatal"] and not c["ok"]]
    seconds = result["seconds"]
    console.print(f"{'schema OK' if not failed else 'SCHEMA FAILED: ' + ', '.join(failed)}; {result['n_flagged']} of "
                  f"{result['n_train']} training images flagged as outliers (warnings, |z| > {threshold:g}); "
                  f"{seconds['total']:.1f}s (statistics {seconds['statistics']:.1f}s, isolation forest "
                  f"{seconds['isolation_forest']:.1f}s)")
    if write_schema is not None:
        console.print(f"observed schema written to {write_schema}")
    if leaks:
        print_leaks(result["leaks"], top)
    if failed or (leaks and result["leaks"]["exact"]):
        raise typer.Exit(1)


def print_leaks(found: dict, top: int) -> None:
    """The segregation check's verdict and its first `top` pairs."""
    exact, near = found["exact"], found["near"]
    console.print(f"train/test segregation: {'FAILED, ' if exact else ''}{len(exact)} of {found['n_test']} test items "
                  f"are training items byte for byte; {len(near)} more are near copies (ratio < "
                  f"{found['near_threshold']:g}; warnings); {found['seconds']:.1f}s")
    if exact or near:
        listing = Table("test item", "training item", "kind", "distance ratio")
        pairs = [(p, "exact", "0") for p in exact] + [(p, "near", f"{p['ratio']:.3f}") for p in near]
        for pair, kind, ratio in pairs[: top or None]:
            listing.add_row(str(pair["test"]), str(pair["train"]), kind, ratio)
        console.print(listing)
