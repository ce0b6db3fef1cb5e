"""Draw the dependencies between poisonlab's packages from their imports: docs/dependencies.{dot,svg}.

Usage: python scripts/depgraph.py [--check]   (--check: exit 1 when an import breaks the layering)"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "poisonlab"
# Layers, top to bottom: a package may import only packages of LOWER layers (and its own).
LAYERS = [["cli", "api"], ["studies", "reporting"], ["defences", "attacks"], ["training"], ["datasets", "store"],
          ["files", "checks", "mixture", "display"], ["errors"]]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}
ALLOWED_SAME_LAYER = {("studies", "reporting")}  # a study writes its own tables and figures


def unit(module: str) -> str | None:
    """The package (or top-level module) a dotted poisonlab module belongs to: poisonlab.studies.run -> studies."""
    parts = module.split(".")
    return parts[1] if parts[0] == "poisonlab" and len(parts) > 1 else None


def edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package pairs, each with the files that make it."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        source = unit(".".join(relative.with_suffix("").parts))
        if source is None or source == "__init__" or source == "__main__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] if node.module != "poisonlab" else [f"poisonlab.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                imported = unit(target)
                if imported in LEVEL and imported != source:
                    found[(source, imported)].append(str(relative))
    return found


def violations(found: dict[tuple[str, str], list[str]]) -> list[str]:
    """Every import that points up or sideways in the layering."""
    bad = []
    for (a, b), files in sorted(found.items()):
        if LEVEL[b] < LEVEL[a] or (LEVEL[b] == LEVEL[a] and (a, b) not in ALLOWED_SAME_LAYER):
            bad.append(f"{a} -> {b} ({', '.join(sorted(set(files)))})")
    return bad


def dot(found: dict[tuple[str, str], list[str]]) -> str:
    """Graphviz text: one row per layer, an arrow per package dependency labelled with its number of files."""
    lines = ["digraph poisonlab {", 'rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica"]; edge [color="#555555", fontname="Helvetica", fontsize=9];']
    for layer in LAYERS:
        lines.append("{ rank=same; " + " ".join(f'"{n}";' for n in layer) + " }")
    for (a, b), files in sorted(found.items()):
        lines.append(f'"{a}" -> "{b}" [label="{len(set(files))}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    found = edges()
    bad = violations(found)
    if "--check" in sys.argv:
        print("\n".join(bad) or "layering holds")
        return 1 if bad else 0
    text = dot(found)
    (ROOT / "docs" / "dependencies.dot").write_text(text)
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", "-o", str(ROOT / "docs" / "dependencies.svg")], input=text.encode(), check=True)
    print("\n".join(bad) or "layering holds", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
