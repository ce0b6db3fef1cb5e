"""The report's pages for targeted flips, detection studies and the models behind the results."""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from pathlib import Path

from poisonlab.checks import check_item_shape
from poisonlab.errors import PoisonlabError
from poisonlab.training import architecture
from poisonlab.reporting import flips as flipreport
from poisonlab.reporting.certifyplots import methods
from poisonlab.reporting.html.collect import Study, load_json
from poisonlab.reporting.html.page import image, minutes, note, table


def flip_section(folder: Path, doc: dict) -> str:
    """One targeted-flip study: summary per N, figures, and the per-predicted-class table."""
    src, tgt = doc["source"]["name"], doc["target"]["name"]
    parts = [note(f"{doc['dataset']}: the first {max(doc['n'])} (at most) '{src}' training labels flipped to '{tgt}' "
                  f"({doc['select']} selection); model {doc['model']}, {doc['epochs']} epochs, seeds "
                  f"{', '.join(map(str, doc['seeds']))}, {doc['n_train']} training and {doc['n_test']} test items; "
                  f"{len(doc['runs'])} runs, {minutes(sum(r.get('train_seconds', 0) for r in doc['runs']))} of training"
                  + "".join(f"; {n}" for n in doc.get("notes", [])) + "."),
             note(flipreport.SPREAD_NOTE),
             table(*flipreport.main_rows(doc))]
    figures = folder / "figures"
    for name, caption in (("class_counts", "class counts before and after the flip"),
                          ("flipped_images", "the poisoned images with old and new labels"),
                          ("source_target", f"{src}/{tgt} confusion sub-matrices"),
                          ("accuracy", "accuracy per N"), ("confusion", "full confusion matrix")):
        parts.append(image(figures / f"{name}.png", caption))
    ns = sorted({doc["n"][0], doc["n"][-1]})
    parts.append(f"<h4>Per predicted class: correct and incorrect test predictions (N={' vs N='.join(map(str, ns))},"
                 f" mean over seeds)</h4>")
    parts.append(table(*flipreport.predicted_rows(doc, ns)))
    return "".join(parts)


def detect_section(folder: Path, doc: dict) -> str:
    """One detection study: every method's scores per label set, and the quality and recovery figures."""
    rows = []
    for row in doc["rows"]:
        for m in row["methods"]:
            rows.append([row["kind"], row["setting"], m["method"], *(f"{m[k]:.3f}" if m.get(k) is not None else None
                                                                       for k in ("precision", "recall", "f1", "roc_auc")),
                         m["flagged"], m["true_poisoned"], f"{m['seconds']:.1f}",
                         None if m.get("accuracy_after") is None else f"{m['accuracy_after']:.4f}",
                         None if m.get("accuracy_after") is None or row.get("poisoned_accuracy") is None
                         else f"{100 * (m['accuracy_after'] - row['poisoned_accuracy']):+.1f} pts",
                         None if m.get("asr_after") is None else f"{m['asr_after']:.3f} (poisoned {row['poisoned_asr']:.3f})"])
    clean = doc.get("clean_accuracy")
    parts = [note(f"{doc['dataset']}, {doc['n_train']} training items, seed {doc['seed']}, detector model "
                  f"{doc['detector']['model']}; after cleaning, {doc['retrain']['model']} is retrained"
                  + (f" (clean accuracy {clean:.4f})" if clean is not None else "")
                  + f"; {minutes(doc.get('seconds', 0))} in all."),
             table(["labels", "setting", "method", "precision", "recall", "F1", "ROC AUC", "flagged", "poisoned",
                    "seconds", "accuracy after", "recovered (vs poisoned)", "backdoor ASR after"], rows, 3),
             image(folder / "detect.png", "detection quality vs poison rate"),
             image(folder / "recovery.png", "test accuracy recovered by cleaning")]
    return "".join(parts)


def backdoor_section(folder: Path, doc: dict) -> str:
    """One backdoor study: clean accuracy and attack success rate per percent stamped, the smallest percent reaching
    the ASR goal, and the figures."""
    trigger = doc["trigger"]
    what = (f"{trigger['size']}x{trigger['size']} checkerboard patch ({trigger['position']})" if trigger["kind"] == "patch"
            else f"noise image blended in at {trigger['alpha']:g}")
    how = "items of the target class stamped, labels kept (clean-label)" if doc["clean_label"] else \
        "items of other classes stamped and relabelled as the target (BadNets)"
    reached = doc["smallest_percent_reaching_goal"]
    spread = lambda v: f"{v['mean']:.3f} ({v['min']:.3f}–{v['max']:.3f})"  # noqa: E731
    after = any("before" in s for s in doc["summary"])
    rows = [[f"{s['percent']:g}%", s["n_poisoned"], s["seeds"],
             *(spread(s["before"][k]) if "before" in s else None for k in ("accuracy", "attack_success_rate") if after),
             *(spread(s[k]) for k in ("accuracy", "attack_success_rate"))] for s in doc["summary"]]
    defence = doc.get("defence", "none")
    header = ["stamped", "items", "seeds"] + (["clean accuracy before", "ASR before"] if after else []) + \
        [f"clean test accuracy{' after ' + defence if after else ''}", f"attack success rate{' after' if after else ''}"]
    return "".join([
        note(f"{doc['dataset']}: {what} steering to '{doc['target_name']}'; {how}; model {doc['model']}, seeds "
             f"{', '.join(map(str, doc['seeds']))}, {doc['n_train']} training and {doc['n_test']} test items. Attack "
             "success rate (ASR): share of triggered test images of the other classes predicted as the target. "
             "Mean over seeds (min–max)."),
        table(header, rows, 1),
        note(f"Smallest percent with mean ASR ≥ {doc['asr_goal']:.0%}: "
             + (f"{reached:g}%." if reached is not None else "not reached at the measured percents.")),
        image(folder / "asr_vs_percent.png", "attack success rate and clean accuracy vs percent stamped"),
        image(folder / "triggered.png", "training images without and with the trigger"),
        image(folder / "strip.png", "STRIP: triggered inputs accepted vs clean inputs rejected"),
    ])


def backdoor_defences_section(backdoors: list[tuple[Path, dict]]) -> str:
    """Every defence against each backdoor (same dataset, model, trigger and target): clean accuracy and attack
    success rate per percent stamped and defence, with the change against no defence."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for _, doc in backdoors:
        trigger = doc["trigger"]
        groups[(doc["dataset"], doc["model"], trigger["kind"], trigger.get("size"), doc["target_name"],
                doc["clean_label"], doc["n_train"])].append(doc)
    parts = []
    for (dataset, model, kind, _, target, clean_label, n_train), docs in groups.items():
        if len(docs) < 2:
            continue
        plain = {s["percent"]: s for d in docs if d.get("defence", "none") == "none" for s in d["summary"]}
        rows = []
        for percent in sorted({s["percent"] for d in docs for s in d["summary"]}):
            for d in sorted(docs, key=lambda d: d.get("defence", "none") != "none"):
                s = next((s for s in d["summary"] if s["percent"] == percent), None)
                if s is None:
                    continue
                base = plain.get(percent)
                rows.append([f"{percent:g}%", d.get("defence", "none"), s["seeds"], f"{s['accuracy']['mean']:.4f}",
                             None if base is None else f"{100 * (s['accuracy']['mean'] - base['accuracy']['mean']):+.2f} pts",
                             f"{s['attack_success_rate']['mean']:.3f}"])
        parts.append(f"<h4>{escape(dataset)} {escape(model)}: {escape(kind)} trigger → {escape(str(target))}"
                     f"{' (clean-label)' if clean_label else ''}, {n_train} training items</h4>")
        parts.append(table(["stamped", "defence", "seeds", "clean test accuracy", "vs no defence", "attack success rate"],
                           rows, 2))
    return "".join(parts)


def certify_section(folder: Path, doc: dict) -> str:
    """One certify study: clean and certified accuracy per budget of each certificate, the median certified
    radius, the figure."""
    poison = doc["poison"]
    poisoned = "clean labels" if poison["kind"] == "none" else \
        f"{poison['n_poisoned']} {'items' if poison['kind'] == 'backdoor' else 'labels'} poisoned ({poison['kind']}, " \
        f"{poison['percent']:g}%)"
    figures = methods(doc)
    budgets = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
    shown = sorted({r["budget"] for f in figures.values() for r in f["certified_accuracy"]} & budgets)
    rows = [[b] + [next((f"{r['accuracy']:.4f}" for r in f["certified_accuracy"] if r["budget"] == b), "")
                   for f in figures.values()] for b in shown]
    sizes = doc["partition_sizes"]
    spread = f", each item in {doc['spread']} of {doc['base_models']} models" if doc.get("spread", 1) > 1 else ""
    return "".join([
        note(f"{doc['dataset']}: {doc['partitions']} partitions of {doc['n_train']} training items{spread} "
             f"({sizes['min']}–{sizes['max']} items per {doc['model']} base model; {poisoned}), {doc['n_test']} test "
             f"images. One base model (mean): clean accuracy {doc['base_accuracy_mean']:.4f}. "
             + " ".join(f"{name.upper()}: clean accuracy {f['clean_accuracy']:.4f}, median certified radius "
                        f"{f['median_radius']:g}." for name, f in figures.items())
             + " Certified accuracy at B: the share of test images classified correctly whose prediction provably "
             "survives ANY B poisoned training items (insertions, removals or label flips)."),
        table(["poisoned items B"] + [f"certified accuracy ({name.upper()})" for name in figures], rows, 1),
        image(folder / "certified_accuracy.png", "certified accuracy vs poisoned training items"),
        backdoor_part(doc),
        attacks_part(folder, figures),
    ])


def matrix_section(folder: Path, doc: dict) -> str:
    """One attack x defence matrix: accuracy, share of the damage recovered and relative cost of every cell, and the
    heatmap."""
    fmt = lambda value, spec=".4f": "" if value is None else format(value, spec)  # noqa: E731
    rows = [[c["attack"], f"{c['percent']:g}%", c["defence"], c["seeds"],
             fmt(c["accuracy"]) + (f" ± {c['accuracy_std']:.4f}" if c["seeds"] > 1 else ""),
             fmt(c.get("attack_success_rate")),
             "" if c["recovered"] is None else f"{c['recovered']:.2f}" + (f" ± {c['recovered_std']:.2f}"
                                                                           if len(c["recovered_seeds"]) > 1 else ""),
             fmt(c["epoch_time_ratio"], ".2f"), fmt(c["time_ratio"], ".2f")] for c in doc["cells"]]
    size = f"the first {doc['dataset_size']} training items" if doc["dataset_size"] else "all training items"
    return "".join([
        note(f"{doc['dataset']}, {size}, model {doc['model']}, seeds {', '.join(map(str, doc['seeds']))}; "
             f"{doc['runs']} runs. Recovered: the share of the damage a defence gives back, (defended - poisoned) / "
             "(clean - poisoned) per seed in test accuracy (label flips) or attack success rate (ASR, backdoors), "
             "mean ± std (1: all of it, 0: nothing, below 0: worse; blank where the poison cost under half a point). "
             "Time: the defence's training time per epoch, and in all (with a cleaning defence's detection), "
             "relative to plain training of the same cell."),
        table(["attack", "percent", "defence", "seeds", "test accuracy", "ASR", "recovered", "time per epoch",
               "time in all"], rows, 3),
        image(folder / "matrix.png", "share of the damage recovered per attack and defence"),
    ])


def backdoor_part(doc: dict) -> str:
    """A backdoor certify study's attack success rate (aggregate per certificate, one base model) and the share of
    triggered test images certified unaffected by every stamped item; "" for other studies."""
    if "backdoor" not in doc:
        return ""
    try:
        stamped, n_poisoned = doc["backdoor"], int(doc["poison"]["n_poisoned"])
        rows = [[name.upper(), f"{row['attack_success_rate']:.4f}", f"{row['certified_unaffected']:.4f}"]
                for name, row in stamped["methods"].items()]
        base = stamped["base_attack_success_rate_mean"]
        text = (f"Backdoor: a {stamped['trigger']} trigger stamped on {n_poisoned} training items relabelled as class "
                f"{int(stamped['target'])}; {int(stamped['n_triggered'])} triggered test images of other classes. One "
                f"base model (mean) predicts the target on {'n/a' if base is None else f'{base:.4f}'} of them. "
                f"Certified unaffected: the share whose radius reaches {int(stamped['radius_needed'])} (a stamped copy "
                "that replaced its clean item is one removal and one insertion), so that the backdoor provably did "
                "not make that prediction.")
    except (KeyError, TypeError, ValueError, AttributeError):
        return note("certify.json's backdoor record is damaged; run `poisonlab certify` again with --overwrite")
    return note(text) + table(["certificate", "attack success rate", "certified unaffected"], rows, 1)


def attacks_part(folder: Path, figures: dict) -> str:
    """The guarantee beside the attacks (attacks.json, when the study has one): per attack and budget B, the
    certified bound, the accuracy the aggregate and one ordinary model keep, and the figure."""
    doc = load_json(folder / "attacks.json")
    try:
        rows = [[r["attack"], r["budget"], r["models_retrained"]]
                + [f"{r['certified_accuracy'][name]:.4f}" for name in figures]
                + [f"{r['aggregate_accuracy'][name]:.4f}" for name in figures] + [f"{r['ordinary_accuracy']:.4f}"]
                for r in doc["rows"]]
    except (KeyError, TypeError, ValueError):
        return note(f"{folder / 'attacks.json'} is missing or not an attacks study; run `poisonlab certify` with "
                    "--attack-budgets to add the guarantee beside the attacks") if (folder / "attacks.json").exists() \
            else ""
    names = [name.upper() for name in figures]
    return "".join([
        note("The guarantee beside the attacks: B labels flipped at random, toward classes 0/1 (biased) or where a "
             "clean ordinary model is surest (confident); only the base models trained on a flipped item are "
             f"trained again. One ordinary model: the same architecture on all items, clean accuracy "
             f"{doc['ordinary_clean_accuracy']:.4f}."),
        table(["attack", "B", "base models trained again"] + [f"certified bound ({n})" for n in names]
              + [f"aggregate ({n})" for n in names] + ["one ordinary model"], rows, 2),
        image(folder / "guarantee.png", "certified bound beside the accuracy kept under attacks"),
    ])


def _flip_shape(folder: Path) -> list[int] | None:
    """Image shape recorded by the first run of a flip study."""
    for path in sorted(folder.glob("runs/*/*/run.json")):
        try:
            return json.loads(path.read_text())["dataset"]["shape"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def models_section(study: Study) -> str:
    """Layer table and Graphviz picture of every model behind a result."""
    wanted: dict[tuple, list[str]] = defaultdict(list)
    for g in study.groups:
        wanted[(g["model"], tuple(g["shape"]), g["num_classes"])].append(f"{g['dataset']} sweeps")
    for folder, doc in study.flips:
        shape = _flip_shape(folder)
        if shape:
            wanted[(doc["model"], tuple(shape), len(doc["classes"]))].append(f"{doc['dataset']} targeted flip")
    parts = []
    for (name, shape, k), uses in sorted(wanted.items(), key=str):
        try:
            shape, k = check_item_shape(list(shape), k, f"a run record of the {name} runs")
            if len(shape) != 3:
                raise PoisonlabError(f"{name} runs on feature rows of {shape[0]} values")
            info = architecture.summary(name, shape, k)
        except PoisonlabError as exc:
            parts.append(note(f"{name} ({', '.join(sorted(set(uses)))}): no layer table, {exc}."))
            continue
        parts.append(f"<h3>{escape(name)}: input {shape[2]}x{shape[0]}x{shape[1]}, {k} classes "
                     f"(used by {escape(', '.join(sorted(set(uses))))})</h3>")
        if not info["layers"]:
            parts.append(note(f"scikit-learn estimator {info['estimator']} on flattened pixels; its parameters "
                              "are learnt from the data (no layers)."))
            continue
        rows = [[r["name"], r["layer"], " x ".join(map(str, r["output"])), f"{r['parameters']:,}"] for r in info["layers"]]
        rows.append(["total", "", "", f"{info['total']:,}"])
        svg = architecture.render_svg(architecture.dot_source(info))
        picture = svg or escape("Install Graphviz for the architecture picture (Debian/Ubuntu: apt install graphviz).")
        parts.append(f'<div class="cols"><div>{table(["layer", "type", "output shape", "parameters"], rows, 2)}</div>'
                     f'<div class="arch">{picture}</div></div>')
    return "".join(parts) or note("No models found.")
