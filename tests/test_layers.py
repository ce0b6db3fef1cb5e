"""The package layering: imports point one way (cli/api -> studies/reporting -> defences/attacks -> training ->
datasets/store -> errors), no cycles, and docs/dependencies.dot is the drawing of today's imports."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def depgraph():
    spec = importlib.util.spec_from_file_location("depgraph", ROOT / "scripts" / "depgraph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imports_point_down_the_layers():
    graph = depgraph()
    found = graph.edges()
    assert ("studies", "training") in found and ("defences", "training") in found  # the parser sees real imports
    assert graph.violations(found) == []
    assert not any(a == "defences" and b in ("attacks", "reporting", "studies") for a, b in found)


def test_dependency_drawing_is_current():
    graph = depgraph()
    assert (ROOT / "docs" / "dependencies.dot").read_text() == graph.dot(graph.edges()), \
        "run python scripts/depgraph.py and commit docs/dependencies.*"


def test_help_does_not_load_heavy_libraries():
    code = ("import sys; from poisonlab.cli import main\ntry:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'sklearn', 'cleanlab', 'matplotlib', 'plotly', 'ray') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
