"""`poisonlab report`: one self-contained HTML page with every curve, table and picture of a results folder."""

from __future__ import annotations

import platform
from html import escape
from datetime import datetime, timezone
from pathlib import Path

from poisonlab import __version__, store
from poisonlab.reporting.curves import curves
from poisonlab.reporting.html import charts, sections, studies
from poisonlab.reporting.html.collect import collect
from poisonlab.reporting.html.page import document, note


def build(out: Path, path: Path) -> dict:
    """Write the report of results folder `out` to `path` (atomically); returns what it contains."""
    study = collect(out)
    data = curves(study.synthetic)
    parts = [("overview", "Overview", sections.overview(study))]
    if study.synthetic or study.human:
        parts += [("curves", "Accuracy vs poison", sections.curves_section(study, data)),
                  ("halving", "Until accuracy halves", sections.halving_section(data))]
    for i, (folder, doc) in enumerate(study.flips):
        title = f"Targeted flip: {doc['dataset']} {doc['source']['name']} -> {doc['target']['name']}"
        parts.append((f"flip-{i}", title, studies.flip_section(folder, doc)))
    if study.detections:
        body = "".join(f"<h3>{escape(d['dataset'])} ({escape(folder.name)})</h3>" + studies.detect_section(folder, d)
                       for folder, d in study.detections)
        parts.append(("defences", "Defences", body))
    for i, (folder, doc) in enumerate(study.backdoors):
        title = f"Backdoor: {doc['dataset']} {doc['trigger']['kind']} -> {doc['target_name']}"
        title += f", defence {doc['defence']}" if doc.get("defence", "none") != "none" else ""
        parts.append((f"backdoor-{i}", title + (" (clean-label)" if doc["clean_label"] else ""),
                      studies.backdoor_section(folder, doc)))
    compared = studies.backdoor_defences_section(study.backdoors)
    if compared:
        parts.append(("backdoor-defences", "Backdoor defences compared", compared))
    for i, (folder, doc) in enumerate(study.certifications):
        parts.append((f"certify-{i}", f"Certified: {doc['dataset']}, {doc['partitions']} partitions",
                      studies.certify_section(folder, doc)))
    for i, (folder, doc) in enumerate(study.matrices):
        size = f" first {doc['dataset_size']}" if doc["dataset_size"] else ""
        parts.append((f"matrix-{i}", f"Attack x defence: {doc['dataset']}{size}", studies.matrix_section(folder, doc)))
    parts += [("models", "Models", studies.models_section(study)),
              ("provenance", "Configuration and provenance", sections.provenance_section(study)
               + note(f"Report made by poisonlab {__version__} on Python {platform.python_version()}."))]
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = [f"Results folder: {out.resolve()}", f"Generated {made}; open offline, everything is embedded."]
    html = document("poisonlab report: how much does poisoned training data hurt?", subtitle, parts, charts.plotly_js())
    store.atomic_write(path, html)
    return {"path": path, "sections": [title for _, title, _ in parts], "runs": len(study.rows),
            "flips": len(study.flips), "detections": len(study.detections), "backdoors": len(study.backdoors),
            "certifications": len(study.certifications), "matrices": len(study.matrices),
            "bytes": len(html.encode())}
