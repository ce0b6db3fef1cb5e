"""The defence commands through `poisonlab.cli.main`: manifest build/verify, monitor counts and detect, with their exit
codes and what they list."""

import json

import pytest



@pytest.fixture(scope="module")
def runs(poisonlab_main, tmp_path_factory) -> dict:
    """A manifest of the real digits set, a run with one random label poisoned (0.07 % of 1437) and one with 40 %
    biased poisoning."""
    folder = tmp_path_factory.mktemp("defend")
    for args in (["manifest", "build", "--dataset", "digits", "--out", folder / "digits.manifest.json"],
                 ["train", "--dataset", "digits", "--percents", "0.07", "--model", "logreg", "--out", folder / "runs"],
                 ["train", "--dataset", "digits", "--biased", "--percents", "40", "--model", "logreg", "--out", folder / "runs"]):
        assert poisonlab_main(*args) == 0, args
    return {"manifest": folder / "digits.manifest.json", "one": folder / "runs" / "models" / "digits_logreg" / "0.07" / "seed0",
            "biased": folder / "runs" / "models" / "b_digits_logreg" / "40" / "seed0"}


def test_manifest_verify_passes_unchanged_data_and_lists_a_tampered_label(runs, cli):
    code, out = cli.text("manifest", "verify", runs["manifest"], "--dataset", "digits")
    assert code == 0 and "VERIFIED" in out and "every item matches" in out
    poison = json.loads((runs["one"] / "run.json").read_text())["poison"]
    (index,), (old,), (new,) = poison["indices"], poison["original_labels"], poison["new_labels"]
    code, out = cli.text("manifest", "verify", runs["manifest"], "--run", runs["one"])
    assert code == 1 and "FAILED" in out and "CHANGED: 1 labels changed" in out
    assert f"label   train[{index}]: {old} -> {new}" in out


def test_monitor_counts_flags_a_big_shift_and_not_one_flip(runs, cli):
    code, out = cli.text("monitor", "counts", "--baseline", runs["manifest"], "--run", runs["biased"])
    assert code == 1 and "SHIFTED at alpha 0.05" in out and out.count("MOVED") >= 2
    code, out = cli.text("monitor", "counts", "--baseline", runs["manifest"], "--run", runs["one"])
    assert code == 0 and "no significant shift" in out


def test_detect_on_small_real_mnist_writes_scored_rows(shared_data, tmp_path, cli):
    code, out = cli.text("detect", "--dataset", "mnist", "--dataset-size", "600", "--method", "knn-pixels,cl",
                     "--data-dir", shared_data, "--no-download", "--out", tmp_path)
    assert code == 0, out
    doc = json.loads((tmp_path / "detect.json").read_text())
    (row,) = doc["rows"]
    assert (row["kind"], row["n_poisoned"], [m["method"] for m in row["methods"]]) == ("random", 120, ["knn-pixels", "cl"])
    for m in row["methods"]:
        assert {"precision", "recall", "f1", "roc_auc", "seconds"} <= set(m)
        assert m["precision"] > 2 * 0.20 and m["recall"] > 0.5 and m["roc_auc"] > 0.8, m
    assert (tmp_path / "detect.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "recovery.png").exists()


@pytest.mark.parametrize("args, message", [
    (["detect", "--dataset", "digits", "--method", "magic"], "unknown detection method 'magic'"),
    (["manifest", "verify", "missing.manifest.json"], "missing.manifest.json"),
    (["monitor", "counts", "--baseline", "missing.json", "--dataset", "digits"], "cannot read baseline missing.json"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out = cli.text(*args)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out
    assert not any(tmp_path.iterdir())
