"""What a model is made of: a layer table (output shape, parameters) and a Graphviz picture of it."""

from __future__ import annotations

import shutil
import subprocess

import torch
from torch import nn

from poisonlab.training import models


def layer_table(model: nn.Module, shape: tuple[int, int, int]) -> list[dict]:
    """One row per leaf layer in forward order: name, layer, output shape (C, H, W or features), parameters."""
    rows: list[dict] = []

    def hook(name: str):
        def record(module: nn.Module, _inputs, output: torch.Tensor) -> None:
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append({"name": name, "layer": _describe(module), "output": list(output.shape[1:]), "parameters": params})
        return record

    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    height, width, channels = shape
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, height, width))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return rows


def _describe(module: nn.Module) -> str:
    """Layer type with its key settings, e.g. Conv2d(1, 24, kernel_size=(3, 3), ...)."""
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if extra else type(module).__name__


def summary(name: str, shape: tuple[int, int, int], num_classes: int) -> dict:
    """Layer table and totals of model `name` built for images of `shape` (H, W, C); sklearn models get no table."""
    model = models.build(name, shape, num_classes)
    if not isinstance(model, nn.Module):
        return {"model": name, "input": list(shape), "classes": num_classes, "layers": [], "total": None,
                "estimator": repr(model)}
    rows = layer_table(model, shape)
    return {"model": name, "input": list(shape), "classes": num_classes, "layers": rows,
            "total": models.count_parameters(model), "estimator": None}


def dot_source(info: dict) -> str:
    """Graphviz DOT text of a layer table: input, one box per layer (output shape, parameters), output."""
    h, w, c = info["input"]
    lines = ["digraph model {", "rankdir=TB; ranksep=0.2; nodesep=0.2;", 'node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica", fontsize=10];', f'in [label="input\\n{c}x{h}x{w}", fillcolor="#ffffff"];']
    previous = "in"
    for i, row in enumerate(info["layers"]):
        kind = row["layer"].split("(")[0]
        shape = "x".join(str(d) for d in row["output"])
        params = f"\\n{row['parameters']:,} params" if row["parameters"] else ""
        lines.append(f'l{i} [label="{kind}\\n{shape}{params}"];')
        lines.append(f"{previous} -> l{i};")
        previous = f"l{i}"
    lines += [f'out [label="{info["classes"]} class scores", fillcolor="#ffffff"];', f"{previous} -> out;", "}"]
    return "\n".join(lines)


def render_svg(dot: str) -> str | None:
    """SVG markup of a DOT graph via Graphviz's `dot`; None when Graphviz is not installed."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    done = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        return None
    svg = done.stdout.decode()
    return svg[svg.index("<svg"):]

